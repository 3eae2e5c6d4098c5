/**
 * The attribute visitor (stage2_attr_walker, spec sections 4.5 and 5.2-5.4), shared by
 * wrprotect, relax_perms, mkyoung, mkold and is_young.
 */
import { ATTR_HI_MASK, ATTR_HI_XN, ATTR_LO_MASK, PTE_VALID, pteOa } from "../arch/descriptor.js";
import type { Stage2Pgtable } from "./stage2.js";
import { LAST_LEVEL } from "../arch/granule.js";
import { type Visitor, WALK_LEAF } from "./walker.js";

// Module-local copies of imported constants: optimized code folds a module's own `const`s, but
// reads an imported binding through its cell, with a TDZ check, at every use.
const LO_MASK = ATTR_LO_MASK;
const HI_MASK = ATTR_HI_MASK;
const VALID = PTE_VALID;
const XN = ATTR_HI_XN;
const LAST = LAST_LEVEL;

/** struct stage2_attr_data and stage2_update_leaf_attrs. */
export class AttrVisitor implements Visitor {
  readonly flags = WALK_LEAF;
  private setLo = 0;
  private setHi = 0;
  private clrLo = 0;
  private clrHi = 0;
  /** The last valid leaf visited, before the update (0 if none). */
  oldLo = 0;
  oldHi = 0;
  /** Its level (0 if none). */
  level = 0;

  constructor(private readonly pgt: Stage2Pgtable) {}

  /** stage2_update_leaf_attrs: set then clear attribute bits on every valid leaf in range. */
  run(addr: number, size: number, setLo: number, setHi: number, clrLo: number, clrHi: number): number {
    this.setLo = setLo & LO_MASK;
    this.setHi = setHi & HI_MASK;
    this.clrLo = clrLo & LO_MASK;
    this.clrHi = clrHi & HI_MASK;
    this.oldLo = 0;
    this.oldHi = 0;
    this.level = 0;
    return this.pgt.walk(addr, size, this);
  }

  /** stage2_attr_walker over a run of last-level entries (Visitor.leafRun): all of them. */
  leafRun(addr: number, end: number, table: number, idx: number, count: number): number {
    const size = this.pgt.granule.size;
    for (let k = 0; k < count; k++) this.visit(addr + k * size, end, LAST, table, idx + k);
    return count;
  }

  visit(addr: number, _end: number, level: number, table: number, idx: number): number {
    const pgt = this.pgt;
    const words = pgt.mem.pages[table]!;
    const lo = words[2 * idx]!;
    const hi = words[2 * idx + 1]!;
    // kvm_pte_valid.
    if ((lo & VALID) === 0) return 0;
    this.level = level;
    this.oldLo = lo;
    this.oldHi = hi;
    const newLo = ((lo & ~this.clrLo) | this.setLo) >>> 0;
    const newHi = ((hi & ~this.clrHi) | this.setHi) >>> 0;
    if (newLo !== lo || newHi !== hi) {
      // v5.14: invalidate the I-cache only when X is being added (null in v5.12's mm_ops), i.e.
      // stage2_pte_executable(new) && !stage2_pte_executable(old).
      const mm = pgt.mmOps;
      if (mm.icacheInvalPou !== null && (newHi & XN) === 0 && (hi & XN) !== 0) {
        mm.icacheInvalPou(mm.physToVirt(pteOa(pgt.granule, lo, hi)), pgt.sizes.size[level + 1]!);
      }
      pgt.writePte(table, idx, newLo, newHi, addr, level);
    }
    return 0;
  }
}
