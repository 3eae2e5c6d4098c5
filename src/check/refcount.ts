/**
 * The table-page refcount invariant (spec section 4.4): when a kvm_pgtable operation returns, every
 * table page it touched that is still allocated has refcount 1 + its counted entries (v5.12: valid
 * entries; v5.14: non-zero ones). Counts are kept incrementally from the descriptor stores.
 */
import { hex } from "../common/format.js";
import { grown } from "./arrays.js";
import type { CheckEnv, PteChange } from "./env.js";
import type { TableLinks } from "./table-links.js";

/** The refcount checker. */
export class RefcountChecker {
  /** Counted entries per table page. */
  private counted = new Int32Array(1024);
  /** Pages touched by the operation in progress (repeats allowed), and how many. */
  private touched = new Int32Array(64);
  private nTouched = 0;
  private destroying = false;

  constructor(
    private readonly env: CheckEnv,
    private readonly links: TableLinks,
  ) {}

  pte(c: PteChange): void {
    const pgt = this.env.vm.pgt;
    const d = (pgt.isCounted(c.newLo, c.newHi) ? 1 : 0) - (pgt.isCounted(c.oldLo, c.oldHi) ? 1 : 0);
    if (d !== 0) {
      this.ensure(c.page);
      this.counted[c.page]! += d;
    }
    this.touch(c.page);
  }

  refcount(page: number): void {
    this.touch(page);
  }

  tableAlloc(page: number): void {
    this.ensure(page);
    this.counted[page] = 0;
  }

  pageFree(page: number): void {
    this.ensure(page);
    this.counted[page] = 0;
  }

  op(op: string): void {
    this.destroying = op === "destroy";
    this.nTouched = 0;
  }

  opDone(op: string): void {
    const mem = this.env.vm.tableMem;
    if (!this.destroying) {
      for (let i = 0; i < this.nTouched; i++) {
        const page = this.touched[i]!;
        const rc = mem.refcount[page]!;
        const want = 1 + (this.counted[page] ?? 0);
        if (rc <= 0 || rc === want) continue;
        const focus = this.links.focus(page);
        this.env.report(
          "refcount",
          `after ${op}, table page ${hex(mem.pa(page))} has refcount ${rc}, expected 1 + ${want - 1} counted entries`,
          focus.ipa,
          focus.level,
          focus,
        );
        break;
      }
    }
    this.nTouched = 0;
  }

  private touch(page: number): void {
    this.touched = grown(this.touched, this.nTouched + 1);
    this.touched[this.nTouched++] = page;
  }

  private ensure(page: number): void {
    this.counted = grown(this.counted, page + 1);
  }
}
