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
    // kvm_pte_valid; kvm_pte_table. (The two rarer cases are out of line, which keeps the leaf
    // path small enough for the JIT to inline into the walk loop.)
    if ((lo & VALID) === 0) return this.invalid(addr, level, table, idx);
    if (level < LAST && (lo & 3) === 3) return this.table(addr, level, table, idx);
    this.leaf(addr, level, table, idx, lo);
    return 0;
  }

  /** stage2_unmap_walker over a run of last-level entries (Visitor.leafRun): all of them. */
  leafRun(addr: number, _end: number, table: number, idx: number, count: number): number {
    const pgt = this.pgt;
    const size = pgt.granule.size;
    const words = pgt.mem.pages[table]!;
    let k = pgt.quietRun() ? this.leafRunQuiet(table, idx, count) : 0;
    for (; k < count; k++) {
      const i = idx + k;
      const a = addr + k * size;
      const lo = words[2 * i]!;
      if ((lo & VALID) === 0) {
        this.invalid(a, LAST, table, i);
        continue;
      }
      this.leaf(a, LAST, table, i, lo);
    }
    return count;
  }

  /**
   * The start of {@link leafRun} as a quiet run (Stage2Pgtable.quietRun): each entry's store in
   * order, and the stores, TLBIs by IPA, dropped references and D-cache lines added at the end, as
   * the leaf path's calls would have charged them one leaf at a time. It stops before a reference
   * that would free the table page (only a broken refcount gets there): the leaf path frees it.
   * Returns how many entries it did (none when the D-cache line does not divide the granule).
   */
  private leafRunQuiet(table: number, idx: number, count: number): number {
    const pgt = this.pgt;
    if (pgt.dcLinesPerPage < 0) return 0;
    const words = pgt.mem.pages[table]!;
    const fwb = pgt.fwb;
    // References the run may drop while the page keeps one.
    const room = pgt.mem.refcount[table]! - 1;
    let breaks = 0;
    let drops = 0;
    let cleans = 0;
    let k = 0;
    for (; k < count; k++) {
      const i = idx + k;
      const lo = words[2 * i]!;
      if ((lo & VALID) === 0) {
        // As invalid(): v5.14's counted invalid entry (an owner annotation) is cleared.
        if (pgt.isCounted(lo, words[2 * i + 1]!)) {
          if (breaks + drops === room) break;
          words[2 * i] = 0;
          words[2 * i + 1] = 0;
          drops++;
        }
        continue;
      }
      // As leaf(): a break (with its TLBI and put_page), then the clean unless FWB.
      if (breaks + drops === room) break;
      if (!fwb && pteCacheable(lo, fwb)) cleans++;
      words[2 * i] = pgt.brokenLo(lo);
      words[2 * i + 1] = pgt.brokenHi(words[2 * i + 1]!);
      breaks++;
    }
    pgt.quietRunDone(table, breaks + drops, breaks, -(breaks + drops), cleans * pgt.dcLinesPerPage);
    return k;
  }

  /**
   * stage2_unmap_walker on a valid leaf (`lo`, its low word as just read): break it, then clean
   * it to the PoC unless FWB made that unnecessary.
   */
  private leaf(addr: number, level: number, table: number, idx: number, lo: number): void {
    const pgt = this.pgt;
    const hi = pgt.mem.pages[table]![2 * idx + 1]!;
    const needFlush = !pgt.fwb && pteCacheable(lo, pgt.fwb);
    pgt.putValidPte(table, idx, addr, level);
    if (needFlush) this.flushLeaf(lo, hi, level);
  }

  /**
   * The clean to the PoC of the leaf `lo`/`hi` (stage2_unmap_walker's dcache flush). It takes the
   * descriptor words, not the output address: when the call is not inlined, a double argument of
   * 2^31 or more (a typical PA) would be boxed into a new heap number.
   */
  private flushLeaf(lo: number, hi: number, level: number): void {
    const pgt = this.pgt;
    dcacheCleanInvalPoc(pgt, pteOa(pgt.granule, lo, hi), pgt.sizes.size[level + 1]!);
  }

  /** stage2_unmap_walker on an invalid entry. */
  private invalid(addr: number, level: number, table: number, idx: number): number {
    const pgt = this.pgt;
    const words = pgt.mem.pages[table]!;
    // v5.14: a counted invalid entry is an owner annotation; drop it. Never true in v5.12.
    if (pgt.isCounted(words[2 * idx]!, words[2 * idx + 1]!)) {
      pgt.writePte(table, idx, 0, 0, addr, level);
      pgt.mmOps.putPage(table);
    }
    return 0;
  }

  /** stage2_unmap_walker on a table entry (at TABLE_POST): free the child table once empty. */
  private table(addr: number, level: number, table: number, idx: number): number {
    const pgt = this.pgt;
    const words = pgt.mem.pages[table]!;
    const child = pgt.follow(words[2 * idx]!, words[2 * idx + 1]!);
    if (pgt.mmOps.pageCount(child) !== 1) return 0;
    pgt.putPte(table, idx, addr, level);
    pgt.mmOps.putPage(child);
    return 0;
  }
}
