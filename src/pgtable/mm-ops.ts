/**
 * struct kvm_pgtable_mm_ops: how the page-table code gets, counts and frees table pages and how it
 * reaches cache maintenance. Table pages are named by their page number in {@link PhysMem}.
 */
import { W, type WorkMeter } from "../common/work.js";
import type { PgtableSink } from "./events.js";
import { cleanDcacheGuestPage, invalidateIcacheGuestPage, type Stage2Env } from "./hw.js";
import type { MemoryCache } from "./memcache.js";
import type { PhysMem } from "./phys-mem.js";

const W_TABLE_REFCOUNT = W["table-refcount"];
const W_TABLE_FREE = W["table-free"];

/** The mm_ops callbacks; a null CMO callback means "no CMO" (the kernel tests the pointer). */
export interface MmOps {
  /** zalloc_page: a zeroed page from the memcache (or the allocator when `mc` is null); -1 if none. */
  zallocPage(mc: MemoryCache | null): number;
  /** zalloc_pages_exact: `count` contiguous zeroed pages; the first page number, or -1. */
  zallocPagesExact(count: number): number;
  /** free_pages_exact: drops the reference of each of `count` pages from `first`. */
  freePagesExact(first: number, count: number): void;
  /** get_page on a table page. */
  getPage(page: number): void;
  /** put_page on a table page; the page is freed when its count reaches 0. */
  putPage(page: number): void;
  /** page_count. */
  pageCount(page: number): number;
  /** phys_to_virt (the model represents linear-map addresses by the PA they alias). */
  physToVirt(pa: number): number;
  /** virt_to_phys. */
  virtToPhys(va: number): number;
  /** dcache_clean_inval_poc(va, size), or null. */
  readonly dcacheCleanInvalPoc: ((va: number, size: number) => void) | null;
  /** icache_inval_pou(va, size), or null. */
  readonly icacheInvalPou: ((va: number, size: number) => void) | null;
}

/** Page bookkeeping shared by every mm_ops: refcounts on {@link PhysMem} with events. */
class PageOps {
  constructor(
    private readonly mem: PhysMem,
    private readonly events: PgtableSink,
    private readonly meter: WorkMeter,
  ) {}

  zallocPage(mc: MemoryCache | null): number {
    return mc !== null ? mc.alloc() : this.mem.allocPage();
  }

  zallocPagesExact(count: number): number {
    return this.mem.allocContiguous(count);
  }

  freePagesExact(first: number, count: number): void {
    for (let i = 0; i < count; i++) this.putPage(first + i);
  }

  getPage(page: number): void {
    this.meter.charge(W_TABLE_REFCOUNT, 1);
    const count = ++this.mem.refcount[page]!;
    if (this.events.active) this.emitRefcount(page, count);
  }

  putPage(page: number): void {
    this.meter.charge(W_TABLE_REFCOUNT, 1);
    const count = --this.mem.refcount[page]!;
    if (this.events.active) this.emitRefcount(page, count);
    if (count === 0) this.freePage(page);
  }

  /** put_page's free, once the count reached 0 (out of line: keeps putPage small to inline). */
  private freePage(page: number): void {
    this.meter.charge(W_TABLE_FREE, 1);
    this.mem.release(page);
    if (this.events.active) this.emitPageFree(page);
  }

  /** The `refcount` event (out of line: keeps get_page/put_page small enough to inline). */
  private emitRefcount(page: number, count: number): void {
    const ev = this.events;
    if (ev.tap !== null) ev.tap.refcount(page, count);
    if (ev.wants["refcount"]) ev.emit({ kind: "refcount", pa: this.mem.pa(page), count });
  }

  /** The `page-free` event. */
  private emitPageFree(page: number): void {
    const ev = this.events;
    if (ev.tap !== null) ev.tap.pageFree(page);
    if (ev.wants["page-free"]) ev.emit({ kind: "page-free", pa: this.mem.pa(page) });
  }

  pageCount(page: number): number {
    return this.mem.refcount[page]!;
  }

  physToVirt(pa: number): number {
    return pa;
  }

  virtToPhys(va: number): number {
    return va;
  }
}

/**
 * kvm_s2_mm_ops as mmu.c wires it for a guest stage 2. The CMO members are prototype methods
 * shared by every instance (not per-table closures), so the map walker's call through them stays
 * monomorphic; they are always called as members (`mm.dcacheCleanInvalPoc(...)`), as the kernel
 * calls through mm_ops.
 */
class KvmS2MmOps extends PageOps implements MmOps {
  readonly dcacheCleanInvalPoc: MmOps["dcacheCleanInvalPoc"];
  readonly icacheInvalPou: MmOps["icacheInvalPou"];

  constructor(
    mem: PhysMem,
    private readonly env: Stage2Env,
    cmoCallbacks: boolean,
  ) {
    super(mem, env.events, env.meter);
    this.dcacheCleanInvalPoc = cmoCallbacks ? this.cleanDcacheGuestPage : null;
    this.icacheInvalPou = cmoCallbacks ? this.invalidateIcacheGuestPage : null;
  }

  /** clean_dcache_guest_page. */
  private cleanDcacheGuestPage(this: KvmS2MmOps, va: number, size: number): void {
    cleanDcacheGuestPage(this.env, va, size);
  }

  /** invalidate_icache_guest_page. */
  private invalidateIcacheGuestPage(this: KvmS2MmOps, va: number, size: number): void {
    invalidateIcacheGuestPage(this.env, va, size);
  }
}

/**
 * kvm_s2_mm_ops as mmu.c wires it for a guest stage 2. With `cmoCallbacks` (v5.14) the CMO
 * members are clean_dcache_guest_page and invalidate_icache_guest_page; without (v5.12's
 * pgtable has no such members) they are null.
 */
export function kvmS2MmOps(mem: PhysMem, env: Stage2Env, cmoCallbacks: boolean): MmOps {
  return new KvmS2MmOps(mem, env, cmoCallbacks);
}
