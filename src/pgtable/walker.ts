/**
 * The generic stage-2 walker (kvm_pgtable_walk and its helpers, spec section 3): one depth-first
 * walk over [addr, end) that hands entries to a visitor as LEAF, TABLE_PRE or TABLE_POST.
 */
import { LAST_LEVEL, levelShift } from "../arch/granule.js";
import type { Stage2Geometry } from "../arch/geometry.js";
import { pteOa, pteTable } from "../arch/descriptor.js";
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
  private visitor: Visitor | null = null;
  private readonly ptrsMask: number;
  /** 1 / page size. */
  private readonly pageInv: number;

  constructor(
    private readonly geo: Stage2Geometry,
    private readonly mem: PhysMem,
    private readonly sizes: LevelSizes,
  ) {
    this.ptrsMask = geo.granule.ptrsPerTable - 1;
    this.pageInv = 1 / geo.granule.size;
  }

  /**
   * kvm_pgtable_walk: walks [ALIGN_DOWN(addr), PAGE_ALIGN(addr + size)) from the concatenated
   * start-level pages at `pgd`. Returns 0, -ERANGE, -EINVAL or the visitor's error.
   */
  walk(pgd: number, addr: number, size: number, visitor: Visitor): number {
    const pageSize = this.geo.granule.size;
    const start = alignDownExact(addr, pageSize, this.pageInv);
    const endRaw = start + size;
    const endDown = alignDownExact(endRaw, pageSize, this.pageInv);
    const end = endDown === endRaw ? endRaw : endDown + pageSize;
    const limit = this.geo.ipaLimit;
    // The kernel takes u64 addresses: a negative one wraps far above the limit.
    if (!(start >= 0) || start > limit || end > limit) return ERANGE;
    if (pgd < 0) return EINVAL;
    if (this.visitor !== null) throw new Error("kvm_pgtable_walk: nested walks are not supported");
    this.addr = start;
    this.end = end;
    this.visitor = visitor;
    let ret = 0;
    try {
      const startLevel = this.geo.startLevel;
      // kvm_pgd_page_idx: which concatenated start-level page holds addr.
      const pgdIdx = Math.floor(
        (start - alignDownExact(start, limit, 1 / limit)) * this.sizes.inv[startLevel]!,
      );
      for (let i = pgdIdx; this.addr < end; i++) {
        ret = this.walkTable(pgd + i, startLevel, end, visitor);
        if (ret !== 0) break;
      }
    } finally {
      this.visitor = null;
    }
    return ret;
  }

  /** __kvm_pgtable_walk: the entries of one table page from the one holding `addr`. */
  private walkTable(table: number, level: number, end: number, v: Visitor): number {
    const ptrs = this.ptrsMask + 1;
    // Read once per table page: the descriptor words never move while the walk runs.
    const words = this.mem.pages[table]!;
    let idx = Math.floor(this.addr * this.sizes.inv[level + 1]!) & this.ptrsMask;
    for (; idx < ptrs; idx++) {
      if (this.addr >= end) break;
      const ret = this.visitEntry(words, table, idx, level, end, v);
      if (ret !== 0) return ret;
    }
    return 0;
  }

  /** __kvm_pgtable_visit: one entry, with the re-read rules of spec section 3. */
  private visitEntry(
    words: Uint32Array,
    table: number,
    idx: number,
    level: number,
    end: number,
    v: Visitor,
  ): number {
    const addr = this.addr;
    const flags = v.flags;
    let lo = words[2 * idx]!;
    let hi = words[2 * idx + 1]!;
    let isTable = pteTable(lo, level);
    let ret = 0;
    if (isTable && (flags & WALK_TABLE_PRE) !== 0) {
      // The entry read above is used to descend, whatever PRE did to it.
      ret = v.visit(addr, end, level, table, idx, WALK_TABLE_PRE);
    }
    if (!isTable && (flags & WALK_LEAF) !== 0) {
      ret = v.visit(addr, end, level, table, idx, WALK_LEAF);
      lo = words[2 * idx]!;
      hi = words[2 * idx + 1]!;
      isTable = pteTable(lo, level);
    }
    if (ret !== 0) return ret;
    if (!isTable) {
      this.addr = this.sizes.alignDown(this.addr, level) + this.sizes.size[level + 1]!;
      return 0;
    }
    const child = this.mem.pageOf(pteOa(this.geo.granule, lo, hi));
    if (level + 1 > LAST_LEVEL || child < 0) return EINVAL;
    ret = this.walkTable(child, level + 1, end, v);
    if (ret !== 0) return ret;
    if ((flags & WALK_TABLE_POST) !== 0) {
      ret = v.visit(addr, end, level, table, idx, WALK_TABLE_POST);
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
