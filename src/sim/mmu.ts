/**
 * The MMU side of the simulated machine: each vCPU's stage-2 TLB and the hardware table walk
 * behind it. A walk reads descriptors as they are visible at the walk's time (see
 * {@link PteVisibility}) and reports the fault the architecture would (translation, access flag,
 * permission, with the level), charging one "s2-walk-level" per descriptor read.
 */
import { pteOa } from "../arch/descriptor.js";
import { LAST_LEVEL, leafLevels, levelSupportsBlock } from "../arch/granule.js";
import { W, type WorkMeter } from "../common/work.js";
import { type FaultStatus, leafFault, leafPermits, leafPerms } from "../pgtable/hw-walk.js";
import type { Stage2Pgtable } from "../pgtable/stage2.js";
import { Stage2Tlb } from "./tlb.js";
import type { MmuObserver } from "./observer.js";
import { TlbiLog } from "./tlbi-log.js";
import type { PteVisibility } from "./visibility.js";

/** TLB shape from the cost profile. */
export interface TlbShape {
  readonly entries: number;
  readonly ways: number;
}

/** Translation outcome codes. */
export const XLATE_OK = 0;
export const XLATE_FAULT = 1;

/** The vCPUs' TLBs and their shared hardware walker. */
export class SimMmu {
  readonly log: TlbiLog;
  readonly tlbs: Stage2Tlb[];
  /** The fault of the last failed {@link translate}. */
  faultFsc: FaultStatus = "translation";
  faultLevel = 0;
  /** Output address of the last successful translate. */
  pa = 0;
  /** Hardware walks done (TLB misses and permission misses). */
  walks = 0;
  /** Told of hits, fills and table reads (the checkers), or null. */
  observer: MmuObserver | null = null;
  /**
   * Walks run ahead of other CPUs (GuestAccessPath.attemptAhead): they read in-flight stores
   * with PteVisibility.readAt rather than settling the overlay at their time.
   */
  ahead = false;
  /** The descriptor the last {@link descend} ended at and its level. */
  private dLo = 0;
  private dHi = 0;
  private dLevel = 0;
  private readonly blockLevel: boolean[];
  private readonly ptrsMask: number;

  constructor(
    private readonly pgt: Stage2Pgtable,
    private readonly visibility: PteVisibility,
    private readonly meter: WorkMeter,
    private readonly hwAccessFlag: boolean,
    vcpus: number,
    tlb: TlbShape,
    ttl = false,
  ) {
    const levels = leafLevels(pgt.granule);
    this.log = new TlbiLog(pgt.sizes, levels, ttl);
    this.tlbs = Array.from(
      { length: vcpus },
      () => new Stage2Tlb(tlb.entries, tlb.ways, pgt.sizes, levels, this.log),
    );
    this.blockLevel = [0, 1, 2, 3].map((l) => levelSupportsBlock(pgt.granule, l));
    this.ptrsMask = pgt.granule.ptrsPerTable - 1;
  }

  /**
   * Translates a data access (or, with `s1ptw`, the guest's own stage-1 table read) by vCPU `cpu`
   * at time `now`: the TLB, else a walk that fills it. XLATE_OK sets `pa`; XLATE_FAULT sets
   * faultFsc and faultLevel.
   */
  translate(cpu: number, ipa: number, write: boolean, exec: boolean, now: number): number {
    const tlb = this.tlbs[cpu]!;
    if (tlb.lookup(ipa, now)) {
      if (this.observer !== null) this.observer.tlbHit(cpu, ipa, now);
      if (leafPermits(tlb.hitPerms, write, exec)) {
        this.pa = tlb.hitPa;
        return XLATE_OK;
      }
      // A permission miss on a cached entry: the MMU reports the fault from a fresh walk.
    }
    return this.walk(cpu, tlb, ipa, write, exec, now);
  }

  /**
   * Whether vCPU `cpu`'s TLB translates the access at `now` with the permission it needs (what
   * {@link translate} does on a hit, with nothing reported); sets `pa` when it does.
   */
  hits(cpu: number, ipa: number, write: boolean, exec: boolean, now: number): boolean {
    const tlb = this.tlbs[cpu]!;
    if (!tlb.lookup(ipa, now) || !leafPermits(tlb.hitPerms, write, exec)) return false;
    this.pa = tlb.hitPa;
    return true;
  }

  /**
   * The descriptor a hardware walk for `ipa` at `now` ends at, as visible then, without charging,
   * caching or reporting anything: its level, or -1 outside the tables. Sets probeLo/probeHi.
   */
  probe(ipa: number, now: number): number {
    const pgt = this.pgt;
    if (pgt.pgd < 0 || ipa < 0 || ipa >= pgt.geo.ipaLimit) return -1;
    this.descend(ipa, now);
    this.probeLo = this.dLo;
    this.probeHi = this.dHi;
    return this.dLevel;
  }

  /**
   * Whether {@link translate} of a data access (or, with `s1ptw`, a stage-1 table read) by vCPU
   * `cpu` at `now` would succeed through a walk: the descriptor the walk would end at is a leaf
   * that neither faults nor lacks the permission. Charges, caches and reports nothing.
   */
  walkWouldTranslate(ipa: number, write: boolean, now: number): boolean {
    const pgt = this.pgt;
    if (pgt.pgd < 0 || ipa < 0 || ipa >= pgt.geo.ipaLimit) return false;
    this.descend(ipa, now);
    return this.leafTranslates(this.dLo, this.dHi, this.dLevel, write);
  }

  /** Whether a walk ending at descriptor `lo`/`hi` of `level` translates a data access with `write`'s permission. */
  private leafTranslates(lo: number, hi: number, level: number, write: boolean): boolean {
    if (leafFault(lo, level, this.blockLevel[level]!, this.hwAccessFlag) !== null) return false;
    return leafPermits(leafPerms(lo, hi), write, false);
  }

  /**
   * Starts checking a run of data accesses at `ipa` and after (see {@link runTranslates}): finds
   * the table whose entries map `ipa`. The caller makes sure no store is made until the run ends.
   * False (the run is empty) when a store in flight is to a table on the way there, whose value
   * the checks would read too early, or is to a valid entry (it might make a translation fail
   * when it lands); other stores in flight, into invalid entries elsewhere, change nothing the
   * run's accesses find.
   */
  startRun(ipa: number): boolean {
    const pgt = this.pgt;
    if (pgt.pgd < 0 || ipa < 0 || ipa >= pgt.geo.ipaLimit) return false;
    const vis = this.visibility;
    const pending = vis.pending;
    if (pending && !vis.onlyIntoInvalid()) return false;
    const sizes = pgt.sizes;
    const pages = pgt.mem.pages;
    let level = pgt.geo.startLevel;
    let table = pgt.pgd + Math.floor(ipa * sizes.inv[level]!);
    for (;;) {
      // No store in flight on the way: the tables read as they are, at any time.
      if (pending && vis.touches(table)) return false;
      const words = pages[table]!;
      const idx = Math.floor(ipa * sizes.inv[level + 1]!) & this.ptrsMask;
      const lo = words[2 * idx]!;
      if (level < LAST_LEVEL && (lo & 3) === 3) {
        table = pgt.mem.pageOfPte(lo, words[2 * idx + 1]!);
        level++;
        continue;
      }
      break;
    }
    const span = sizes.size[level]!;
    this.runWords = pages[table]!;
    this.runTable = table;
    this.runLevel = level;
    this.runLo = Math.floor(ipa / span) * span;
    this.runHi = Math.min(this.runLo + span, pgt.geo.ipaLimit);
    return true;
  }

  /**
   * Whether a walk would translate a data access to `ipa` (in the run {@link startRun} began) with
   * the permission `write` needs, as {@link walkWouldTranslate} would while no store is made;
   * false past the table the run began in. Charges, caches and reports nothing.
   */
  runTranslates(ipa: number, write: boolean): boolean {
    if (ipa < this.runLo || ipa >= this.runHi) return false;
    const level = this.runLevel;
    const idx = Math.floor(ipa * this.pgt.sizes.inv[level + 1]!) & this.ptrsMask;
    return this.leafTranslates(this.runWords[2 * idx]!, this.runWords[2 * idx + 1]!, level, write);
  }

  /**
   * For a flowing run's accesses made at once (GuestAccessPath.missRun), after {@link startRun}:
   * how many of the data accesses from `ipa` on, `step` bytes apart (at most `max`), would each
   * translate through a leaf of the run's table ({@link runTranslates}) with the same
   * permissions as the first (left in {@link runPerms}); each one's output address (the leaf's)
   * into `pa`. Charges, caches and reports nothing.
   */
  runLeaves(ipa: number, step: number, max: number, write: boolean, pa: Float64Array): number {
    const level = this.runLevel;
    if (level !== LAST_LEVEL) return 0;
    const g = this.pgt.granule;
    const inv = this.pgt.sizes.inv[level + 1]!;
    const words = this.runWords;
    let n = 0;
    for (; n < max; n++) {
      const a = ipa + n * step;
      if (a < this.runLo || a >= this.runHi) break;
      const idx = Math.floor(a * inv) & this.ptrsMask;
      const lo = words[2 * idx]!;
      const hi = words[2 * idx + 1]!;
      if (!this.leafTranslates(lo, hi, level, write)) break;
      const perms = leafPerms(lo, hi);
      if (n === 0) this.runPerms = perms;
      else if (perms !== this.runPerms) break;
      pa[n] = pteOa(g, lo, hi);
    }
    return n;
  }

  /** Permissions of the leaves {@link runLeaves} found. */
  runPerms = 0;

  /** Bytes an entry of the run's table maps. */
  runEntrySize(): number {
    return this.pgt.sizes.size[this.runLevel + 1]!;
  }

  /** Table levels a flowing run's walk reads: from the start level down to the run's table. */
  runReads(): number {
    return this.runLevel - this.pgt.geo.startLevel + 1;
  }

  /**
   * Accounts `n` walks of a flowing run made at once, the last of them in sync (which settles the
   * stores landed by then, as a walk in sync does) at `syncedAt`, or none in sync (NaN).
   */
  runWalks(n: number, syncedAt: number): void {
    this.walks += n;
    if (!Number.isNaN(syncedAt)) this.visibility.settle(syncedAt);
  }

  /**
   * Set by the flowing run (SimVcpu.flowRun) around its accesses, after {@link startRun}: the
   * run's walks may read the table startRun found without descending to it again.
   */
  inRun = false;

  /** The table {@link startRun} found: its page, words, level and the IPA range it maps. */
  private runTable = -1;
  private runWords: Uint32Array = new Uint32Array(0);
  private runLevel = 0;
  private runLo = 0;
  private runHi = 0;

  /** Whether some descriptor store is still on its way to being visible to walks. */
  storesInFlight(): boolean {
    return this.visibility.pending;
  }

  /** Descriptor words found by the last {@link probe}. */
  probeLo = 0;
  probeHi = 0;

  /**
   * The hardware walk behind a TLB miss. It reads the tables as {@link descend} does, but keeps
   * its own copy of the loop: routing it through descend's fields cost about 4 % of a TLB-bound run.
   */
  private walk(cpu: number, tlb: Stage2Tlb, ipa: number, write: boolean, exec: boolean, now: number): number {
    const pgt = this.pgt;
    if (pgt.pgd < 0 || ipa < 0 || ipa >= pgt.geo.ipaLimit) return this.fault("translation", 0);
    const vis = this.visibility;
    const obs = this.observer;
    this.walks++;
    const ahead = this.ahead;
    if (!ahead) vis.settle(now);
    const overlay = vis.pending;
    const sizes = pgt.sizes;
    const pages = pgt.mem.pages;
    let level = pgt.geo.startLevel;
    let table = pgt.pgd + Math.floor(ipa * sizes.inv[level]!);
    let until = Infinity;
    let reads = 0;
    let lo: number;
    let hi: number;
    // A flowing run's access (startRun found its table, no store in flight on the way there,
    // and nothing can be stored meanwhile) starts at that table: the descriptors above it are
    // those the loop would read.
    let fromRun = this.inRun && obs === null && ipa >= this.runLo && ipa < this.runHi;
    if (fromRun) {
      level = this.runLevel;
      table = this.runTable;
      reads = level - pgt.geo.startLevel;
    }
    for (;;) {
      let words: Uint32Array;
      if (fromRun) {
        words = this.runWords;
        fromRun = false;
      } else {
        if (obs !== null) obs.walkRead(cpu, table, level, now);
        words = pages[table]!;
      }
      const idx = Math.floor(ipa * sizes.inv[level + 1]!) & this.ptrsMask;
      lo = words[2 * idx]!;
      hi = words[2 * idx + 1]!;
      if (overlay) {
        if (ahead) vis.readAt(table, idx, lo, hi, now);
        else vis.read(table, idx, lo, hi);
        lo = vis.lo;
        hi = vis.hi;
        if (vis.until < until) until = vis.until;
      }
      reads++;
      if (level < LAST_LEVEL && (lo & 3) === 3) {
        table = pgt.mem.pageOfPte(lo, hi);
        level++;
        continue;
      }
      break;
    }
    this.meter.charge(W["s2-walk-level"], reads);
    const fsc = leafFault(lo, level, this.blockLevel[level]!, this.hwAccessFlag);
    if (fsc !== null) return this.fault(fsc, level);
    const perms = leafPerms(lo, hi);
    const size = sizes.size[level + 1]!;
    const blockBase = Math.floor(ipa * sizes.inv[level + 1]!) * size;
    const paBase = pteOa(pgt.granule, lo, hi);
    if (obs !== null) obs.tlbFill(cpu, blockBase, level, paBase, perms, now);
    tlb.fill(blockBase, level, paBase, perms, until);
    if (!leafPermits(perms, write, exec)) {
      return this.fault("permission", level);
    }
    this.pa = paBase + (ipa - blockBase);
    return XLATE_OK;
  }

  /**
   * Reads the tables for `ipa` as a walk at `now` sees them (stores still in flight read as their
   * old value), leaving the final descriptor in dLo/dHi/dLevel.
   */
  private descend(ipa: number, now: number): void {
    const pgt = this.pgt;
    const vis = this.visibility;
    const ahead = this.ahead;
    if (!ahead) vis.settle(now);
    const overlay = vis.pending;
    const sizes = pgt.sizes;
    const pages = pgt.mem.pages;
    let level = pgt.geo.startLevel;
    let table = pgt.pgd + Math.floor(ipa * sizes.inv[level]!);
    for (;;) {
      const idx = Math.floor(ipa * sizes.inv[level + 1]!) & this.ptrsMask;
      const words = pages[table]!;
      let lo = words[2 * idx]!;
      let hi = words[2 * idx + 1]!;
      if (overlay) {
        if (ahead) vis.readAt(table, idx, lo, hi, now);
        else vis.read(table, idx, lo, hi);
        lo = vis.lo;
        hi = vis.hi;
      }
      if (level < LAST_LEVEL && (lo & 3) === 3) {
        table = pgt.mem.pageOfPte(lo, hi);
        level++;
        continue;
      }
      this.dLo = lo;
      this.dHi = hi;
      this.dLevel = level;
      return;
    }
  }

  private fault(fsc: FaultStatus, level: number): number {
    this.faultFsc = fsc;
    this.faultLevel = level;
    return XLATE_FAULT;
  }
}
