/** The unmap visitor (stage2_unmap_walker, spec section 5.1). */
import { LAST_LEVEL } from "../arch/granule.js";
import { pteCacheable, pteOa, PTE_VALID } from "../arch/descriptor.js";
import { dcacheCleanInvalPoc } from "./hw.js";
import type { Stage2Pgtable } from "./stage2.js";
import { type Visitor, WALK_LEAF, WALK_TABLE_POST } from "./walker.js";

// Module-local copies of imported constants: optimized code folds a module's own `const`s, but
// reads an imported binding through its cell, with a TDZ check, at every use.
const LAST = LAST_LEVEL;
const VALID = PTE_VALID;

/** Clears leaves (TLBI by IPA, clean to PoC without FWB) and frees tables left empty. */
export class UnmapVisitor implements Visitor {
  readonly flags = WALK_LEAF | WALK_TABLE_POST;

  constructor(private readonly pgt: Stage2Pgtable) {}

  visit(addr: number, _end: number, level: number, table: number, idx: number): number {
    const pgt = this.pgt;
    const words = pgt.mem.pages[table]!;
    const lo = words[2 * idx]!;
    const hi = words[2 * idx + 1]!;
    // kvm_pte_valid.
    if ((lo & VALID) === 0) {
      // v5.14: a counted invalid entry is an owner annotation; drop it. Never true in v5.12.
      if (pgt.isCounted(lo, hi)) {
        pgt.writePte(table, idx, 0, 0, addr, level);
        pgt.mmOps.putPage(table);
      }
      return 0;
    }
    let child = -1;
    let needFlush = false;
    // kvm_pte_table.
    if (level < LAST && (lo & 3) === 3) {
      child = pgt.follow(lo, hi);
      if (pgt.mmOps.pageCount(child) !== 1) return 0;
    } else if (pteCacheable(lo, pgt.fwb)) {
      needFlush = !pgt.fwb;
    }
    pgt.putPte(table, idx, addr, level);
    if (needFlush) dcacheCleanInvalPoc(pgt, pteOa(pgt.granule, lo, hi), pgt.sizes.size[level + 1]!);
    if (child >= 0) pgt.mmOps.putPage(child);
    return 0;
  }
}
