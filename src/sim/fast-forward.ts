/**
 * The convoy fast-forward. In the UPDATE and ADJUST stages every vCPU walks the same pages in the
 * same order, and mmu_lock turns them into a convoy that installs one last-level leaf per
 * period: every vCPU faults on the page, the first maps it and the rest get -EAGAIN (or, for
 * anonymous memory's UPDATE, each relaxes the write-protected leaf, with a TLBI by IPA). Once the
 * periods take the same time and work, and the whole simulation's state, taken relative to the
 * page just mapped and the time it was mapped, is what it was a few pages before, and the pages
 * ahead are like the ones behind, the simulation repeats from there (the model is
 * deterministic). The fast-forward then moves it on by whole repeats at once, doing what they
 * would have done: the leaves, each vCPU's TLB fills and progress, the TLBIs and dirty pages,
 * every counter, and the time.
 *
 * It is exact as far as its snapshot covers the state the model's future depends on
 * (docs/model.md, "The fast-forward"); tests compare runs with it on and off.
 */
import { LAST_LEVEL } from "../arch/granule.js";
import { NumberList } from "../common/number-list.js";
import type { Step } from "../common/steps.js";
import { oaHi, oaLo, pteOa } from "../arch/descriptor.js";
import { W, type WorkMeter } from "../common/work.js";
import { HPTE_PRESENT } from "../host/mm.js";
import type { FaultContext } from "../kvm/fault.js";
import type { Memslot } from "../kvm/memslot.js";
import type { Vm } from "../kvm/vm.js";
import type { Engine } from "./engine.js";
import type { GuestAccessPath } from "./guest-memory.js";
import type { SimMmu } from "./mmu.js";
import { RECENT, type SlotRelativizer, type Stage2Tlb } from "./tlb.js";
import { TlbiRecord } from "./tlbi-log.js";
import type { PteVisibility } from "./visibility.js";
import type { SimVcpu } from "./vcpu.js";

/** Added to an address expressed relative to the boundary, so it cannot equal an absolute one. */
const REL = 2 ** 52;
/** Pages around the boundary page whose descriptors and TLB entries the snapshot records. */
const SPAN = 4;
/** Fewest periods worth skipping. */
const MIN_SKIP = 2;
/**
 * Longest repeat, in pages, looked for (the TLBs' recent rings make 2 and 3 common) where every
 * period is alike, and in cycles where periods repeat in cycles (larger guest pages).
 */
const LAG_MAX = 6;
const LAG_MAX_CYCLES = 3;

/** A boundary: the moment a map or a relax has just stored a last-level leaf. */
interface Boundary {
  /** Guest page number of the leaf (IPA / page size). */
  readonly page: number;
  readonly table: number;
  readonly index: number;
  /** When the segment that stored it ended (ps). */
  readonly end: number;
}

/** A boundary's relative state, kept for the last few boundaries of a stable run. */
interface Snapshot {
  page: number;
  /** The stores in flight and the descriptors around the leaf (part of its state, see atBoundary). */
  readonly key: NumberList;
  /** The whole relative state, or null where it was not taken. */
  readonly state: NumberList | null;
  /** Each TLB's recent-ring position (the snapshot leaves it out, see Stage2Tlb.recentState). */
  ring: number[];
}

/** Work a skip cannot repeat (it changes state the snapshot does not hold): none per period. */
const UNREPEATABLE: readonly number[] = [
  W["memcache-page"],
  W["notifier-handler"],
  W["host-fault"],
  W["page-alloc"],
  W["zero-byte"],
  W["pmd-split"],
  W["table-free"],
  W["tlbi-vmid"],
  W["ic-iallu"],
];

/** The fast-forward of one timed run (see the module comment). */
export class FastForward {
  /** Periods skipped, and the times a skip was made. */
  periodsSkipped = 0;
  skips = 0;
  private prev: Boundary | null = null;
  /** Every counter of simulated work at the last boundary (see {@link counters}), and scratch. */
  private last = new NumberList();
  private cur = new NumberList();
  /**
   * Periods per cycle: 1 where every period (host page) may be alike; with guest pages of several
   * host pages a stage-1 walk comes every `cycle` periods, so periods are compared with the one a
   * cycle back, repeats are looked for a whole number of cycles back, and a skip replays whole
   * cycles.
   */
  private readonly cycle: number;
  /** Longest repeat looked for, in pages (LAG_MAX, or LAG_MAX_CYCLES cycles). */
  private readonly lagLimit: number;
  /**
   * The last `cycle` + 1 periods (between consecutive boundaries), in rings indexed by
   * {@link at} (the newest): their lengths, counter deltas, what the engine's counters grew by
   * (Engine.periodCounters) and their TLBIs by IPA (per TLBI, whether its IPA is in the convoy's
   * memslot, the IPA, then relative to the period's page, and the level hint).
   */
  private readonly periods: Float64Array;
  private readonly deltas: number[][];
  private readonly engineDeltas: NumberList[];
  private readonly patterns: NumberList[];
  private at = 0;
  /** Periods in a row recorded since the last break (those in the rings that are this run's). */
  private run = 0;
  /**
   * The engine's lock clock at this run's last {@link lagLimit} + 1 boundaries, by their place in
   * the run (the run's first at 0, modulo the length), snapshots taken or not.
   */
  private readonly clocks: Float64Array;
  /** Scratch: a cycle's counter deltas summed, and its engine deltas. */
  private readonly cycleDelta: number[] = [];
  private readonly cycleEngine: NumberList[] = [];
  /** The TLBIs recorded since the last boundary. */
  private readonly tlbis = new TlbiRecord();
  /** Host addresses of the pages around and ahead of a boundary ({@link periodsAhead}). */
  private readonly hostPas: Float64Array;
  /**
   * Pages beyond the boundary's the vCPUs' programs are on, at most ({@link skipLimit}): in a
   * period no vCPU touches a page further ahead of the period's own.
   */
  private ahead = 0;
  /**
   * Pages before the boundary's the vCPUs' programs are on, at most ({@link skipLimit}): the
   * snapshot's descriptors, dirty bits and TLB entries start there, since no vCPU looks at a page
   * behind its program's again.
   */
  private behind = 0;
  /** Per vCPU, what {@link midway} said of its TLB's last fill at the last {@link periodsAhead}. */
  private readonly midwayOf: number[] = [];
  /** Scratch: the output addresses of a skip's replayed fills and leaves. */
  private readonly replayPas: Float64Array;
  /** Boundaries in a row whose period and work equal the one a cycle before (-1: after a break). */
  private stable = 0;
  /** Snapshots of the last boundaries of the stable run, oldest first. */
  private readonly history: Snapshot[] = [];
  /** Lists of dropped snapshots, for the next ones (states are thousands of numbers long). */
  private readonly pool: NumberList[] = [];
  private readonly keyPool: NumberList[] = [];
  private readonly page: number;
  private readonly stepCodes = new Map<Step, number>();
  /** Strings of the fault context, as numbers for the snapshot. */
  private readonly codes = new Map<string, number>();
  /** The output-address bits of a descriptor's two words. */
  private readonly oaMaskLo: number;
  private readonly oaMaskHi: number;

  constructor(
    private readonly vm: Vm,
    private readonly engine: Engine,
    private readonly vcpus: readonly SimVcpu[],
    private readonly mmu: SimMmu,
    private readonly path: GuestAccessPath,
    private readonly visibility: PteVisibility,
    private readonly meter: WorkMeter,
    /** Accesses made so far, and how to count skipped ones. */
    private readonly accesses: () => number,
    private readonly addAccesses: (n: number) => void,
  ) {
    this.page = vm.geo.granule.size;
    this.cycle = path.periodsPerWalk;
    this.lagLimit = this.cycle === 1 ? LAG_MAX : LAG_MAX_CYCLES * this.cycle;
    const ring = this.cycle + 1;
    this.periods = new Float64Array(ring);
    this.deltas = Array.from({ length: ring }, () => []);
    this.engineDeltas = Array.from({ length: ring }, () => new NumberList(16));
    this.patterns = Array.from({ length: ring }, () => new NumberList(16));
    this.clocks = new Float64Array(this.lagLimit + 1);
    const top = 2 ** 53 - this.page;
    this.oaMaskLo = oaLo(vm.geo.granule, top);
    this.oaMaskHi = oaHi(top);
    const entries = vm.geo.granule.ptrsPerTable;
    this.hostPas = new Float64Array(entries + 2 * SPAN + 1);
    this.replayPas = new Float64Array(entries);

    const mark = (): void => {
      engine.boundary = true;
    };
    visibility.onFirstStore = mark;
    visibility.onValidStore = mark;
    mmu.log.recorder = this.tlbis;
    engine.onBoundary = (id, end) => this.atBoundary(id, end);
  }

  /** Detaches from the engine, the store observer and the TLBI history. */
  detach(): void {
    this.visibility.onFirstStore = null;
    this.visibility.onValidStore = null;
    this.mmu.log.recorder = null;
    this.engine.onBoundary = null;
  }

  /**
   * Engine.onBoundary: task `id` ended a segment at `end` that stored into a new entry (a map)
   * or a valid value into a valid one (a relax, or a map that replaced a table).
   */
  private atBoundary(id: number, end: number): number {
    const ctx = this.vm.vcpus[id]!.fault;
    const P = this.page;
    // The TLBIs since the last boundary are this period's (recorded again from here).
    const tlbis = this.tlbis;
    if (
      this.vm.events.active ||
      this.mmu.observer !== null ||
      (ctx.action !== "map" && ctx.action !== "relax") ||
      ctx.ret !== 0 ||
      ctx.vmaPagesize !== P ||
      ctx.slot === null ||
      tlbis.vmids > 0
    ) {
      tlbis.clear();
      this.prev = null;
      return 0;
    }
    const page = ctx.faultIpa / P;
    const leaf = this.leafOf(ctx.faultIpa);
    if (leaf < 0) {
      tlbis.clear();
      this.prev = null;
      return 0;
    }
    const table = Math.floor(leaf / P);
    const index = leaf % P;
    const C = this.cycle;
    const R = C + 1;
    const at = (this.at + 1) % R;
    this.at = at;
    // This period's TLBIs by IPA, relative to the page (addresses outside the slot as they are).
    const b0 = page * P;
    const pattern = this.patterns[at]!;
    pattern.clear();
    for (let i = 0; i < tlbis.ipa.length; i++) {
      const ipa = tlbis.ipa.get(i);
      const inSlot = ipa >= ctx.slot.gpa && ipa < ctx.slot.gpa + ctx.slot.size;
      pattern.push(inSlot ? 1 : 0);
      pattern.push(inSlot ? ipa - b0 : ipa);
      pattern.push(tlbis.level.get(i));
    }
    tlbis.clear();
    const counters = this.counters(this.cur, ctx.slot);
    const engineDelta = this.engineDeltas[at]!;
    engineDelta.clear();
    this.engine.periodCounters(engineDelta);
    const prev = this.prev;
    const delta = this.deltas[at]!;
    if (prev !== null && prev.page === page - 1 && prev.table === table && prev.index === index - 1) {
      const period = end - prev.end;
      this.periods[at] = period;
      const last = this.last;
      delta.length = counters.length;
      for (let i = 0; i < counters.length; i++) delta[i] = counters.get(i) - last.get(i);
      // Compared with the period a cycle back, once the rings hold it.
      this.run++;
      const c = (at + 1) % R;
      const same =
        this.run > C &&
        period === this.periods[c] &&
        sameNumbers(delta, this.deltas[c]!) &&
        engineDelta.equals(this.engineDeltas[c]!) &&
        pattern.equals(this.patterns[c]!);
      this.stable = same ? this.stable + 1 : 0;
    } else {
      this.run = 0;
      this.stable = -1;
    }
    this.prev = { page, table, index, end };
    this.clocks[this.run % this.clocks.length] = this.engine.lockTime;
    // The counters are kept in two arrays that trade places.
    this.cur = this.last;
    this.last = counters;
    if (this.stable < 0) {
      this.forgetHistory();
      return 0;
    }
    // Skips of fewer than MIN_SKIP pages are not worth a snapshot.
    const cap = this.skipLimit(page, index);
    if (cap < MIN_SKIP) {
      this.forgetHistory();
      return 0;
    }
    // The stage-2 side first (stores in flight, the descriptors around the leaf): the whole state
    // (thousands of numbers) is only taken where that part is as it was at one of the boundaries
    // kept, since no state can repeat another whose part differs. Where it never repeats (a run
    // about to end) no whole state is taken.
    this.nearPages(ctx.slot, page * P);
    const key = this.keyPool.pop() ?? new NumberList(16);
    key.clear();
    if (!this.tablesState(key, ctx.slot, page, table, index, end)) {
      this.keyPool.push(key);
      this.forgetHistory();
      return 0;
    }
    // A repeat `lag` pages back makes every period from here like the one `lag` back, and the
    // skip adds whole cycles: the last `lag` - C periods must each be like the one a cycle back.
    const lagMax = Math.min(this.stable + C, this.lagLimit, this.history.length);
    let keyRepeats = false;
    for (let lag = C; lag <= lagMax && !keyRepeats; lag += C) {
      const h = this.history[this.history.length - lag]!;
      keyRepeats = h.page === page - lag && key.equals(h.key);
    }
    const ring = this.mmu.tlbs.map((t) => t.recentPosition);
    // In cycles the first cycle's whole states are taken where their key has not repeated too: a
    // repeat a cycle back is then found a cycle after the first boundary, not two. (With a cycle
    // of 1 that saves one period, not worth a state at every boundary that never repeats.)
    if (!keyRepeats && (C === 1 || this.history.length >= C)) {
      this.remember({ page, key, state: null, ring });
      return 0;
    }
    const out = this.pool.pop() ?? new NumberList(1024);
    // Locks are compared as far back as the longest lag (or this run's start): states compared
    // then list the locks of windows of the same length, and no later state looks further back.
    const since = this.clocks[(this.run - Math.min(this.run, this.lagLimit)) % this.clocks.length]!;
    const state = this.relativeState(id, page, end, ctx.slot, key, out, since, since);
    if (state === null) {
      this.pool.push(out);
      this.keyPool.push(key);
      this.forgetHistory();
      return 0;
    }
    // The last `stable` pages each took the same time and work. If the state is what it was
    // `lag` pages ago, the simulation repeats every `lag` pages from here.
    let skipped = 0;
    let skippedPs = 0;
    for (let lag = C; keyRepeats && lag <= lagMax; lag += C) {
      const h = this.history[this.history.length - lag]!;
      // NaN (an address relative to a host page that is not there) equals nothing: such states
      // do not say where the pages are, so they never match.
      if (h.page !== page - lag || h.state === null || !state.equals(h.state)) continue;
      if (!this.cycleRepeatable) break;
      let k = this.periodsAhead(page, table, index, ctx.slot, cap);
      k -= k % lag;
      if (k < Math.max(MIN_SKIP, lag)) break;
      // Each TLB's recent ring turns k / lag times as far as it did over the last `lag` pages.
      const turn = ring.map((r, i) => ((k / lag) * (r - h.ring[i]! + RECENT)) % RECENT);
      const turned = ring.map((r, i) => (r + turn[i]!) % RECENT);
      const dt = this.skip(k, page, table, index, ctx.slot, turned);
      skippedPs = dt;
      this.prev = { page: page + k, table, index: index + k, end: end + dt };
      const cycles = k / C;
      const sum = this.cycleDelta;
      for (let i = 0; i < counters.length; i++) counters.set(i, counters.get(i) + cycles * sum[i]!);
      // The pattern's addresses are relative to the page, so it is that of the next period too.
      // Only the snapshots of the repeat just found (from `lag` pages back) are the state k pages
      // on; older ones may predate it.
      while (this.history.length > 0 && this.history[0]!.page < page - lag) this.drop(this.history.shift()!);
      for (const e of this.history) {
        e.page += k;
        e.ring = e.ring.map((r, i) => (r + turn[i]!) % RECENT);
      }
      this.remember({ page: page + k, key, state, ring: turned });
      skipped = k;
      break;
    }
    if (skipped === 0) this.remember({ page, key, state, ring });
    return skippedPs;
  }

  /** Keeps snapshot `e`, the newest, and drops the oldest beyond the longest lag looked for. */
  private remember(e: Snapshot): void {
    this.history.push(e);
    if (this.history.length > this.lagLimit) this.drop(this.history.shift()!);
  }

  /** The ring index of the period `j` before the newest (0: the newest). */
  private ringAt(j: number): number {
    const R = this.cycle + 1;
    return (this.at - j + R) % R;
  }

  /**
   * The last cycle's counter deltas summed into {@link cycleDelta}, and its engine deltas listed
   * in {@link cycleEngine}; its length (ps).
   */
  private sumCycle(): number {
    const sum = this.cycleDelta;
    const first = this.deltas[this.at]!;
    sum.length = first.length;
    sum.fill(0);
    this.cycleEngine.length = 0;
    let length = 0;
    for (let j = 0; j < this.cycle; j++) {
      const r = this.ringAt(j);
      const d = this.deltas[r]!;
      for (let i = 0; i < sum.length; i++) sum[i]! += d[i]!;
      this.cycleEngine.push(this.engineDeltas[r]!);
      length += this.periods[r]!;
    }
    return length;
  }

  /** Gives a dropped snapshot's lists back for the next ones. */
  private drop(e: Snapshot): void {
    this.keyPool.push(e.key);
    if (e.state !== null) this.pool.push(e.state);
  }

  /** Drops the snapshots (their lists are reused). */
  private forgetHistory(): void {
    for (const h of this.history) this.drop(h);
    this.history.length = 0;
  }

  /**
   * Where the stage-2 tables hold the last-level leaf for `ipa`, as table page x page size +
   * index (the memory words, not what walks see yet); -1 if the walk ends elsewhere.
   */
  private leafOf(ipa: number): number {
    const pgt = this.vm.pgt;
    const sizes = pgt.sizes;
    const mask = pgt.granule.ptrsPerTable - 1;
    let level = pgt.geo.startLevel;
    let table = pgt.pgd + Math.floor(ipa * sizes.inv[level]!);
    for (;;) {
      const idx = Math.floor(ipa * sizes.inv[level + 1]!) & mask;
      const lo = pgt.mem.pages[table]![2 * idx]!;
      const hi = pgt.mem.pages[table]![2 * idx + 1]!;
      if ((lo & 3) !== 3) return -1;
      if (level === LAST_LEVEL) return table * this.page + idx;
      table = pgt.mem.pageOfPte(lo, hi);
      level++;
    }
  }

  /**
   * Every counter the simulation's work advances but the engine's (Engine.periodCounters), in a
   * fixed order (`slot`: the convoy's).
   */
  private counters(out: NumberList, slot: Memslot): NumberList {
    out.clear();
    for (const c of this.meter.count) out.push(c);
    const fs = this.vm.faultStats;
    for (const c of fs.aborts) out.push(c);
    for (const c of fs.actions) out.push(c);
    for (const c of fs.eagain) out.push(c);
    out.push(fs.s1ptw);
    out.push(slot.dirtyPages);
    out.push(this.mmu.walks);
    out.push(this.accesses());
    out.push(this.vm.pgt.bugDepartures);
    out.push(this.vm.pgt.tablesInstalled);
    // Each TLB's fills of the same entry again, then its other fills (last).
    for (const tlb of this.mmu.tlbs) out.push(tlb.refills);
    for (const tlb of this.mmu.tlbs) out.push(tlb.fills - tlb.refills);
    return out;
  }

  /** {@link hostPa} of the pages from SPAN before to SPAN after the snapshot's page (nearBase). */
  private readonly nearPas = new Float64Array(2 * SPAN + 1);
  private nearBase = Number.NaN;

  /** {@link hostPa}, from {@link nearPas} for the pages around the snapshot's page. */
  private nearHostPa(slot: Memslot, ipa: number): number {
    const d = (ipa - this.nearBase) / this.page;
    return d >= -SPAN && d <= SPAN && Number.isInteger(d) ? this.nearPas[d + SPAN]! : this.hostPa(slot, ipa);
  }

  /**
   * The PA of the byte at `ipa` in `slot` as the host maps it now, or NaN when no host page is
   * present there.
   */
  private hostPa(slot: Memslot, ipa: number): number {
    const hva = slot.hvaOf(ipa);
    const vma = this.vm.host.findVma(hva);
    if (vma === null) return Number.NaN;
    const i = vma.index(hva);
    if ((vma.flags[i]! & HPTE_PRESENT) === 0) return Number.NaN;
    return vma.pa[i]! + (hva - (vma.start + i * vma.pageSize));
  }

  /**
   * The whole simulation's state relative to the leaf of guest page `page` stored by task `cur`,
   * whose segment ended at `t0`: the engine's tasks and locks, every vCPU (state machine, fault
   * context, stage-1 cache, memcache, TLB entries it will use), the stores in flight, the
   * descriptors and host pages around the page, and the notifier sequence; written over `out`,
   * which it returns. Null if some part cannot be expressed relative to the page. Needs
   * {@link nearPages} of the page, and takes its stage-2 part as {@link tablesState} gave it.
   */
  private relativeState(
    cur: number,
    page: number,
    t0: number,
    slot: Memslot,
    tables: NumberList,
    out: NumberList,
    since: number,
    keepSince: number,
  ): NumberList | null {
    const P = this.page;
    const b = page * P;
    out.clear();
    const lo = slot.gpa;
    const hi = slot.gpa + slot.size;
    const relIpa = (x: number): number => (x >= lo && x < hi ? x - b + REL : x);
    const rel: SlotRelativizer = {
      ipa: relIpa,
      pa: (base, pa) => (base >= lo && base < hi ? pa - this.nearHostPa(slot, base) + REL : pa),
    };
    this.engine.periodicState(out, cur, t0, (s) => this.stepCode(s), since, keepSince);
    const vm = this.vm;
    // Not the TLBI history: a TLB entry's past TLBIs matter only through whether it is live now
    // (each entry's state says), later TLBIs remove it whenever it was filled, and fills to come
    // are all made after every TLBI so far.
    out.push(vm.mmuNotifierSeq);
    out.push(vm.mmuNotifierCount);
    // The dirty bits of the pages around (from the furthest-behind vCPU's).
    const behind = this.behind;
    for (let d = -behind; d <= SPAN; d++) out.push(slot.isDirty(b + d * P) ? 1 : 0);
    for (let i = 0; i < this.vcpus.length; i++) {
      if (!this.vcpus[i]!.periodicState(out, b, relIpa)) return null;
      const v = vm.vcpus[i]!;
      this.contextState(out, v.fault, relIpa, slot, b);
      out.push(v.memcache.count);
      this.path.periodicState(out, i, page);
      const tlb = this.mmu.tlbs[i]!;
      if (!tlb.recentState(out, t0, rel)) return null;
      out.push(tlb.lastFillBase < 0 ? -1 : relIpa(tlb.lastFillBase));
      // The entries its walks will look up: the current access's stage-1 tables, the pages around.
      for (let d = -behind; d <= SPAN; d++) tlb.slotState(out, tlb.slotOf(b + d * P, LAST_LEVEL), t0, rel);
      this.stageOneEntries(out, i, tlb, t0, rel);
    }
    out.append(tables);
    return out;
  }

  /**
   * Notes the host addresses of the pages around guest IPA `b` of `slot` (SPAN either side),
   * which the relative state of the boundary there refers to ({@link nearHostPa}).
   */
  private nearPages(slot: Memslot, b: number): void {
    const near = this.nearPas;
    for (let d = -SPAN; d <= SPAN; d++) near[d + SPAN] = this.hostPa(slot, b + d * this.page);
    this.nearBase = b;
  }

  /**
   * The stores in flight and the descriptors around the leaf, relative to the boundary at guest
   * page `page` (its leaf at `index` of `table`, its segment ended at `t0`), appended to `out`;
   * false when a store cannot be expressed so. Needs {@link nearPages} of the page.
   */
  private tablesState(
    out: NumberList,
    slot: Memslot,
    page: number,
    table: number,
    index: number,
    t0: number,
  ): boolean {
    const P = this.page;
    const b = page * P;
    const entry = (d: number, w0: number, w1: number): void => this.entryState(out, slot, b + d * P, w0, w1);
    if (!this.visibility.periodicState(out, table, index, t0, entry)) return false;
    const words = this.vm.pgt.mem.pages[table]!;
    const entries = this.vm.geo.granule.ptrsPerTable;
    // From the furthest-behind vCPU's page: states with different windows differ.
    out.push(this.behind);
    for (let d = -this.behind; d <= SPAN; d++) {
      const j = index + d;
      if (j < 0 || j >= entries) out.push(-1);
      else entry(d, words[2 * j]!, words[2 * j + 1]!);
    }
    return true;
  }

  /**
   * A descriptor (words `w0`, `w1`) of the entry for guest page `ipa` of `slot`, appended to
   * `out` with its output address relative to the host page there.
   */
  private entryState(out: NumberList, slot: Memslot, ipa: number, w0: number, w1: number): void {
    if ((w0 & 1) === 0) {
      out.push(0);
      out.push(w0);
      out.push(w1);
      return;
    }
    const oa = pteOa(this.vm.geo.granule, w0, w1);
    out.push(1);
    out.push((w0 & ~this.oaMaskLo) >>> 0);
    out.push((w1 & ~this.oaMaskHi) >>> 0);
    out.push(oa - this.nearHostPa(slot, ipa) + REL);
  }

  /** A number for a string of the fault context. */
  private code(s: string): number {
    let c = this.codes.get(s);
    if (c === undefined) {
      c = this.codes.size;
      this.codes.set(s, c);
    }
    return c;
  }

  /** The TLB entries of the stage-1 table pages vCPU `i`'s current access reads. */
  private stageOneEntries(
    out: NumberList,
    i: number,
    tlb: Stage2Tlb,
    t0: number,
    rel: SlotRelativizer,
  ): void {
    const tables = this.vcpuTables(i);
    for (let j = 0; j < tables.length; j++)
      tlb.slotState(out, this.stageOneSlot(tlb, tables.get(j)), t0, rel);
  }

  /** The slot of the entry translating stage-1 table page `ipa` (any leaf size), or -1. */
  private stageOneSlot(tlb: Stage2Tlb, ipa: number): number {
    const sizes = this.vm.pgt.sizes;
    for (let level = LAST_LEVEL; level >= 1; level--) {
      const size = sizes.size[level + 1]!;
      const slot = tlb.slotOf(Math.floor(ipa / size) * size, level);
      if (slot >= 0) return slot;
    }
    return -1;
  }

  /** The stage-1 table pages of vCPU `i`'s current access (in a scratch list, until the next call). */
  private vcpuTables(i: number): NumberList {
    const out = this.tables;
    out.clear();
    this.vcpus[i]!.tablesOf(out);
    return out;
  }

  private readonly tables = new NumberList(8);

  /** A fault context relative to page base `b` (host PA `paB`). */
  private contextState(
    out: NumberList,
    c: FaultContext,
    relIpa: (x: number) => number,
    slot: Memslot,
    b: number,
  ): void {
    const inSlot = c.slot === slot;
    out.push(this.code(c.fsc));
    out.push(c.level);
    out.push(c.slot === null ? -1 : c.slot === slot ? 1 : 0);
    out.push(inSlot ? c.hva - slot.hvaOf(b) + REL : c.hva);
    out.push(c.writeFault ? 1 : 0);
    out.push(c.execFault ? 1 : 0);
    out.push(relIpa(c.faultIpa));
    out.push(c.faultGranule);
    out.push(c.logging ? 1 : 0);
    out.push(c.forcePte ? 1 : 0);
    out.push(c.vmaPagesize);
    out.push(c.pmdSize);
    out.push(relIpa(c.gpa));
    out.push(c.mmuSeq);
    out.push(inSlot ? c.pa - this.nearHostPa(slot, c.gpa) + REL : c.pa);
    out.push(c.writable ? 1 : 0);
    out.push(c.device ? 1 : 0);
    out.push(c.toppedUp);
    out.push(this.code(c.action));
    out.push(c.prot);
    out.push(c.ret);
  }

  /**
   * A number for a step (the same step object, the same number). A transient lock's steps get one
   * number and are not kept (a file's page locks would all be): a vCPU at one is inside the
   * host's fault path, where no snapshot is used.
   */
  private stepCode(s: Step | null): number {
    if (s === null) return -1;
    if (s.kind !== "sched" && s.lock.transient !== undefined) return -2;
    let c = this.stepCodes.get(s);
    if (c === undefined) {
      c = this.stepCodes.size;
      this.stepCodes.set(s, c);
    }
    return c;
  }

  /** Where the convoy's memslot's dirty-page count is among the counters (see {@link counters}). */
  private dirtyCounter(): number {
    const fs = this.vm.faultStats;
    return this.meter.count.length + fs.aborts.length + fs.actions.length + fs.eagain.length + 1;
  }

  /**
   * The most periods a skip from the leaf at `index` (guest page `page`) could take, from what
   * costs little to check: the work of each period of the last cycle (one TLB fill per vCPU and
   * one descriptor store, at most one page newly dirty, alike in all, the same number of TLBIs,
   * nothing unrepeatable), the table's end and every vCPU's page run; 0 when no skip. (The TLBs'
   * sets are {@link periodsAhead}'s: a skip may fill a set more than once, as the real periods
   * would.)
   *
   * Over k periods a vCPU moves k accesses on its page run, and the furthest page any period
   * touches is the boundary's plus k plus {@link ahead}: the vCPUs' programs are part of the
   * repeating state, so the boundary k pages on finds them where this one does, relative to its
   * page, and a vCPU only moves forward, so at no phase in between is one further on.
   */
  private skipLimit(page: number, index: number): number {
    const dirty = this.deltas[this.at]![this.dirtyCounter()]!;
    if ((dirty !== 0 && dirty !== 1) || !this.repeatable(0, dirty)) return 0;
    // The other periods of the cycle are needed alike only by a skip (see cycleRepeatable): the
    // snapshot taken here may be the older one of a repeat a cycle on, past them.
    let j = 1;
    while (j < Math.min(this.run, this.cycle) && this.repeatable(j, dirty)) j++;
    this.cycleRepeatable = j >= Math.min(this.run, this.cycle);
    const P = this.page;
    let ahead = 0;
    let behind = 0;
    let k = Infinity;
    for (const v of this.vcpus) {
      const d = v.accessIpa() / P - page;
      ahead = Math.max(ahead, Math.ceil(d));
      behind = Math.max(behind, Math.ceil(-d));
      k = Math.min(k, v.pageRun());
    }
    // NaN (a vCPU without an access) or beyond the snapshot's pages: no skip. Nor when a vCPU is
    // on a page of the table before the boundary's: the snapshot's descriptors stop at its table.
    if (!(ahead <= SPAN && behind <= SPAN) || index - behind < 0) return 0;
    this.ahead = ahead;
    this.behind = behind;
    k = Math.min(k, this.vm.geo.granule.ptrsPerTable - 1 - index - ahead);
    return k < MIN_SKIP ? 0 : k;
  }

  /**
   * How many periods the simulation may skip from the boundary at guest page `page` (the leaf
   * at `index` of `table`), at most `cap` ({@link skipLimit}): as many as the pages ahead are
   * like the first of them (host pages present in the same VMA with the same flags and coherence
   * marks; entries both empty, or both leaves with the same attributes, each to its own host
   * page; dirty bits alike, or all clean when each period dirties its page) and no TLB fill
   * evicts an entry the vCPUs will use; 0 when fewer than MIN_SKIP. Leaves the host addresses
   * of the pages from SPAN before to k + {@link ahead} after `page` in {@link hostPas}.
   */
  private periodsAhead(page: number, table: number, index: number, slot: Memslot, cap: number): number {
    const P = this.page;
    const vm = this.vm;
    const nv = this.vcpus.length;
    let k = cap;
    const b = page * P;
    const hva = slot.hvaOf(b);
    const vma = vm.host.findVma(hva);
    if (vma === null || vma.backing.kind === "shmem") return 0;
    const flags = vma.flags[vma.index(hva)]!;
    // The host pages' coherence marks: a period changes them only by cleaning (idempotent), so
    // where the pages ahead are marked like the ones behind, their periods leave them as they are.
    const phys = vm.hostPhys;
    const marks = phys.marksAt(this.hostPa(slot, b));
    const words = vm.pgt.mem.pages[table]!;
    const g = vm.geo.granule;
    // The first entry ahead: its attribute bits and output address relative to its host page.
    const a0 = words[2 * (index + 1)]!;
    const a1 = words[2 * (index + 1) + 1]!;
    const valid = (a0 & 1) !== 0;
    if (!valid && (a0 !== 0 || a1 !== 0)) return 0;
    const attrLo = (a0 & ~this.oaMaskLo) >>> 0;
    const attrHi = (a1 & ~this.oaMaskHi) >>> 0;
    const relOa = valid ? pteOa(g, a0, a1) - this.hostPa(slot, b + P) : 0;
    // Each leaf the skip writes maps its page's host page as the boundary's leaf maps its own.
    const leafLo = words[2 * index]!;
    if (valid && relOa !== pteOa(g, leafLo, words[2 * index + 1]!) - this.hostPa(slot, b)) return 0;
    // Dirty bits: each period dirtying its page (the boundary's, already marked) needs the pages
    // ahead clean; otherwise they must be alike.
    const delta = this.deltas[this.at]!;
    const dirties = delta[this.dirtyCounter()] === 1;
    if (dirties && !slot.isDirty(b)) return 0;
    const dirtyAhead = dirties ? false : slot.isDirty(b + P);
    const pas = this.hostPas;
    const ahead = this.ahead;
    for (let d = -SPAN; d <= k + ahead; d++) {
      const ipa = b + d * P;
      const h = slot.hvaOf(ipa);
      let ok = ipa >= slot.gpa && ipa < slot.gpa + slot.size && vm.host.findVma(h) === vma;
      ok &&= vma.flags[vma.index(h)] === flags;
      const pa = ok ? this.hostPa(slot, ipa) : Number.NaN;
      ok &&= pa === pa && phys.marksAt(pa) === marks;
      if (ok && d > 0) {
        const w0 = words[2 * (index + d)]!;
        const w1 = words[2 * (index + d) + 1]!;
        ok = valid
          ? (w0 & ~this.oaMaskLo) >>> 0 === attrLo &&
            (w1 & ~this.oaMaskHi) >>> 0 === attrHi &&
            pteOa(g, w0, w1) - pa === relOa
          : w0 === 0 && w1 === 0;
        ok &&= slot.isDirty(ipa) === dirtyAhead;
      }
      if (!ok) {
        if (d <= ahead) return 0;
        k = d - ahead - 1;
        break;
      }
      pas[d + SPAN] = pa;
    }
    if (k < MIN_SKIP) return 0;
    // TLB fills: each vCPU fills the pages after its last fill; none may take the slot of an
    // entry it will look up (its stage-1 tables, the pages around the boundary) or meet an entry
    // already tagged for the page (a fill would reuse it).
    const keep: number[] = [];
    for (let i = 0; i < nv && k >= MIN_SKIP; i++) {
      const tlb = this.mmu.tlbs[i]!;
      // Written by index: emptying an array gives its storage back.
      let nk = 0;
      const tables = this.vcpuTables(i);
      for (let j = 0; j < tables.length; j++) keep[nk++] = this.stageOneSlot(tlb, tables.get(j));
      for (let d = -2 * SPAN; d <= 2 * SPAN; d++) keep[nk++] = tlb.slotOf(b + d * P, LAST_LEVEL);
      keep.length = nk;
      const from = tlb.slotOf(tlb.lastFillBase, LAST_LEVEL);
      if (from < 0 || tlb.lastFillBase < slot.gpa || tlb.lastFillBase >= slot.gpa + slot.size) return 0;
      // Replayed fills copy its expiry: only one that never expires (TLBIs may have removed it:
      // each replayed fill gets the TLBI number it would have).
      if (tlb.expiryOf(from) !== Infinity) return 0;
      const m = this.patterns[this.at]!.length / 3;
      const midway = this.midway(tlb, from, slot, m);
      if (midway < 0 || (midway === 1 && !this.refillsEachPeriod(i))) return 0;
      // The replay fills every page alike, m TLBIs apart: so were the last cycle's pages.
      if (!this.settledAlike(tlb, tlb.entry(from).base - midway * P, slot, m)) return 0;
      this.midwayOf[i] = midway;
      k = tlb.fillRunLimit(tlb.lastFillBase + P, LAST_LEVEL, k, keep);
    }
    return k >= MIN_SKIP ? k : 0;
  }

  /**
   * Whether the period `j` before the newest did what a skip can replay: one new TLB entry per
   * vCPU (the counters end with the TLBs' fills other than refills of the entry just filled), one
   * descriptor store and no table installed, nothing unrepeatable, `dirty` pages newly dirty and
   * as many TLBIs as the newest (a replayed fill's TLBI number grows by that many a period).
   */
  private repeatable(j: number, dirty: number): boolean {
    const nv = this.vcpus.length;
    const delta = this.deltas[this.ringAt(j)]!;
    for (let i = 0; i < nv; i++) if (delta[delta.length - nv + i] !== 1) return false;
    for (const w of UNREPEATABLE) if (delta[w] !== 0) return false;
    if (delta[W["pte-write"]] !== 1 || delta[delta.length - 2 * nv - 1] !== 0) return false;
    return (
      delta[this.dirtyCounter()] === dirty &&
      this.patterns[this.ringAt(j)]!.length === this.patterns[this.at]!.length
    );
  }

  /**
   * Whether every period of the last cycle (this run's) passed {@link repeatable}, as of the last
   * {@link skipLimit}: a skip replays them.
   */
  private cycleRepeatable = false;

  /** Whether vCPU `i`'s TLB filled one entry again in every period of the last cycle (this run's). */
  private refillsEachPeriod(i: number): boolean {
    for (let j = 0; j < Math.min(this.run, this.cycle); j++) {
      const delta = this.deltas[this.ringAt(j)]!;
      if (delta[delta.length - 2 * this.vcpus.length + i] !== 1) return false;
    }
    return true;
  }

  /**
   * Whether a TLB's last fill (slot `from`) is its page's entry as it will stay (0), or as it is
   * midway through its period (1: the vCPU fills it again before the period ends, as the entry of
   * the page before was, which is then as it will stay); -1 when neither can be told. An entry
   * as it will stay is like the one of the page before: same permissions, level and expiry, the
   * same output address relative to its host page, filled `m` TLBIs later (the period's count).
   */
  private midway(tlb: Stage2Tlb, from: number, slot: Memslot, m: number): number {
    const P = this.page;
    const base = tlb.entry(from).base;
    const prev = tlb.slotOf(base - P, LAST_LEVEL);
    if (prev < 0) return -1;
    if (this.alike(tlb, prev, from, slot, m)) return 0;
    const before = tlb.slotOf(base - 2 * P, LAST_LEVEL);
    if (before < 0 || !this.alike(tlb, before, prev, slot, m)) return -1;
    return tlb.expiryOf(prev) === Infinity ? 1 : -1;
  }

  /**
   * Whether the entries of the cycle's pages up to the one at `base` (as they will stay) are each
   * like the one of the page before (see {@link midway}), which {@link midway} checks only for the
   * last page; true with a cycle of 1.
   */
  private settledAlike(tlb: Stage2Tlb, base: number, slot: Memslot, m: number): boolean {
    const P = this.page;
    for (let j = 1; j < this.cycle; j++) {
      const b = tlb.slotOf(base - j * P, LAST_LEVEL);
      const a = tlb.slotOf(base - (j + 1) * P, LAST_LEVEL);
      if (a < 0 || b < 0 || !this.alike(tlb, a, b, slot, m)) return false;
    }
    return true;
  }

  /** Whether slot `b`'s entry (a page on from slot `a`'s) is like `a`'s (see {@link midway}). */
  private alike(tlb: Stage2Tlb, a: number, b: number, slot: Memslot, m: number): boolean {
    const ea = tlb.entry(a);
    const eb = tlb.entry(b);
    return (
      ea.perms === eb.perms &&
      ea.level === eb.level &&
      tlb.expiryOf(a) === tlb.expiryOf(b) &&
      tlb.fillSeqOf(a) + m === tlb.fillSeqOf(b) &&
      ea.pa - this.hostPa(slot, ea.base) === eb.pa - this.hostPa(slot, eb.base)
    );
  }

  /**
   * The host address of the guest page `d` pages from `b` in `slot`, from {@link hostPas} where
   * it holds it (the last {@link periodsAhead}, for a skip of at most `k`).
   */
  private hostPaAt(slot: Memslot, b: number, d: number, k: number): number {
    return d >= -SPAN && d <= k + this.ahead ? this.hostPas[d + SPAN]! : this.hostPa(slot, b + d * this.page);
  }

  /**
   * Moves the simulation `k` periods (whole cycles) on from the boundary at guest page `page`,
   * repeating the last cycle's periods, each with its TLBIs (relative to its page); returns the
   * time skipped (ps).
   */
  private skip(
    k: number,
    page: number,
    table: number,
    index: number,
    slot: Memslot,
    ring: readonly number[],
  ): number {
    const P = this.page;
    const vm = this.vm;
    const g = vm.geo.granule;
    const shift = k * P;
    const cycles = k / this.cycle;
    const dt = cycles * this.sumCycle();
    const delta = this.cycleDelta;
    const lo = slot.gpa;
    const hi = slot.gpa + slot.size;
    const moves = (ipa: number): boolean => ipa >= lo && ipa < hi;
    const b = page * P;
    // The host address of the guest page `d` pages from the boundary's.
    const hostPa = (d: number): number => this.hostPaAt(slot, b, d, k);
    const log = this.mmu.log;
    const m = this.patterns[this.at]!.length / 3;
    const pas = this.replayPas;
    // The TLB fills first (they read the entries' permissions before anything moves), each with
    // the TLBI number it would have: m more per period.
    for (let i = 0; i < this.vcpus.length; i++) {
      const tlb = this.mmu.tlbs[i]!;
      const from = tlb.slotOf(tlb.lastFillBase, LAST_LEVEL);
      const { base, pa, perms, level } = tlb.entry(from);
      const expiry = tlb.expiryOf(from);
      const d0 = (base - b) / P;
      const rel = pa - hostPa(d0);
      for (let j = 0; j < k; j++) pas[j] = hostPa(d0 + j + 1) + rel;
      const seq = tlb.fillSeqOf(from);
      if (this.midwayOf[i] === 0) tlb.fillRun(base + P, level, pas, perms, expiry, seq, m, k);
      else {
        // The last fill's page and every page after it but the last end their periods as the
        // page before the last fill's did; the last is then where the last fill's page is now.
        const prev = tlb.slotOf(base - P, LAST_LEVEL);
        const done = tlb.permsOf(prev);
        const doneSeq = tlb.fillSeqOf(prev) + m;
        tlb.fillRun(base + P, level, pas, done, Infinity, doneSeq, m, k);
        tlb.refillAs(from, done, Infinity, doneSeq);
        tlb.refillAs(tlb.slotOf(base + k * P, level), perms, expiry, seq + k * m);
      }
      tlb.moveRecent(shift, moves);
      tlb.rotateRecent(ring[i]!);
    }
    // The leaves: each to its page's host page as the boundary's leaf is to its own.
    const words = vm.pgt.mem.pages[table]!;
    const relLeaf = pteOa(g, words[2 * index]!, words[2 * index + 1]!) - hostPa(0);
    for (let j = 0; j < k; j++) pas[j] = hostPa(j + 1) + relLeaf;
    vm.pgt.copyLeaves(table, index, k, pas);
    // The periods' TLBIs, then the pages they dirty.
    const sinceTlbi = this.vcpus.map((_, i) => this.path.cachedSinceTlbi(i));
    log.recorder = null;
    for (let j = 1; j <= k; j++) {
      // Period j is like the one a whole number of cycles before it in the rings.
      const pattern = this.patterns[this.ringAt((this.cycle - (j % this.cycle)) % this.cycle)]!;
      for (let t = 0; t < pattern.length; t += 3) {
        const ipa = pattern.get(t + 1);
        log.invalidateIpa(pattern.get(t) === 1 ? b + j * P + ipa : ipa, pattern.get(t + 2));
      }
    }
    log.recorder = this.tlbis;
    const dirtyAt = this.dirtyCounter();
    if (delta[dirtyAt] === this.cycle) for (let j = 1; j <= k; j++) slot.markDirty(b + j * P);
    for (let i = 0; i < this.vcpus.length; i++) {
      this.vcpus[i]!.fastForward(k, shift, moves);
      const c = vm.vcpus[i]!.fault;
      if (c.slot === slot) {
        c.hva += shift;
        if (moves(c.gpa)) c.pa += hostPa((c.gpa - b) / P + k) - hostPa((c.gpa - b) / P);
      }
      if (moves(c.faultIpa)) c.faultIpa += shift;
      if (moves(c.gpa)) c.gpa += shift;
      this.path.fastForward(i, k, sinceTlbi[i]!);
    }
    // Stores in flight move k entries on; a valid old value to the host page there.
    this.visibility.fastForward(k, dt, table, index, (d, w0, w1) => {
      if ((w0 & 1) === 0) return [w0, w1];
      const oa = pteOa(g, w0, w1) - hostPa(d) + hostPa(d + k);
      return [((w0 & ~this.oaMaskLo) | oaLo(g, oa)) >>> 0, ((w1 & ~this.oaMaskHi) | oaHi(oa)) >>> 0];
    });
    // The counters, in the order counters() lists them.
    const meter = this.meter;
    let n = 0;
    for (let i = 0; i < meter.count.length; i++) meter.count[i]! += cycles * delta[n++]!;
    const fs = vm.faultStats;
    for (let i = 0; i < fs.aborts.length; i++) fs.aborts[i]! += cycles * delta[n++]!;
    for (let i = 0; i < fs.actions.length; i++) fs.actions[i]! += cycles * delta[n++]!;
    for (let i = 0; i < fs.eagain.length; i++) fs.eagain[i]! += cycles * delta[n++]!;
    fs.s1ptw += cycles * delta[n++]!;
    n++; // the dirty pages, counted by markDirty above
    this.engine.fastForward(dt, cycles, this.cycleEngine);
    this.mmu.walks += cycles * delta[n++]!;
    this.addAccesses(cycles * delta[n++]!);
    vm.pgt.bugDepartures += cycles * delta[n++]!;
    n++; // tables installed (0)
    // The refills (of the entry each replayed fill made: fillRun counted one fill per period).
    for (const tlb of this.mmu.tlbs) {
      tlb.refills += cycles * delta[n]!;
      tlb.fills += cycles * delta[n++]!;
    }
    this.periodsSkipped += k;
    this.skips++;
    return dt;
  }
}

/** Whether two periods' counter deltas are the same. */
function sameNumbers(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
