/**
 * Where each table page sits in the tree: the entry that last linked it (its key) and the IPA and
 * level that page translates. Kept per page in typed arrays from the descriptor stores, so a
 * report about a table page (freed, still reached, read after free, miscounted) can name the IPA
 * range it covered, even after the page was freed.
 */
import { pteOa } from "../arch/descriptor.js";
import { grown } from "./arrays.js";
import type { CheckEnv, PteChange } from "./env.js";
import { isTableDesc } from "./env.js";

/** The table pages' links (shared by the table-free and refcount checkers). */
export class TableLinks {
  /** Per page: 1 + key of the entry linking it (0: none, a root, or freed). */
  private parentKey = new Float64Array(1024);
  /** Per page: first IPA it translates, and 1 + the level of its entries (0: unknown). */
  private base = new Float64Array(1024);
  private levels = new Int8Array(1024);

  constructor(private readonly env: CheckEnv) {}

  /** A descriptor store: a table descriptor links its child page under the entry's range. */
  pte(c: PteChange): void {
    if (!isTableDesc(c.newLo, c.level)) return;
    const child = this.env.vm.tableMem.pageOf(pteOa(this.env.granule, c.newLo, c.newHi));
    if (child < 0) return;
    this.ensure(child);
    this.parentKey[child] = c.key + 1;
    this.base[child] = c.ipa;
    this.levels[child] = c.level + 2;
  }

  /** Table page `page` was allocated for `level` (not linked yet). */
  alloc(page: number, level: number): void {
    this.ensure(page);
    this.parentKey[page] = 0;
    this.base[page] = 0;
    this.levels[page] = level + 1;
  }

  /** Table page `page` was freed: nothing links it any more (its range is kept for reports). */
  free(page: number): void {
    if (page < this.parentKey.length) this.parentKey[page] = 0;
  }

  /** Key of the entry that links `page` (-1: none). */
  parentOf(page: number): number {
    return page < this.parentKey.length ? this.parentKey[page]! - 1 : -1;
  }

  /** The level of `page`'s entries (a start-level page's from the geometry; -1: unknown). */
  levelOf(page: number): number {
    const root = this.rootIndex(page);
    if (root >= 0) return this.env.vm.geo.startLevel;
    return page < this.levels.length ? this.levels[page]! - 1 : -1;
  }

  /** The first IPA `page` translates (0 if unknown). */
  ipaOf(page: number): number {
    const root = this.rootIndex(page);
    const env = this.env;
    if (root >= 0) return root * env.ptrsPerTable * env.levelSize[env.vm.geo.startLevel]!;
    return page < this.base.length ? this.base[page]! : 0;
  }

  /** The IPA range and level a report about `page` concerns, and the page itself. */
  focus(page: number): { ipa: number; ipaEnd: number; level: number; tablePa: number } {
    const env = this.env;
    const level = this.levelOf(page);
    const ipa = this.ipaOf(page);
    const span = level >= 0 ? env.ptrsPerTable * env.levelSize[level]! : 0;
    return { ipa, ipaEnd: ipa + span, level: Math.max(level, 0), tablePa: env.vm.tableMem.pa(page) };
  }

  /** `page`'s index among the start-level pages, or -1 if it is not one of them. */
  private rootIndex(page: number): number {
    const pgd = this.env.vm.pgt.pgd;
    return pgd >= 0 && page >= pgd && page < pgd + this.env.vm.geo.pgdPages ? page - pgd : -1;
  }

  private ensure(page: number): void {
    this.parentKey = grown(this.parentKey, page + 1);
    this.base = grown(this.base, page + 1);
    this.levels = grown(this.levels, page + 1);
  }
}
