/**
 * `s2sim reproduce`: the series' published comparison. Runs the cover letter's three selftest
 * command lines on both kernels (v5.12 = before, v5.14 = after) on the simulated machine of a cost
 * profile, six simulations in parallel on worker threads (`--src` picks fewer command lines), and
 * prints the cover letter's table with the model's predictions, their deviations and the gains
 * next to the published figures.
 */
import { availableParallelism } from "node:os";
import { S2simError } from "../common/error.js";
import { printable, sizeName } from "../common/format.js";
import type { KernelVersion } from "../pgtable/kernel.js";
import type { PageTableTestConfig, TestStage } from "../workloads/page-table-test.js";
import { cleaningShare, type SimReport } from "../workloads/page-table-sim.js";
import { pageTableTestFootprint } from "../workloads/memory-estimate.js";
import type { CostProfile } from "../sim/profile.js";
import { parseReleaseOrder, type ReleaseOrder } from "../workloads/release-order.js";
import {
  HOST_PAGE,
  backingPageSize,
  columns,
  humanBytes,
  overridesText,
  parseMemScale,
  parseSeed,
  pct,
  signed,
  loadProfileOption,
  releaseOrderText,
  seconds,
  share,
} from "./options.js";
import { type CpuChoice, cpuNotes, cpuVmOptions, parseCpu } from "./cpu.js";
import { checkMemory, memoryBudget } from "./memory.js";
import { simProgress } from "./progress.js";
import { PUBLISHED, PUBLISHED_SOURCE, type PublishedRun } from "./published.js";
import {
  changedMachineWarnings,
  checkHtmlPath,
  profileInput,
  htmlStageRows,
  pageWrittenLine,
  reproduceHtml,
  reproduceSweepHtml,
  shortStage,
  writeHtml,
} from "./html-report.js";
import { MAX_WORKERS, type PoolResult, runPool, workersThatFit } from "./sim-pool.js";
import { parseSweep, type Sweep, sweepJson, type SweepPoint, valueCell } from "./sweep.js";

/** The command's options as commander hands them over. */
export interface ReproduceOptions {
  json?: boolean;
  profile?: string;
  memScale?: string;
  /** Comma-separated `-s` values of the command lines to run (default: all three). */
  src?: string;
  /** How the vCPUs start each stage (default fifo: the selftest's order). */
  releaseOrder?: string;
  seed?: string;
  maxMemory?: string;
  /** `--set name=value[unit]` changes to the profile, in order. */
  set?: string[];
  /** Give the CPU FEAT_S2FWB (the published machine has none): the same as `--cpu fwb`. */
  fwb?: boolean;
  /** `--cpu`: CPU features changed from the profile's machine. */
  cpu?: string;
  /** `--html <file>`: also write the report as a web page with charts there. */
  html?: string;
  /** `--sweep name=v1,v2,...`: the whole table once per value of one profile parameter. */
  sweep?: string;
}

/** One row of `--json`: one stage of one run on one kernel. */
export interface ReproduceRow {
  readonly src: string;
  readonly vcpus: number;
  /** `-b` as simulated (scaled by --mem-scale). */
  readonly mem: string;
  /** The stage as the selftest names it (the cover letter's KVM_REBUILD_BLOCKS is KVM_ADJUST_MAPPINGS). */
  readonly stage: TestStage;
  readonly kernel: KernelVersion;
  readonly simulated_s: number;
  readonly published_s: number;
}

/** One simulation to run. */
interface Job {
  readonly run: PublishedRun;
  readonly kernel: KernelVersion;
  readonly config: PageTableTestConfig;
  /** The profile it runs on: the loaded one, or with `--sweep` its value's. */
  readonly profile: CostProfile;
  /** Its `--sweep` value's index (0 without a sweep). */
  readonly valueIndex: number;
  /** Estimated guest accesses: the weight of this run in the overall progress. */
  readonly weight: number;
}

/**
 * How many of at most `workers` simulations may run at once: the most whose largest estimated
 * footprints fit in memory together. Refuses the runs before any starts if even the largest alone
 * does not fit (each worker thread has a heap of its own, so the heap limit bounds each run alone).
 */
function workersForJobs(jobs: readonly Job[], workers: number, maxMemory?: string): number {
  const needs = jobs
    .map((j) => pageTableTestFootprint(j.config, j.profile))
    .sort((a, b) => b.bytes - a.bytes);
  const budget = memoryBudget(maxMemory);
  const together = (n: number): number => needs.slice(0, n).reduce((a, f) => a + f.bytes, 0);
  const n = workersThatFit(
    needs.map((f) => f.bytes),
    budget.bytes,
    workers,
  );
  checkMemory(
    { bytes: together(n), heapBytes: Math.max(...needs.map((f) => f.heapBytes)) },
    budget,
    `reproduce (its largest simulation)`,
    // Scaling cannot help once every region is one backing page.
    jobs.every((j) => j.config.memBytes <= backingPageSize(j.config.backing))
      ? { nothingSmaller: "every region is already one backing page, as small as --mem-scale makes it" }
      : "use --mem-scale to make the regions smaller (the figures are then not comparable)",
  );
  return n;
}

/** One simulation of a reproduce run, as it came back. */
export interface ReproduceJob {
  readonly run: PublishedRun;
  readonly kernel: KernelVersion;
  readonly config: PageTableTestConfig;
  readonly report: SimReport;
  /** Host seconds from its worker's start to its report. */
  readonly host_s: number;
}

/** The table's rows and the simulations of one profile: the loaded one, or a `--sweep` value's. */
export interface ReproduceValue {
  /** The sweep's value, or null without a sweep. */
  readonly point: SweepPoint | null;
  readonly profile: CostProfile;
  readonly rows: readonly ReproduceRow[];
  readonly jobs: readonly ReproduceJob[];
}

/** What {@link simulateReproduce} did: the table's rows and each simulation. */
export interface ReproduceRun {
  /** The rows and simulations of the profile (the first value's, with `--sweep`). */
  readonly rows: readonly ReproduceRow[];
  readonly jobs: readonly ReproduceJob[];
  /** `--sweep`: what it swept, else null. */
  readonly sweep: Sweep | null;
  /** Per value swept, its rows and simulations (one, the profile's, without `--sweep`). */
  readonly values: readonly ReproduceValue[];
  /** Host seconds for the whole run. */
  readonly host_s: number;
  /** Simulations run at once (worker threads). */
  readonly workers: number;
  readonly profile: CostProfile;
  /** The CPU the simulations ran on (`--cpu`, `--fwb`). */
  readonly cpu: CpuChoice;
  /** The cover letter's command lines that ran. */
  readonly runs: readonly PublishedRun[];
  readonly memScale: number;
  readonly releaseOrder: ReleaseOrder;
  readonly seed: number;
  readonly scaledWarning: string | null;
}

/** Runs the six simulations and renders the comparison as text or JSON. */
export async function reproduceCommand(opts: ReproduceOptions): Promise<string> {
  // The bar appears once the simulations start (bad options are an error line without one).
  let started = false;
  // Set in the callback, which TypeScript's narrowing does not see.
  let bar = null as ReturnType<typeof simProgress>;
  let r: ReproduceRun;
  try {
    r = await simulateReproduce(opts, {
      onProgress: (overall, done, total) => {
        if (!started) {
          started = true;
          bar = simProgress(!opts.json, `0/${total} runs`);
        }
        bar?.update(overall, `${done}/${total} runs`);
      },
      // The text output carries the warning in its header; JSON readers get it on stderr, at once.
      onWarning: opts.json === true ? (w) => process.stderr.write(`s2sim: ${w}\n`) : undefined,
      // A page that could not be written is refused before the simulations, not after.
      beforeRun: () => {
        if (opts.html !== undefined) checkHtmlPath(opts.html, profileInput(opts.profile));
      },
    });
  } finally {
    bar?.stop();
  }
  if (r.sweep !== null) return sweepReport(r, r.sweep, opts);
  const { rows, host_s, releaseOrder, seed, profile, scaledWarning, cpu } = r;
  const reports = jobReports(r.jobs);
  const text = renderText(rows, {
    runs: r.runs,
    machine: profile.machine,
    profile: profile.name,
    overrides: overridesText(profile),
    cpu,
    scaledWarning,
    host_s,
    workers: r.workers,
    releaseOrder,
    seed,
    reports,
  });
  if (opts.html !== undefined) {
    writeHtml(opts.html, reproduceHtml(htmlStageRows(r.runs, rows, reports), text, pageWarnings(r)));
  }
  if (opts.json) {
    return JSON.stringify({ rows, host_s, ...runDifferences(r, profile) }, null, 2);
  }
  return opts.html === undefined ? text : `${text}\n${pageWrittenLine(opts.html)}`;
}

/** A run's JSON fields that say how it differs from the published runs (none when it does not). */
function runDifferences(r: ReproduceRun, profile: CostProfile): Record<string, unknown> {
  return {
    ...(r.memScale === 1 ? {} : { mem_scale: r.memScale }),
    // Only off the selftest's order, as --mem-scale: a row set to compare with another.
    ...(r.releaseOrder === "fifo" ? {} : { release_order: r.releaseOrder, seed: r.seed }),
    ...(profile.overrides.length === 0 ? {} : { profile_overrides: profile.overrides }),
    ...(r.cpu.changes.length === 0 ? {} : { cpu_changes: r.cpu.changes }),
    ...(r.cpu.cpu.fwb ? { fwb: true } : {}),
  };
}

/** The command lines' backings as a chart's legend names them. */
const SHORT_SRC: Readonly<Record<string, string>> = {
  anonymous: "anon",
  anonymous_thp: "THP",
  anonymous_hugetlb_1gb: "hugetlb 1G",
};

/**
 * `reproduce --sweep`: a summary of the bands' verdict per value, then each value's table (the
 * heading once), as text, JSON (`{"sweep", "runs": [{"value", "rows", ...}], "host_s"}`) or a page
 * whose chart is each row's deviation from its published time against the value.
 */
function sweepReport(r: ReproduceRun, sweep: Sweep, opts: ReproduceOptions): string {
  const values = sweptValues(r);
  // The page, with the text report on it, whatever is printed.
  const text = opts.json === true && opts.html === undefined ? "" : reproduceSweepText(r, sweep);
  if (opts.html !== undefined) {
    const src = PUBLISHED_SOURCE;
    const lines = r.runs.flatMap((run) =>
      run.stages.flatMap((p) =>
        [src.before, src.after].map((kernel) => ({
          label: `${SHORT_SRC[run.src] ?? run.src} ${shortStage(p.label)} ${kernel}`,
          deviations: values.map((v) => {
            const row = v.rows.find((x) => x.src === run.src && x.stage === p.stage && x.kernel === kernel)!;
            return row.simulated_s / row.published_s - 1;
          }),
        })),
      ),
    );
    const chart = {
      parameter: sweep.parameter,
      values: sweep.points.map((p) => p.label),
      lines,
      band: TIME_BAND,
    };
    writeHtml(opts.html, reproduceSweepHtml(chart, text, pageWarnings(r)));
  }
  if (opts.json === true) {
    return JSON.stringify(
      {
        sweep: sweepJson(sweep),
        runs: values.map((v) => ({ value: v.point.label, rows: v.rows, ...runDifferences(r, v.profile) })),
        host_s: r.host_s,
      },
      null,
      2,
    );
  }
  return opts.html === undefined ? text : `${text}\n${pageWrittenLine(opts.html)}`;
}

/** A sweep's values, each with its point. */
function sweptValues(r: ReproduceRun): Array<ReproduceValue & { readonly point: SweepPoint }> {
  return r.values.map((v) => {
    if (v.point === null) throw new Error("a reproduce value without its sweep point");
    return { ...v, point: v.point };
  });
}

/** What a page says in red of a run's figures: scaled regions, a changed profile or CPU. */
function pageWarnings(r: ReproduceRun): string[] {
  return [
    ...(r.scaledWarning === null ? [] : [r.scaledWarning]),
    ...changedMachineWarnings(overridesText(r.profile), r.cpu.changes),
  ];
}

/** The simulations' reports, as the text's and the page's tables of what the stages did take them. */
function jobReports(
  jobs: readonly ReproduceJob[],
): Array<{ src: string; kernel: KernelVersion; report: SimReport }> {
  return jobs.map((j) => ({ src: j.run.src, kernel: j.kernel, report: j.report }));
}

/** `reproduce --sweep`'s text: the verdict per value, then each value's table (exported for tests). */
export function reproduceSweepText(r: ReproduceRun, sweep: Sweep): string {
  const values = sweptValues(r);
  const simulations = values.reduce((a, v) => a + v.jobs.length, 0);
  const notes = publishedNotes(r.runs);
  const base = {
    runs: r.runs,
    machine: r.profile.machine,
    profile: r.profile.name,
    overrides: overridesText(r.profile),
    cpu: r.cpu,
    scaledWarning: r.scaledWarning,
    workers: r.workers,
    releaseOrder: r.releaseOrder,
    seed: r.seed,
  };
  // A verdict per value only where the runs are the published ones (unscaled, on their CPU).
  const judged = r.scaledWarning === null && r.cpu.changes.length === 0;
  const summary = judged
    ? columns(
        [
          [
            sweep.parameter,
            `times within ±${TIME_BAND * 100} %`,
            `gains within ±${GAIN_BAND * 100} points`,
            "anonymous UPDATE gain",
          ],
          ...values.map((v) => {
            const d = verdict(v.rows, r.runs);
            return [
              valueCell(v.point),
              `${d.times - d.timesOut.length} of ${d.times}`,
              `${d.gains - d.gainsOut.length} of ${d.gains}`,
              Number.isNaN(d.anonUpdateGain) ? "-" : pct(d.anonUpdateGain),
            ];
          }),
        ],
        [false, true, true, true],
      )
    : [
        `  No verdict per value: ${r.scaledWarning === null ? "the CPU was changed" : "the regions were scaled"}.`,
      ];
  return [
    ...heading(base),
    `${sweep.parameter} swept over ${sweep.points.map((p) => p.label).join(", ")} (the profile's: ${sweep.profileValue}); ` +
      `every other cost as the profile${sweep.otherChanges ? " with the --set changes above" : ""}. Per value:`,
    ...summary,
    ...values.flatMap((v) => [
      "",
      `=== ${sweep.parameter} ${valueCell(v.point)} ===`,
      renderText(v.rows, { ...base, headless: true, reports: jobReports(v.jobs) }),
    ]),
    "",
    // The notes on the published figures, once for every value.
    ...notes.lines,
    ...notes.after,
    hostTimeLine(r.host_s, simulations, r.workers),
  ].join("\n");
}

/**
 * What the simulated stages did that makes the gains: per stage, before and after the series, the
 * D-cache the CPUs cleaned to the PoC, and the time the cleaning took against the stage's (it runs
 * under mmu_lock, so where it is most of the stage, the stage is the cleaning).
 */
function mechanismTable(
  runs: readonly PublishedRun[],
  reports: ReadonlyArray<{ src: string; kernel: KernelVersion; report: SimReport }>,
): string[] {
  const src = PUBLISHED_SOURCE;
  const table: string[][] = [
    ["command line", "stage", "D-cache cleaned", "", "cleaning / stage time", ""],
    ["", "", "before", "after", "before", "after"],
  ];
  for (const run of runs) {
    const of = (kernel: KernelVersion): SimReport | undefined =>
      reports.find((r) => r.src === run.src && r.kernel === kernel)?.report;
    const before = of(src.before);
    const after = of(src.after);
    if (before === undefined || after === undefined) continue;
    const mem = sizeName(before.mem_bytes);
    run.stages.forEach((p, k) => {
      const b = before.stages.find((s) => s.name === p.stage);
      const a = after.stages.find((s) => s.name === p.stage);
      if (b === undefined || a === undefined) return;
      table.push([
        k > 0 ? "" : run.mem === mem ? run.cmdline : `${run.cmdline} [-b ${mem}]`,
        p.label,
        humanBytes(b.cmo_bytes.dcache),
        humanBytes(a.cmo_bytes.dcache),
        share(cleaningShare(b)),
        share(cleaningShare(a)),
      ]);
    });
  }
  return [
    "What the simulated stages did: the D-cache cleaned to the PoC (DC CIVAC), and the CPU time the",
    "cleaning took against the stage's time (it runs under mmu_lock: near 100 %, the stage is the cleaning):",
    ...columns(table, [false, false, true, true, true, true], ""),
  ];
}

/** What {@link simulateReproduce} tells its caller while it runs. */
export interface ReproduceHooks {
  /** The share of the work done, the simulations finished and their number. */
  readonly onProgress?: (overall: number, done: number, total: number) => void;
  /** A warning about the run (--mem-scale), before the simulations start. */
  readonly onWarning?: ((text: string) => void) | undefined;
  /** Called once the options are read and the run fits, before the simulations start. */
  readonly beforeRun?: () => void;
}

/**
 * Runs the cover letter's simulations `opts` selects on worker threads (reproduce without the
 * rendering; the benchmark uses it too).
 */
export async function simulateReproduce(
  opts: Omit<ReproduceOptions, "json">,
  hooks: ReproduceHooks = {},
): Promise<ReproduceRun> {
  const started = performance.now();
  const memScale = opts.memScale === undefined ? 1 : parseMemScale(opts.memScale);
  // Loaded once, here: a bad profile is one error line before any worker starts, and the
  // workers take it as loaded.
  const profile = loadProfileOption(opts.profile, opts.set ?? []);
  const sweep = opts.sweep === undefined ? null : parseSweep(opts.sweep, profile);
  const points: ReadonlyArray<SweepPoint | null> = sweep === null ? [null] : sweep.points;
  const runs = selectRuns(opts.src);
  const releaseOrder = parseReleaseOrder(opts.releaseOrder ?? "fifo");
  const seed = parseSeed(opts.seed ?? "1");
  const cpu = parseCpu(opts.cpu, opts.fwb);
  const kernels: KernelVersion[] = [PUBLISHED_SOURCE.before, PUBLISHED_SOURCE.after];
  const jobs: Job[] = points.flatMap((point, valueIndex) =>
    runs.flatMap((run) => {
      const page = backingPageSize(run.src);
      const memBytes = Math.ceil((run.memBytes * memScale) / page) * page;
      return kernels.map((kernel) => ({
        run,
        kernel,
        profile: point?.profile ?? profile,
        valueIndex,
        config: {
          kernel,
          backing: run.src,
          memBytes,
          vcpus: run.vcpus,
          releaseOrder,
          seed,
          ...cpuVmOptions(cpu),
        },
        weight: expectedAccesses(memBytes, page, run.vcpus),
      }));
    }),
  );
  const scaledWarning =
    memScale === 1
      ? null
      : `WARNING: --mem-scale ${printable(opts.memScale!.trim())} multiplies every -b by ${memScale} (rounded up to the backing ` +
        "page size): the simulated figures are NOT comparable to the published ones.";

  if (scaledWarning !== null) hooks.onWarning?.(scaledWarning);

  // As many at once as there are cores, and as fit in memory.
  const workers = workersForJobs(
    jobs,
    Math.min(availableParallelism(), MAX_WORKERS, jobs.length),
    opts.maxMemory,
  );

  hooks.beforeRun?.();
  const done = await runAll(jobs, workers, (overall, n) => hooks.onProgress?.(overall, n, jobs.length));
  const host_s = (performance.now() - started) / 1000;

  const values = points.map((point, valueIndex): ReproduceValue => {
    const mine = jobs.flatMap((job, i) => (job.valueIndex === valueIndex ? [{ job, done: done[i]! }] : []));
    const rows: ReproduceRow[] = [];
    for (const { job, done: d } of mine) {
      for (const p of job.run.stages) {
        const stage = d.report.stages.find((s) => s.name === p.stage);
        if (!stage) throw new Error(`the runner reported no ${p.stage} stage`);
        rows.push({
          src: job.run.src,
          vcpus: job.run.vcpus,
          mem: sizeName(job.config.memBytes),
          stage: p.stage,
          kernel: job.kernel,
          simulated_s: stage.simulated_s,
          published_s: job.kernel === PUBLISHED_SOURCE.before ? p.before_s : p.after_s,
        });
      }
    }
    // Rows in the cover letter's order: command line, stage, then before and after.
    rows.sort((a, b) => order(a) - order(b));
    return {
      point,
      profile: point?.profile ?? profile,
      rows,
      jobs: mine.map(({ job, done: d }) => ({
        run: job.run,
        kernel: job.kernel,
        config: job.config,
        report: d.report,
        host_s: d.host_s,
      })),
    };
  });
  return {
    rows: values[0]!.rows,
    jobs: values[0]!.jobs,
    sweep,
    values,
    host_s,
    workers,
    profile,
    cpu,
    runs,
    memScale,
    releaseOrder,
    seed,
    scaledWarning,
  };
}

/**
 * The cover-letter command lines `--src` names (comma-separated `-s` values, each at most once), in
 * the cover letter's order; all of them without `--src`.
 */
export function selectRuns(src: string | undefined): readonly PublishedRun[] {
  if (src === undefined) return PUBLISHED;
  const known = PUBLISHED.map((r) => r.src);
  const wanted = src.split(",").map((s) => s.trim());
  for (const s of wanted) {
    if (!known.includes(s)) {
      throw new S2simError(
        "bad-option",
        `--src: "${s}" is not one of the cover letter's command lines (${known.join(", ")})`,
      );
    }
  }
  if (new Set(wanted).size !== wanted.length)
    throw new S2simError("bad-option", `--src: "${src}" names a run twice`);
  return PUBLISHED.filter((r) => wanted.includes(r.src));
}

/** Sort key of a row: the cover letter's order, before then after. */
function order(r: ReproduceRow): number {
  const run = PUBLISHED.findIndex((p) => p.src === r.src);
  const stage = PUBLISHED[run]!.stages.findIndex((s) => s.stage === r.stage);
  return run * 100 + stage * 10 + (r.kernel === PUBLISHED_SOURCE.before ? 0 : 1);
}

/** Guest accesses all vCPUs make over the three stages (spec 9.2), for progress weights. */
function expectedAccesses(size: number, large: number, vcpus: number): number {
  const blocks = size / large;
  const create = blocks;
  const update = large === HOST_PAGE ? blocks : blocks * (1 + large / 2 / HOST_PAGE);
  const adjust = size / HOST_PAGE;
  return (create + update + adjust) * vcpus;
}

/**
 * Runs every job on the worker pool, at most `workers` at a time: those with the most vCPUs
 * first, then the heaviest (by weight). Guest accesses say little of a run's host time: the
 * fast-forward and the access runs make most of the large-page runs' accesses nearly free, while
 * every access of a run with many vCPUs racing over small pages is simulated (BENCHMARKS.md,
 * sixth round: anonymous 1G x 80 took 64-90 s, hugetlb 20G x 40 18 s), so this starts the longest
 * first, and the last to start ends about when the others do. The reports come back in job order.
 */
function runAll(
  jobs: readonly Job[],
  workers: number,
  onProgress: (overall: number, done: number) => void,
): Promise<PoolResult[]> {
  const order = jobs
    .map((_, i) => i)
    .sort((a, b) => jobs[b]!.run.vcpus - jobs[a]!.run.vcpus || jobs[b]!.weight - jobs[a]!.weight || a - b);
  const poolJobs = jobs.map((j) => ({
    config: j.config,
    profile: j.profile,
    name: `${j.run.cmdline} on ${j.kernel}`,
    weight: j.weight,
  }));
  return runPool(poolJobs, order, workers, { onProgress });
}

/** (before - after) / before */
function gain(before: number, after: number): number {
  return before > 0 ? (before - after) / before : NaN;
}

/** The acceptance bands: a stage time within ±10 % of the published one, a gain within ±5 points. */
const TIME_BAND = 0.1;
const GAIN_BAND = 0.05;
/** And the anonymous UPDATE gain below 6 % (the series changes no CMO work there). */
const ANON_UPDATE_GAIN_MAX = 0.06;
/** Slack for the float error of a ratio, so that a figure exactly on a band's edge is inside. */
const EDGE = 1e-12;

/** How many of a table's times and gains are inside the acceptance bands, and which are not. */
export interface Verdict {
  readonly times: number;
  /** "anonymous CREATE after +19.19 %" for each time outside its band. */
  readonly timesOut: readonly string[];
  readonly gains: number;
  readonly gainsOut: readonly string[];
  /** The anonymous UPDATE gain (NaN when that command line did not run). */
  readonly anonUpdateGain: number;
}

/** The bands' verdict on `rows`, the simulated stages of command lines `runs`. */
export function verdict(rows: readonly ReproduceRow[], runs: readonly PublishedRun[]): Verdict {
  const src = PUBLISHED_SOURCE;
  const timesOut: string[] = [];
  const gainsOut: string[] = [];
  let times = 0;
  let gains = 0;
  let anonUpdateGain = Number.NaN;
  for (const run of runs) {
    for (const p of run.stages) {
      const find = (kernel: KernelVersion): number =>
        rows.find((r) => r.src === run.src && r.stage === p.stage && r.kernel === kernel)!.simulated_s;
      const before = find(src.before);
      const after = find(src.after);
      const simGain = gain(before, after);
      const diff = simGain - gain(p.before_s, p.after_s);
      const name = `${run.src} ${p.label}`;
      for (const [when, sim, pub] of [
        ["before", before, p.before_s],
        ["after", after, p.after_s],
      ] as const) {
        times++;
        if (!(Math.abs(sim / pub - 1) <= TIME_BAND + EDGE))
          timesOut.push(`${name} ${when} ${pct(sim / pub - 1)}`);
      }
      gains++;
      if (!(Math.abs(diff) <= GAIN_BAND + EDGE)) gainsOut.push(`${name} ${signed(diff * 100, 2)} pp`);
      if (run.src === "anonymous" && p.stage === "KVM_UPDATE_MAPPINGS") anonUpdateGain = simGain;
    }
  }
  return { times, timesOut, gains, gainsOut, anonUpdateGain };
}

/** What the text report says besides its rows. */
export interface RenderContext {
  /** The command lines that ran (default: all of the cover letter's). */
  runs?: readonly PublishedRun[];
  machine: string;
  profile: string;
  /** The profile's `--set` changes for people (overridesText), if any. */
  overrides?: string | null;
  /** The CPU, when `--cpu` or `--fwb` changed it. */
  cpu?: CpuChoice;
  scaledWarning: string | null;
  /** Host seconds of the run, for its last line (none for a sweep's value: the sweep has one at its end). */
  host_s?: number;
  workers: number;
  /** The vCPUs' start order when not the selftest's (fifo, the default). */
  releaseOrder?: ReleaseOrder;
  seed?: number;
  /** Each simulation's report, for the table of what the stages did (left out without them). */
  reports?: ReadonlyArray<{ src: string; kernel: KernelVersion; report: SimReport }>;
  /** Without the heading and the notes on the published figures: a sweep's values, which print them once. */
  headless?: boolean;
}

/** The report's last line: what the run took on the host. */
function hostTimeLine(host_s: number, simulations: number, workers: number): string {
  return `host time: ${host_s.toFixed(1)} s for ${simulations} simulations on ${workers} worker thread(s)`;
}

/** The text report's heading: the machine, the published source, the notation. */
function heading(ctx: RenderContext): string[] {
  const src = PUBLISHED_SOURCE;
  const out: string[] = [
    "s2sim reproduce: the cover letter's kvm_page_table_test runs, before (v5.12) and after (v5.14) the series",
    `Simulated seconds are model predictions for the profile's machine, not measurements.`,
    `  profile ${ctx.profile}: ${ctx.machine}`,
    ...(ctx.overrides ? [`  ${ctx.overrides}`] : []),
    ...(ctx.cpu === undefined ? [] : cpuNotes(ctx.cpu).map((n) => `  ${n}`)),
    `Published seconds: ${src.author}, "${src.title}", ${src.list}, ${src.date};`,
    `  ${src.note}; measured on a ${src.machine}, host kernel ${src.hostKernel}.`,
    `  before = ${src.before}, after = ${src.after}.`,
    "Stages are named as in the cover letter: KVM_REBUILD_BLOCKS = the selftest's KVM_ADJUST_MAPPINGS.",
    "dev = (simulated - published) / published; gain = (before - after) / before; diff = simulated gain - published gain.",
  ];
  if (ctx.releaseOrder !== undefined && ctx.releaseOrder !== "fifo") {
    out.push(
      `vCPUs released in ${releaseOrderText(ctx.releaseOrder)}, not the selftest's; seed ${ctx.seed ?? 1}.`,
    );
  }
  if (ctx.scaledWarning) out.push("", ctx.scaledWarning);
  out.push("");
  return out;
}

/** The notes on the published figures a table of command lines `runs` needs. */
interface PublishedNotes {
  /** A footnote's mark per stage whose printed gain is not its times' ("anonymous_thp KVM_CREATE_MAPPINGS"). */
  readonly marks: ReadonlyMap<string, string>;
  /** Those footnotes, under the table. */
  readonly lines: readonly string[];
  /** What closes the report: the simulated stage without a published figure. */
  readonly after: readonly string[];
}

function publishedNotes(runs: readonly PublishedRun[]): PublishedNotes {
  const marks = new Map<string, string>();
  const lines: string[] = [];
  for (const run of runs) {
    for (const p of run.stages) {
      const pubGain = gain(p.before_s, p.after_s);
      // Printed to the cover letter's precision, its figure and its times' differ.
      if (pct(pubGain) !== pct(p.gain_pct / 100)) {
        const mark = "*".repeat(lines.length + 1);
        marks.set(`${run.src} ${p.stage}`, mark);
        lines.push(
          `${mark} the cover letter prints ${pct(p.gain_pct / 100)} for ${run.src} ${p.label}; ` +
            `its own times give ${pct(pubGain)}, used here.`,
        );
      }
    }
  }
  const after = runs.some((r) => r.src === "anonymous")
    ? [
        "The anonymous run's KVM_ADJUST_MAPPINGS is simulated too but has no published figure " +
          "(see s2sim page-table-test -s anonymous).",
      ]
    : [];
  return { marks, lines, after };
}

/** The text report (exported for tests). */
export function renderText(rows: readonly ReproduceRow[], ctx: RenderContext): string {
  const runs = ctx.runs ?? PUBLISHED;
  const src = PUBLISHED_SOURCE;
  const out: string[] = ctx.headless === true ? [] : heading(ctx);

  const table: string[][] = [
    [
      "command line",
      "stage",
      "published before",
      "published after",
      "simulated before",
      "dev",
      "simulated after",
      "dev",
      "published gain",
      "simulated gain",
      "diff",
    ],
  ];
  const notes = publishedNotes(runs);
  const { times, timesOut, gains, gainsOut, anonUpdateGain } = verdict(rows, runs);
  for (const run of runs) {
    run.stages.forEach((p, k) => {
      const find = (kernel: KernelVersion): ReproduceRow =>
        rows.find((r) => r.src === run.src && r.stage === p.stage && r.kernel === kernel)!;
      const before = find(src.before).simulated_s;
      const after = find(src.after).simulated_s;
      const pubGain = gain(p.before_s, p.after_s);
      const simGain = gain(before, after);
      const scaledMem = find(src.before).mem;
      const cmd = k > 0 ? "" : run.mem === scaledMem ? run.cmdline : `${run.cmdline} [-b ${scaledMem}]`;
      const diff = simGain - pubGain;
      const mark = notes.marks.get(`${run.src} ${p.stage}`) ?? "";
      table.push([
        cmd,
        p.label,
        `${p.before_s.toFixed(2)} s`,
        `${p.after_s.toFixed(2)} s`,
        `${seconds(before)} s`,
        pct(before / p.before_s - 1, 1),
        `${seconds(after)} s`,
        pct(after / p.after_s - 1, 1),
        pct(pubGain) + mark,
        pct(simGain),
        Number.isFinite(diff) ? `${signed(diff * 100, 2)} pp` : "n/a",
      ]);
    });
  }
  out.push(...columns(table, [false, false, true, true, true, true, true, true, true, true, true], ""));
  if (ctx.reports !== undefined) out.push("", ...mechanismTable(runs, ctx.reports));
  const outside = (list: readonly string[]): string =>
    list.length > 0 ? ` (outside: ${list.join(", ")})` : "";
  const tail = [
    // A sweep prints them once, after its values.
    ...(ctx.headless === true ? [] : notes.lines),
    ...(ctx.scaledWarning
      ? []
      : ctx.cpu !== undefined && ctx.cpu.changes.length > 0
        ? [
            `No verdict against the published figures: the CPU they were measured on was changed (${ctx.cpu.changes.join(", ")}).`,
          ]
        : [
            ...(ctx.overrides
              ? ["With the profile changed by --set (a sensitivity run, not the profile's predictions):"]
              : []),
            `Times within ±${TIME_BAND * 100} % of the published ones: ${times - timesOut.length} of ${times}` +
              outside(timesOut),
            `Gains within ±${GAIN_BAND * 100} points of the published ones: ${gains - gainsOut.length} of ${gains}` +
              outside(gainsOut),
            ...(Number.isNaN(anonUpdateGain)
              ? []
              : [
                  `The anonymous KVM_UPDATE_MAPPINGS gain below ${ANON_UPDATE_GAIN_MAX * 100} %: ` +
                    `${pct(anonUpdateGain)}${anonUpdateGain < ANON_UPDATE_GAIN_MAX ? "" : " (not below)"}`,
                ]),
          ]),
    ...(ctx.headless === true ? [] : notes.after),
    ...(ctx.host_s === undefined ? [] : [hostTimeLine(ctx.host_s, 2 * runs.length, ctx.workers)]),
  ];
  if (tail.length > 0) out.push("", ...tail);
  return out.join("\n");
}
