/**
 * A deliberately simple reference model of a KVM guest stage-2 table, written from the
 * behaviour spec (kernel-stage2.md, sections 3-5), not from the s2sim code. It keeps leaves
 * and table entries per level in plain maps keyed by their base IPA, and reproduces the page-level
 * effects of map / unmap / wrprotect / relax_perms, their return codes, the number of table pages
 * they use and the TLBI / CMO calls they make.
 */
import { PROT_R, PROT_W, PROT_X } from "../../src/pgtable/prot.js";

/** Linux error numbers the operations can return (negated). */
export const REF_EAGAIN = -11;
export const REF_ENOMEM = -12;
export const REF_ERANGE = -34;

/** One leaf (page or block) of the reference table. */
export interface RefLeaf {
  readonly level: number;
  /** IPA of the first byte the leaf maps. */
  readonly base: number;
  /** Output address of the first byte. */
  readonly oa: number;
  r: boolean;
  w: boolean;
  x: boolean;
}

/** What one page translates to. */
export interface RefPage {
  /** Level of the leaf covering the page. */
  readonly level: number;
  /** Output address of the page's first byte. */
  readonly oa: number;
  readonly r: boolean;
  readonly w: boolean;
  readonly x: boolean;
}

/** A TLBI or CMO the spec requires; a by-IPA TLBI names any address in [ipaLo, ipaHi). */
export type RefEvent =
  | { readonly kind: "tlbi-ipa"; readonly level: number; readonly ipaLo: number; readonly ipaHi: number }
  | { readonly kind: "tlbi-vmid" }
  | { readonly kind: "dc-civac" | "ic-ivau"; readonly pa: number; readonly size: number };

/** How the reference is configured. */
export interface RefConfig {
  /** log2 of the granule (12, 14 or 16). */
  readonly pageShift: number;
  readonly ipaBits: number;
  /** v5.14 does the D-/I-CMOs in the map and attribute walkers; v5.12 does not. */
  readonly kernel: "v5.12" | "v5.14";
  /** FEAT_S2FWB: no D-CMO in the guest CMO callbacks or after unmap. */
  readonly fwb: boolean;
  /** The guest I-cache callback does IC IVAU by line (PIPT, no DIC, VHE). */
  readonly icacheByLine: boolean;
}

/** The reference stage-2 table. */
export class RefStage2 {
  readonly pageSize: number;
  readonly levels: number;
  readonly startLevel: number;
  readonly ipaLimit: number;
  /** Bytes one entry spans, per level 0-3. */
  private readonly sizes: number[];
  /** Leaves per level, keyed by base IPA. */
  private readonly leaves: Map<number, RefLeaf>[] = [new Map(), new Map(), new Map(), new Map()];
  /**
   * Table entries per level (the entry at level L points to a table of level L + 1), keyed by
   * base IPA; the value is how many present entries the child table holds.
   */
  private readonly tables: Map<number, number>[] = [new Map(), new Map(), new Map(), new Map()];
  /** TLBIs and CMOs of the last operation, in order. */
  events: RefEvent[] = [];
  /** Leaves (level, base) added, removed or changed by the last operation. */
  changed: Array<{ level: number; base: number }> = [];

  constructor(readonly cfg: RefConfig) {
    this.pageSize = 2 ** cfg.pageShift;
    // Spec 2.3: levels = max(2, (ipa - 8) / (PAGE_SHIFT - 3)).
    this.levels = Math.max(2, Math.floor((cfg.ipaBits - 8) / (cfg.pageShift - 3)));
    this.startLevel = 4 - this.levels;
    this.ipaLimit = 2 ** cfg.ipaBits;
    this.sizes = [0, 1, 2, 3].map((l) => 2 ** ((cfg.pageShift - 3) * (4 - l) + 3));
  }

  /** Bytes one entry at `level` spans. */
  size(level: number): number {
    return this.sizes[level]!;
  }

  /** Spec 1.5: no blocks at level 0, none at level 1 unless the granule is 4K. */
  blockLevel(level: number): boolean {
    return level >= 2 || (level === 1 && this.cfg.pageShift === 12);
  }

  /** Leaves at `level`. */
  leafCount(level: number): number {
    return this.leaves[level]!.size;
  }

  /** Table entries at `level` (= table pages of level + 1 below the start level). */
  tableCount(level: number): number {
    return this.tables[level]!.size;
  }

  /** Table pages below the start level. */
  get tablePages(): number {
    return this.tables.reduce((n, m) => n + m.size, 0);
  }

  /** Every leaf, in no particular order. */
  allLeaves(): RefLeaf[] {
    return this.leaves.flatMap((m) => [...m.values()]);
  }

  /** What the page holding `ipa` translates to, or null when unmapped. */
  pageAt(ipa: number): RefPage | null {
    const leaf = this.leafCovering(ipa);
    if (leaf === null) return null;
    const page = this.alignDown(ipa, this.pageSize);
    return { level: leaf.level, oa: leaf.oa + (page - leaf.base), r: leaf.r, w: leaf.w, x: leaf.x };
  }

  /** kvm_pgtable_stage2_map with a memcache of `cache` pages (null: no memcache). */
  map(addr: number, size: number, phys: number, prot: number, cache: number | null): number {
    this.begin();
    const range = this.range(addr, size);
    if (range === null) return REF_ERANGE;
    let [a, pa] = [range[0], this.alignDown(phys, this.pageSize)];
    const end = range[1];
    let budget = cache;
    const perms = { r: (prot & PROT_R) !== 0, w: (prot & PROT_W) !== 0, x: (prot & PROT_X) !== 0 };
    while (a < end) {
      // The leaf goes at the largest level where it fits (spec 4.2 try_leaf / 4.3 TABLE_PRE).
      const lc = this.fitLevel(a, end, pa);
      // Walk down to it, making tables where there are none (walk_leaf, spec 4.2).
      for (let l = this.startLevel; l < lc; l++) {
        const pos = this.alignDown(a, this.size(l));
        if (this.tables[l]!.has(pos)) continue;
        if (budget === null || budget === 0) return REF_ENOMEM;
        budget--;
        const block = this.leaves[l]!.get(pos);
        if (block !== undefined) {
          // Block -> table: the whole old block goes away.
          this.removeLeaf(block);
          this.events.push(this.tlbiIpa(l, pos));
        }
        this.addTable(l, pos);
      }
      const s = this.size(lc);
      if (this.tables[lc]!.has(a)) {
        // Table -> block coalescing: whole-VMID TLBI, subtree dropped, block installed.
        this.events.push({ kind: "tlbi-vmid" });
        this.removeSubtree(lc, a);
      } else {
        const old = this.leaves[lc]!.get(a);
        if (old !== undefined) {
          // Same OA and attributes (only R/W/XN may differ): leave it alone.
          if (old.oa === pa) return REF_EAGAIN;
          this.removeLeaf(old);
          this.events.push(this.tlbiIpa(lc, a));
        }
      }
      if (this.cfg.kernel === "v5.14") {
        if (!this.cfg.fwb) this.events.push({ kind: "dc-civac", pa, size: s });
        if (perms.x && this.cfg.icacheByLine) this.events.push({ kind: "ic-ivau", pa, size: s });
      }
      this.addLeaf({ level: lc, base: a, oa: pa, ...perms });
      a += s;
      pa += s;
    }
    return 0;
  }

  /**
   * kvm_pgtable_stage2_unmap: every leaf intersecting the range goes, whole; every table the walk
   * visits that is left empty is freed (spec 5.1). Events follow the walk order.
   */
  unmap(addr: number, size: number): number {
    this.begin();
    const range = this.range(addr, size);
    if (range === null) return REF_ERANGE;
    this.unmapLevel(this.startLevel, range[0], range[1]);
    return 0;
  }

  /** kvm_pgtable_stage2_wrprotect: clear W on every leaf intersecting the range (spec 5.2). */
  wrprotect(addr: number, size: number): number {
    this.begin();
    const range = this.range(addr, size);
    if (range === null) return REF_ERANGE;
    for (const leaf of this.allLeaves()) {
      if (leaf.w && leaf.base < range[1] && leaf.base + this.size(leaf.level) > range[0]) {
        leaf.w = false;
        this.changed.push({ level: leaf.level, base: leaf.base });
      }
    }
    return 0;
  }

  /** kvm_pgtable_stage2_relax_perms: add R/W/X to the leaf covering `addr` (spec 5.3). */
  relaxPerms(addr: number, prot: number): number {
    this.begin();
    const page = this.alignDown(addr, this.pageSize);
    if (page >= this.ipaLimit) return REF_ERANGE;
    const leaf = this.leafCovering(page);
    if (leaf === null) {
      // An invalid entry is ignored; the TLBI still happens, with level 0.
      this.events.push({ kind: "tlbi-ipa", level: 0, ipaLo: page, ipaHi: page + this.pageSize });
      return 0;
    }
    const before = { r: leaf.r, w: leaf.w, x: leaf.x };
    if (prot & PROT_R) leaf.r = true;
    if (prot & PROT_W) leaf.w = true;
    if (prot & PROT_X) leaf.x = true;
    if (leaf.x && !before.x && this.cfg.kernel === "v5.14" && this.cfg.icacheByLine) {
      this.events.push({ kind: "ic-ivau", pa: leaf.oa, size: this.size(leaf.level) });
    }
    if (leaf.r !== before.r || leaf.w !== before.w || leaf.x !== before.x) {
      this.changed.push({ level: leaf.level, base: leaf.base });
    }
    this.events.push(this.tlbiIpa(leaf.level, leaf.base));
    return 0;
  }

  // ------------------------------------------------------------------ internals

  private begin(): void {
    this.events = [];
    this.changed = [];
  }

  /** The walk range (spec 3): page-aligned, or null for -ERANGE. */
  private range(addr: number, size: number): [number, number] | null {
    const a = this.alignDown(addr, this.pageSize);
    const end = this.alignDown(a + size + this.pageSize - 1, this.pageSize);
    if (a > this.ipaLimit || end > this.ipaLimit) return null;
    return [a, end];
  }

  private alignDown(x: number, s: number): number {
    return Math.floor(x / s) * s;
  }

  /** The largest level where a leaf for [a, end) at `pa` fits (kvm_block_mapping_supported). */
  private fitLevel(a: number, end: number, pa: number): number {
    for (let l = this.startLevel; l < 3; l++) {
      const s = this.size(l);
      if (this.blockLevel(l) && s <= end - a && a % s === 0 && pa % s === 0) return l;
    }
    return 3;
  }

  private leafCovering(ipa: number): RefLeaf | null {
    for (let l = this.startLevel; l <= 3; l++) {
      const leaf = this.leaves[l]!.get(this.alignDown(ipa, this.size(l)));
      if (leaf !== undefined) return leaf;
    }
    return null;
  }

  private tlbiIpa(level: number, base: number): RefEvent {
    return { kind: "tlbi-ipa", level, ipaLo: base, ipaHi: base + this.size(level) };
  }

  /** Adjusts the present-entry count of the table holding the entry at (level, base). */
  private countInParent(level: number, base: number, delta: number): void {
    if (level === this.startLevel) return;
    const pl = level - 1;
    const pos = this.alignDown(base, this.size(pl));
    const n = this.tables[pl]!.get(pos);
    if (n === undefined) throw new Error(`reference: no table above L${level} entry at ${base}`);
    this.tables[pl]!.set(pos, n + delta);
  }

  private addLeaf(leaf: RefLeaf): void {
    this.leaves[leaf.level]!.set(leaf.base, leaf);
    this.countInParent(leaf.level, leaf.base, 1);
    this.changed.push({ level: leaf.level, base: leaf.base });
  }

  private removeLeaf(leaf: RefLeaf): void {
    this.leaves[leaf.level]!.delete(leaf.base);
    this.countInParent(leaf.level, leaf.base, -1);
    this.changed.push({ level: leaf.level, base: leaf.base });
  }

  private addTable(level: number, base: number): void {
    this.tables[level]!.set(base, 0);
    this.countInParent(level, base, 1);
  }

  /** Drops the table entry at (level, base) and everything below it. */
  private removeSubtree(level: number, base: number): void {
    const end = base + this.size(level);
    for (let l = level + 1; l <= 3; l++) {
      for (const leaf of [...this.leaves[l]!.values()]) {
        if (leaf.base >= base && leaf.base < end) {
          this.leaves[l]!.delete(leaf.base);
          this.changed.push({ level: l, base: leaf.base });
        }
      }
      for (const pos of [...this.tables[l]!.keys()])
        if (pos >= base && pos < end) this.tables[l]!.delete(pos);
    }
    this.tables[level]!.delete(base);
    this.countInParent(level, base, -1);
  }

  /** The unmap walk over the entries of `level` intersecting [from, to), in address order. */
  private unmapLevel(level: number, from: number, to: number): void {
    const s = this.size(level);
    for (let pos = this.alignDown(from, s); pos < to; pos += s) {
      const seen = Math.max(from, pos);
      const children = this.tables[level]!.get(pos);
      if (children !== undefined) {
        this.unmapLevel(level + 1, seen, Math.min(to, pos + s));
        if (this.tables[level]!.get(pos) === 0) {
          this.tables[level]!.delete(pos);
          this.countInParent(level, pos, -1);
          this.events.push({ kind: "tlbi-ipa", level, ipaLo: pos, ipaHi: pos + s });
        }
        continue;
      }
      const leaf = this.leaves[level]!.get(pos);
      if (leaf === undefined) continue;
      this.removeLeaf(leaf);
      this.events.push(this.tlbiIpa(level, pos));
      if (!this.cfg.fwb) this.events.push({ kind: "dc-civac", pa: leaf.oa, size: s });
    }
  }
}
