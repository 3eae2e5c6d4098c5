/**
 * Per-vCPU cache of zeroed pages for new tables (struct kvm_mmu_memory_cache, with the
 * kvm_mmu_topup_memory_cache semantics of spec section 4.4).
 */
import { ENOMEM } from "../common/errno.js";
import type { PhysMem } from "./phys-mem.js";

/** KVM_ARCH_NR_OBJS_PER_MEMORY_CACHE. */
export const MEMCACHE_CAPACITY = 40;

/** A stack of preallocated zeroed table pages. */
export class MemoryCache {
  private readonly objs: Int32Array;
  /** Pages held now. */
  count = 0;

  constructor(
    private readonly mem: PhysMem,
    readonly capacity: number = MEMCACHE_CAPACITY,
  ) {
    this.objs = new Int32Array(capacity);
  }

  /**
   * kvm_mmu_topup_memory_cache: nothing if at least `min` pages are held; otherwise fill to
   * capacity. Returns the number of pages allocated (>= 0), or -ENOMEM if fewer than `min` could
   * be had.
   */
  topup(min: number): number {
    if (this.count >= min) return 0;
    let added = 0;
    while (this.count < this.capacity) {
      const page = this.mem.allocPage();
      if (page < 0) return this.count >= min ? added : ENOMEM;
      this.objs[this.count++] = page;
      added++;
    }
    return added;
  }

  /** kvm_mmu_memory_cache_alloc: a zeroed page with refcount 1, or -1 when empty. */
  alloc(): number {
    if (this.count === 0) return -1;
    return this.objs[--this.count]!;
  }

  /** kvm_mmu_free_memory_cache: gives every held page back. */
  free(): void {
    while (this.count > 0) {
      const page = this.objs[--this.count]!;
      this.mem.refcount[page] = 0;
      this.mem.release(page);
    }
  }
}
