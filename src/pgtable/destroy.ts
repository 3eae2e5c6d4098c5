/** The destroy visitor (stage2_free_walker, spec section 5.7). */
import { pteTable } from "../arch/descriptor.js";
import type { Stage2Pgtable } from "./stage2.js";
import { type Visitor, WALK_LEAF, WALK_TABLE_POST } from "./walker.js";

/** Drops every present entry's reference and frees each child table after its children. */
export class DestroyVisitor implements Visitor {
  readonly flags = WALK_LEAF | WALK_TABLE_POST;

  constructor(private readonly pgt: Stage2Pgtable) {}

  visit(_addr: number, _end: number, level: number, table: number, idx: number): number {
    const pgt = this.pgt;
    const words = pgt.mem.pages[table]!;
    const lo = words[2 * idx]!;
    const hi = words[2 * idx + 1]!;
    if (!pgt.isCounted(lo, hi)) return 0;
    pgt.mmOps.putPage(table);
    if (pteTable(lo, level)) pgt.mmOps.putPage(pgt.follow(lo, hi));
    return 0;
  }
}
