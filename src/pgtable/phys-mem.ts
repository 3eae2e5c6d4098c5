/**
 * Simulated physical memory for stage-2 table pages. Each page holds its descriptors as pairs of
 * 32-bit words (see arch/descriptor) in its own Uint32Array, so a 4K page costs 4 KiB plus a small
 * object header. Pages are numbered from 0 ("table page numbers"); page n lives at physical
 * address `base + n * granule`. Refcounts are the struct page counts the kernel uses for tables.
 */
import { S2simError } from "../common/error.js";
import { ADDR_51_48_MASK, ADDR_HI_MASK, pteOa } from "../arch/descriptor.js";
import type { Granule } from "../arch/granule.js";
import {
  type Footprint,
  heapFootprint,
  scaleFootprint,
  sumFootprints,
  typedArrayFootprint,
} from "../common/footprint.js";

// Module-local copy of an imported constant used on the walk path (optimized code folds a
// module's own `const`s, but reads an import through its cell at every use).
const OA_HI_MASK = ADDR_HI_MASK;

/** Default physical base of the table-page pool: 1 GiB, a typical arm64 DRAM start. */
export const DEFAULT_TABLE_BASE = 0x4000_0000;

/** Default ceiling on table memory: 8 GiB, far above any configuration s2sim runs. */
export const DEFAULT_TABLE_BYTES = 8 * 2 ** 30;

const NO_PAGE = new Uint32Array(0);

/**
 * The footprint of `pages` table pages of a {@link PhysMem}: each page's descriptors, its array
 * objects, its slot in the page list and its refcount (in an array grown by doubling).
 */
export function tablePagesFootprint(granule: Granule, pages: number): Footprint {
  return sumFootprints(
    scaleFootprint(typedArrayFootprint(granule.size / 4, 4), pages),
    heapFootprint(pages, 8),
    typedArrayFootprint(2 * pages, 4),
  );
}

/** A pool of granule-sized pages with refcounts. */
export class PhysMem {
  readonly granule: Granule;
  /** Physical address of page 0. */
  readonly base: number = 0;
  /** Most pages this pool may hold. */
  readonly maxPages: number = 0;
  /** Descriptor words of each page; a freed page keeps its array for reuse. */
  readonly pages: Uint32Array[] = [];
  /** Refcount of each page (0 = free). */
  refcount: Int32Array = new Int32Array(64);
  /** Pages currently allocated (refcount > 0). */
  allocated = 0;
  /** High-water mark of {@link allocated}. */
  peakAllocated = 0;
  private freeList: number[] = [];
  private readonly words: number = 0;
  /** 1 / granule size (exact: a power of two), to divide by multiplying. */
  private readonly invSize: number = 0;
  /**
   * For {@link pageOfPte}'s integer path: the page number of `base`, the shifts that turn a
   * descriptor's output-address words into a page number, the largest `hi` address bits for which
   * that stays below 2^31 (0 disables the path), and the 64K granule's PA[51:48] field.
   */
  private readonly basePage: number = 0;
  private readonly oaShift: number = 0;
  private readonly oaHiShift: number = 0;
  private readonly oaHiLimit: number = 0;
  private readonly oa52Mask: number = 0;

  constructor(granule: Granule, opts: { base?: number; maxBytes?: number } = {}) {
    this.granule = granule;
    this.base = opts.base ?? DEFAULT_TABLE_BASE;
    const maxBytes = opts.maxBytes ?? DEFAULT_TABLE_BYTES;
    if (this.base % granule.size !== 0) {
      throw new S2simError("bad-phys-base", `table pool base ${this.base} is not ${granule.name}-aligned`);
    }
    this.maxPages = Math.floor(maxBytes / granule.size);
    this.words = granule.ptrsPerTable * 2;
    this.invSize = 1 / granule.size;
    this.basePage = this.base / granule.size;
    this.oaShift = granule.shift;
    this.oaHiShift = 32 - granule.shift;
    this.oaHiLimit = this.basePage < 2 ** 31 ? 2 ** (31 - this.oaHiShift) : 0;
    this.oa52Mask = granule.size === 65536 ? ADDR_51_48_MASK : 0;
  }

  /** Physical address of page `n`. */
  pa(n: number): number {
    return this.base + n * this.granule.size;
  }

  /** Page number holding physical address `pa`, or -1 if it is outside the pool. */
  pageOf(pa: number): number {
    const n = Math.floor((pa - this.base) * this.invSize);
    return n >= 0 && n < this.pages.length ? n : -1;
  }

  /**
   * pageOf(kvm_pte_to_phys(lo, hi)): the page a table descriptor points to, or -1. When the address
   * is below 2^(31 + PAGE_SHIFT) the page number is computed in 32-bit integers (exact: the output
   * address and the base are multiples of the page size), otherwise as pageOf does.
   */
  pageOfPte(lo: number, hi: number): number {
    const hiBits = hi & OA_HI_MASK;
    if (hiBits < this.oaHiLimit && (lo & this.oa52Mask) === 0) {
      const n =
        (hiBits << this.oaHiShift) + ((lo & this.granule.addrMaskLo) >>> this.oaShift) - this.basePage;
      return n >= 0 && n < this.pages.length ? n : -1;
    }
    return this.pageOfPteAny(lo, hi);
  }

  /** {@link pageOfPte} for any output address. */
  private pageOfPteAny(lo: number, hi: number): number {
    return this.pageOf(pteOa(this.granule, lo, hi));
  }

  /** Allocates one zeroed page with refcount 1; -1 when the pool is exhausted. */
  allocPage(): number {
    const free = this.freeList;
    let n: number;
    if (free.length > 0) {
      n = free.pop() as number;
      this.pages[n]!.fill(0);
    } else {
      if (this.pages.length >= this.maxPages) return -1;
      n = this.pages.length;
      this.pages.push(new Uint32Array(this.words));
      this.growRefcounts();
    }
    this.refcount[n] = 1;
    this.noteAlloc(1);
    return n;
  }

  /**
   * Allocates `count` physically contiguous zeroed pages, each with refcount 1 (alloc_pages_exact);
   * returns the first page number or -1.
   */
  allocContiguous(count: number): number {
    if (this.pages.length + count > this.maxPages) return -1;
    const first = this.pages.length;
    for (let i = 0; i < count; i++) this.pages.push(new Uint32Array(this.words));
    this.growRefcounts();
    for (let i = 0; i < count; i++) this.refcount[first + i] = 1;
    this.noteAlloc(count);
    return first;
  }

  /** Returns a page whose refcount reached 0 to the pool. */
  release(n: number): void {
    this.allocated--;
    this.freeList.push(n);
  }

  /** Descriptor words of page `n` (lo at 2*i, hi at 2*i+1). */
  words32(n: number): Uint32Array {
    return this.pages[n] ?? NO_PAGE;
  }

  /** Bytes of table memory currently allocated. */
  get allocatedBytes(): number {
    return this.allocated * this.granule.size;
  }

  private noteAlloc(count: number): void {
    this.allocated += count;
    if (this.allocated > this.peakAllocated) this.peakAllocated = this.allocated;
  }

  private growRefcounts(): void {
    if (this.pages.length <= this.refcount.length) return;
    let len = this.refcount.length;
    while (len < this.pages.length) len *= 2;
    const next = new Int32Array(len);
    next.set(this.refcount);
    this.refcount = next;
  }
}
