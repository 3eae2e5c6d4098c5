/**
 * Host physical memory that backs guests: page allocation by size class, the shared zero page and
 * huge zero page, and per-page state "written by the host and not yet cleaned to the PoC" and
 * "written by the host since the last I-cache invalidation" that the coherence checker needs.
 */
import type { Granule } from "../arch/granule.js";
import { S2simError } from "../common/error.js";
import { sizeName } from "../common/format.js";
import { type Footprint, scaleFootprint, typedArrayFootprint } from "../common/footprint.js";

/** Physical base of guest-backing memory: 512 GiB, clear of the table-page pool. */
export const HOST_PHYS_BASE = 0x80_0000_0000;

/** Where large pages start: the largest hugetlb size, so any large page aligns naturally. */
const LARGE_ALIGN = 2 ** 34;

/**
 * The address space {@link HostPhys} reserves for `backingBytes` of guest memory: small pages (and
 * both zero pages) first, large pages after, each rounded up to {@link LARGE_ALIGN}.
 */
function hostPhysLayout(
  granule: Granule,
  backingBytes: number,
  hugeZeroSize: number,
): { smallBytes: number; span: number } {
  const page = granule.size;
  const smallBytes = Math.ceil(backingBytes / page) * page + 2 * hugeZeroSize;
  const span =
    Math.ceil(smallBytes / LARGE_ALIGN) * LARGE_ALIGN + Math.ceil(backingBytes / LARGE_ALIGN) * LARGE_ALIGN;
  return { smallBytes, span };
}

/** The footprint of a {@link HostPhys} for `backingBytes`: its two marks per page of its span. */
export function hostPhysFootprint(granule: Granule, backingBytes: number, hugeZeroSize: number): Footprint {
  const pages = hostPhysLayout(granule, backingBytes, hugeZeroSize).span / granule.size;
  return scaleFootprint(typedArrayFootprint(pages, 1), 2);
}

/** Allocator and per-page state for guest-backing host memory. */
export class HostPhys {
  readonly granule: Granule;
  readonly base: number;
  /** PA of the shared zero page. */
  readonly zeroPage: number;
  /** PA of the huge zero page (PMD size). */
  readonly hugeZeroPage: number;
  /** Per host page: 1 while the host's writes to it have not been cleaned to the PoC. */
  readonly unclean: Uint8Array;
  /** Per host page: 1 while the host's writes to it may still be stale in the I-cache. */
  readonly icacheStale: Uint8Array;
  /** Bytes handed out, per allocation size. */
  readonly allocatedBytes = new Map<number, number>();
  private readonly limit: number;
  private smallNext: number;
  private largeNext: number;
  private readonly smallEnd: number;
  /** Freed pages per size, reused first (LIFO, so runs stay deterministic). */
  private readonly freeLists = new Map<number, number[]>();

  /**
   * Reserves room for `backingBytes` of guest memory (small pages and large pages each get that
   * much address space). Refuses sizes that would not fit in memory, before allocating anything.
   */
  constructor(granule: Granule, backingBytes: number, hugeZeroSize: number, maxHostBytes = 2 ** 46) {
    this.granule = granule;
    this.base = HOST_PHYS_BASE;
    const page = granule.size;
    const { smallBytes, span } = hostPhysLayout(granule, backingBytes, hugeZeroSize);
    if (backingBytes > maxHostBytes || span / page > 2 ** 31) {
      throw new S2simError(
        "too-large",
        `guest memory of ${sizeName(backingBytes)} is more than s2sim can model on this machine`,
      );
    }
    this.unclean = new Uint8Array(span / page);
    this.icacheStale = new Uint8Array(span / page);
    this.limit = this.base + span;
    this.hugeZeroPage = this.base;
    this.zeroPage = this.base + hugeZeroSize;
    this.smallNext = this.zeroPage + page;
    this.smallEnd = this.base + Math.ceil(smallBytes / LARGE_ALIGN) * LARGE_ALIGN;
    this.largeNext = this.smallEnd;
    // Both zero pages were zeroed by the host when they were set up.
    this.markWritten(this.hugeZeroPage, hugeZeroSize);
    this.markWritten(this.zeroPage, page);
  }

  /** Allocates `size` bytes (a page, a THP or a hugetlb page), naturally aligned; -1 if full. */
  alloc(size: number): number {
    const free = this.freeLists.get(size);
    if (free !== undefined && free.length > 0) {
      const pa = free.pop()!;
      this.allocatedBytes.set(size, (this.allocatedBytes.get(size) ?? 0) + size);
      return pa;
    }
    let pa: number;
    if (size <= this.granule.size) {
      if (this.smallNext + size > this.smallEnd) return -1;
      pa = this.smallNext;
      this.smallNext += size;
    } else {
      pa = Math.ceil(this.largeNext / size) * size;
      if (pa + size > this.limit) return -1;
      this.largeNext = pa + size;
    }
    this.allocatedBytes.set(size, (this.allocatedBytes.get(size) ?? 0) + size);
    return pa;
  }

  /** Returns a page from {@link alloc} (a fault that lost a race drops its new page). */
  free(pa: number, size: number): void {
    let list = this.freeLists.get(size);
    if (list === undefined) {
      list = [];
      this.freeLists.set(size, list);
    }
    list.push(pa);
    this.allocatedBytes.set(size, (this.allocatedBytes.get(size) ?? 0) - size);
  }

  /** Records that the host CPU wrote [pa, pa + size) (zeroing, copy) through its cacheable alias. */
  markWritten(pa: number, size: number): void {
    this.mark(this.unclean, pa, size, 1);
    this.mark(this.icacheStale, pa, size, 1);
  }

  /**
   * Records a clean+invalidate to the PoC of [pa, pa + size). Marks are per page: only the pages it
   * covers whole become clean (part of a page cleaned leaves the rest of its writes in the cache).
   */
  cleanToPoc(pa: number, size: number): void {
    this.mark(this.unclean, pa, size, 0);
  }

  /** Records an I-cache invalidation by address over [pa, pa + size) (whole pages, as cleans). */
  invalidateIcache(pa: number, size: number): void {
    this.mark(this.icacheStale, pa, size, 0);
  }

  /** Records an invalidation of the whole I-cache. */
  invalidateIcacheAll(): void {
    this.icacheStale.fill(0);
  }

  /** Whether any host page in [pa, pa + size) holds host writes not yet cleaned to the PoC. */
  isUnclean(pa: number, size: number): boolean {
    return this.firstMarked(this.unclean, pa, size) >= 0;
  }

  /** The marks of the page holding `pa`: 1 if unclean, plus 2 if I-cache stale (0 outside). */
  marksAt(pa: number): number {
    const i = Math.floor((pa - this.base) / this.granule.size);
    if (i < 0 || i >= this.unclean.length) return 0;
    return this.unclean[i]! | (this.icacheStale[i]! << 1);
  }

  /** PA of the first page in [pa, pa + size) marked in `marks` (unclean or icacheStale), or -1. */
  firstMarked(marks: Uint8Array, pa: number, size: number): number {
    const page = this.granule.size;
    const first = Math.floor((pa - this.base) / page);
    if (first < 0 || first >= marks.length) return -1;
    const end = Math.min(marks.length, first + Math.max(1, size / page));
    for (let i = first; i < end; i++) if (marks[i] !== 0) return this.base + i * page;
    return -1;
  }

  /**
   * Sets to `v` in `marks` the pages of [pa, pa + size): for a mark (1) every page it touches, for
   * a clearing (0) only the pages it covers whole.
   */
  private mark(marks: Uint8Array, pa: number, size: number, v: number): void {
    const page = this.granule.size;
    const lo = (pa - this.base) / page;
    const hi = (pa + size - this.base) / page;
    const first = Math.max(0, v !== 0 ? Math.floor(lo) : Math.ceil(lo));
    const end = Math.min(marks.length, v !== 0 ? Math.ceil(hi) : Math.floor(hi));
    // Mostly one page (a 4 KiB write or clean): a store, not a call of the fill builtin.
    if (end === first + 1) marks[first] = v;
    else if (end > first) marks.fill(v, first, end);
  }

  /** Whether `pa` is host memory managed here. */
  contains(pa: number): boolean {
    return pa >= this.base && pa < this.limit;
  }
}
