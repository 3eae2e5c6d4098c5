/**
 * The map visitor (stage2_map_walker and its helpers, spec sections 4.1-4.3): try a leaf, split
 * what is in the way, and coalesce a table into a block through the anchor.
 */
import {
  differOnlyInPerms,
  leafHi,
  leafLo,
  pteCacheable,
  pteExecutable,
  tableLo,
} from "../arch/descriptor.js";
import { LAST_LEVEL } from "../arch/granule.js";
import { E2BIG, EAGAIN, EINVAL, ENOMEM } from "../common/errno.js";
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

/** struct stage2_map_data and the stage2_map_walker callback. */
export class MapVisitor implements Visitor {
  readonly flags = WALK_TABLE_PRE | WALK_LEAF | WALK_TABLE_POST;
  private phys = 0;
  private readonly attr: LeafAttr = { lo: 0, hi: 0 };
  /** The table entry being coalesced (table page and index), or -1. */
  private anchorTable = -1;
  private anchorIdx = -1;
  /** v5.14: the child table detached at TABLE_PRE, or -1. */
  private childp = -1;
  private memcache: MemoryCache | null = null;

  constructor(private readonly pgt: Stage2Pgtable) {}

  /** kvm_pgtable_stage2_map's body. */
  run(addr: number, size: number, phys: number, prot: number, mc: MemoryCache | null): number {
    const ret = stage2ProtAttr(prot, this.pgt.fwb, this.attr);
    if (ret !== 0) return ret;
    const page = this.pgt.granule.size;
    this.phys = alignDownExact(phys, page, 1 / page);
    this.memcache = mc;
    this.anchorTable = -1;
    this.anchorIdx = -1;
    this.childp = -1;
    // The trailing dsb(ishst) orders the stores; installs from invalid need no TLBI.
    return this.pgt.walk(addr, size, this);
  }

  visit(addr: number, end: number, level: number, table: number, idx: number, flag: VisitFlag): number {
    switch (flag) {
      case WALK_TABLE_PRE:
        return this.tablePre(addr, end, level, table, idx);
      case WALK_LEAF:
        return this.leaf(addr, end, level, table, idx);
      case WALK_TABLE_POST:
        return this.tablePost(addr, end, level, table, idx);
    }
  }

  /** stage2_map_walker_try_leaf. */
  private tryLeaf(addr: number, end: number, level: number, table: number, idx: number): number {
    const pgt = this.pgt;
    const phys = this.phys;
    if (!pgt.blockMappingSupported(addr, end, phys, level)) return E2BIG;
    const granule = pgt.sizes.size[level + 1]!;
    const newLo = leafLo(pgt.granule, phys, this.attr.lo, level);
    const newHi = leafHi(phys, this.attr.hi);
    const words = pgt.mem.pages[table]!;
    const oldLo = words[2 * idx]!;
    const oldHi = words[2 * idx + 1]!;
    if (pgt.isCounted(oldLo, oldHi)) {
      // Same mapping, or only R/W/XN differ (either way): leave it to relax_perms.
      if (differOnlyInPerms(oldLo, oldHi, newLo, newHi)) return EAGAIN;
      pgt.putPte(table, idx, addr, level);
    }
    // The series' CMOs: only the walker that stores a new valid leaf pays (v5.12 mm_ops have no
    // CMO callbacks, so this is skipped there).
    const mm = pgt.mmOps;
    if (mm.dcacheCleanInvalPoc !== null && pteCacheable(newLo, pgt.fwb)) {
      mm.dcacheCleanInvalPoc(mm.physToVirt(phys), granule);
    }
    if (mm.icacheInvalPou !== null && pteExecutable(newHi)) {
      mm.icacheInvalPou(mm.physToVirt(phys), granule);
    }
    pgt.writePte(table, idx, newLo, newHi, addr, level);
    if (pgt.isCounted(newLo, newHi)) mm.getPage(table);
    this.phys = phys + granule;
    return 0;
  }

  /** stage2_map_walk_leaf: try a leaf, else replace the entry by a new table to descend into. */
  private walkLeaf(addr: number, end: number, level: number, table: number, idx: number): number {
    const pgt = this.pgt;
    const words = pgt.mem.pages[table]!;
    const oldLo = words[2 * idx]!;
    const oldHi = words[2 * idx + 1]!;
    const ret = this.tryLeaf(addr, end, level, table, idx);
    if (ret !== E2BIG) return ret;
    if (level === LAST_LEVEL) return EINVAL;
    if (this.memcache === null) return ENOMEM;
    const child = pgt.mmOps.zallocPage(this.memcache);
    if (child < 0) return ENOMEM;
    const childPa = pgt.mem.pa(child);
    if (pgt.events.active) pgt.events.emit({ kind: "table-alloc", pa: childPa, level: level + 1 });
    // Block -> table: the rest of the old block is left unmapped and refaults lazily.
    if (pgt.isCounted(oldLo, oldHi)) pgt.putPte(table, idx, addr, level);
    pgt.writePte(table, idx, tableLo(pgt.granule, childPa), 0, addr, level);
    pgt.mmOps.getPage(table);
    return 0;
  }

  /** LEAF visits: below an anchor only drop references; otherwise map. */
  private leaf(addr: number, end: number, level: number, table: number, idx: number): number {
    if (this.anchorTable >= 0) {
      const pgt = this.pgt;
      const words = pgt.mem.pages[table]!;
      if (pgt.isCounted(words[2 * idx]!, words[2 * idx + 1]!)) pgt.mmOps.putPage(table);
      return 0;
    }
    return this.walkLeaf(addr, end, level, table, idx);
  }

  /** stage2_map_walk_table_pre: start coalescing when a block fits over this table. */
  private tablePre(addr: number, end: number, level: number, table: number, idx: number): number {
    const pgt = this.pgt;
    if (this.anchorTable >= 0) return 0;
    if (!pgt.blockMappingSupported(addr, end, this.phys, level)) return 0;
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
    pgt.tlbFlushVmid();
    this.anchorTable = table;
    this.anchorIdx = idx;
    return 0;
  }

  /** stage2_map_walk_table_post: free the subtree bottom-up; at the anchor, install the block. */
  private tablePost(addr: number, end: number, level: number, table: number, idx: number): number {
    const pgt = this.pgt;
    if (this.anchorTable < 0) return 0;
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
          ret = this.walkLeaf(addr, end, level, table, idx);
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
          ret = this.walkLeaf(addr, end, level, table, idx);
        } else {
          child = pgt.follow(words[2 * idx]!, words[2 * idx + 1]!);
        }
        pgt.mmOps.putPage(child);
        pgt.mmOps.putPage(table);
        return ret;
      }
    }
  }
}
