/**
 * The simulator's benchmark: `s2sim reproduce` (the cover letter's three command lines on both
 * kernels, on worker threads) run in this process, timed: host wall and CPU seconds, peak
 * resident memory, and per simulation its host seconds, engine steps, stage-2 faults and guest
 * accesses, with the rates they make. Issue 4's limit is 150 s for the whole run, its goal 60 s.
 */
import { parseMemScale } from "../src/cli/options.js";
import { simulateReproduce, type ReproduceJob } from "../src/cli/reproduce.js";
import { sizeName } from "../src/common/format.js";

/** Issue 4's limit and goal for the whole reproduce on this 2-core machine, host seconds. */
const LIMIT_S = 150;
const GOAL_S = 60;

/** One simulation's figures. */
export interface ReproduceBenchJob {
  /** Its command line's backing (`-s`), kernel, vCPUs (`-v`) and region (`-b`, scaled). */
  readonly src: string;
  readonly kernel: string;
  readonly vcpus: number;
  readonly mem_bytes: number;
  /**
   * Its worker's host seconds, from the thread's start (module loading included, most of a tiny
   * run's time) to its report; other simulations ran meanwhile.
   */
  readonly host_s: number;
  /** Simulated seconds of its three stages. */
  readonly simulated_s: number;
  /**
   * Engine steps and guest aborts (stage-2 faults, S1PTW ones included) of its three stages. Both
   * count the periods the fast-forward skipped as if simulated (`fast_forward_leaves` says how
   * many leaves those periods installed), so their rates say how much work the run stands for,
   * not how fast the engine steps.
   */
  readonly engine_steps: number;
  readonly faults: number;
  readonly fast_forward_leaves: number;
  readonly accesses: number;
  /** engine_steps and faults per host second of its worker. */
  readonly steps_per_s: number;
  readonly faults_per_s: number;
}

/** What `bench reproduce` reports (the fastest of `runs`). */
export interface ReproduceBenchResult {
  readonly benchmark: "reproduce";
  /** --mem-scale as given, and its value (1: the published sizes). */
  readonly mem_scale_text: string | null;
  readonly mem_scale: number;
  readonly runs: number;
  /** Simulations run at once (worker threads). */
  readonly workers: number;
  readonly host_s: number;
  /** User + system CPU seconds of the process: the main thread and the worker threads. */
  readonly cpu_s: number;
  /** Peak resident memory of the process: its high-water mark over all the runs so far. */
  readonly peak_rss_bytes: number;
  /** Totals over the simulations (see {@link ReproduceBenchJob}: skipped periods included). */
  readonly engine_steps: number;
  readonly faults: number;
  /** The totals per CPU second. */
  readonly steps_per_cpu_s: number;
  readonly faults_per_cpu_s: number;
  /** Issue 4's limit and goal for the whole run at the published sizes, host seconds. */
  readonly limit_s: number;
  readonly goal_s: number;
  readonly jobs: readonly ReproduceBenchJob[];
}

/**
 * Runs reproduce `runs` (at least 1) times at --mem-scale `memScale` (null: none, the published
 * sizes) and keeps the fastest.
 */
export async function benchReproduce(opts: {
  runs: number;
  memScale: string | null;
}): Promise<ReproduceBenchResult> {
  if (opts.runs < 1) throw new RangeError("bench reproduce needs at least one run");
  let best: ReproduceBenchResult | null = null;
  for (let i = 0; i < opts.runs; i++) {
    const cpu = process.cpuUsage();
    const r = await simulateReproduce(opts.memScale === null ? {} : { memScale: opts.memScale });
    const used = process.cpuUsage(cpu);
    const cpuSeconds = (used.user + used.system) / 1e6;
    const jobs = r.jobs.map(jobFigures);
    const steps = jobs.reduce((a, j) => a + j.engine_steps, 0);
    const faults = jobs.reduce((a, j) => a + j.faults, 0);
    const result: ReproduceBenchResult = {
      benchmark: "reproduce",
      mem_scale_text: opts.memScale,
      mem_scale: opts.memScale === null ? 1 : parseMemScale(opts.memScale),
      runs: opts.runs,
      workers: r.workers,
      host_s: round3(r.host_s),
      cpu_s: round3(cpuSeconds),
      peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
      engine_steps: steps,
      faults,
      steps_per_cpu_s: Math.round(steps / cpuSeconds),
      faults_per_cpu_s: Math.round(faults / cpuSeconds),
      limit_s: LIMIT_S,
      goal_s: GOAL_S,
      jobs,
    };
    if (best === null || result.host_s < best.host_s) best = result;
  }
  return best!;
}

/** A simulation's totals over its three stages. */
function jobFigures(j: ReproduceJob): ReproduceBenchJob {
  const stages = j.report.stages;
  const sum = (f: (s: (typeof stages)[number]) => number): number => stages.reduce((a, s) => a + f(s), 0);
  const steps = sum((s) => s.engine_steps);
  const faults = sum((s) => Object.values(s.faults).reduce((a, n) => a + n, 0));
  return {
    src: j.run.src,
    kernel: j.kernel,
    vcpus: j.run.vcpus,
    mem_bytes: j.config.memBytes,
    host_s: round3(j.host_s),
    simulated_s: round3(sum((s) => s.simulated_s)),
    engine_steps: steps,
    faults,
    fast_forward_leaves: sum((s) => s.fast_forward_leaves),
    accesses: sum((s) => s.accesses),
    steps_per_s: Math.round(steps / j.host_s),
    faults_per_s: Math.round(faults / j.host_s),
  };
}

/** The text form. */
export function formatReproduce(r: ReproduceBenchResult): string {
  const mib = (b: number): string => `${Math.round(b / 2 ** 20)} MiB`;
  const m = (n: number): string => `${(n / 1e6).toFixed(2)} M`;
  // The limit and the goal are for the published sizes.
  const verdict =
    r.mem_scale !== 1
      ? "scaled: the limit and goal are for the published sizes"
      : `limit ${r.limit_s} s: ${r.host_s <= r.limit_s ? "met" : "NOT met"}; goal ${r.goal_s} s: ` +
        (r.host_s <= r.goal_s ? "met" : "not met");
  const lines = [
    `reproduce${r.mem_scale_text === null ? "" : ` at --mem-scale ${r.mem_scale_text}`}: ${r.host_s} s host wall ` +
      `(${verdict}), ${r.cpu_s} s CPU (all threads; ${r.workers} simulations at once), ` +
      `peak RSS ${mib(r.peak_rss_bytes)}, fastest of ${r.runs}`,
    `  ${m(r.engine_steps)} engine steps and ${m(r.faults)} stage-2 faults, the fast-forward's skipped ` +
      `periods included: ${m(r.steps_per_cpu_s)} steps and ${m(r.faults_per_cpu_s)} faults per CPU second`,
  ];
  for (const j of r.jobs) {
    lines.push(
      `  ${j.src} ${sizeName(j.mem_bytes)} x ${j.vcpus} ${j.kernel}: ${j.host_s} s host, ` +
        `${m(j.engine_steps)} steps, ${m(j.faults)} faults, ${m(j.accesses)} accesses, ` +
        `${m(j.fast_forward_leaves)} leaves fast-forwarded ` +
        `(${m(j.steps_per_s)} steps/s, ${m(j.faults_per_s)} faults/s)`,
    );
  }
  return lines.join("\n") + "\n";
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
