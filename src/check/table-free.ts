/**
 * Table pages and their lifetime. A table page may be freed only when (1) no chain of valid table
 * entries from the start level reaches it any more, and (2) the store that cut it off (its own
 * entry's, or an ancestor's) has been followed by TLB maintenance that leaves no walk cache a way
 * to it: a whole-VMID TLBI, or a TLBI by IPA inside the page's own range (with FEAT_TTL only an
 * unhinted one, as level hints describe leaves). A TLBI by IPA removes the cached walk of that IPA
 * only: after an ancestor's entry is cut, the cached entries that lead to its other descendants
 * stay, so each freed descendant needs one in its own range. No hardware walk may read a page
 * after the time it was freed. Destroying the whole table (kvm_pgtable_stage2_destroy, with the
 * VMID retired) is exempt.
 */
import { pteOa } from "../arch/descriptor.js";
import { hex, sizeName } from "../common/format.js";
import type { CheckEnv, PteChange } from "./env.js";
import { hintCoversTable, isTableDesc } from "./env.js";
import type { TableLinks } from "./table-links.js";

/** The entry that unlinked a table page, still owed a TLBI. */
interface Unlink {
  readonly ipa: number;
  readonly size: number;
  readonly level: number;
  /** Level hint of the first TLBI by IPA in its range that did not cover it (FEAT_TTL); 0: none. */
  hinted: number;
  /** The IPAs of the TLBIs by IPA since the cut that cover table entries, in its range. */
  readonly covered: number[];
  /**
   * Taken over from an ancestor freed first (the cut was the ancestor's way, or above it): only a
   * TLBI in this page's own range covers it.
   */
  readonly inherited: boolean;
}

/** The table-page lifetime checker. */
export class TableFreeChecker {
  /** Pages cut off from their parent entry whose unlink has not been covered by a TLBI. */
  private readonly owed = new Map<number, Unlink>();
  /** When each freed page was freed (-Infinity: between timed runs). */
  private readonly freedAt = new Map<number, number>();
  private destroying = false;
  /** FEAT_TTL: a hinted TLBI by IPA leaves table entries' walk-cache entries alone. */
  private readonly ttl: boolean;

  constructor(
    private readonly env: CheckEnv,
    private readonly links: TableLinks,
  ) {
    this.ttl = env.vm.cpu.ttl;
  }

  pte(c: PteChange): void {
    const mem = this.env.vm.tableMem;
    const g = this.env.granule;
    const oldChild = isTableDesc(c.oldLo, c.level) ? mem.pageOf(pteOa(g, c.oldLo, c.oldHi)) : -1;
    const newChild = isTableDesc(c.newLo, c.level) ? mem.pageOf(pteOa(g, c.newLo, c.newHi)) : -1;
    if (oldChild === newChild) return;
    if (oldChild >= 0) {
      this.owed.set(oldChild, {
        ipa: c.ipa,
        size: c.size,
        level: c.level,
        hinted: 0,
        covered: [],
        inherited: false,
      });
    }
    if (newChild >= 0) this.owed.delete(newChild);
  }

  tlbiVmid(): void {
    this.owed.clear();
  }

  tlbiIpa(ipa: number, hint: number): void {
    if (this.owed.size === 0) return;
    const covers = hintCoversTable(this.ttl, hint);
    for (const u of this.owed.values()) {
      if (ipa < u.ipa || ipa >= u.ipa + u.size) continue;
      if (covers) u.covered.push(ipa);
      else if (u.hinted === 0) u.hinted = hint;
    }
  }

  op(op: string): void {
    this.destroying = op === "destroy";
  }

  tableAlloc(page: number): void {
    this.freedAt.delete(page);
    this.owed.delete(page);
  }

  pageFree(page: number): void {
    if (!this.destroying) {
      this.checkFree(page);
      this.handDown(page);
    }
    const now = this.env.now();
    this.freedAt.set(page, Number.isNaN(now) ? -Infinity : now);
    this.owed.delete(page);
  }

  /**
   * A page freed while still owed a TLBI for its unlink hands the debt to the table pages its
   * entries still link: walk caches may hold the way through it to them, so each needs a TLBI in
   * its own range before it is freed, whichever of them is freed first.
   */
  private handDown(page: number): void {
    const u = this.owed.get(page);
    if (u === undefined) return;
    const mem = this.env.vm.tableMem;
    const words = mem.pages[page]!;
    const g = this.env.granule;
    const level = this.links.levelOf(page);
    if (level < 0) return;
    for (let i = 0; i < this.env.ptrsPerTable; i++) {
      const lo = words[2 * i]!;
      const hi = words[2 * i + 1]!;
      if (!isTableDesc(lo, level)) continue;
      const child = mem.pageOf(pteOa(g, lo, hi));
      if (child < 0 || mem.refcount[child]! <= 0 || this.owed.has(child)) continue;
      this.owed.set(child, { ...u, covered: [...u.covered], inherited: true });
    }
  }

  /** A hardware walk by `cpu` read table page `page` at `now`. */
  walkRead(cpu: number, page: number, level: number, now: number): void {
    const mem = this.env.vm.tableMem;
    if (mem.refcount[page]! > 0) return;
    const at = this.freedAt.get(page);
    if (at === undefined || !(at <= now)) return;
    const focus = this.links.focus(page);
    this.env.report(
      "table-free",
      `vCPU ${cpu}'s stage-2 walk read L${level} table page ${hex(mem.pa(page))}, freed at ` +
        `${(at / 1e6).toFixed(6)} us`,
      focus.ipa,
      level,
      focus,
      cpu,
      now,
    );
  }

  /** Conditions (1) and (2) for freeing `page`, following its chain of parents to the root. */
  private checkFree(page: number): void {
    const env = this.env;
    const mem = env.vm.tableMem;
    const ptrs = env.ptrsPerTable;
    const pagePa = mem.pa(page);
    let cur = page;
    for (;;) {
      const u = this.owed.get(cur);
      if (u !== undefined) {
        // Its own entry's cached copies are gone after any TLBI by IPA in its range; a descendant's
        // need one in the descendant's range.
        const { ipa, ipaEnd } = this.links.focus(page);
        const own = cur === page && !u.inherited;
        if (u.covered.some((x) => own || (x >= ipa && x < ipaEnd))) return;
        const whose = own
          ? "its entry"
          : u.inherited
            ? "the entry that cut off an ancestor freed before it"
            : `the entry linking its ancestor ${hex(mem.pa(cur))}`;
        const why =
          u.covered.length > 0
            ? `: the TLBI by IPA ${hex(u.covered[0]!)} it got removes the cached walk of that address only, ` +
              `not the way to this page (IPA ${hex(ipa)}-${hex(ipaEnd - 1)})`
            : u.hinted > 0
              ? `: the TLBI by IPA hinted L${u.hinted} it got removes only leaf entries on a FEAT_TTL CPU`
              : "";
        env.report(
          "table-free",
          `table page ${hex(pagePa)} was freed before ${u.covered.length > 0 ? "a" : "any"} TLBI covered ${whose} ` +
            `(L${u.level}, IPA ${hex(u.ipa)}, ${sizeName(u.size)}), which was unlinked${why}`,
          u.ipa,
          u.level,
          { ipa: u.ipa, ipaEnd: u.ipa + u.size, level: u.level, tablePa: pagePa },
        );
        return;
      }
      const key = this.links.parentOf(cur);
      const pgd = env.vm.pgt.pgd;
      if (key < 0) {
        if (pgd >= 0 && cur >= pgd && cur < pgd + env.vm.geo.pgdPages && cur !== page) {
          const focus = this.links.focus(page);
          env.report(
            "table-free",
            `table page ${hex(pagePa)} was freed while valid table entries still reach it`,
            focus.ipa,
            focus.level,
            focus,
          );
        }
        return;
      }
      const q = Math.floor(key / ptrs);
      const idx = key - q * ptrs;
      const words = mem.pages[q]!;
      const lo = words[2 * idx]!;
      const hi = words[2 * idx + 1]!;
      // A valid table entry still names cur: the link holds; go up. Otherwise it was cut cleanly.
      if (mem.refcount[q]! <= 0 || (lo & 3) !== 3 || mem.pageOf(pteOa(env.granule, lo, hi)) !== cur) return;
      cur = q;
    }
  }
}
