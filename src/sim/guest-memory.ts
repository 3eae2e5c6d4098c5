/**
 * One execution of a guest memory access on the simulated machine: a guest instruction, a stage-1
 * walk when the access moves to a new page, and stage-2 translations through the vCPU's TLB for
 * the stage-1 table pages the walk reads and for the data. Callers must be in sync (the earliest
 * thing in the simulation) since a translation reads tables and the TLBI history, except through
 * attemptHits and attemptAhead, which the engine's lookahead allows ahead of other CPUs.
 */
import type { Digest } from "../common/digest.js";
import type { NumberList } from "../common/number-list.js";
import { LAST_LEVEL } from "../arch/granule.js";
import { W, type WorkMeter } from "../common/work.js";
import { type GuestAccess, leafPermits } from "../pgtable/hw-walk.js";
import type { Engine } from "./engine.js";
import { type SimMmu, XLATE_OK } from "./mmu.js";

// Module-private copies: V8 folds these into the code, while an imported binding is re-read.
const W_GUEST_ACCESS = W["guest-access"];
const W_S1_WALK = W["s1-walk"];
const W_S2_WALK = W["s2-walk-level"];

/** The fewest accesses {@link GuestAccessPath.missRun} makes at once (fewer go one by one). */
const MIN_MISS_RUN = 4;

/**
 * How many of at most `max` accesses starting at `t0`, `t0` + `each`, ... start before `t`.
 */
function startsBefore(t: number, t0: number, each: number, max: number): number {
  return t === Infinity ? max : Math.min(max, Math.max(0, Math.ceil((t - t0) / each)));
}

/** The guest access a vCPU is about to execute. */
export interface PendingAccess {
  readonly ipa: number;
  readonly write: boolean;
  /** Guest stage-1 table pages the access's walk reads. */
  readonly tables: Float64Array;
  readonly nTables: number;
}

/** A guest access as the simulator mutates it in place (one per vCPU). */
export type MutableGuestAccess = { -readonly [K in keyof GuestAccess]: GuestAccess[K] };

/** The guest-side access path of every vCPU. */
export class GuestAccessPath {
  /**
   * Page each vCPU last accessed, whose stage-1 translation it still caches unless a TLBI was
   * issued since (lastSeq: the TLBI number then). Every stage-2 TLBI kills the VMID's stage-1
   * entries too: a TLBI by IPA is followed by VMALLE1IS, a whole-VMID one is VMALLS12E1IS.
   */
  private readonly lastPage: Float64Array;
  private readonly lastSeq: Float64Array;
  private readonly pageInv: number;
  /**
   * Guest pages per host page (1/16 for 64K guest pages on a 4K host): the fast-forward's periods
   * are host pages, and it moves the cached translations by whole guest pages.
   */
  private readonly guestPerHost: number;
  /**
   * Host pages per guest page, at least 1: with larger guest pages a stage-1 walk comes every
   * `periodsPerWalk` host pages, so the fast-forward's periods repeat in cycles of that many.
   */
  readonly periodsPerWalk: number;
  /**
   * chargesWholePs and walksChargeWholePs as of the last {@link reset} (the costs are fixed
   * during a run): accesses that only hit may run ahead with the first, accesses that walk only
   * with the second.
   */
  private hitsWhole = false;
  private walksWhole = false;

  /**
   * `pageSize`: the guest's page size, what one cached stage-1 translation covers; `hostPage`: the
   * stage-2 granule.
   */
  constructor(
    vcpus: number,
    pageSize: number,
    hostPage: number,
    private readonly mmu: SimMmu,
    private readonly meter: WorkMeter,
  ) {
    this.lastPage = new Float64Array(vcpus).fill(-1);
    this.lastSeq = new Float64Array(vcpus);
    this.pageInv = 1 / pageSize;
    this.guestPerHost = hostPage / pageSize;
    this.periodsPerWalk = Math.max(1, pageSize / hostPage);
    if (!Number.isInteger(this.periodsPerWalk) || !Number.isInteger(Math.max(1, this.guestPerHost))) {
      throw new Error(
        `guest pages of ${pageSize} bytes on host pages of ${hostPage}: neither divides the other`,
      );
    }
  }

  /**
   * Whether what {@link attemptHits} charges costs whole picoseconds. Only then is an access run
   * ahead timed exactly as in order: the engine rounds each code segment's total, and running
   * ahead groups accesses into segments differently.
   */
  chargesWholePs(): boolean {
    const c = this.meter.cost;
    return Number.isInteger(c[W_GUEST_ACCESS]) && Number.isInteger(c[W_S1_WALK]);
  }

  /** {@link chargesWholePs} for {@link attemptAhead}, which also charges stage-2 walk levels. */
  walksChargeWholePs(): boolean {
    return this.chargesWholePs() && Number.isInteger(this.meter.cost[W_S2_WALK]);
  }

  /**
   * vCPU `cpu`'s cached stage-1 translation relative to host page `page`, and whether a TLBI has
   * been issued since (then it is not used: TLBI numbers only grow), appended to `out`.
   */
  periodicState(out: NumberList, cpu: number, page: number): void {
    const last = this.lastPage[cpu]!;
    out.push(last < 0 ? -Infinity : last - page * this.guestPerHost);
    out.push(this.cachedSinceTlbi(cpu) ? 1 : 0);
  }

  /** The cached stage-1 translations, into `d`. */
  digest(d: Digest): void {
    d.addAll(this.lastPage);
    d.addAll(this.lastSeq);
  }

  /** Whether vCPU `cpu`'s cached stage-1 translation was made after the latest TLBI. */
  cachedSinceTlbi(cpu: number): boolean {
    return this.lastSeq[cpu] === this.mmu.log.seq;
  }

  /**
   * Moves vCPU `cpu`'s cached stage-1 translation `pages` host pages on (the fast-forward; a
   * multiple of {@link periodsPerWalk}), made after the latest TLBI if `sinceTlbi`.
   */
  fastForward(cpu: number, pages: number, sinceTlbi: boolean): void {
    if (this.lastPage[cpu]! >= 0) this.lastPage[cpu]! += pages * this.guestPerHost;
    if (sinceTlbi) this.lastSeq[cpu] = this.mmu.log.seq;
  }

  /** Forgets cached stage-1 translations (a new stage's first access walks again). */
  reset(): void {
    this.lastPage.fill(-1);
    this.hitsWhole = this.chargesWholePs();
    this.walksWhole = this.walksChargeWholePs();
  }

  /**
   * Executes the access at `now` if its stage-2 translations (of the stage-1 table pages its walk
   * reads, and of the data) all hit in the vCPU's TLB with the permission it needs, charging what
   * {@link attempt} would; otherwise does nothing and returns false. It reads only the vCPU's own
   * TLB and the TLBI history, so it may run ahead of other CPUs (Engine.mayRunAhead); not while
   * an MMU observer (the checkers) is told of hits, which looks at the tables.
   */
  attemptHits(cpu: number, access: PendingAccess, now: number): boolean {
    const mmu = this.mmu;
    if (mmu.observer !== null || !this.hitsWhole) return false;
    const { ipa, write, tables, nTables } = access;
    const page = Math.floor(ipa * this.pageInv);
    const walk = page !== this.lastPage[cpu] || mmu.log.seq !== this.lastSeq[cpu];
    const tlb = mmu.tlbs[cpu]!;
    tlb.saveRecent();
    let ok = true;
    if (walk) {
      // The stage-1 walker's reads of guest table pages (treated as writes, as attempt does).
      for (let i = 0; i < nTables && ok; i++) ok = mmu.hits(cpu, tables[i]!, true, false, now);
    }
    if (ok) ok = mmu.hits(cpu, ipa, write, false, now);
    if (!ok) {
      // Not done after all: the in-order run will look these up again.
      tlb.restoreRecent();
      return false;
    }
    this.meter.charge(W_GUEST_ACCESS, 1);
    if (walk) this.meter.charge(W_S1_WALK, 1);
    this.lastPage[cpu] = page;
    this.lastSeq[cpu] = mmu.log.seq;
    return true;
  }

  /**
   * Executes at once up to `max` accesses after vCPU `cpu`'s current one (`access`, just
   * completed from its TLB alone), each `step` bytes of IPA after the one before with the same
   * direction and stage-1 tables, as long as each would run without yielding and hit, in the TLB's
   * recent slots, the entries the current one hit: what the accesses one by one would do (their
   * charges, the stage-1 translation cached), without a lookup each. Returns how many it executed
   * and sets {@link ranInSync} when one of them would have been in sync (not run ahead).
   */
  hitRun(cpu: number, access: PendingAccess, step: number, max: number, engine: Engine): number {
    const mmu = this.mmu;
    if (!this.accessRuns || mmu.observer !== null || !this.hitsWhole) return 0;
    const cost = this.meter.cost;
    const ga = cost[W_GUEST_ACCESS]!;
    const s1 = cost[W_S1_WALK]!;
    const inv = this.pageInv;
    const ipa0 = access.ipa;
    // The times the accesses would start at, while each may go on without yielding (in sync, or
    // run ahead: Engine.inSyncAt, mayRunAheadAt, as thresholds since nothing else runs meanwhile).
    let t = engine.timeNow();
    engine.runLimits();
    const syncBefore = engine.syncBefore;
    const before = Math.max(syncBefore, engine.aheadBefore);
    let page = this.lastPage[cpu]!;
    let walks = 0;
    const inSync = t < syncBefore;
    let n = 0;
    let last = t;
    while (n < max && t < before) {
      last = t;
      const p = Math.floor((ipa0 + (n + 1) * step) * inv);
      const walk = p !== page;
      page = p;
      if (walk) walks++;
      t += walk ? ga + s1 : ga;
      n++;
    }
    if (n === 0) return 0;
    // The last one starts at `last`; an entry live then was live for all of them.
    const tlb = mmu.tlbs[cpu]!;
    if (walks > 0) {
      for (let i = 0; i < access.nTables; i++) {
        const tbl = access.tables[i]!;
        const r = tlb.recentRunHit(tbl, tbl, last);
        if (r < 0 || !leafPermits(tlb.permsOf(r), true, false)) return 0;
      }
    }
    const data = tlb.recentRunHit(ipa0 + step, ipa0 + n * step, last);
    if (data < 0 || !leafPermits(tlb.permsOf(data), access.write, false)) return 0;
    this.meter.charge(W_GUEST_ACCESS, n);
    if (walks > 0) this.meter.charge(W_S1_WALK, walks);
    this.lastPage[cpu] = page;
    tlb.markHit(data, ipa0 + n * step);
    mmu.pa = tlb.hitPa;
    this.ranInSync = inSync;
    this.hitRunAccesses += n;
    return n;
  }

  /**
   * Whether the accesses after a vCPU's current one (`access`, just completed), with the same
   * direction and stage-1 tables, may be made as a flowing run (SimVcpu.flowRun): the stage-1
   * table pages' translations would succeed as of `now`, and {@link SimMmu.startRun} began a run
   * at `next`, the first one's IPA; each is then checked with SimMmu.runTranslates. False when a
   * store in flight is in the way (see startRun), with an MMU observer, with access runs off, or
   * when a walk level's cost is not whole picoseconds (as for running ahead).
   */
  startFlow(access: PendingAccess, next: number, now: number): boolean {
    const mmu = this.mmu;
    if (!this.accessRuns || mmu.observer !== null || !this.walksWhole) return false;
    // A walk decides: a TLB entry that does not permit the access leads to one. Stores still in
    // flight are read as they are at `now` (SimMmu.ahead), without settling what other CPUs,
    // earlier, may still read; startRun accepts only stores into invalid entries, which cannot
    // make these translations fail later.
    const ahead = mmu.ahead;
    mmu.ahead = true;
    let ok = true;
    for (let i = 0; i < access.nTables && ok; i++) ok = mmu.walkWouldTranslate(access.tables[i]!, true, now);
    mmu.ahead = ahead;
    return ok && mmu.startRun(next);
  }

  /**
   * The first accesses of a flowing run (SimVcpu.flowRun, after {@link startFlow} and
   * Engine.runLimits) made at once, when each would be made alike: its own guest page, so a
   * stage-1 walk whose table pages (`access`'s) hit in the TLB, then a data miss, a walk from
   * the run's table to a leaf with the same permissions as the others, and a fill. Returns how
   * many it made (0 for none, or fewer than MIN_MISS_RUN): those that start before the engine's
   * thresholds (`syncBefore`, `aheadBefore`) and translate (SimMmu.runLeaves), while each
   * table page's entry is the only live one covering it (Stage2Tlb.onlyLiveLeaf), no larger live
   * entry covers a data page, and no fill meets a slot tagged for its page or evicts a table
   * page's entry (Stage2Tlb.fillRunLimit). It charges, fills (Stage2Tlb.flowFills), counts the
   * walks and settles stores as those accesses one by one would.
   */
  missRun(
    cpu: number,
    access: PendingAccess,
    first: number,
    step: number,
    max: number,
    t0: number,
    syncBefore: number,
    aheadBefore: number,
  ): number {
    const mmu = this.mmu;
    if (step * this.pageInv < 1 || access.nTables > this.missHits.length) return 0;
    const cost = this.meter.cost;
    const reads = mmu.runReads();
    const each = cost[W_GUEST_ACCESS]! + cost[W_S1_WALK]! + reads * cost[W_S2_WALK]!;
    if (!(each > 0)) return 0;
    let n = startsBefore(Math.max(syncBefore, aheadBefore), t0, each, max);
    if (this.missPas.length < n) this.missPas = new Float64Array(n);
    n = mmu.runLeaves(first, step, n, access.write, this.missPas);
    if (n < MIN_MISS_RUN) return 0;
    const tlb = mmu.tlbs[cpu]!;
    const end = t0 + (n - 1) * each;
    // The table pages' slots, kept from eviction (the unused ones -1: ignored).
    const hits = this.missHits.fill(-1);
    for (let i = 0; i < access.nTables; i++) {
      const slot = tlb.onlyLiveLeaf(access.tables[i]!, LAST_LEVEL, end);
      if (slot < 0 || !leafPermits(tlb.permsOf(slot), true, false)) return 0;
      hits[i] = slot;
    }
    const last = first + (n - 1) * step;
    if (tlb.liveAbove(first, last, LAST_LEVEL, t0)) return 0;
    n = tlb.fillRunLimit(first, LAST_LEVEL, n, hits);
    if (n < MIN_MISS_RUN) return 0;
    this.meter.charge(W_GUEST_ACCESS, n);
    this.meter.charge(W_S1_WALK, n);
    this.meter.charge(W_S2_WALK, n * reads);
    const seq = mmu.log.seq;
    tlb.flowFills(first, LAST_LEVEL, this.missPas, mmu.runPerms, seq, n, hits, access.nTables);
    const synced = startsBefore(syncBefore, t0, each, n);
    mmu.runWalks(n, synced > 0 ? t0 + (synced - 1) * each : Number.NaN);
    const ipa = first + (n - 1) * step;
    const size = mmu.runEntrySize();
    mmu.pa = this.missPas[n - 1]! + (ipa - Math.floor(ipa / size) * size);
    this.lastPage[cpu] = Math.floor(ipa * this.pageInv);
    this.lastSeq[cpu] = seq;
    this.flowRunAccesses += n;
    return n;
  }

  /** Scratch for {@link missRun}: output addresses, table-page slots. */
  private missPas = new Float64Array(0);
  private readonly missHits = new Int32Array(4);

  /** Accesses {@link hitRun} has done (speed information). */
  hitRunAccesses = 0;

  /**
   * Whether {@link hitRun} and {@link startFlow} may start runs (the simulator's switch; it
   * changes no result). Accesses made in flowing runs are counted in {@link flowRunAccesses}.
   */
  accessRuns = true;
  flowRunAccesses = 0;

  /** Whether one of the accesses of the last {@link hitRun} would have been in sync. */
  ranInSync = false;

  /**
   * Executes the access at `now` as {@link attempt} would, ahead of other CPUs, if it completes
   * without a fault; otherwise does nothing and returns false. The caller must know that no other
   * CPU can store a descriptor or issue a TLBI at or before `now` (Engine.mayRunAhead: both happen
   * only under mmu_lock): then the tables as they will be at `now` are the tables now, with the
   * stores still in flight read without settling the overlay (SimMmu.ahead). First every
   * translation the access needs is checked by a side-effect-free walk (a TLB hit is not enough:
   * a fill for an earlier translation of the access may evict it); only when all would succeed is
   * the access executed, so nothing is left behind when it would fault. Not with an MMU observer,
   * nor when a walk level's cost is not whole picoseconds (the engine rounds each segment's time,
   * and running ahead groups the charges into segments differently).
   */
  attemptAhead(cpu: number, access: PendingAccess, now: number, fault: MutableGuestAccess): boolean {
    const mmu = this.mmu;
    if (mmu.observer !== null || !this.walksWhole) return false;
    const { ipa, write, tables, nTables } = access;
    const page = Math.floor(ipa * this.pageInv);
    const walk = page !== this.lastPage[cpu] || mmu.log.seq !== this.lastSeq[cpu];
    mmu.ahead = true;
    let ok = true;
    if (walk) {
      for (let i = 0; i < nTables && ok; i++) ok = mmu.walkWouldTranslate(tables[i]!, true, now);
    }
    if (ok) ok = mmu.walkWouldTranslate(ipa, write, now);
    if (ok && !this.attempt(cpu, access, now, fault)) {
      mmu.ahead = false;
      throw new Error(`vCPU ${cpu}: an access run ahead to ${ipa} faulted after its check`);
    }
    mmu.ahead = false;
    return ok;
  }

  /**
   * Executes the access at `now`; true when it completes. When it faults, `fault` is set to the
   * access the MMU reports (the data access, or the S1PTW read of a table page) and the MMU holds
   * the fault status and level.
   */
  attempt(cpu: number, access: PendingAccess, now: number, fault: MutableGuestAccess): boolean {
    const { ipa, write, tables, nTables } = access;
    const meter = this.meter;
    const mmu = this.mmu;
    meter.charge(W_GUEST_ACCESS, 1);
    const page = Math.floor(ipa * this.pageInv);
    if (page !== this.lastPage[cpu] || mmu.log.seq !== this.lastSeq[cpu]) {
      meter.charge(W_S1_WALK, 1);
      for (let i = 0; i < nTables; i++) {
        const t = tables[i]!;
        // The stage-1 walker's read of a guest table page; KVM treats its faults as writes.
        if (mmu.translate(cpu, t, true, false, now) !== XLATE_OK) {
          fault.ipa = t;
          fault.write = false;
          fault.exec = false;
          fault.s1ptw = true;
          return false;
        }
      }
    }
    if (mmu.translate(cpu, ipa, write, false, now) !== XLATE_OK) {
      fault.ipa = ipa;
      fault.write = write;
      fault.exec = false;
      fault.s1ptw = false;
      return false;
    }
    this.lastPage[cpu] = page;
    this.lastSeq[cpu] = mmu.log.seq;
    return true;
  }
}
