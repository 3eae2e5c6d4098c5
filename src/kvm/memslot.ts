/** KVM memslots (struct kvm_memory_slot) with their dirty bitmaps. */
import { S2simError } from "../common/error.js";
import { hex, sizeName } from "../common/format.js";

/** KVM_MEM_LOG_DIRTY_PAGES. */
export const KVM_MEM_LOG_DIRTY_PAGES = 1 << 0;
/** KVM_MEM_READONLY. */
export const KVM_MEM_READONLY = 1 << 1;

/** kvm_alloc_dirty_bitmap: one clear bit per page of a slot of `npages` pages. */
export function newDirtyBitmap(npages: number): Uint32Array {
  return new Uint32Array(Math.ceil(npages / 32));
}

/** One guest-physical range backed by host virtual memory. */
export class Memslot {
  readonly end: number;
  readonly npages: number;
  /** One bit per page while dirty logging is on, else null. */
  dirtyBitmap: Uint32Array | null = null;

  constructor(
    readonly id: number,
    /** Guest physical base (base_gfn << PAGE_SHIFT). */
    readonly gpa: number,
    readonly size: number,
    /** userspace_addr. */
    readonly hva: number,
    public flags: number,
    readonly pageSize: number,
  ) {
    this.end = gpa + size;
    this.npages = size / pageSize;
    // Created with KVM_MEM_LOG_DIRTY_PAGES: it logs from the start (nothing is mapped in a new
    // slot, so the write-protection that commit would do has nothing to protect).
    if ((flags & KVM_MEM_LOG_DIRTY_PAGES) !== 0) this.dirtyBitmap = newDirtyBitmap(this.npages);
  }

  /** memslot_is_logging: a dirty bitmap and not read-only. */
  get logging(): boolean {
    return this.dirtyBitmap !== null && (this.flags & KVM_MEM_READONLY) === 0;
  }

  /** memslot_is_readonly. */
  get readonly(): boolean {
    return (this.flags & KVM_MEM_READONLY) !== 0;
  }

  /** __gfn_to_hva_memslot for the page holding `gpa`. */
  hvaOf(gpa: number): number {
    return this.hva + (gpa - this.gpa);
  }

  /** GPA of host address `hva`, which must lie in the slot. */
  gpaOf(hva: number): number {
    return this.gpa + (hva - this.hva);
  }

  /** mark_page_dirty_in_slot. */
  markDirty(gpa: number): void {
    const bm = this.dirtyBitmap;
    if (bm === null) return;
    const bit = Math.floor((gpa - this.gpa) / this.pageSize);
    const w = bm[bit >>> 5]!;
    const m = 1 << (bit & 31);
    if ((w & m) === 0) this.dirtyPages++;
    bm[bit >>> 5] = w | m;
  }

  /** Bits {@link markDirty} has turned from clean to dirty (never goes down; for the fast-forward). */
  dirtyPages = 0;

  /** Whether the page holding `gpa` is marked dirty. */
  isDirty(gpa: number): boolean {
    const bm = this.dirtyBitmap;
    if (bm === null) return false;
    const bit = Math.floor((gpa - this.gpa) / this.pageSize);
    return (bm[bit >>> 5]! & (1 << (bit & 31))) !== 0;
  }
}

/** The VM's memslots, kept sorted and non-overlapping. */
export class Memslots {
  readonly slots: Memslot[] = [];

  constructor(
    private readonly ipaLimit: number,
    private readonly pageSize: number,
  ) {}

  /** KVM_SET_USER_MEMORY_REGION (create): checks alignment, IPA range and overlap. */
  add(id: number, gpa: number, size: number, hva: number, flags: number): Memslot {
    const p = this.pageSize;
    if (size <= 0 || gpa % p !== 0 || size % p !== 0 || hva % p !== 0) {
      throw new S2simError(
        "unaligned",
        `memslot ${id}: GPA ${hex(gpa)}, size ${sizeName(size)} and HVA ${hex(hva)} must be non-empty multiples of ${sizeName(p)}`,
      );
    }
    if (gpa + size > this.ipaLimit) {
      throw new S2simError(
        "outside-ipa",
        `memslot ${id}: ${hex(gpa)}+${sizeName(size)} is outside the ${Math.log2(this.ipaLimit)}-bit IPA space`,
      );
    }
    for (const s of this.slots) {
      if (s.id === id) throw new S2simError("duplicate-slot", `memslot ${id} already exists`);
      if (gpa < s.end && s.gpa < gpa + size) {
        throw new S2simError(
          "overlap",
          `memslot ${id} (${hex(gpa)}+${sizeName(size)}) overlaps memslot ${s.id}`,
        );
      }
    }
    const slot = new Memslot(id, gpa, size, hva, flags, p);
    this.slots.push(slot);
    this.slots.sort((a, b) => a.gpa - b.gpa);
    return slot;
  }

  /** gfn_to_memslot: the slot holding `gpa`, or null. */
  find(gpa: number): Memslot | null {
    for (const s of this.slots) if (gpa >= s.gpa && gpa < s.end) return s;
    return null;
  }

  /** Removes the slot with `id` (an unknown id is an error) and returns it. */
  remove(id: number): Memslot {
    const s = this.byId(id);
    this.slots.splice(this.slots.indexOf(s), 1);
    return s;
  }

  /** The slot with `id`; an unknown id is an error. */
  byId(id: number): Memslot {
    const s = this.slots.find((x) => x.id === id);
    if (s === undefined) throw new S2simError("unknown-slot", `no memslot ${id}`);
    return s;
  }
}
