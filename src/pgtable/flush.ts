/** The flush visitor (stage2_flush_walker, spec section 5.6). */
import { pteCacheable, pteOa, pteValid } from "../arch/descriptor.js";
import { dcacheCleanInvalPoc } from "./hw.js";
import type { Stage2Pgtable } from "./stage2.js";
import { type Visitor, WALK_LEAF } from "./walker.js";

/** Cleans and invalidates to the PoC the whole granule of every valid cacheable leaf. */
export class FlushVisitor implements Visitor {
  readonly flags = WALK_LEAF;

  constructor(private readonly pgt: Stage2Pgtable) {}

  visit(_addr: number, _end: number, level: number, table: number, idx: number): number {
    const pgt = this.pgt;
    const words = pgt.mem.pages[table]!;
    const lo = words[2 * idx]!;
    if (!pteValid(lo) || !pteCacheable(lo, pgt.fwb)) return 0;
    dcacheCleanInvalPoc(pgt, pteOa(pgt.granule, lo, words[2 * idx + 1]!), pgt.sizes.size[level + 1]!);
    return 0;
  }
}
