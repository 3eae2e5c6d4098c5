/**
 * The generic stage-2 walker (kvm_pgtable_walk and its helpers, spec section 3): one depth-first
 * walk over [addr, end) that hands entries to a visitor as LEAF, TABLE_PRE or TABLE_POST.
 */
import { LAST_LEVEL, levelShift } from "../arch/granule.js";
import type { Stage2Geometry } from "../arch/geometry.js";
import { ADDR_51_48_MASK, ADDR_51_48_SHIFT, ADDR_HI_MASK } from "../arch/descriptor.js";
import { EINVAL, ERANGE } from "../common/errno.js";
import type { PhysMem } from "./phys-mem.js";

/** KVM_PGTABLE_WALK_LEAF: visit leaf entries, invalid ones included. */
export const WALK_LEAF = 1;
/** KVM_PGTABLE_WALK_TABLE_PRE: visit table entries before their children. */
export const WALK_TABLE_PRE = 2;
/** KVM_PGTABLE_WALK_TABLE_POST: visit table entries after their children. */
export const WALK_TABLE_POST = 4;

/** One of the three visit kinds. */
export type VisitFlag = typeof WALK_LEAF | typeof WALK_TABLE_PRE | typeof WALK_TABLE_POST;

/**
 * A walk callback (struct kvm_pgtable_walker). `table` and `index` locate the entry (ptep);
 * `addr` is where the walk stood on reaching it, `end` the walk end. Non-zero aborts the walk.
 */
export interface Visitor {
  readonly flags: number;
  visit(addr: number, end: number, level: number, table: number, index: number, flag: VisitFlag): number;
}

const TWO_30 = 2 ** 30;
const TWO_32 = 2 ** 32;
const TWO_48 = 2 ** 48;
const TWO_53 = 2 ** 53;

/** Precomputed per-level sizes for one geometry (index = level + 1, so level -1 fits). */
export class LevelSizes {
  /** Bytes an entry at level L spans, at [L + 1]. */
  readonly size: Float64Array = new Float64Array(5);
  /** 1 / size, exact since sizes are powers of two. */
  readonly inv: Float64Array = new Float64Array(5);
  /** size - 1 when size <= 2^30 (so 32-bit masking is exact), else -1. */
  readonly mask: Int32Array = new Int32Array(5);

  constructor(geo: Stage2Geometry) {
    for (let l = -1; l <= LAST_LEVEL; l++) {
      const s = 2 ** levelShift(geo.granule, l);
      this.size[l + 1] = s;
      this.inv[l + 1] = 1 / s;
      this.mask[l + 1] = s <= TWO_30 ? s - 1 : -1;
    }
  }

  /** Bytes an entry at `level` spans (kvm_granule_size). */
  of(level: number): number {
    return this.size[level + 1]!;
  }

  /** ALIGN_DOWN(addr, size of level). */
  alignDown(addr: number, level: number): number {
    const m = this.mask[level + 1]!;
    if (m >= 0) return addr - (addr & m);
    const s = this.size[level + 1]!;
    return Math.floor(addr * this.inv[level + 1]!) * s;
  }

  /** Whether `addr` is aligned to the size of `level`. */
  aligned(addr: number, level: number): boolean {
    const m = this.mask[level + 1]!;
    if (m >= 0) return (addr & m) === 0;
    return this.alignDown(addr, level) === addr;
  }
}

/**
 * Walk state (struct kvm_pgtable_walk_data) and the walk itself.
 *
 * The kernel's walk recurses: __kvm_pgtable_walk loops over the entries of one table page and
 * calls __kvm_pgtable_visit on each, which calls the visitor and, for a table entry, recurses into
 * __kvm_pgtable_walk on the child. {@link walk} runs the same recursion with an explicit stack (one
 * slot per level: the parent's table page, entry index and entry address), so a walk is one
 * JavaScript call whatever its depth. The entries are visited in the same order, with the same
 * flags, addresses and re-read rules (spec section 3), and an error returns at once from every
 * level, as the recursive return does.
 */
export class Walker {
  /** The address the walk has reached (updated when a walk returns). */
  addr = 0;
  /** The walk end. */
  end = 0;
  /** Entries visited by every walk so far (work accounting). */
  visits = 0;
  private visitor: Visitor | null = null;
  private readonly ptrs: number;
  private readonly ptrsMask: number;
  private readonly pageSize: number;
  /** 1 / page size. */
  private readonly pageInv: number;
  private readonly limit: number;
  /** 1 / limit. */
  private readonly limitInv: number;
  private readonly startLevel: number;
  /** Output-address bits of a descriptor's low word, and whether bits [15:12] hold PA[51:48]. */
  private readonly addrMaskLo: number;
  private readonly pa52: boolean;
  /** The table pool: its pages, physical base and 1 / page size (PhysMem.pageOf). */
  private readonly pages: Uint32Array[];
  private readonly memBase: number;
  /** The recursion's saved state per level: parent table page, entry index, entry address. */
  private readonly stackTable = new Int32Array(LAST_LEVEL + 1);
  private readonly stackIdx = new Int32Array(LAST_LEVEL + 1);
  private readonly stackAddr = new Float64Array(LAST_LEVEL + 1);

  constructor(
    geo: Stage2Geometry,
    mem: PhysMem,
    private readonly sizes: LevelSizes,
  ) {
    const g = geo.granule;
    this.ptrs = g.ptrsPerTable;
    this.ptrsMask = g.ptrsPerTable - 1;
    this.pageSize = g.size;
    this.pageInv = 1 / g.size;
    this.limit = geo.ipaLimit;
    this.limitInv = 1 / geo.ipaLimit;
    this.startLevel = geo.startLevel;
    this.addrMaskLo = g.addrMaskLo;
    this.pa52 = g.size === 65536;
    this.pages = mem.pages;
    this.memBase = mem.base;
  }

  /**
   * kvm_pgtable_walk: walks [ALIGN_DOWN(addr), PAGE_ALIGN(addr + size)) from the concatenated
   * start-level pages at `pgd`. Returns 0, -ERANGE, -EINVAL or the visitor's error.
   */
  walk(pgd: number, addr: number, size: number, visitor: Visitor): number {
    const pageSize = this.pageSize;
    const pageInv = this.pageInv;
    const start = alignDownExact(addr, pageSize, pageInv);
    const endRaw = start + size;
    const endDown = alignDownExact(endRaw, pageSize, pageInv);
    const end = endDown === endRaw ? endRaw : endDown + pageSize;
    const limit = this.limit;
    // The kernel takes u64 addresses: a negative one wraps far above the limit.
    if (!(start >= 0) || start > limit || end > limit) return ERANGE;
    if (pgd < 0) return EINVAL;
    if (this.visitor !== null) throw new Error("kvm_pgtable_walk: nested walks are not supported");
    this.visitor = visitor;
    this.end = end;
    const flags = visitor.flags;
    const sizes = this.sizes;
    const startLevel = this.startLevel;
    // kvm_pgd_page_idx: which concatenated start-level page holds addr.
    const pgdIdx = Math.floor((start - alignDownExact(start, limit, this.limitInv)) * sizes.inv[startLevel]!);
    let visits = 0;
    let ret = 0;
    let at = start;
    try {
      const pages = this.pages;
      const sizeOf = sizes.size;
      const invOf = sizes.inv;
      const maskOf = sizes.mask;
      const ptrs = this.ptrs;
      const ptrsMask = this.ptrsMask;
      const stackTable = this.stackTable;
      const stackIdx = this.stackIdx;
      const stackAddr = this.stackAddr;
      let level = startLevel;
      let table = pgd + pgdIdx;
      // __kvm_pgtable_walk reads a table page's words once: they never move while the walk runs.
      let words = pages[table]!;
      let idx = Math.floor(at * invOf[level + 1]!) & ptrsMask;
      // kvm_pgtable_walk walks start-level pages while addr < end (never, if end is NaN).
      for (let more = at < end; more;) {
        if (idx >= ptrs || at >= end) {
          // __kvm_pgtable_walk is done with this table page.
          if (level === startLevel) {
            // kvm_pgtable_walk: on to the next concatenated start-level page while addr < end.
            if (!(at < end)) break;
            table++;
            words = pages[table]!;
            idx = Math.floor(at * invOf[level + 1]!) & ptrsMask;
            continue;
          }
          // Back in the parent's __kvm_pgtable_visit, after the child walk returned 0.
          level--;
          table = stackTable[level]!;
          idx = stackIdx[level]!;
          words = pages[table]!;
          if ((flags & WALK_TABLE_POST) !== 0) {
            ret = visitor.visit(stackAddr[level]!, end, level, table, idx, WALK_TABLE_POST);
            if (ret !== 0) break;
          }
          idx++;
          continue;
        }
        // __kvm_pgtable_visit.
        visits++;
        let lo = words[2 * idx]!;
        let hi = words[2 * idx + 1]!;
        let isTable = level < LAST_LEVEL && (lo & 3) === 3;
        if (isTable) {
          // The entry read above is used to descend, whatever PRE did to it.
          if ((flags & WALK_TABLE_PRE) !== 0) {
            ret = visitor.visit(at, end, level, table, idx, WALK_TABLE_PRE);
            if (ret !== 0) break;
          }
        } else if ((flags & WALK_LEAF) !== 0) {
          ret = visitor.visit(at, end, level, table, idx, WALK_LEAF);
          if (ret !== 0) break;
          lo = words[2 * idx]!;
          hi = words[2 * idx + 1]!;
          isTable = level < LAST_LEVEL && (lo & 3) === 3;
        }
        if (!isTable) {
          // ALIGN_DOWN(addr, size) + size. addr is an integer below 2^53, so masking is exact.
          const mask = maskOf[level + 1]!;
          const sz = sizeOf[level + 1]!;
          at = (mask >= 0 ? at - (at & mask) : Math.floor(at * invOf[level + 1]!) * sz) + sz;
          idx++;
          continue;
        }
        // kvm_pte_follow (kvm_pte_to_phys, then the table page holding that address).
        let pa = ((lo & this.addrMaskLo) >>> 0) + (hi & ADDR_HI_MASK) * TWO_32;
        if (this.pa52) pa += ((lo & ADDR_51_48_MASK) >>> ADDR_51_48_SHIFT) * TWO_48;
        const child = Math.floor((pa - this.memBase) * pageInv);
        if (level + 1 > LAST_LEVEL || !(child >= 0 && child < pages.length)) {
          ret = EINVAL;
          break;
        }
        // Recurse: save this entry, walk the child table from the entry holding addr.
        stackTable[level] = table;
        stackIdx[level] = idx;
        stackAddr[level] = at;
        level++;
        table = child;
        words = pages[table]!;
        idx = Math.floor(at * invOf[level + 1]!) & ptrsMask;
      }
    } finally {
      this.visitor = null;
      this.visits += visits;
      this.addr = at;
    }
    return ret;
  }
}

/**
 * `x - (x % size)` for a power-of-two `size` with reciprocal `inv`: a truncating multiply for
 * 0 < x < 2^53 (exact there), the floating-point modulo otherwise (zero, negative or odd inputs).
 */
export function alignDownExact(x: number, size: number, inv: number): number {
  return x > 0 && x < TWO_53 ? Math.floor(x * inv) * size : x - (x % size);
}
