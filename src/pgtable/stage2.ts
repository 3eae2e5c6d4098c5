/**
 * struct kvm_pgtable for a guest stage 2, with the kvm_pgtable_stage2_* entry points. The
 * operations themselves are small visitors (map.ts, unmap.ts, attr.ts, flush.ts, destroy.ts)
 * driven by the one generic walker; this file holds the state and the helpers they share.
 */
import type { CpuFeatures } from "../arch/cpu.js";
import {
  ATTR_LO_AF,
  ATTR_LO_S2AP_R,
  ATTR_LO_S2AP_W,
  ATTR_HI_XN,
  oaHi,
  oaLo,
  PTE_VALID,
  pteBig,
  pteOa,
} from "../arch/descriptor.js";
import type { Stage2Geometry } from "../arch/geometry.js";
import type { Granule } from "../arch/granule.js";
import { levelSupportsBlock } from "../arch/granule.js";
import { S2simError } from "../common/error.js";
import { W, WorkMeter } from "../common/work.js";
import { AttrVisitor } from "./attr.js";
import { DestroyVisitor } from "./destroy.js";
import type { PgtableOp, PgtableSink } from "./events.js";
import { FlushVisitor } from "./flush.js";
import { icacheInvalAll, NULL_HW, type Stage2Env, type Stage2Hw } from "./hw.js";
import type { PgtableKernel } from "./kernel.js";
import { MapVisitor } from "./map.js";
import type { MemoryCache } from "./memcache.js";
import { kvmS2MmOps, type MmOps } from "./mm-ops.js";
import type { PhysMem } from "./phys-mem.js";
import { PROT_R, PROT_W, PROT_X } from "./prot.js";
import { UnmapVisitor } from "./unmap.js";
import {
  LevelSizes,
  type Visitor,
  Walker,
  WALK_LOOP_ATTR,
  WALK_LOOP_GENERIC,
  WALK_LOOP_MAP,
  WALK_LOOP_UNMAP,
} from "./walker.js";

// Module-local copies of imported constants: optimized code folds a module's own `const`s, but
// reads an imported binding through its cell, with a TDZ check, at every use.
const AF = ATTR_LO_AF;
const S2AP_R = ATTR_LO_S2AP_R;
const S2AP_W = ATTR_LO_S2AP_W;
const XN = ATTR_HI_XN;
const VALID = PTE_VALID;
const P_R = PROT_R;
const P_W = PROT_W;
const P_X = PROT_X;
const LOOP_GENERIC = WALK_LOOP_GENERIC;
const LOOP_MAP = WALK_LOOP_MAP;
const LOOP_ATTR = WALK_LOOP_ATTR;
const LOOP_UNMAP = WALK_LOOP_UNMAP;

/** Work items charged here (indices into the meter, looked up once). */
const W_PGT_CALL = W["pgt-call"];
const W_PGT_VISIT = W["pgt-visit"];
const W_PTE_WRITE = W["pte-write"];
const W_TLBI_IPA = W["tlbi-ipa"];
const W_TLBI_VMID = W["tlbi-vmid"];
const W_TABLE_REFCOUNT = W["table-refcount"];
const W_DC_CIVAC_LINE = W["dc-civac-line"];

/** 2^52: the first address past the largest output address a stage-2 descriptor holds. */
const MAX_OA = 4503599627370496;

/** Throws the error for a map() output address that is not one (out of line: map stays small). */
function badPhys(phys: number): never {
  throw new S2simError("bad-phys", `map: output address ${phys} is not a whole number in [0, 2^52)`);
}

/** A sink that never listens. */
const NO_EVENTS: PgtableSink = {
  active: false,
  tap: null,
  wants: {
    op: false,
    "op-done": false,
    pte: false,
    "table-alloc": false,
    "page-free": false,
    refcount: false,
    tlbi: false,
    cmo: false,
  },
  emit() {},
};

/** How to build a {@link Stage2Pgtable}. */
export interface Stage2PgtableOptions {
  readonly geometry: Stage2Geometry;
  readonly kernel: PgtableKernel;
  readonly cpu: CpuFeatures;
  readonly mem: PhysMem;
  readonly hw?: Stage2Hw;
  readonly events?: PgtableSink;
  /** Defaults to kvm_s2_mm_ops for the kernel. */
  readonly mmOps?: MmOps;
  /** Where work is counted; defaults to a private meter. */
  readonly meter?: WorkMeter;
  /** Told of every descriptor store before it happens (the simulator's visibility model). */
  readonly pteObserver?: PteObserver;
  /**
   * Runs every walk on the walker's generic loop instead of the map, attribute and unmap visitors'
   * copies of it (WALK_LOOP_GENERIC); the walks are the same. For tests that compare the two.
   */
  readonly genericWalkLoop?: boolean;
  /**
   * False: the walker hands the visitors every last-level entry one visit at a time, never as a
   * run (Visitor.leafRun); the walks are the same. For tests that compare the two.
   */
  readonly leafRuns?: boolean;
}

/** Sees each descriptor store: the entry's location, the value it had and the one it gets. */
export interface PteObserver {
  pteWritten(table: number, index: number, oldLo: number, oldHi: number, newLo: number, newHi: number): void;
}

/** A leaf found by {@link Stage2Pgtable.lookup}. */
export interface LeafLookup {
  /** Level of the descriptor that ends the walk (a leaf or an invalid entry). */
  readonly level: number;
  readonly lo: number;
  readonly hi: number;
}

/** A guest stage-2 page table (struct kvm_pgtable plus the kvm_s2_mmu it invalidates). */
export class Stage2Pgtable implements Stage2Env {
  readonly geo: Stage2Geometry;
  readonly granule: Granule;
  readonly kernel: PgtableKernel;
  readonly cpu: CpuFeatures;
  readonly mem: PhysMem;
  readonly hw: Stage2Hw;
  readonly events: PgtableSink;
  readonly mmOps: MmOps;
  readonly meter: WorkMeter;
  /** stage2_has_fwb: the guest stage 2 never opts out of FWB. */
  readonly fwb: boolean;
  readonly sizes: LevelSizes;
  /** First concatenated start-level page, or -1 once destroyed. */
  pgd = -1;
  /** Table pages installed below the start level so far (taken from a memcache by a map). */
  tablesInstalled = 0;
  /**
   * Times the kernel's injected bug (bugs.ts) made the code depart from the kernel's so far: 0
   * with none, or when the run never reached the place it changes (nothing for a checker to catch).
   */
  bugDepartures = 0;

  private readonly walker: Walker;
  /** mem.pages (the array never changes; pages are only added to it). */
  private readonly pages: Uint32Array[];
  private readonly pteObserver: PteObserver | null;
  private readonly blockLevel: boolean[];
  /**
   * isCounted as one test: the words of an entry that hold a reference are non-zero under these
   * masks (v5.14: all bits, stage2_pte_is_counted; v5.12: the valid bit, kvm_pte_valid).
   */
  private readonly countedLo: number = 0;
  private readonly countedHi: number = 0;
  /** A break stores zero (v5.14's kvm_clear_pte), not the entry with its valid bit cleared (v5.12). */
  private readonly zeroOnInvalidate: boolean;
  /** False only with the injected bug "no-tlbi-after-break". */
  private readonly tlbiOnBreak: boolean;
  /** A VPIPT I-cache with KVM in nVHE mode: the TLBI by IPA also invalidates the I-cache. */
  private readonly vpiptNvhe: boolean;
  private readonly mapVisitor: MapVisitor;
  private readonly unmapVisitor: UnmapVisitor;
  private readonly attrVisitor: AttrVisitor;
  private readonly flushVisitor: FlushVisitor;
  /** Stage2PgtableOptions.genericWalkLoop. */
  private readonly genericWalkLoop: boolean;
  /**
   * Whether this table can run leaves quietly (see {@link quietRun}): no store observer,
   * {@link NULL_HW}, the model's own mm_ops, no injected bug, and no TLBI that also invalidates
   * the I-cache.
   */
  private readonly quietCapable: boolean = false;
  /**
   * DC CIVAC lines in one page-aligned granule (granule / line), or -1 when the line does not
   * divide the granule (then a quiet run could not count them without linesIn per leaf).
   */
  readonly dcLinesPerPage: number = -1;

  /** kvm_pgtable_stage2_init: allocates the zeroed, contiguous start-level pages. */
  constructor(opts: Stage2PgtableOptions) {
    this.geo = opts.geometry;
    this.granule = opts.geometry.granule;
    this.kernel = opts.kernel;
    this.cpu = opts.cpu;
    this.mem = opts.mem;
    this.pages = opts.mem.pages;
    this.hw = opts.hw ?? NULL_HW;
    this.events = opts.events ?? NO_EVENTS;
    this.meter = opts.meter ?? new WorkMeter();
    this.pteObserver = opts.pteObserver ?? null;
    this.genericWalkLoop = opts.genericWalkLoop ?? false;
    if (this.mem.granule !== this.granule) {
      throw new S2simError("bad-granule", "table memory and stage-2 geometry use different granules");
    }
    this.mmOps = opts.mmOps ?? kvmS2MmOps(this.mem, this, this.kernel.mmOpsCmoCallbacks);
    this.fwb = this.cpu.fwb;
    this.sizes = new LevelSizes(this.geo);
    this.walker = new Walker(this.geo, this.mem, this.sizes, opts.leafRuns ?? true);
    this.blockLevel = [0, 1, 2, 3].map((l) => levelSupportsBlock(this.granule, l));
    this.zeroOnInvalidate = this.kernel.invalidate === "zero";
    this.tlbiOnBreak = this.kernel.bug !== "no-tlbi-after-break";
    this.vpiptNvhe = this.cpu.icache === "vpipt" && !this.cpu.vhe;
    const countNonZero = this.kernel.counted === "non-zero";
    this.countedLo = countNonZero ? -1 : VALID;
    this.countedHi = countNonZero ? -1 : 0;
    this.mapVisitor = new MapVisitor(this);
    this.unmapVisitor = new UnmapVisitor(this);
    this.attrVisitor = new AttrVisitor(this);
    this.flushVisitor = new FlushVisitor(this);
    const line = this.cpu.dcacheLine;
    const lineDivides = line > 0 && (line | 0) === line && this.granule.size % line === 0;
    this.dcLinesPerPage = lineDivides ? this.granule.size / line : -1;
    this.quietCapable =
      this.pteObserver === null &&
      this.hw === NULL_HW &&
      opts.mmOps === undefined &&
      this.kernel.bug === null &&
      !this.vpiptNvhe;

    this.begin("init", 0, this.geo.ipaLimit);
    const pgd = this.mmOps.zallocPagesExact(this.geo.pgdPages);
    if (pgd < 0) {
      throw new S2simError(
        "out-of-memory",
        `cannot allocate ${this.geo.pgdPages} start-level table pages: table memory exhausted`,
      );
    }
    this.pgd = pgd;
    if (this.events.active) {
      for (let i = 0; i < this.geo.pgdPages; i++) this.reportTableAlloc(pgd + i, this.geo.startLevel);
    }
    this.done("init", 0);
  }

  // ---------------------------------------------------------------- entry points

  /** kvm_pgtable_walk. */
  walk(addr: number, size: number, visitor: Visitor): number {
    const walker = this.walker;
    const before = walker.visits;
    // This table's own map, attribute and unmap visitors each run on their copy of the walk loop.
    const loop = this.genericWalkLoop
      ? LOOP_GENERIC
      : visitor === this.mapVisitor
        ? LOOP_MAP
        : visitor === this.attrVisitor
          ? LOOP_ATTR
          : visitor === this.unmapVisitor
            ? LOOP_UNMAP
            : LOOP_GENERIC;
    const ret = walker.walk(this.pgd, addr, size, visitor, loop);
    this.meter.charge(W_PGT_VISIT, walker.visits - before);
    return ret;
  }

  /** kvm_pgtable_stage2_map: map [addr, addr + size) to `phys` with `prot`. */
  map(addr: number, size: number, phys: number, prot: number, mc: MemoryCache | null): number {
    // The kernel is only ever handed a real physical address; the model says so rather than
    // encode a masked one (and count CMO lines of a NaN or out-of-range address).
    if (!(phys >= 0 && phys < MAX_OA && Math.floor(phys) === phys)) badPhys(phys);
    this.begin("map", addr, size);
    return this.done("map", this.mapVisitor.run(addr, size, phys, prot, mc));
  }

  /**
   * Whether {@link map} of one leaf would certainly store no descriptor and issue no TLBI (it
   * would return -EAGAIN, finding the leaf there differing at most in permissions), from the
   * tables as they are now; false when it may. Charges and reports nothing.
   */
  mapChangesNothing(addr: number, size: number, phys: number, prot: number): boolean {
    return this.mapVisitor.changesNothing(addr, size, phys, prot);
  }

  /** kvm_pgtable_stage2_unmap. */
  unmap(addr: number, size: number): number {
    this.begin("unmap", addr, size);
    return this.done("unmap", this.walk(addr, size, this.unmapVisitor));
  }

  /** kvm_pgtable_stage2_wrprotect: clear S2AP_W on every valid leaf; no TLBI. */
  wrprotect(addr: number, size: number): number {
    this.begin("wrprotect", addr, size);
    return this.done("wrprotect", this.attrVisitor.run(addr, size, 0, 0, S2AP_W, 0));
  }

  /**
   * kvm_pgtable_stage2_relax_perms: add R/W/X from `prot` to the leaf covering `addr`, then
   * always TLBI by IPA at the leaf's level (level 0 if there was no valid leaf).
   */
  relaxPerms(addr: number, prot: number): number {
    this.begin("relax_perms", addr, 1);
    let setLo = 0;
    let clrHi = 0;
    if (prot & P_R) setLo |= S2AP_R;
    if (prot & P_W) setLo |= S2AP_W;
    if (prot & P_X) clrHi |= XN;
    const ret = this.attrVisitor.run(addr, 1, setLo, 0, 0, clrHi);
    if (ret === 0) this.tlbFlushVmidIpa(addr, this.attrVisitor.level);
    return this.done("relax_perms", ret);
  }

  /** kvm_pgtable_stage2_mkyoung: set AF; returns the old descriptor (0 if none). */
  mkyoung(addr: number): bigint {
    this.begin("mkyoung", addr, 1);
    const ret = this.attrVisitor.run(addr, 1, AF, 0, 0, 0);
    this.done("mkyoung", ret);
    return ret === 0 ? pteBig(this.attrVisitor.oldLo, this.attrVisitor.oldHi) : 0n;
  }

  /** kvm_pgtable_stage2_mkold: clear AF, no TLBI; returns the old descriptor (0 if none). */
  mkold(addr: number): bigint {
    this.begin("mkold", addr, 1);
    const ret = this.attrVisitor.run(addr, 1, 0, 0, AF, 0);
    this.done("mkold", ret);
    return ret === 0 ? pteBig(this.attrVisitor.oldLo, this.attrVisitor.oldHi) : 0n;
  }

  /** kvm_pgtable_stage2_is_young: the AF of the leaf covering `addr`. */
  isYoung(addr: number): boolean {
    this.begin("is_young", addr, 1);
    const ret = this.attrVisitor.run(addr, 1, 0, 0, 0, 0);
    this.done("is_young", ret);
    return ret === 0 && (this.attrVisitor.oldLo & AF) !== 0;
  }

  /** kvm_pgtable_stage2_flush: clean+invalidate every valid cacheable leaf; nothing with FWB. */
  flush(addr: number, size: number): number {
    this.begin("flush", addr, size);
    if (this.fwb) return this.done("flush", 0);
    return this.done("flush", this.walk(addr, size, this.flushVisitor));
  }

  /** kvm_pgtable_stage2_destroy: drop every table page, then the start-level pages. No TLBI, no CMO. */
  destroy(): void {
    this.begin("destroy", 0, this.geo.ipaLimit);
    if (this.pgd < 0) {
      this.done("destroy", 0);
      return;
    }
    const ret = this.walk(0, this.geo.ipaLimit, new DestroyVisitor(this));
    this.mmOps.freePagesExact(this.pgd, this.geo.pgdPages);
    this.pgd = -1;
    this.done("destroy", ret);
  }

  /**
   * Reads the descriptor that translates `ipa` the way a hardware walk would end: the leaf, or
   * the invalid entry where the walk stops. Not a kernel function: a model inspection helper.
   */
  lookup(ipa: number): LeafLookup {
    if (this.pgd < 0 || ipa < 0 || ipa >= this.geo.ipaLimit) return { level: -1, lo: 0, hi: 0 };
    let level = this.geo.startLevel;
    const sizes = this.sizes;
    let table = this.pgd + Math.floor(ipa * sizes.inv[level]!);
    const mask = this.granule.ptrsPerTable - 1;
    for (;;) {
      const idx = Math.floor(ipa * sizes.inv[level + 1]!) & mask;
      const words = this.mem.pages[table]!;
      const lo = words[2 * idx]!;
      const hi = words[2 * idx + 1]!;
      if (level < 3 && (lo & 3) === 3) {
        table = this.follow(lo, hi);
        level++;
        continue;
      }
      return { level, lo, hi };
    }
  }

  // ---------------------------------------------------------------- helpers for the visitors

  /** Whether the entry holds a reference on its table page (v5.12 valid, v5.14 non-zero). */
  isCounted(lo: number, hi: number): boolean {
    return ((lo & this.countedLo) | (hi & this.countedHi)) !== 0;
  }

  /**
   * The simulator's fast-forward, in place of `count` maps or permission relaxes it has shown to
   * repeat: entries idx+1 .. idx+count of `table` become copies of the last-level leaf at idx
   * with output addresses `oa[0]`, `oa[1]`, ...; each was empty (it then takes its reference on
   * the table page, as a map would) or a valid leaf with that output address (a relax: it already
   * holds one). The work, events and store observer are the caller's.
   */
  copyLeaves(table: number, idx: number, count: number, oa: Float64Array): void {
    const words = this.pages[table]!;
    const g = this.granule;
    const lo = words[2 * idx]!;
    const hi = words[2 * idx + 1]!;
    // The leaf's bits other than its output address.
    const attrLo = (lo & ~oaLo(g, 2 ** 53 - g.size)) >>> 0;
    const attrHi = (hi & ~oaHi(2 ** 53 - g.size)) >>> 0;
    if (idx + count >= g.ptrsPerTable) throw new Error("copyLeaves: past the table's end");
    const counted = this.isCounted(lo, hi);
    for (let k = 1; k <= count; k++) {
      const i = idx + k;
      const w0 = words[2 * i]!;
      const w1 = words[2 * i + 1]!;
      const pa = oa[k - 1]!;
      if (w0 === 0 && w1 === 0) {
        if (counted) this.mem.refcount[table]!++;
      } else if ((w0 & PTE_VALID) === 0 || pteOa(g, w0, w1) !== pa) {
        throw new Error("copyLeaves: entry neither empty nor a leaf to the same address");
      }
      words[2 * i] = (attrLo | oaLo(g, pa)) >>> 0;
      words[2 * i + 1] = (attrHi | oaHi(pa)) >>> 0;
    }
  }

  /**
   * Whether a visitor may run the last-level leaves it is handed quietly: make their descriptor
   * stores in order and add their work counts and table-page references once for the run,
   * instead of one call chain per leaf (CMO callback, TLBI, put/get_page, each with its charge).
   * Only when nobody can tell the difference: no store observer and no event subscriber, hardware
   * that does nothing ({@link NULL_HW}), the model's own mm_ops (so a CMO callback's only effect is
   * its charge), no injected bug, and a zero cost on every item a run charges (so the meter's
   * running total is untouched either way). The tables, refcounts and every work count end the
   * same as leaf by leaf; the simulator, which prices work and watches stores, never runs quietly.
   */
  quietRun(): boolean {
    if (!this.quietCapable || this.events.active) return false;
    const c = this.meter.cost;
    return (
      c[W_PTE_WRITE] === 0 && c[W_TABLE_REFCOUNT] === 0 && c[W_DC_CIVAC_LINE] === 0 && c[W_TLBI_IPA] === 0
    );
  }

  /**
   * Adds the work of a quiet run's `stores` descriptor stores, `tlbis` TLBIs by IPA, `refs`
   * table-page references taken (negative: dropped) on `table` and `lines` D-cache lines cleaned,
   * as the calls of each leaf would have charged them (the costs are zero: see {@link quietRun}).
   */
  quietRunDone(table: number, stores: number, tlbis: number, refs: number, lines: number): void {
    const meter = this.meter;
    meter.charge(W_PTE_WRITE, stores);
    if (tlbis !== 0) meter.charge(W_TLBI_IPA, tlbis);
    if (refs !== 0) {
      this.mem.refcount[table]! += refs;
      meter.charge(W_TABLE_REFCOUNT, refs < 0 ? -refs : refs);
    }
    if (lines !== 0) meter.charge(W_DC_CIVAC_LINE, lines);
  }

  /** kvm_pte_follow: the table page a table descriptor points to. */
  follow(lo: number, hi: number): number {
    return this.mem.pageOfPte(lo, hi);
  }

  /** kvm_block_mapping_supported. */
  blockMappingSupported(addr: number, end: number, phys: number, level: number): boolean {
    if (!this.blockLevel[level]) return false;
    const sizes = this.sizes;
    if (sizes.size[level + 1]! > end - addr) return false;
    // IS_ALIGNED(addr) && IS_ALIGNED(phys), as LevelSizes.aligned, with its 32-bit mask inlined.
    const m = sizes.mask[level + 1]!;
    if (m >= 0) return (addr & m) === 0 && (phys & m) === 0;
    return this.blockAligned(addr, phys, level);
  }

  /** IS_ALIGNED(addr) && IS_ALIGNED(phys) for sizes above 2^30 (out of line: rarely needed). */
  private blockAligned(addr: number, phys: number, level: number): boolean {
    return this.sizes.aligned(addr, level) && this.sizes.aligned(phys, level);
  }

  /** Stores a descriptor (WRITE_ONCE / smp_store_release), reporting the change. */
  writePte(table: number, idx: number, lo: number, hi: number, addr: number, level: number): void {
    const words = this.pages[table]!;
    this.meter.charge(W_PTE_WRITE, 1);
    if (this.pteObserver !== null || this.events.active) this.reportPte(table, idx, lo, hi, addr, level);
    words[2 * idx] = lo;
    words[2 * idx + 1] = hi;
  }

  /**
   * Tells the store observer, then the event subscribers, of the store {@link writePte} is about
   * to make (out of line: keeps writePte small enough to inline along the walks).
   */
  private reportPte(table: number, idx: number, lo: number, hi: number, addr: number, level: number): void {
    if (this.pteObserver !== null) {
      const words = this.pages[table]!;
      this.pteObserver.pteWritten(table, idx, words[2 * idx]!, words[2 * idx + 1]!, lo >>> 0, hi >>> 0);
    }
    if (this.events.active) this.emitPte(table, idx, lo, hi, addr, level);
  }

  /** The `pte` event of {@link writePte}, before the store (kept out of the store path). */
  private emitPte(table: number, idx: number, lo: number, hi: number, addr: number, level: number): void {
    const words = this.pages[table]!;
    const ev = this.events;
    const ipa = this.sizes.alignDown(addr, level);
    const oldLo = words[2 * idx]!;
    const oldHi = words[2 * idx + 1]!;
    if (ev.tap !== null) ev.tap.pte(table, idx, level, ipa, oldLo, oldHi, lo >>> 0, hi >>> 0);
    if (!ev.wants["pte"]) return;
    ev.emit({
      kind: "pte",
      ipa,
      level,
      table: this.mem.pa(table),
      index: idx,
      old: pteBig(oldLo, oldHi),
      new: pteBig(lo, hi),
    });
  }

  /** Reports a new table page (call inside an `events.active` test). */
  reportTableAlloc(page: number, level: number): void {
    const ev = this.events;
    if (ev.tap !== null) ev.tap.tableAlloc(page, level);
    if (ev.wants["table-alloc"]) ev.emit({ kind: "table-alloc", pa: this.mem.pa(page), level });
  }

  /** Breaks an entry the kernel's way: kvm_set_invalid_pte (v5.12) or kvm_clear_pte (v5.14). */
  invalidatePte(table: number, idx: number, addr: number, level: number): void {
    // One writePte call site (inlined once), whichever the value.
    const words = this.pages[table]!;
    this.writePte(
      table,
      idx,
      this.brokenLo(words[2 * idx]!),
      this.brokenHi(words[2 * idx + 1]!),
      addr,
      level,
    );
  }

  /** The low word a break leaves of an entry whose low word is `lo` (see {@link invalidatePte}). */
  brokenLo(lo: number): number {
    return this.zeroOnInvalidate ? 0 : (lo & ~VALID) >>> 0;
  }

  /** The high word a break leaves of an entry whose high word is `hi` (see {@link invalidatePte}). */
  brokenHi(hi: number): number {
    return this.zeroOnInvalidate ? 0 : hi;
  }

  /**
   * stage2_put_pte: if the entry is valid, break it and TLBI by IPA at `level`; then drop the
   * reference it held on its table page.
   */
  putPte(table: number, idx: number, addr: number, level: number): void {
    if ((this.pages[table]![2 * idx]! & VALID) !== 0) this.putValidPte(table, idx, addr, level);
    else this.mmOps.putPage(table);
  }

  /** stage2_put_pte of an entry the caller has just read as valid. */
  putValidPte(table: number, idx: number, addr: number, level: number): void {
    this.invalidatePte(table, idx, addr, level);
    if (this.tlbiOnBreak) this.tlbFlushVmidIpa(addr, level);
    else this.bugDepartures++;
    this.mmOps.putPage(table);
  }

  /**
   * __kvm_tlb_flush_vmid_ipa. Under nVHE with a VPIPT I-cache it ends with IC IALLUIS, since
   * guest I-cache lines can only be invalidated from EL2 there (spec 4.6 step 7).
   */
  tlbFlushVmidIpa(ipa: number, level: number): void {
    if (this.events.active) this.emitTlbiIpa(ipa, level);
    this.meter.charge(W_TLBI_IPA, 1);
    this.hw.tlbFlushVmidIpa(ipa, level);
    if (this.vpiptNvhe) icacheInvalAll(this, 0, 0);
  }

  /** __kvm_tlb_flush_vmid. */
  tlbFlushVmid(): void {
    if (this.events.active) this.emitTlbiVmid();
    this.meter.charge(W_TLBI_VMID, 1);
    this.hw.tlbFlushVmid();
  }

  /** Reports the start of an entry point. */
  private begin(op: PgtableOp, addr: number, size: number): void {
    this.meter.charge(W_PGT_CALL, 1);
    if (this.events.active) this.emitOp(op, addr, size);
  }

  /** Reports the end of an entry point and passes its return value through. */
  private done(op: PgtableOp, ret: number): number {
    if (this.events.active) this.emitDone(op, ret);
    return ret;
  }

  // The event objects are built in these out-of-line helpers, so that the code of the entry points
  // and of writePte stays small enough for the JIT to inline along the hot paths. Each tells the
  // tap (as numbers), then builds the event only if a subscriber wants its kind.

  private emitOp(op: PgtableOp, addr: number, size: number): void {
    const ev = this.events;
    if (ev.tap !== null) ev.tap.op(op, addr, size);
    if (ev.wants["op"]) ev.emit({ kind: "op", op, addr, size });
  }

  private emitDone(op: PgtableOp, ret: number): void {
    const ev = this.events;
    if (ev.tap !== null) ev.tap.opDone(op, ret);
    if (ev.wants["op-done"]) ev.emit({ kind: "op-done", op, ret });
  }

  private emitTlbiIpa(ipa: number, level: number): void {
    const ev = this.events;
    if (ev.tap !== null) ev.tap.tlbiIpa(ipa, level);
    if (ev.wants["tlbi"]) ev.emit({ kind: "tlbi", scope: "vmid-ipa", ipa, level });
  }

  private emitTlbiVmid(): void {
    const ev = this.events;
    if (ev.tap !== null) ev.tap.tlbiVmid();
    if (ev.wants["tlbi"]) ev.emit({ kind: "tlbi", scope: "vmid" });
  }
}
