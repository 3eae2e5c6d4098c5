/**
 * The generic stage-2 walker (kvm_pgtable_walk and its helpers, spec section 3): one depth-first
 * walk over [addr, end) that hands entries to a visitor as LEAF, TABLE_PRE or TABLE_POST.
 */
import { LAST_LEVEL, levelShift } from "../arch/granule.js";
import type { Stage2Geometry } from "../arch/geometry.js";
import { EINVAL, ERANGE } from "../common/errno.js";
import type { PhysMem } from "./phys-mem.js";

// Module-local copies of imported constants. Optimized code folds a module's own `const`s, but
// reads an imported binding through its cell, with a TDZ check, at every use.
const LAST = LAST_LEVEL;
const E_INVAL = EINVAL;
const E_RANGE = ERANGE;

/** KVM_PGTABLE_WALK_LEAF: visit leaf entries, invalid ones included. */
export const WALK_LEAF = 1;
/** KVM_PGTABLE_WALK_TABLE_PRE: visit table entries before their children. */
export const WALK_TABLE_PRE = 2;
/** KVM_PGTABLE_WALK_TABLE_POST: visit table entries after their children. */
export const WALK_TABLE_POST = 4;

// Private copies of the flags for the walk loop (an exported `const` is read through its module
// cell, with a TDZ check, at every use, even in its own module).
const LEAF = WALK_LEAF;
const PRE = WALK_TABLE_PRE;
const POST = WALK_TABLE_POST;

/**
 * Copies of the walk loop. `Walker.walkTable` is the kernel's __kvm_pgtable_walk; the walker keeps
 * textually identical copies of it for the three hot visitors (map, attribute, unmap), differing
 * only in their name and so in their recursive call. The copies exist for the JIT: V8 keeps type
 * feedback per function, so a single loop that serves several visitor classes has a polymorphic
 * `v.visit` call site, which TurboFan then does not inline (and every visitor class seen adds a
 * deoptimization). With one copy per visitor, each copy's call site sees one class, so the
 * visitor can be inlined into its loop. Every copy walks exactly as the generic one does: a test
 * compares their source text, and runs the visitors on both (test/pgtable/walk-loops.test.ts).
 */
export const WALK_LOOP_GENERIC = 0;
/** The map visitor's copy (stage2_map_walker). */
export const WALK_LOOP_MAP = 1;
/** The attribute visitor's copy (stage2_attr_walker). */
export const WALK_LOOP_ATTR = 2;
/** The unmap visitor's copy (stage2_unmap_walker). */
export const WALK_LOOP_UNMAP = 3;
// Private copies, as for the flags above.
const LOOP_MAP = WALK_LOOP_MAP;
const LOOP_ATTR = WALK_LOOP_ATTR;
const LOOP_UNMAP = WALK_LOOP_UNMAP;

/** One of the three visit kinds. */
export type VisitFlag = typeof WALK_LEAF | typeof WALK_TABLE_PRE | typeof WALK_TABLE_POST;

/**
 * A walk callback (struct kvm_pgtable_walker). `table` and `index` locate the entry (ptep);
 * `addr` is where the walk stood on reaching it, `end` the walk end. Non-zero aborts the walk.
 */
export interface Visitor {
  readonly flags: number;
  visit(addr: number, end: number, level: number, table: number, index: number, flag: VisitFlag): number;
  /**
   * Optional: visits, in order, entries `index` .. `index + count - 1` of a last-level table page
   * as that many LEAF visits would (each entry's own `addr` is `addr` plus its offset), stopping
   * before the first entry whose visit it leaves to {@link visit}; returns how many it visited.
   * It must do exactly what the single visits do, in the same order, and stop only before an
   * entry it has not touched. Returning 0 leaves the rest of that table page to single visits. A loop of its own gives the JIT a fresh inlining budget for the
   * visitor's leaf path, which along the walk loop it does not get.
   */
  leafRun?(addr: number, end: number, table: number, index: number, count: number): number;
}

const TWO_30 = 2 ** 30;
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

/** Walk state (struct kvm_pgtable_walk_data) and the walk itself. */
export class Walker {
  /** The address the walk has reached. */
  addr = 0;
  /** The walk end. */
  end = 0;
  /**
   * The walk end as handed to visitors. This field starts out non-numeric so that it holds any
   * value as a tagged reference: an end of 2^31 or more is then boxed once per walk, rather than
   * at every visitor call (the `end` field above keeps an unboxed double for comparisons).
   */
  private endArg: number | undefined = undefined;
  /** Entries visited by every walk so far (work accounting). */
  visits = 0;
  private visitor: Visitor | null = null;
  private readonly ptrs: number = 0;
  private readonly ptrsMask: number = 0;
  private readonly pageSize: number = 0;
  /** 1 / page size. */
  private readonly pageInv: number = 0;
  private readonly limit: number = 0;
  private readonly startLevel: number = 0;
  /** The table pool's pages. */
  private readonly pages: Uint32Array[];

  /**
   * @param leafRuns whether last-level entries go to a visitor's {@link Visitor.leafRun} when it
   *   has one (false: one visit per entry; the walks are the same, tests compare the two)
   */
  constructor(
    geo: Stage2Geometry,
    private readonly mem: PhysMem,
    private readonly sizes: LevelSizes,
    private readonly leafRuns: boolean = true,
  ) {
    const g = geo.granule;
    this.ptrs = g.ptrsPerTable;
    this.ptrsMask = g.ptrsPerTable - 1;
    this.pageSize = g.size;
    this.pageInv = 1 / g.size;
    this.limit = geo.ipaLimit;
    this.startLevel = geo.startLevel;
    this.pages = mem.pages;
  }

  /**
   * kvm_pgtable_walk: walks [ALIGN_DOWN(addr), PAGE_ALIGN(addr + size)) from the concatenated
   * start-level pages at `pgd`. Returns 0, -ERANGE, -EINVAL or the visitor's error. `loop` picks
   * the copy of the walk loop that runs it (WALK_LOOP_*; any copy gives the same walk).
   */
  walk(pgd: number, addr: number, size: number, visitor: Visitor, loop: number = WALK_LOOP_GENERIC): number {
    const pageSize = this.pageSize;
    const pageInv = this.pageInv;
    const start = alignDownExact(addr, pageSize, pageInv);
    const endRaw = start + size;
    const endDown = alignDownExact(endRaw, pageSize, pageInv);
    const end = endDown === endRaw ? endRaw : endDown + pageSize;
    const limit = this.limit;
    // The kernel takes u64 addresses: a negative one wraps far above the limit (tested before
    // aligning, which takes one in (-page, 0) to 0).
    if (!(addr >= 0) || start > limit || end > limit) return E_RANGE;
    if (pgd < 0) return E_INVAL;
    if (this.visitor !== null) throw new Error("kvm_pgtable_walk: nested walks are not supported");
    this.addr = start;
    this.end = end;
    this.endArg = end;
    this.visitor = visitor;
    const flags = visitor.flags;
    let ret = 0;
    try {
      const startLevel = this.startLevel;
      // kvm_pgd_page_idx: which concatenated start-level page holds addr. start is in [0, limit],
      // so start % limit is start, or 0 when start is limit.
      const pgdIdx = Math.floor((start === limit ? 0 : start) * this.sizes.inv[startLevel]!);
      for (let i = pgdIdx; this.addr < end; i++) {
        const t = pgd + i;
        // One copy of the loop per hot visitor (see WALK_LOOP_GENERIC).
        if (loop === LOOP_MAP) ret = this.walkTableMap(t, startLevel, flags, visitor);
        else if (loop === LOOP_ATTR) ret = this.walkTableAttr(t, startLevel, flags, visitor);
        else if (loop === LOOP_UNMAP) ret = this.walkTableUnmap(t, startLevel, flags, visitor);
        else ret = this.walkTable(t, startLevel, flags, visitor);
        if (ret !== 0) break;
      }
    } finally {
      this.visitor = null;
    }
    return ret;
  }

  /**
   * __kvm_pgtable_walk: the entries of one table page from the one holding `addr`, each visited as
   * __kvm_pgtable_visit does (inlined here by hand), with the re-read rules of spec section 3.
   */
  private walkTable(table: number, level: number, flags: number, v: Visitor): number {
    // Read once per table page: the descriptor words never move while the walk runs.
    const words = this.pages[table]!;
    const sizes = this.sizes;
    const size = sizes.size[level + 1]!;
    const mask = sizes.mask[level + 1]!;
    const end = this.end;
    const endArg = this.endArg!;
    const ptrs = this.ptrs;
    // The walk's address and this page's visit count live in locals; the address goes back to
    // this.addr around a descent (the child continues from it) and at the end.
    let addr = this.addr;
    let visits = 0;
    let ret = 0;
    // Leaves of the last level in runs (Visitor.leafRun) when the walk has more than one left;
    // there addr is always entry-aligned.
    let runs =
      level === LAST && end - addr > size && (flags & LEAF) !== 0 && this.leafRuns && v.leafRun !== undefined;
    for (let idx = Math.floor(addr * sizes.inv[level + 1]!) & this.ptrsMask; idx < ptrs; idx++) {
      if (addr >= end) break;
      if (runs) {
        const left = Math.min(ptrs - idx, (end - addr) * sizes.inv[level + 1]!);
        const k = v.leafRun!(addr, endArg, table, idx, left);
        if (k > 0) {
          visits += k;
          addr += k * size;
          idx += k - 1;
          continue;
        }
        // The visitor takes no run on this page (below an anchor, say): visit one at a time.
        runs = false;
      }
      // __kvm_pgtable_visit.
      visits++;
      let lo = words[2 * idx]!;
      let hi = words[2 * idx + 1]!;
      let isTable = level < LAST && (lo & 3) === 3;
      if (isTable) {
        // The entry read above is used to descend, whatever PRE did to it.
        if ((flags & PRE) !== 0) {
          ret = v.visit(addr, endArg, level, table, idx, PRE);
          if (ret !== 0) break;
        }
      } else if ((flags & LEAF) !== 0) {
        ret = v.visit(addr, endArg, level, table, idx, LEAF);
        if (ret !== 0) break;
        // The visitor may have replaced the entry (by a table, for one): re-read it.
        lo = words[2 * idx]!;
        hi = words[2 * idx + 1]!;
        isTable = level < LAST && (lo & 3) === 3;
      }
      if (!isTable) {
        // ALIGN_DOWN(addr, size) + size (addr is an integer below 2^53, so masking is exact).
        addr = (mask >= 0 ? addr - (addr & mask) : Math.floor(addr * sizes.inv[level + 1]!) * size) + size;
        continue;
      }
      // kvm_pte_follow: the table page holding the entry's output address.
      const child = this.mem.pageOfPte(lo, hi);
      if (level + 1 > LAST || child < 0) {
        ret = E_INVAL;
        break;
      }
      this.addr = addr;
      ret = this.walkTable(child, level + 1, flags, v);
      if (ret !== 0) break;
      if ((flags & POST) !== 0) {
        ret = v.visit(addr, endArg, level, table, idx, POST);
        if (ret !== 0) break;
      }
      addr = this.addr;
    }
    this.addr = addr;
    this.visits += visits;
    return ret;
  }

  /** {@link walkTable} for the map visitor (WALK_LOOP_MAP): the same text, its own call sites. */
  private walkTableMap(table: number, level: number, flags: number, v: Visitor): number {
    // Read once per table page: the descriptor words never move while the walk runs.
    const words = this.pages[table]!;
    const sizes = this.sizes;
    const size = sizes.size[level + 1]!;
    const mask = sizes.mask[level + 1]!;
    const end = this.end;
    const endArg = this.endArg!;
    const ptrs = this.ptrs;
    // The walk's address and this page's visit count live in locals; the address goes back to
    // this.addr around a descent (the child continues from it) and at the end.
    let addr = this.addr;
    let visits = 0;
    let ret = 0;
    // Leaves of the last level in runs (Visitor.leafRun) when the walk has more than one left;
    // there addr is always entry-aligned.
    let runs =
      level === LAST && end - addr > size && (flags & LEAF) !== 0 && this.leafRuns && v.leafRun !== undefined;
    for (let idx = Math.floor(addr * sizes.inv[level + 1]!) & this.ptrsMask; idx < ptrs; idx++) {
      if (addr >= end) break;
      if (runs) {
        const left = Math.min(ptrs - idx, (end - addr) * sizes.inv[level + 1]!);
        const k = v.leafRun!(addr, endArg, table, idx, left);
        if (k > 0) {
          visits += k;
          addr += k * size;
          idx += k - 1;
          continue;
        }
        // The visitor takes no run on this page (below an anchor, say): visit one at a time.
        runs = false;
      }
      // __kvm_pgtable_visit.
      visits++;
      let lo = words[2 * idx]!;
      let hi = words[2 * idx + 1]!;
      let isTable = level < LAST && (lo & 3) === 3;
      if (isTable) {
        // The entry read above is used to descend, whatever PRE did to it.
        if ((flags & PRE) !== 0) {
          ret = v.visit(addr, endArg, level, table, idx, PRE);
          if (ret !== 0) break;
        }
      } else if ((flags & LEAF) !== 0) {
        ret = v.visit(addr, endArg, level, table, idx, LEAF);
        if (ret !== 0) break;
        // The visitor may have replaced the entry (by a table, for one): re-read it.
        lo = words[2 * idx]!;
        hi = words[2 * idx + 1]!;
        isTable = level < LAST && (lo & 3) === 3;
      }
      if (!isTable) {
        // ALIGN_DOWN(addr, size) + size (addr is an integer below 2^53, so masking is exact).
        addr = (mask >= 0 ? addr - (addr & mask) : Math.floor(addr * sizes.inv[level + 1]!) * size) + size;
        continue;
      }
      // kvm_pte_follow: the table page holding the entry's output address.
      const child = this.mem.pageOfPte(lo, hi);
      if (level + 1 > LAST || child < 0) {
        ret = E_INVAL;
        break;
      }
      this.addr = addr;
      ret = this.walkTableMap(child, level + 1, flags, v);
      if (ret !== 0) break;
      if ((flags & POST) !== 0) {
        ret = v.visit(addr, endArg, level, table, idx, POST);
        if (ret !== 0) break;
      }
      addr = this.addr;
    }
    this.addr = addr;
    this.visits += visits;
    return ret;
  }

  /** {@link walkTable} for the attribute visitor (WALK_LOOP_ATTR): the same text, its own call sites. */
  private walkTableAttr(table: number, level: number, flags: number, v: Visitor): number {
    // Read once per table page: the descriptor words never move while the walk runs.
    const words = this.pages[table]!;
    const sizes = this.sizes;
    const size = sizes.size[level + 1]!;
    const mask = sizes.mask[level + 1]!;
    const end = this.end;
    const endArg = this.endArg!;
    const ptrs = this.ptrs;
    // The walk's address and this page's visit count live in locals; the address goes back to
    // this.addr around a descent (the child continues from it) and at the end.
    let addr = this.addr;
    let visits = 0;
    let ret = 0;
    // Leaves of the last level in runs (Visitor.leafRun) when the walk has more than one left;
    // there addr is always entry-aligned.
    let runs =
      level === LAST && end - addr > size && (flags & LEAF) !== 0 && this.leafRuns && v.leafRun !== undefined;
    for (let idx = Math.floor(addr * sizes.inv[level + 1]!) & this.ptrsMask; idx < ptrs; idx++) {
      if (addr >= end) break;
      if (runs) {
        const left = Math.min(ptrs - idx, (end - addr) * sizes.inv[level + 1]!);
        const k = v.leafRun!(addr, endArg, table, idx, left);
        if (k > 0) {
          visits += k;
          addr += k * size;
          idx += k - 1;
          continue;
        }
        // The visitor takes no run on this page (below an anchor, say): visit one at a time.
        runs = false;
      }
      // __kvm_pgtable_visit.
      visits++;
      let lo = words[2 * idx]!;
      let hi = words[2 * idx + 1]!;
      let isTable = level < LAST && (lo & 3) === 3;
      if (isTable) {
        // The entry read above is used to descend, whatever PRE did to it.
        if ((flags & PRE) !== 0) {
          ret = v.visit(addr, endArg, level, table, idx, PRE);
          if (ret !== 0) break;
        }
      } else if ((flags & LEAF) !== 0) {
        ret = v.visit(addr, endArg, level, table, idx, LEAF);
        if (ret !== 0) break;
        // The visitor may have replaced the entry (by a table, for one): re-read it.
        lo = words[2 * idx]!;
        hi = words[2 * idx + 1]!;
        isTable = level < LAST && (lo & 3) === 3;
      }
      if (!isTable) {
        // ALIGN_DOWN(addr, size) + size (addr is an integer below 2^53, so masking is exact).
        addr = (mask >= 0 ? addr - (addr & mask) : Math.floor(addr * sizes.inv[level + 1]!) * size) + size;
        continue;
      }
      // kvm_pte_follow: the table page holding the entry's output address.
      const child = this.mem.pageOfPte(lo, hi);
      if (level + 1 > LAST || child < 0) {
        ret = E_INVAL;
        break;
      }
      this.addr = addr;
      ret = this.walkTableAttr(child, level + 1, flags, v);
      if (ret !== 0) break;
      if ((flags & POST) !== 0) {
        ret = v.visit(addr, endArg, level, table, idx, POST);
        if (ret !== 0) break;
      }
      addr = this.addr;
    }
    this.addr = addr;
    this.visits += visits;
    return ret;
  }

  /** {@link walkTable} for the unmap visitor (WALK_LOOP_UNMAP): the same text, its own call sites. */
  private walkTableUnmap(table: number, level: number, flags: number, v: Visitor): number {
    // Read once per table page: the descriptor words never move while the walk runs.
    const words = this.pages[table]!;
    const sizes = this.sizes;
    const size = sizes.size[level + 1]!;
    const mask = sizes.mask[level + 1]!;
    const end = this.end;
    const endArg = this.endArg!;
    const ptrs = this.ptrs;
    // The walk's address and this page's visit count live in locals; the address goes back to
    // this.addr around a descent (the child continues from it) and at the end.
    let addr = this.addr;
    let visits = 0;
    let ret = 0;
    // Leaves of the last level in runs (Visitor.leafRun) when the walk has more than one left;
    // there addr is always entry-aligned.
    let runs =
      level === LAST && end - addr > size && (flags & LEAF) !== 0 && this.leafRuns && v.leafRun !== undefined;
    for (let idx = Math.floor(addr * sizes.inv[level + 1]!) & this.ptrsMask; idx < ptrs; idx++) {
      if (addr >= end) break;
      if (runs) {
        const left = Math.min(ptrs - idx, (end - addr) * sizes.inv[level + 1]!);
        const k = v.leafRun!(addr, endArg, table, idx, left);
        if (k > 0) {
          visits += k;
          addr += k * size;
          idx += k - 1;
          continue;
        }
        // The visitor takes no run on this page (below an anchor, say): visit one at a time.
        runs = false;
      }
      // __kvm_pgtable_visit.
      visits++;
      let lo = words[2 * idx]!;
      let hi = words[2 * idx + 1]!;
      let isTable = level < LAST && (lo & 3) === 3;
      if (isTable) {
        // The entry read above is used to descend, whatever PRE did to it.
        if ((flags & PRE) !== 0) {
          ret = v.visit(addr, endArg, level, table, idx, PRE);
          if (ret !== 0) break;
        }
      } else if ((flags & LEAF) !== 0) {
        ret = v.visit(addr, endArg, level, table, idx, LEAF);
        if (ret !== 0) break;
        // The visitor may have replaced the entry (by a table, for one): re-read it.
        lo = words[2 * idx]!;
        hi = words[2 * idx + 1]!;
        isTable = level < LAST && (lo & 3) === 3;
      }
      if (!isTable) {
        // ALIGN_DOWN(addr, size) + size (addr is an integer below 2^53, so masking is exact).
        addr = (mask >= 0 ? addr - (addr & mask) : Math.floor(addr * sizes.inv[level + 1]!) * size) + size;
        continue;
      }
      // kvm_pte_follow: the table page holding the entry's output address.
      const child = this.mem.pageOfPte(lo, hi);
      if (level + 1 > LAST || child < 0) {
        ret = E_INVAL;
        break;
      }
      this.addr = addr;
      ret = this.walkTableUnmap(child, level + 1, flags, v);
      if (ret !== 0) break;
      if ((flags & POST) !== 0) {
        ret = v.visit(addr, endArg, level, table, idx, POST);
        if (ret !== 0) break;
      }
      addr = this.addr;
    }
    this.addr = addr;
    this.visits += visits;
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
