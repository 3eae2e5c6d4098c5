/**
 * kvm_page_table_test on the simulated machine: the selftest's set-up, then each timed stage run
 * by all vCPUs in virtual time on a cost profile, with the untimed dirty-log flag changes between
 * them. Reports per stage the simulated time (a model prediction), what the fault path did, and
 * where the time went.
 */
import { Checkers, type CheckOptions } from "../check/checkers.js";
import type { Violation } from "../check/violation.js";
import { W, type WorkItem } from "../common/work.js";
import type { FaultCounts } from "../kvm/stats.js";
import { SimMachine } from "../sim/machine.js";
import type { CostProfile } from "../sim/profile.js";
import { S2simError } from "../common/error.js";
import { isSeed, MAX_SEED, SeededRandom } from "../common/random.js";
import { DEFAULT_GUEST_MODE } from "./guest-modes.js";
import { PageTableTest, type PageTableTestConfig, TEST_STAGES, type TestStage } from "./page-table-test.js";
import { parseReleaseOrder, type ReleaseOrder, releaseOrder } from "./release-order.js";
import { type StageTimeline, TimelineRecorder } from "./timeline.js";
import { EventTraceRecorder, type StageTrace } from "./event-trace.js";
import { freeWatched, inTeardown } from "./teardown.js";

/** The attribution's category of the D-cache maintenance. */
const DCACHE_CATEGORY = "D-cache clean+invalidate (DC CIVAC)";

/**
 * The CPU time a stage spent cleaning the D-cache to the PoC, as a fraction of the stage's time
 * (NaN for a stage of no time). Every such clean in the selftest's stages runs under mmu_lock, so
 * it is at most 1; near 1, the stage is the cleaning.
 */
export function cleaningShare(stage: SimStageReport): number {
  const t = stage.attribution.find((a) => a.category === DCACHE_CATEGORY)?.vcpu_s ?? 0;
  return stage.simulated_s > 0 ? t / stage.simulated_s : Number.NaN;
}

/** Where vCPU time goes, by category (each a set of work items, or waiting / idle). */
const CATEGORIES: ReadonlyArray<readonly [string, readonly WorkItem[]]> = [
  ["guest execution and TLB walks", ["guest-access", "s1-walk", "s2-walk-level"]],
  ["exits and KVM fault handling", ["exit", "entry", "abort", "memcache-page", "mark-dirty"]],
  ["GUP and host page faults", ["gup", "host-fault", "page-alloc", "zero-byte", "pmd-split", "host-tlbi"]],
  ["stage-2 table walks and updates", ["pgt-call", "pgt-visit", "pte-write", "table-refcount", "table-free"]],
  ["TLB invalidation", ["tlbi-ipa", "tlbi-vmid"]],
  [DCACHE_CATEGORY, ["dc-civac-line"]],
  ["I-cache invalidation", ["ic-ivau-line", "ic-iallu"]],
  ["MMU-notifier handlers", ["notifier-handler"]],
  ["lock acquire and handoff", ["lock-acquire", "lock-handoff", "host-lock-handoff", "mutex-wakeup"]],
];

/** One category of the time attribution. */
export interface TimeShare {
  readonly category: string;
  /** vCPU-seconds spent, summed over vCPUs. */
  readonly vcpu_s: number;
  /** Share of all vCPU time (vCPUs x stage time). */
  readonly share: number;
}

/** What one simulated stage did. */
export interface SimStageReport {
  /** As the selftest prints it. */
  readonly name: TestStage;
  /** Model prediction for the stage's wall time, seconds. */
  readonly simulated_s: number;
  readonly accesses: number;
  /** Guest aborts by "fsc-Llevel". */
  readonly faults: Record<string, number>;
  readonly s1ptw_faults: number;
  readonly maps: number;
  readonly relaxes: number;
  /** mmu_notifier_retry returns (no table change). */
  readonly retries: number;
  /** Maps and relaxes that returned -EAGAIN. */
  readonly eagain: number;
  readonly tlbi: { readonly ipa: number; readonly vmid: number };
  readonly cmo_bytes: { readonly dcache: number; readonly icache: number };
  readonly mmu_lock: {
    readonly acquisitions: number;
    readonly contended: number;
    readonly wait_s: number;
    readonly hold_s: number;
  };
  readonly host: { readonly faults: number; readonly page_allocs: number; readonly zeroed_bytes: number };
  /** Stage-2 table pages installed (taken from a vCPU's memcache by a map) and freed. */
  readonly table_pages: { readonly allocated: number; readonly freed: number };
  readonly attribution: TimeShare[];
  /**
   * When each vCPU was released (seconds from the stage's start; by vCPU id): one vcpu-release
   * apart, in the run's release order.
   */
  readonly vcpu_start_s: number[];
  /**
   * When each vCPU finished the stage (seconds from the stage's start; by vCPU id). Shows whether
   * the vCPUs moved as one convoy or as several (in CREATE, even ids write and odd ids read).
   */
  readonly vcpu_done_s: number[];
  /**
   * Engine steps handled (simulation work, for speed figures), counting those of the periods the
   * fast-forward skipped as handled: the same with it on and off.
   */
  readonly engine_steps: number;
  /**
   * Last-level leaves the fast-forward installed or relaxed by skipping whole periods of a lock
   * convoy (sim/fast-forward.ts; 0 with it off). Speed information only: every other figure is
   * the same.
   */
  readonly fast_forward_leaves: number;
  /**
   * Guest accesses done in runs of TLB hits at once (GuestAccessPath.hitRun; 0 with it off).
   * Speed information only, like {@link fast_forward_leaves}.
   */
  readonly hit_run_accesses: number;
  /**
   * Guest accesses made in flowing runs (SimVcpu.flowRun: one check for the run instead of one
   * per access; 0 with access runs off). Speed information only.
   */
  readonly flow_run_accesses: number;
  /** With `stateDigest` set: a digest of the machine's state at the stage's end (for tests). */
  readonly state_digest?: string;
  /** With `timelineChunk` set, for the CREATE stage: its timeline along the region. */
  readonly timeline?: StageTimeline;
  /** With `traceEvents`: the stage's first events as text, and how many it emitted. */
  readonly trace?: StageTrace;
}

/** A whole simulated selftest run. */
export interface SimReport {
  readonly kernel: string;
  readonly backing: string;
  readonly vcpus: number;
  readonly mem_bytes: number;
  readonly gpa: number;
  /** The selftest's guest mode (`-m`) and the VM's IPA size it gave. */
  readonly guest_mode: number;
  readonly ipa_bits: number;
  readonly profile: string;
  /** How the vCPUs were released for each stage (see release-order.ts). */
  readonly release_order: ReleaseOrder;
  readonly stages: SimStageReport[];
  /**
   * With `--inject`: the bug, and how many times the run's code departed from the kernel's because
   * of it (0: the run never reached the place it changes, so no checker could catch it).
   */
  /**
   * The injected bug, and how often it made the code depart from the kernel's in the stages and
   * in the teardown after them (kvm_vm_free).
   */
  readonly injected_bug?: {
    readonly name: string;
    readonly departures: number;
    readonly teardown_departures: number;
  };
  /** With checkers: which ran and what they found (fail-fast runs throw at the first instead). */
  readonly check?: {
    readonly checkers: string[];
    readonly found: number;
    readonly violations: Violation[];
  };
}

/** Progress callback: stage, and the fraction of the whole run's guest accesses done. */
export type Progress = (stage: TestStage, fraction: number) => void;

const PS = 1e-12;

/**
 * Runs the selftest's timed stages on `profile`: all three, or the first `stageCount` of them
 * (each stage depends on the ones before it). `afterStage`, for tests, sees the machine and the
 * VM after each stage.
 */
export function simulatePageTableTest(
  config: PageTableTestConfig,
  profile: CostProfile,
  progress?: Progress,
  stageCount = TEST_STAGES.length,
  check?: Omit<CheckOptions, "machine">,
  afterStage?: (machine: SimMachine, test: PageTableTest) => void,
): SimReport {
  const granule = config.vmOptions?.granule ?? 4096;
  const machine = new SimMachine(profile, granule / 8);
  machine.lookahead = config.lookahead ?? true;
  machine.accessRuns = config.accessRuns ?? true;
  machine.fastForward = config.fastForward ?? true;
  const test = new PageTableTest({
    ...config,
    guestTables: true,
    vmOptions: { ...config.vmOptions, ...machine.vmHooks() },
  });
  machine.attach(test.vm, test.guestTables.page);
  const checkers = check !== undefined ? new Checkers(test.vm, { ...check, machine }) : null;
  const run = TEST_STAGES.slice(0, stageCount);
  const totals = run.map((s) => expectedAccesses(test, s));
  const grand = totals.reduce((a, b) => a + b, 0);
  const order = parseReleaseOrder(config.releaseOrder ?? "fifo");
  const seed = config.seed ?? 1;
  if (!isSeed(seed)) {
    throw new S2simError("bad-seed", `seed ${seed} is not an integer from 0 to ${MAX_SEED}`);
  }
  const random = new SeededRandom(seed);
  let before = 0;
  let finished: readonly number[] | null = null;
  const stages = run.map((stage, i) => {
    const release = releaseOrder(order, config.vcpus, finished, random);
    const r = runStage(test, machine, stage, release, (n) => progress?.(stage, (before + n) / grand));
    afterStage?.(machine, test);
    before += totals[i]!;
    finished = r.finishPs;
    return r.report;
  });
  // The selftest's kvm_vm_free, after the timed stages, with any checkers still watching: what they
  // find there, and what an injected bug does there, is told apart from the stages'.
  const stageDepartures = test.vm.pgt.bugDepartures;
  const stageViolations = checkers?.violations.length ?? 0;
  const after = "after the timed stages";
  freeWatched(test.vm, after);
  return {
    kernel: config.kernel,
    backing: config.backing,
    vcpus: config.vcpus,
    mem_bytes: test.size,
    gpa: test.slot.gpa,
    guest_mode: config.guestMode ?? DEFAULT_GUEST_MODE.id,
    ipa_bits: test.vm.geo.ipaBits,
    profile: profile.name,
    release_order: order,
    stages,
    ...(config.inject === undefined
      ? {}
      : {
          injected_bug: {
            name: config.inject,
            departures: stageDepartures,
            teardown_departures: test.vm.pgt.bugDepartures - stageDepartures,
          },
        }),
    ...(checkers !== null
      ? {
          check: {
            checkers: [...check!.checks],
            found: checkers.found,
            violations: checkers.violations.map((v, i) => (i < stageViolations ? v : inTeardown(v, after))),
          },
        }
      : {}),
  };
}

/** Guest accesses all vCPUs make in `stage` (for progress). */
function expectedAccesses(t: PageTableTest, stage: TestStage): number {
  const large = t.size / t.largePage;
  const perVcpu =
    stage === "KVM_CREATE_MAPPINGS"
      ? large
      : stage === "KVM_UPDATE_MAPPINGS"
        ? t.anonymous
          ? t.size / t.hostPage
          : large * (1 + Math.floor(t.largePage / t.hostPage / 2))
        : t.size / t.hostPage;
  return perVcpu * t.config.vcpus;
}

/** The error of a stage whose virtual time has passed `ps`, beyond the exact range of its clock. */
function tooLong(stage: TestStage, ps: number): S2simError {
  return new S2simError(
    "too-long",
    `${stage} passed the 2.5 simulated hours (2^53 ps) within which the simulator's virtual time is ` +
      `exact (stopped at ${((ps * PS) / 3600).toFixed(1)} hours): use a smaller -b, or smaller costs`,
  );
}

function runStage(
  test: PageTableTest,
  machine: SimMachine,
  stage: TestStage,
  release: readonly number[],
  onProgress: (n: number) => void,
): { report: SimStageReport; finishPs: readonly number[] } {
  const vm = test.vm;
  test.prepareStage(stage);
  const meter = machine.meter;
  const count0 = Float64Array.from(meter.count);
  const time0 = Float64Array.from(meter.time);
  const stats0 = vm.faultStats.snapshot();
  const tables0 = vm.pgt.tablesInstalled;
  const hitRuns0 = machine.path.hitRunAccesses;
  const flowRuns0 = machine.path.flowRunAccesses;
  let accesses = 0;
  const tick = (n: number): void => {
    const before = accesses;
    accesses += n;
    if (Math.floor(accesses / 65536) === Math.floor(before / 65536)) return;
    onProgress(accesses);
    // Past the exact range already: stop now rather than at the stage's end, hours of host time later.
    const now = machine.now();
    if (now > Number.MAX_SAFE_INTEGER) throw tooLong(stage, now);
  };
  const streams = vm.vcpus.map((v) => test.cursor(v, stage));
  const chunk = test.config.timelineChunk;
  const recorder =
    chunk !== undefined && stage === "KVM_CREATE_MAPPINGS"
      ? new TimelineRecorder(vm, machine, test.slot.gpa, test.size, chunk)
      : null;
  recorder?.start();
  const limit = test.config.traceEvents;
  const tracer = limit !== undefined ? new EventTraceRecorder(vm, machine, limit) : null;
  tracer?.start();
  let timeline: StageTimeline | undefined;
  let trace: StageTrace | undefined;
  let run: ReturnType<SimMachine["run"]>;
  try {
    run = machine.run(streams, tick, release);
  } finally {
    timeline = recorder?.finish();
    trace = tracer?.finish();
  }
  // Virtual time is integer picoseconds in doubles: exact up to 2^53 ps, about 2.5 simulated hours.
  if (run.elapsedPs > Number.MAX_SAFE_INTEGER) throw tooLong(stage, run.elapsedPs);
  onProgress(accesses);
  const dCount = (item: WorkItem): number => meter.count[W[item]]! - count0[W[item]]!;
  const fc: FaultCounts = vm.faultStats.since(stats0);
  const lock = run.engine.lockStats(vm.mmuLock);
  const n = vm.vcpus.length;
  const total = run.elapsedPs * n;
  const attribution: TimeShare[] = CATEGORIES.map(([category, items]) => {
    let t = 0;
    for (const it of items) t += meter.time[W[it]]! - time0[W[it]]!;
    return { category, vcpu_s: t * PS, share: total > 0 ? t / total : 0 };
  });
  const waits = run.engine.waitByKind();
  // Before its release and after its last access a vCPU does nothing.
  const idle = run.finishPs.reduce((a, f, i) => a + (run.elapsedPs - f) + run.startPs[i]!, 0);
  // Spinlock waits: mmu_lock's, and the rest (the host's PTE-page locks, the hugetlb fault mutex).
  const otherSpin = waits.spinlock - lock.waitPs;
  attribution.push(
    {
      category: "spinning on mmu_lock",
      vcpu_s: lock.waitPs * PS,
      share: total > 0 ? lock.waitPs / total : 0,
    },
    {
      category: "spinning on host locks",
      vcpu_s: otherSpin * PS,
      share: total > 0 ? otherSpin / total : 0,
    },
    {
      category: "sleeping on host page locks",
      vcpu_s: waits.mutex * PS,
      share: total > 0 ? waits.mutex / total : 0,
    },
    { category: "not started or already done", vcpu_s: idle * PS, share: total > 0 ? idle / total : 0 },
  );
  const freed = dCount("table-free");
  const report: SimStageReport = {
    name: stage,
    simulated_s: run.elapsedPs * PS,
    accesses,
    faults: fc.faults,
    s1ptw_faults: fc.s1ptw,
    maps: fc.actions["map"] ?? 0,
    relaxes: fc.actions["relax"] ?? 0,
    retries: fc.actions["retry"] ?? 0,
    eagain: (fc.eagain["map"] ?? 0) + (fc.eagain["relax"] ?? 0),
    tlbi: { ipa: dCount("tlbi-ipa"), vmid: dCount("tlbi-vmid") },
    cmo_bytes: {
      dcache: dCount("dc-civac-line") * vm.cpu.dcacheLine,
      icache: dCount("ic-ivau-line") * vm.cpu.icacheLine,
    },
    mmu_lock: {
      acquisitions: lock.acquisitions,
      contended: lock.contended,
      wait_s: lock.waitPs * PS,
      hold_s: lock.holdPs * PS,
    },
    host: {
      faults: dCount("host-fault"),
      page_allocs: dCount("page-alloc"),
      zeroed_bytes: dCount("zero-byte"),
    },
    table_pages: { allocated: vm.pgt.tablesInstalled - tables0, freed },
    attribution,
    vcpu_start_s: run.startPs.map((t) => t * PS),
    vcpu_done_s: run.finishPs.map((f) => f * PS),
    engine_steps: run.steps,
    fast_forward_leaves: machine.periodsSkipped,
    hit_run_accesses: machine.path.hitRunAccesses - hitRuns0,
    flow_run_accesses: machine.path.flowRunAccesses - flowRuns0,
    ...(test.config.stateDigest === true ? { state_digest: machine.stateDigest() } : {}),
    ...(timeline !== undefined ? { timeline } : {}),
    ...(trace !== undefined ? { trace } : {}),
  };
  return { report, finishPs: run.finishPs };
}
