/**
 * The map visitor (stage2_map_walker and its helpers, spec sections 4.1-4.3): try a leaf, split
 * what is in the way, and coalesce a table into a block through the anchor.
 */
import {
  differOnlyInPerms,
  leafHi,
  leafLo,
  oaHi,
  oaLo,
  pteCacheable,
  pteExecutable,
  tableLo,
} from "../arch/descriptor.js";
import { LAST_LEVEL } from "../arch/granule.js";
import { E2BIG, EAGAIN, EINVAL, ENOMEM } from "../common/errno.js";
import type { InjectedBug } from "./bugs.js";
import type { MemoryCache } from "./memcache.js";
import { type LeafAttr, stage2ProtAttr } from "./prot.js";
import type { Stage2Pgtable } from "./stage2.js";
import {
  alignDownExact,
  type VisitFlag,
  type Visitor,
  WALK_LEAF,
  WALK_TABLE_POST,
  WALK_TABLE_PRE,
} from "./walker.js";

// Module-local copies of imported constants: optimized code folds a module's own `const`s, but
// reads an imported binding through its cell, with a TDZ check, at every use.
const LAST = LAST_LEVEL;
const PRE = WALK_TABLE_PRE;
const LEAF = WALK_LEAF;
const POST = WALK_TABLE_POST;
const E_2BIG = E2BIG;
const E_AGAIN = EAGAIN;
const E_INVAL = EINVAL;
const E_NOMEM = ENOMEM;

/** struct stage2_map_data and the stage2_map_walker callback. */
export class MapVisitor implements Visitor {
  readonly flags = PRE | LEAF | POST;
  private phys = 0;
  private readonly attr: LeafAttr = { lo: 0, hi: 0 };
  /** The prot {@link attr} was last computed from (NaN: none); stage2ProtAttr is pure. */
  private attrProt = NaN;
  /** The table entry being coalesced (table page and index), or -1. */
  private anchorTable = -1;
  private anchorIdx = -1;
  /** v5.14: the child table detached at TABLE_PRE, or -1. */
  private childp = -1;
  private memcache: MemoryCache | null = null;
  /** PAGE_SIZE and 1 / PAGE_SIZE (exact: a power of two). */
  private readonly pageSize: number = 0;
  private readonly pageInv: number = 0;
  /** The kernel's injected bug (null: none). */
  private readonly bug: InjectedBug | null;
  /** True while the leaf that replaces a coalesced table is being installed. */
  private coalescing = false;
  /**
   * The output address {@link leafCmos} works on, set just before each call. A field rather than
   * an argument: when the call is not inlined, a double argument of 2^31 or more (a typical PA)
   * would be boxed into a new heap number.
   */
  private cmoPhys = 0;

  constructor(private readonly pgt: Stage2Pgtable) {
    this.pageSize = pgt.granule.size;
    this.pageInv = 1 / pgt.granule.size;
    this.bug = pgt.kernel.bug;
  }

  /** kvm_pgtable_stage2_map's body. */
  run(addr: number, size: number, phys: number, prot: number, mc: MemoryCache | null): number {
    if (prot !== this.attrProt) {
      const ret = this.setProt(prot);
      if (ret !== 0) return ret;
    }
    this.phys = alignDownExact(phys, this.pageSize, this.pageInv);
    this.memcache = mc;
    this.anchorTable = -1;
    this.anchorIdx = -1;
    this.childp = -1;
    // The trailing dsb(ishst) orders the stores; installs from invalid need no TLBI.
    return this.pgt.walk(addr, size, this);
  }

  /**
   * Whether {@link run} for one leaf (`size` the entry size of some level) would certainly return
   * without storing a descriptor or issuing a TLBI, from the tables as they are now: the walk
   * reaches that level through tables where no block fits, and try_leaf finds a counted leaf
   * there that differs at most in its permissions (-EAGAIN). False whenever it may store (or
   * with an injected bug). Changes nothing.
   */
  changesNothing(addr: number, size: number, phys: number, prot: number): boolean {
    const pgt = this.pgt;
    if (this.bug !== null) return false;
    if (stage2ProtAttr(prot, pgt.fwb, this.probeAttr) !== 0) return false;
    const sizes = pgt.sizes;
    const g = pgt.granule;
    // The walk's range: from the page of addr; one entry only when size-aligned.
    addr = alignDownExact(addr, this.pageSize, this.pageInv);
    phys = alignDownExact(phys, this.pageSize, this.pageInv);
    const end = addr + size;
    if (addr < 0 || end > pgt.geo.ipaLimit || Math.floor(addr / size) * size !== addr) return false;
    let level = pgt.geo.startLevel;
    let table = pgt.pgd + Math.floor(addr * sizes.inv[level]!);
    for (;;) {
      const idx = Math.floor(addr * sizes.inv[level + 1]!) & (g.ptrsPerTable - 1);
      const words = pgt.mem.pages[table]!;
      const lo = words[2 * idx]!;
      const hi = words[2 * idx + 1]!;
      // A block fitting here over a table would coalesce, over anything else try a leaf.
      const fits = pgt.blockMappingSupported(addr, end, phys, level);
      if (level < LAST && (lo & 3) === 3) {
        if (fits) return false;
        table = pgt.follow(lo, hi);
        level++;
        continue;
      }
      // A leaf that does not fit here would split what is here (a new table).
      if (!fits || sizes.size[level + 1]! !== size || !pgt.isCounted(lo, hi)) return false;
      const attr = this.probeAttr;
      return differOnlyInPerms(lo, hi, leafLo(g, phys, attr.lo, level), leafHi(phys, attr.hi));
    }
  }

  /** Scratch attributes for {@link changesNothing}. */
  private readonly probeAttr: LeafAttr = { lo: 0, hi: 0 };

  /** stage2_set_prot_attr into {@link attr}; a failure leaves attr and attrProt as they were. */
  private setProt(prot: number): number {
    const ret = stage2ProtAttr(prot, this.pgt.fwb, this.attr);
    if (ret === 0) this.attrProt = prot;
    return ret;
  }

  visit(addr: number, end: number, level: number, table: number, idx: number, flag: VisitFlag): number {
    switch (flag) {
      case PRE:
        return this.tablePre(addr, end, level, table, idx);
      case LEAF:
        return this.walkLeaf(addr, end, level, table, idx);
      case POST:
        return this.tablePost(addr, end, level, table, idx);
    }
  }

  /**
   * stage2_map_walker's LEAF visits over a run of last-level entries (Visitor.leafRun): try_leaf on
   * each (at the last level a leaf always fits); the first it refuses (-EAGAIN, with nothing done)
   * and everything below an anchor are left to {@link visit}.
   */
  leafRun(addr: number, end: number, table: number, idx: number, count: number): number {
    if (this.anchorTable >= 0) return 0;
    const pgt = this.pgt;
    const size = this.pageSize;
    if (this.bug !== null || !pgt.blockMappingSupported(addr, end, this.phys, LAST)) {
      let k = 0;
      for (; k < count; k++) {
        if (this.tryLeaf(addr, end, LAST, table, idx + k) !== 0) break;
        addr += size;
      }
      return k;
    }
    if (pgt.quietRun()) {
      const k = this.leafRunQuiet(addr, end, table, idx, count);
      if (k >= 0) return k;
    }
    return this.leafRunFast(addr, end, table, idx, count);
  }

  /**
   * try_leaf over a run of last-level entries with no injected bug, from an entry where a leaf
   * fits (addr and phys aligned): every later one fits too (aligned, and the walk's end is
   * page-aligned), and the attributes, so whether a new leaf needs CMOs, are the same for the
   * whole run. The same stores, calls and charges in the same order as try_leaf on each entry.
   */
  private leafRunFast(addr: number, end: number, table: number, idx: number, count: number): number {
    const pgt = this.pgt;
    const g = pgt.granule;
    const size = this.pageSize;
    const attr = this.attr;
    const mm = pgt.mmOps;
    const words = pgt.mem.pages[table]!;
    // The leaf descriptor for output address 0: its attribute, type and valid bits.
    const lo0 = leafLo(g, 0, attr.lo, LAST);
    const hi0 = leafHi(0, attr.hi);
    const dc = mm.dcacheCleanInvalPoc !== null && pteCacheable(lo0, pgt.fwb);
    const ic = mm.icacheInvalPou !== null && pteExecutable(hi0);
    const counted = pgt.isCounted(lo0, hi0);
    let phys = this.phys;
    let k = 0;
    for (; k < count; k++) {
      const i = idx + k;
      if (pgt.isCounted(words[2 * i]!, words[2 * i + 1]!)) {
        // Something is in the way (-EAGAIN, or a break first): try_leaf's full path.
        this.phys = phys;
        if (this.tryLeaf(addr, end, LAST, table, i) !== 0) break;
        phys = this.phys;
        addr += size;
        continue;
      }
      // leafLo / leafHi: the run's attribute bits with this leaf's output address.
      const newLo = (lo0 | oaLo(g, phys)) >>> 0;
      const newHi = (hi0 | oaHi(phys)) >>> 0;
      if (dc) mm.dcacheCleanInvalPoc!(mm.physToVirt(phys), size);
      if (ic) mm.icacheInvalPou!(mm.physToVirt(phys), size);
      pgt.writePte(table, i, newLo, newHi, addr, LAST);
      if (counted) mm.getPage(table);
      phys += size;
      addr += size;
    }
    this.phys = phys;
    return k;
  }

  /**
   * {@link leafRunFast} as a quiet run (Stage2Pgtable.quietRun): the new leaves are stored in
   * order, and each stretch of them adds its stores, references and D-cache lines at once; an
   * entry in the way still goes through try_leaf, after the stretch before it is counted. Returns
   * -1, having done nothing, when the leaves need an I-cache invalidation or the D-cache line does
   * not divide the granule.
   */
  private leafRunQuiet(addr: number, end: number, table: number, idx: number, count: number): number {
    const pgt = this.pgt;
    const g = pgt.granule;
    const size = this.pageSize;
    const mm = pgt.mmOps;
    const lo0 = leafLo(g, 0, this.attr.lo, LAST);
    const hi0 = leafHi(0, this.attr.hi);
    if (mm.icacheInvalPou !== null && pteExecutable(hi0)) return -1;
    // clean_dcache_guest_page returns at once with FWB.
    const lines =
      mm.dcacheCleanInvalPoc !== null && pteCacheable(lo0, pgt.fwb) && !pgt.fwb ? pgt.dcLinesPerPage : 0;
    if (lines < 0) return -1;
    const counted = pgt.isCounted(lo0, hi0);
    const words = pgt.mem.pages[table]!;
    let phys = this.phys;
    let placed = 0;
    let k = 0;
    for (; k < count; k++) {
      const i = idx + k;
      if (pgt.isCounted(words[2 * i]!, words[2 * i + 1]!)) {
        pgt.quietRunDone(table, placed, 0, counted ? placed : 0, placed * lines);
        placed = 0;
        this.phys = phys;
        if (this.tryLeaf(addr, end, LAST, table, i) !== 0) break;
        phys = this.phys;
        addr += size;
        continue;
      }
      words[2 * i] = (lo0 | oaLo(g, phys)) >>> 0;
      words[2 * i + 1] = (hi0 | oaHi(phys)) >>> 0;
      placed++;
      phys += size;
      addr += size;
    }
    pgt.quietRunDone(table, placed, 0, counted ? placed : 0, placed * lines);
    this.phys = phys;
    return k;
  }

  /** stage2_map_walker_try_leaf. */
  private tryLeaf(addr: number, end: number, level: number, table: number, idx: number): number {
    const pgt = this.pgt;
    const phys = this.phys;
    if (!pgt.blockMappingSupported(addr, end, phys, level)) return E_2BIG;
    const attr = this.attr;
    const newLo = leafLo(pgt.granule, phys, attr.lo, level);
    const newHi = leafHi(phys, attr.hi);
    const words = pgt.mem.pages[table]!;
    let noBreak = false;
    if (pgt.isCounted(words[2 * idx]!, words[2 * idx + 1]!)) {
      // Same mapping, or only R/W/XN differ (either way): leave it to relax_perms.
      if (differOnlyInPerms(words[2 * idx]!, words[2 * idx + 1]!, newLo, newHi)) return E_AGAIN;
      noBreak = this.breakLeaf(addr, level, table, idx);
    }
    // The series' CMOs: only the walker that stores a new valid leaf pays.
    this.cmoPhys = phys;
    const dropped = this.bug !== null && this.cmoInjectedAway();
    if (this.leafCmos(newLo, newHi, level, dropped) && dropped) pgt.bugDepartures++;
    pgt.writePte(table, idx, newLo, newHi, addr, level);
    // Injected "no-break": the old leaf's reference carries over to the new one; TLBI after.
    if (noBreak) pgt.tlbFlushVmidIpa(addr, level);
    else if (pgt.isCounted(newLo, newHi)) pgt.mmOps.getPage(table);
    this.phys = phys + pgt.sizes.size[level + 1]!;
    return 0;
  }

  /**
   * stage2_map_walker_try_leaf, when a counted entry is in the way: break it (stage2_put_pte), or
   * with the injected "no-break" leave it; returns whether it was left.
   */
  private breakLeaf(addr: number, level: number, table: number, idx: number): boolean {
    if (this.bug === "no-break") {
      this.pgt.bugDepartures++;
      return true;
    }
    this.pgt.putPte(table, idx, addr, level);
    return false;
  }

  /**
   * stage2_map_walker_try_leaf's CMOs on the new leaf's granule at {@link cmoPhys} (v5.12's mm_ops
   * have no CMO callbacks, so there are none there); with `dropped` (an injected bug) none is
   * issued. Returns whether the leaf owes any.
   */
  private leafCmos(newLo: number, newHi: number, level: number, dropped: boolean): boolean {
    const pgt = this.pgt;
    const mm = pgt.mmOps;
    const clean = mm.dcacheCleanInvalPoc !== null && pteCacheable(newLo, pgt.fwb);
    const inval = mm.icacheInvalPou !== null && pteExecutable(newHi);
    if (dropped) return clean || inval;
    const phys = this.cmoPhys;
    const granule = pgt.sizes.size[level + 1]!;
    if (clean) mm.dcacheCleanInvalPoc!(mm.physToVirt(phys), granule);
    if (inval) mm.icacheInvalPou!(mm.physToVirt(phys), granule);
    return clean || inval;
  }

  /** Whether an injected bug drops this leaf's CMOs. */
  private cmoInjectedAway(): boolean {
    return this.bug === "install-no-cmo" || (this.bug === "coalesce-no-cmo" && this.coalescing);
  }

  /**
   * stage2_map_walk_leaf: below an anchor only drop references; otherwise try a leaf, else replace
   * the entry by a new table to descend into.
   */
  private walkLeaf(addr: number, end: number, level: number, table: number, idx: number): number {
    if (this.anchorTable >= 0) return this.putUnderAnchor(table, idx);
    const ret = this.tryLeaf(addr, end, level, table, idx);
    if (ret !== E_2BIG) return ret;
    return this.newTable(addr, level, table, idx);
  }

  /** stage2_map_walk_leaf below an anchor: drop the entry's reference on its table page. */
  private putUnderAnchor(table: number, idx: number): number {
    const pgt = this.pgt;
    const words = pgt.mem.pages[table]!;
    if (pgt.isCounted(words[2 * idx]!, words[2 * idx + 1]!)) pgt.mmOps.putPage(table);
    return 0;
  }

  /** stage2_map_walk_leaf, after E2BIG: a new table in place of the entry (a block is split). */
  private newTable(addr: number, level: number, table: number, idx: number): number {
    const pgt = this.pgt;
    // tryLeaf left the entry as it was.
    const words = pgt.mem.pages[table]!;
    const oldLo = words[2 * idx]!;
    const oldHi = words[2 * idx + 1]!;
    if (level === LAST) return E_INVAL;
    if (this.memcache === null) return E_NOMEM;
    const child = pgt.mmOps.zallocPage(this.memcache);
    if (child < 0) return E_NOMEM;
    pgt.tablesInstalled++;
    const childPa = pgt.mem.pa(child);
    if (pgt.events.active) pgt.reportTableAlloc(child, level + 1);
    // Block -> table: the rest of the old block is left unmapped and refaults lazily.
    if (pgt.isCounted(oldLo, oldHi)) {
      if (this.bug === "no-break") {
        // Injected: the table replaces the block in one store; the block's reference carries over.
        pgt.bugDepartures++;
        pgt.writePte(table, idx, tableLo(pgt.granule, childPa), oaHi(childPa), addr, level);
        pgt.tlbFlushVmidIpa(addr, level);
        return 0;
      }
      pgt.putPte(table, idx, addr, level);
    }
    pgt.writePte(table, idx, tableLo(pgt.granule, childPa), oaHi(childPa), addr, level);
    pgt.mmOps.getPage(table);
    return 0;
  }

  /** stage2_map_walk_table_pre: start coalescing when a block fits over this table. */
  private tablePre(addr: number, end: number, level: number, table: number, idx: number): number {
    if (this.anchorTable >= 0) return 0;
    if (!this.pgt.blockMappingSupported(addr, end, this.phys, level)) return 0;
    return this.anchor(addr, level, table, idx);
  }

  /** stage2_map_walk_table_pre, once a block fits: detach the table and make it the anchor. */
  private anchor(addr: number, level: number, table: number, idx: number): number {
    const pgt = this.pgt;
    const words = pgt.mem.pages[table]!;
    switch (pgt.kernel.coalesce) {
      case "block-then-free-child":
        this.childp = pgt.follow(words[2 * idx]!, words[2 * idx + 1]!);
        break;
      case "free-child-then-block":
        // The stale address left in the invalidated entry is followed at TABLE_POST.
        break;
    }
    pgt.invalidatePte(table, idx, addr, level);
    // Numerous leaves may sit below: invalidate the whole VMID.
    switch (this.bug) {
      case "coalesce-tlbi-ipa":
        pgt.bugDepartures++;
        pgt.tlbFlushVmidIpa(addr, level);
        break;
      case "free-before-tlbi":
        pgt.bugDepartures++;
        break; // issued once the block is in (tablePost)
      default:
        pgt.tlbFlushVmid();
    }
    this.anchorTable = table;
    this.anchorIdx = idx;
    return 0;
  }

  /** stage2_map_walk_table_post: free the subtree bottom-up; at the anchor, install the block. */
  private tablePost(addr: number, end: number, level: number, table: number, idx: number): number {
    if (this.anchorTable < 0) return 0;
    return this.freeUnderAnchor(addr, end, level, table, idx);
  }

  /** stage2_map_walk_table_post below or at the anchor. */
  private freeUnderAnchor(addr: number, end: number, level: number, table: number, idx: number): number {
    const pgt = this.pgt;
    const words = pgt.mem.pages[table]!;
    const isAnchor = this.anchorTable === table && this.anchorIdx === idx;
    let ret = 0;
    switch (pgt.kernel.coalesce) {
      case "free-child-then-block": {
        pgt.mmOps.putPage(pgt.follow(words[2 * idx]!, words[2 * idx + 1]!));
        pgt.mmOps.putPage(table);
        if (isAnchor) {
          this.anchorTable = -1;
          this.anchorIdx = -1;
          if (this.bug === "free-before-tlbi") pgt.tlbFlushVmid();
          ret = this.installCoalesced(addr, end, level, table, idx);
        }
        return ret;
      }
      case "block-then-free-child": {
        let child: number;
        if (isAnchor) {
          child = this.childp;
          this.anchorTable = -1;
          this.anchorIdx = -1;
          this.childp = -1;
          if (this.bug === "free-before-tlbi") {
            // Injected: the detached table goes first, then the (late) TLBI, then the block.
            pgt.mmOps.putPage(child);
            pgt.tlbFlushVmid();
            ret = this.installCoalesced(addr, end, level, table, idx);
            pgt.mmOps.putPage(table);
            return ret;
          }
          ret = this.installCoalesced(addr, end, level, table, idx);
        } else {
          child = pgt.follow(words[2 * idx]!, words[2 * idx + 1]!);
        }
        pgt.mmOps.putPage(child);
        pgt.mmOps.putPage(table);
        return ret;
      }
    }
  }

  /** stage2_map_walk_leaf at the anchor: the block that replaces the coalesced table. */
  private installCoalesced(addr: number, end: number, level: number, table: number, idx: number): number {
    this.coalescing = true;
    const ret = this.walkLeaf(addr, end, level, table, idx);
    this.coalescing = false;
    return ret;
  }
}
