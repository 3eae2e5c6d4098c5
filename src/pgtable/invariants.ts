/**
 * Structural checks of a stage-2 table: every reachable table page has refcount 1 + its present
 * entries (spec section 4.4), no page is reachable twice, and no allocated page is unreachable.
 */
import { pteTable } from "../arch/descriptor.js";
import { LAST_LEVEL } from "../arch/granule.js";
import { hex } from "../common/format.js";
import type { Stage2Pgtable } from "./stage2.js";

/** Reachable table pages and what is wrong with them. */
export interface TableCensus {
  /** Table pages reachable from the start level, start-level pages included. */
  readonly tablePages: number;
  /** Tables per level (index = level). */
  readonly tablesPerLevel: number[];
  /** Valid leaves per level. */
  readonly leavesPerLevel: number[];
  /** Human-readable violations; empty when the table is sound. */
  readonly violations: string[];
}

/** Walks the whole table read-only and checks the refcount invariant. */
export function censusTables(pgt: Stage2Pgtable): TableCensus {
  const violations: string[] = [];
  const tablesPerLevel = [0, 0, 0, 0];
  const leavesPerLevel = [0, 0, 0, 0];
  const seen = new Set<number>();
  const mem = pgt.mem;
  const ptrs = pgt.granule.ptrsPerTable;
  const visit = (page: number, level: number): void => {
    if (seen.has(page)) {
      violations.push(`table page ${hex(mem.pa(page))} is reachable twice`);
      return;
    }
    seen.add(page);
    tablesPerLevel[level]!++;
    const words = mem.pages[page]!;
    let present = 0;
    for (let i = 0; i < ptrs; i++) {
      const lo = words[2 * i]!;
      const hi = words[2 * i + 1]!;
      if (pgt.isCounted(lo, hi)) present++;
      if (pteTable(lo, level)) {
        const child = pgt.follow(lo, hi);
        if (child < 0 || mem.refcount[child]! <= 0) {
          violations.push(`L${level} entry ${i} of ${hex(mem.pa(page))} points to a free page`);
        } else if (level + 1 <= LAST_LEVEL) {
          visit(child, level + 1);
        }
      } else if ((lo & 1) !== 0) {
        leavesPerLevel[level]!++;
      }
    }
    const rc = mem.refcount[page]!;
    if (rc !== 1 + present) {
      violations.push(
        `table page ${hex(mem.pa(page))} (L${level}) has refcount ${rc}, expected 1 + ${present} present entries`,
      );
    }
  };
  if (pgt.pgd >= 0) {
    for (let i = 0; i < pgt.geo.pgdPages; i++) visit(pgt.pgd + i, pgt.geo.startLevel);
  }
  return { tablePages: seen.size, tablesPerLevel, leavesPerLevel, violations };
}
