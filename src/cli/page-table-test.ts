/**
 * `s2sim page-table-test`: kvm_page_table_test (spec section 9.1) run on the simulated machine of a
 * cost profile. Takes the selftest's options, prints its lines, then per timed stage the
 * simulated time (a model prediction, labelled as such) and what the fault path did.
 */
import { availableParallelism } from "node:os";
import { hex, sizeName } from "../common/format.js";
import { parseCount, parseSize } from "../common/size.js";
import { AnswerWithStatus } from "./exit-status.js";
import { S2simError } from "../common/error.js";
import type { KernelVersion } from "../pgtable/kernel.js";
import type { PageTableTestConfig } from "../workloads/page-table-test.js";
import { parseReleaseOrder } from "../workloads/release-order.js";
import { TEST_HVA, TEST_STAGES } from "../workloads/page-table-test.js";
import {
  cleaningShare,
  type SimReport,
  type SimStageReport,
  simulatePageTableTest,
} from "../workloads/page-table-sim.js";
import type { StageTimeline } from "../workloads/timeline.js";
import type { StageTrace } from "../workloads/event-trace.js";
import { DEFAULT_GUEST_MODE, type GuestMode } from "../workloads/guest-modes.js";
import {
  type CheckOption,
  checkInjection,
  checkListText,
  checksOption,
  injectListText,
  kernelsOption,
  namingGuestMode,
  namingKernel,
} from "./check.js";
import { pageTableTestFootprint } from "../workloads/memory-estimate.js";
import {
  changedMachineWarnings,
  checkHtmlPath,
  type HtmlRun,
  pageTableTestHtml,
  pageWrittenLine,
  profileInput,
  shortStage,
  withPageOfViolation,
  withPageOfViolationAsync,
  writeHtml,
} from "./html-report.js";
import type { Footprint } from "../common/footprint.js";
import type { CostProfile } from "../sim/profile.js";
import { type Advice, heapLimit, type MemoryBudget, memoryBudget, memoryProblem } from "./memory.js";
import { simProgress } from "./progress.js";
import {
  backingPageSize,
  columns,
  count,
  humanBytes,
  overridesText,
  parseGpa,
  parseModes,
  parseSeed,
  pct,
  releaseOrderText,
  loadProfileOption,
  seconds,
  share,
  timespec,
} from "./options.js";
import { type CpuChoice, cpuNotes, cpuVmOptions, parseCpu } from "./cpu.js";
import { parseSweep, sweepJson, type SweepPoint, sweepText } from "./sweep.js";
import { MAX_WORKERS, type PoolJob, runPool, workersThatFit } from "./sim-pool.js";
import type { CheckName } from "../check/rules.js";
import type { ReleaseOrder } from "../workloads/release-order.js";

/** The command's options as commander hands them over (all strings until parsed). */
export interface PageTableTestOptions {
  /** Each `-m` given (repeatable, as in the selftest). */
  mode?: string[];
  mem: string;
  vcpus: string;
  src: string;
  gpa?: string;
  /** A kernel, or "both": v5.12 then v5.14, with a comparison of the two. */
  kernel: KernelVersion | "both";
  profile: string;
  releaseOrder: string;
  seed: string;
  json?: boolean;
  check?: CheckOption;
  inject?: string;
  timeline?: string;
  maxMemory?: string;
  /** `--fwb`: the same as `--cpu fwb`. */
  fwb?: boolean;
  /** `--cpu`: CPU features changed from the profile's machine. */
  cpu?: string;
  /** `--set name=value[unit]` changes to the profile, in order. */
  set?: string[];
  /** How many of the timed stages to run, from the first. */
  stages?: string;
  /** Check the options and say what the run would need, without running it. */
  dryRun?: boolean;
  /** Show each stage's first n events. */
  trace?: string;
  /** `--html <file>`: also write the report as a web page with charts there. */
  html?: string;
  /** `--sweep name=v1,v2,...`: the runs once per value of one profile parameter. */
  sweep?: string;
}

/** The runs of one guest mode: one report per kernel. */
interface ModeRuns {
  readonly mode: GuestMode;
  readonly reports: SimReport[];
}

/** Attribution rows below this share are left out of the text table. */
const MIN_SHARE = 0.001;

/** Runs the simulated selftest and renders it as text or JSON. */
export async function pageTableTestCommand(opts: PageTableTestOptions): Promise<string> {
  if (opts.inject === "list") return injectListText(opts.json);
  if (opts.check === "list") return checkListText(opts.json);
  const checks = checksOption(opts.check);
  const modes = parseModes(opts.mode);
  const memBytes = parseSize(opts.mem, "test memory size (-b)");
  if (memBytes === 0) throw new S2simError("bad-size", "test memory size (-b) must not be 0");
  const vcpus = parseCount(opts.vcpus, "vCPU count (-v)", 1, 512);
  // Each stage starts from the one before: the first n of them.
  const stageCount =
    opts.stages === undefined ? TEST_STAGES.length : parseCount(opts.stages, "stage count (--stages)", 1, 3);
  const pageSize = backingPageSize(opts.src);
  // With several modes, what does not fit one of them names it.
  const named = modes.length > 1;
  // -p is checked against the IPA space of each mode's VM (48 bits in modes 2 and 3).
  const gpaText = opts.gpa;
  const gpas = modes.map((mode) => ({
    mode,
    gpa: gpaText === undefined ? undefined : inMode(mode, named, () => parseGpa(gpaText, mode.paBits)),
  }));
  const seed = parseSeed(opts.seed);
  const releaseOrder = parseReleaseOrder(opts.releaseOrder);
  const cpu = parseCpu(opts.cpu, opts.fwb);
  const profile = loadProfileOption(opts.profile, opts.set);
  const timelineChunk =
    opts.timeline === undefined ? undefined : timelineOption(opts.timeline, pageSize, memBytes);
  const traceEvents =
    opts.trace === undefined
      ? undefined
      : parseCount(opts.trace, "event count (--trace)", 1, MAX_TRACE_EVENTS);
  const sweep = opts.sweep === undefined ? null : parseSweep(opts.sweep, profile);
  if (sweep !== null && (opts.timeline !== undefined || opts.trace !== undefined)) {
    throw new S2simError(
      "bad-sweep",
      `--sweep compares runs in a table; --${opts.timeline !== undefined ? "timeline" : "trace"} shows one run: give it without --sweep`,
    );
  }
  // The profiles the runs use: one, or one per value swept.
  const profiles = sweep === null ? [profile] : sweep.points.map((p) => p.profile);
  const kernels = kernelsOption(opts.kernel);
  // One configuration per guest mode, in the order the selftest runs them.
  const plans = gpas.map(({ mode, gpa }) => {
    const config: PageTableTestConfig = {
      kernel: kernels[0]!,
      backing: opts.src,
      guestMode: mode.id,
      memBytes,
      vcpus,
      releaseOrder,
      seed,
      ...(gpa === undefined ? {} : { gpa }),
      ...(opts.inject === undefined ? {} : { inject: opts.inject }),
      ...(timelineChunk === undefined ? {} : { timelineChunk }),
      ...(traceEvents === undefined ? {} : { traceEvents }),
      ...cpuVmOptions(cpu),
    };
    return { mode, config };
  });
  // Refused before anything is allocated if it cannot fit (an unknown bug is reported first).
  checkInjection(opts.inject, kernels, cpu);
  // The runs go one after the other (a --sweep's share worker threads as far as memory allows: see
  // there), so the peak is that of the mode whose runs need the most.
  // Estimating lays each mode's region out, which refuses one that does not fit the mode.
  const runs = modes.length * kernels.length;
  const needs = plans.flatMap(({ mode, config }) =>
    profiles.map((runProfile) => ({
      config,
      runProfile,
      need: inMode(mode, named, () => runsFootprint(config, runProfile, runs)),
    })),
  );
  const { config, runProfile: largest, need } = needs.reduce((a, b) => (b.need.bytes > a.need.bytes ? b : a));
  const budget = memoryBudget(opts.maxMemory);
  // The size as parsed, not as typed (which may carry spaces or control characters).
  const modeArgs =
    modes.length === 1 && modes[0]!.id === DEFAULT_GUEST_MODE.id ? [] : modes.map((m) => ` -m ${m.id}`);
  const what =
    `page-table-test${modeArgs.join("")} -s ${config.backing} ` +
    `-b ${sizeName(config.memBytes)} -v ${vcpus}` +
    (kernels.length > 1 ? " --kernel both" : "") +
    (sweep === null ? "" : ` --sweep ${sweep.parameter}=...`);
  const problem = memoryProblem(need, budget, what, () => smallerRun(config, largest, budget, pageSize));
  // A page that could not be written is refused before the simulations, not after (nor passed by
  // a dry run).
  if (opts.html !== undefined) checkHtmlPath(opts.html, profileInput(opts.profile));
  // A sweep's runs share worker threads: as many at once as the cores and the memory allow (each
  // needs a run's peak); with checkers one at a time, in order, so that the violation reported is
  // the first run's, as without --sweep.
  const sweepRuns = sweep === null ? 0 : sweep.points.length * plans.length * kernels.length;
  const sweepWorkers =
    sweep === null || checks !== null
      ? 1
      : workersThatFit(
          Array.from({ length: sweepRuns }, () => need.bytes),
          budget.bytes,
          Math.min(availableParallelism(), MAX_WORKERS),
        );
  if (opts.dryRun === true) {
    const pool = sweep === null ? null : { runs: sweepRuns, workers: sweepWorkers };
    return dryRun(what, need, budget, problem, opts.json === true, pool);
  }
  if (problem !== null) throw new S2simError("too-large", problem);
  const textContext = { opts, profile, cpu, releaseOrder, seed, pageSize, checks };
  const warnings = [
    ...changedMachineWarnings(overridesText(profile), cpu.changes),
    ...(opts.inject === undefined ? [] : [`The kernels run with the injected bug ${opts.inject}.`]),
  ];
  const setup = { backing: config.backing, vcpus, profile: profile.name };
  // Each run as it completes, named as the page names it: a checker may stop a later one.
  const completed: Array<HtmlRun & { readonly mode: GuestMode; readonly profile: CostProfile }> = [];
  // One run after the other (the peak is one run's): each mode in turn, and with --kernel both,
  // v5.12 then v5.14.
  const simulateAll = (runProfile: CostProfile): ModeRuns[] =>
    plans.map(({ mode, config: modeConfig }) => {
      const reports = kernels.map((kernel) => {
        // The run's name on the page, and in the progress bar as far as the command runs several.
        const runMode = named ? [`-m ${mode.id}`] : [];
        const name = [...runMode, kernel].join(" ");
        const barName = [...runMode, ...(kernels.length > 1 ? [kernel] : [])].join(" ");
        const label = (stage: string): string => (barName === "" ? "" : `${barName} `) + stage;
        const bar = simProgress(opts.json !== true, label(TEST_STAGES[0]));
        try {
          // With checkers the run stops at the first violation (a CheckFailure carrying the report).
          const report = namingGuestMode(mode.id, named, () =>
            namingKernel(kernel, kernels.length > 1, () =>
              simulatePageTableTest(
                { ...modeConfig, kernel },
                runProfile,
                bar === null ? undefined : (stage, fraction) => bar.update(fraction, label(stage)),
                stageCount,
                checks === null ? undefined : { checks, mode: "fail-fast" },
              ),
            ),
          );
          completed.push({ name, report, mode, profile: runProfile });
          return report;
        } finally {
          bar?.stop();
        }
      });
      return { mode, reports };
    });
  // The page a stopped run leaves: the runs before it, and the violation in red and in full.
  const pageOfViolation = (violation: string): string =>
    pageTableTestHtml(
      setup,
      completed,
      [
        ...completed.map((run) =>
          runText(run.report, { ...textContext, profile: run.profile, mode: run.mode }),
        ),
        violation,
      ].join("\n\n"),
      [
        ...warnings,
        `A checker found a violation, which stopped the run${completed.length > 0 ? "s" : ""} there (exit status 1): ` +
          "the report below ends with it.",
      ],
    );
  // What the JSON of each run adds to its report.
  const extras = (runProfile: CostProfile): Record<string, unknown> => ({
    seed,
    inject: opts.inject ?? null,
    fwb: cpu.cpu.fwb,
    cpu_changes: cpu.changes,
    profile_overrides: runProfile.overrides,
  });
  // One value's runs as JSON: what page-table-test prints for them without --sweep.
  const runsJson = (byMode: readonly ModeRuns[], runProfile: CostProfile): Record<string, unknown> => {
    const modeJson = (reports: readonly SimReport[]): Record<string, unknown> =>
      reports.length === 1
        ? { ...reports[0]!, ...extras(runProfile) }
        : {
            before: kernels[0],
            after: kernels[1],
            runs: reports.map((r) => ({ ...r, ...extras(runProfile) })),
            comparison: comparison(reports[0]!, reports[1]!),
          };
    return byMode.length === 1
      ? modeJson(byMode[0]!.reports)
      : { guest_modes: byMode.map(({ mode, reports }) => ({ guest_mode: mode.id, ...modeJson(reports) })) };
  };
  if (sweep !== null) {
    // One simulation per value, mode and kernel, in that order, on worker threads.
    const jobs = sweep.points.flatMap((point) =>
      plans.flatMap(({ mode, config: modeConfig }) =>
        kernels.map((kernel) => {
          const setting = `${sweep.parameter} ${point.label}`;
          const name = [setting, ...(named ? [`-m ${mode.id}`] : []), kernel].join(" ");
          const job: PoolJob = {
            config: { ...modeConfig, kernel },
            profile: point.profile,
            ...(stageCount === TEST_STAGES.length ? {} : { stageCount }),
            ...(checks === null ? {} : { checks }),
            name,
            weight: 1,
            names: {
              setting,
              ...(named ? { guestMode: mode.id } : {}),
              ...(kernels.length > 1 ? { kernel } : {}),
            },
          };
          return { point, mode, kernel, job };
        }),
      ),
    );
    const bar = simProgress(opts.json !== true, `0/${jobs.length} runs`);
    let reports: SimReport[];
    try {
      reports = await withPageOfViolationAsync(
        opts.html,
        async () =>
          (
            await runPool(
              jobs.map((j) => j.job),
              jobs.map((_, i) => i),
              sweepWorkers,
              {
                onProgress: (overall, done) => bar?.update(overall, `${done}/${jobs.length} runs`),
                // With checkers they finish in job order: the page of a violation shows those before it.
                onDone: (i, { report }) =>
                  completed.push({
                    name: jobs[i]!.job.name,
                    report,
                    mode: jobs[i]!.mode,
                    profile: jobs[i]!.point.profile,
                  }),
              },
            )
          ).map((r) => r.report),
        pageOfViolation,
      );
    } finally {
      bar?.stop();
    }
    // The page's runs in job order, whatever order they finished in.
    completed.length = 0;
    jobs.forEach(({ job, mode, point }, i) =>
      completed.push({ name: job.name, report: reports[i]!, mode, profile: point.profile }),
    );
    const reportOf = (point: SweepPoint, mode: GuestMode, kernel: KernelVersion): SimReport =>
      reports[jobs.findIndex((j) => j.point === point && j.mode === mode && j.kernel === kernel)]!;
    const results = sweep.points.map((point) => ({
      point,
      byMode: plans.map(({ mode }) => ({
        mode,
        reports: kernels.map((kernel) => reportOf(point, mode, kernel)),
      })),
    }));
    // An injected bug: whether each run reached it, as a run alone says.
    const bugLines = completed.flatMap(({ name, report }) => {
      const bug = report.injected_bug;
      return bug === undefined
        ? []
        : [`${name}: ${injectedBugLine(bug.name, bug.departures, bug.teardown_departures)}`];
    });
    const text = [
      sweepText(
        sweep,
        results,
        sweepHeading({ ...textContext, modes, memBytes: config.memBytes, vcpus, backing: config.backing }),
      ),
      ...(bugLines.length === 0 ? [] : [bugLines.join("\n")]),
    ].join("\n\n");
    if (opts.html !== undefined) {
      const lines = results[0]!.byMode.flatMap(({ mode }, m) =>
        kernels.flatMap((kernel, k) =>
          results[0]!.byMode[m]!.reports[k]!.stages.map((stage, i) => ({
            label: [...(named ? [`-m ${mode.id}`] : []), kernel, shortStage(stage.name)].join(" "),
            seconds: results.map((r) => r.byMode[m]!.reports[k]!.stages[i]!.simulated_s),
          })),
        ),
      );
      const htmlSweep = { parameter: sweep.parameter, values: sweep.points.map((p) => p.label), lines };
      writeHtml(opts.html, pageTableTestHtml(setup, completed, text, warnings, htmlSweep));
    }
    if (opts.json === true) {
      return JSON.stringify(
        {
          sweep: sweepJson(sweep),
          runs: results.map(({ point, byMode }) => ({
            value: point.label,
            ...runsJson(byMode, point.profile),
          })),
        },
        null,
        2,
      );
    }
    return opts.html === undefined ? text : `${text}\n\n${pageWrittenLine(opts.html)}`;
  }
  const byMode = withPageOfViolation(opts.html, () => simulateAll(profile), pageOfViolation);
  // The text report, made once: printed, or put on the page, or both.
  const text =
    opts.json === true && opts.html === undefined
      ? ""
      : byMode
          .map(({ mode, reports }) => {
            const texts = reports.map((report) => runText(report, { ...textContext, mode }));
            return reports.length === 1
              ? texts[0]!
              : [...texts, comparisonText(reports[0]!, reports[1]!)].join("\n\n");
          })
          .join("\n\n");
  if (opts.html !== undefined) writeHtml(opts.html, pageTableTestHtml(setup, completed, text, warnings));
  if (opts.json) return JSON.stringify(runsJson(byMode, profile), null, 2);
  return opts.html === undefined ? text : `${text}\n\n${pageWrittenLine(opts.html)}`;
}

/**
 * Runs `check`, a step of guest mode `mode`'s setup; with several modes (`named`) an S2simError it
 * throws names the mode (what fits one mode's IPA space may not fit another's).
 */
function inMode<T>(mode: GuestMode, named: boolean, check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (named && err instanceof S2simError) {
      throw new S2simError(err.code, `guest mode ${mode.id} (${mode.paBits}-bit PA): ${err.message}`);
    }
    throw err;
  }
}

/** What {@link runText} needs besides the report: the parsed options. */
interface RunTextContext {
  readonly opts: PageTableTestOptions;
  readonly profile: CostProfile;
  readonly cpu: CpuChoice;
  readonly releaseOrder: ReleaseOrder;
  readonly seed: number;
  readonly mode: GuestMode;
  readonly pageSize: number;
  readonly checks: ReadonlySet<CheckName> | null;
}

/** What a sweep's heading says of the runs besides {@link RunTextContext}'s. */
interface SweepHeadingContext extends Omit<RunTextContext, "mode"> {
  readonly modes: readonly GuestMode[];
  readonly backing: string;
  readonly memBytes: number;
  readonly vcpus: number;
}

/** The lines heading a `--sweep`'s tables: the runs' options and machine. */
function sweepHeading(ctx: SweepHeadingContext): string[] {
  const { opts, profile, cpu, releaseOrder, seed, checks } = ctx;
  const changes = overridesText(profile);
  return [
    `s2sim page-table-test: kvm_page_table_test with ${ctx.backing} memory, ${sizeName(ctx.memBytes)}, ` +
      `${ctx.vcpus} vCPUs, simulated once per value swept`,
    `profile ${profile.name}: ${profile.machine}`,
    ...(changes === null ? [] : [changes]),
    ...cpuNotes(cpu),
    `vCPUs released in ${releaseOrderText(releaseOrder)}; seed ${seed} (same seed, same result)`,
    ...ctx.modes.map((m) => `Testing guest mode: ${m.name}`),
    ...(opts.inject === undefined
      ? []
      : [`Injected bug: ${opts.inject}${checks === null ? " (no checkers: add --check to catch it)" : ""}`]),
    ...(checks === null ? [] : [`checkers ${[...checks].join(", ")}: no violation in any run`]),
  ];
}

/** One run's text: the selftest's lines, then each stage's block. */
function runText(report: SimReport, ctx: RunTextContext): string {
  const { opts, profile, cpu, releaseOrder, seed, mode, pageSize, checks } = ctx;
  const changes = overridesText(profile);
  const out: string[] = [
    `s2sim page-table-test: kvm_page_table_test on kernel ${report.kernel}, simulated`,
    `profile ${report.profile}: ${profile.machine}`,
    ...(changes === null ? [] : [changes]),
    ...cpuNotes(cpu),
    `vCPUs released in ${releaseOrderText(releaseOrder)}; seed ${seed} (same seed, same result)`,
    "Execution times below are model predictions for the profile's machine, not measurements.",
    "",
    `Testing guest mode: ${mode.name}`,
    `Testing memory backing src type: ${report.backing}`,
    `Testing memory backing src granularity: ${hex(pageSize)}`,
    `Testing memory size(aligned): ${hex(report.mem_bytes)}`,
    `Guest physical test memory offset: ${hex(report.gpa)}`,
    `Host  virtual  test memory offset: ${hex(TEST_HVA)}`,
    `Number of testing vCPUs: ${report.vcpus}`,
    ...(opts.inject === undefined
      ? []
      : [`Injected bug: ${opts.inject}${checks === null ? " (no checkers: add --check to catch it)" : ""}`]),
    "Started all vCPUs successfully",
  ];
  for (const stage of report.stages) {
    out.push("");
    for (const line of stageBlock(stage, report)) out.push(line);
  }
  const bug = report.injected_bug;
  if (bug !== undefined) out.push("", injectedBugLine(bug.name, bug.departures, bug.teardown_departures));
  if (report.check !== undefined) {
    out.push(
      "",
      `checkers ${report.check.checkers.join(", ")}: no violation in any stage, nor in kvm_vm_free after them`,
    );
  }
  return out.join("\n");
}

/**
 * The peak of `runs` runs of `config` one after the other: one run's, plus, for each run before
 * the last, the report it leaves while the next runs (its --trace lines and --timeline rows, the
 * part of a run's footprint those options add).
 */
function runsFootprint(config: PageTableTestConfig, profile: CostProfile, runs: number): Footprint {
  const one = pageTableTestFootprint(config, profile);
  const { traceEvents: trace, timelineChunk: chunk, ...bare } = config;
  if (runs === 1 || (trace === undefined && chunk === undefined)) return one;
  const plain = pageTableTestFootprint(bare, profile);
  const kept = (runs - 1) * (one.bytes - plain.bytes);
  const keptHeap = (runs - 1) * (one.heapBytes - plain.heapBytes);
  return { bytes: one.bytes + kept, heapBytes: one.heapBytes + keptHeap };
}

/** One stage of `--kernel both`'s comparison (JSON). */
interface StageComparison {
  readonly name: string;
  readonly before_s: number;
  readonly after_s: number;
  /** (before - after) / before, as in the cover letter. */
  readonly gain: number;
  readonly dcache_bytes_before: number;
  readonly dcache_bytes_after: number;
  /** The cleaning's CPU time against the stage's (cleaningShare; null for a stage of no time). */
  readonly cleaning_share_before: number | null;
  readonly cleaning_share_after: number | null;
}

/** The stages of two runs of the same options on two kernels, side by side. */
function comparison(before: SimReport, after: SimReport): StageComparison[] {
  return before.stages.map((b, i) => {
    const a = after.stages[i]!;
    return {
      name: b.name,
      before_s: b.simulated_s,
      after_s: a.simulated_s,
      gain: (b.simulated_s - a.simulated_s) / b.simulated_s,
      dcache_bytes_before: b.cmo_bytes.dcache,
      dcache_bytes_after: a.cmo_bytes.dcache,
      cleaning_share_before: orNull(cleaningShare(b)),
      cleaning_share_after: orNull(cleaningShare(a)),
    };
  });
}

/** NaN as null, for JSON. */
function orNull(x: number): number | null {
  return Number.isNaN(x) ? null : x;
}

/** `--kernel both`'s closing table. */
function comparisonText(before: SimReport, after: SimReport): string {
  const [kb, ka] = [before.kernel, after.kernel];
  const rows = comparison(before, after).map((c) => [
    c.name,
    seconds(c.before_s),
    seconds(c.after_s),
    pct(c.gain),
    humanBytes(c.dcache_bytes_before),
    humanBytes(c.dcache_bytes_after),
    share(c.cleaning_share_before ?? Number.NaN),
    share(c.cleaning_share_after ?? Number.NaN),
  ]);
  return [
    `${kb} (before) against ${ka} (after), simulated (model predictions); gain = (before - after) / before:`,
    ...columns(
      [
        [
          "stage",
          `${kb} s`,
          `${ka} s`,
          "gain",
          `D-cache cleaned ${kb}`,
          `D-cache cleaned ${ka}`,
          `cleaning / stage ${kb}`,
          `cleaning / stage ${ka}`,
        ],
        ...rows,
      ],
      [false, true, true, true, true, true, true, true],
    ),
  ].join("\n");
}

/**
 * What would make a run that does not fit fit, as advice for {@link memoryProblem}: a smaller
 * region if the smallest one (one backing page) fits with these vCPUs, else fewer vCPUs, else
 * both; a run that does not fit even then is too large for what the region and vCPUs decide
 * (the process itself, a long --trace or --timeline, a large TLB in the profile).
 */
function smallerRun(
  config: PageTableTestConfig,
  profile: CostProfile,
  budget: MemoryBudget,
  pageSize: number,
): Advice {
  const fits = (c: PageTableTestConfig): boolean =>
    memoryProblem(pageTableTestFootprint(c, profile), budget, "", "") === null;
  // What the options that do not change the run's results add: the same run without them.
  const { traceEvents: trace, timelineChunk: chunk, ...bare } = config;
  if (trace !== undefined && fits({ ...config, traceEvents: 1 })) return "use a smaller --trace";
  if (chunk !== undefined && fits({ ...bare, ...(trace === undefined ? {} : { traceEvents: trace }) }))
    return "use a larger --timeline chunk, or none";
  if (trace !== undefined && chunk !== undefined && fits(bare))
    return "use a smaller --trace and a larger --timeline chunk, or none";
  // The smallest region, at the same GPA if one was given (a smaller region stays inside the IPA space).
  const smallest: PageTableTestConfig = {
    ...config,
    memBytes: pageSize,
    ...(chunk === undefined ? {} : { timelineChunk: pageSize }),
  };
  if (fits(smallest)) return "use a smaller -b";
  if (fits({ ...config, vcpus: 1 })) return "use fewer vCPUs (-v)";
  if (fits({ ...smallest, vcpus: 1 })) return "use a smaller -b and fewer vCPUs (-v)";
  const least = pageTableTestFootprint({ ...bare, memBytes: pageSize, vcpus: 1 }, profile);
  // The measure that does not fit: the memory available, or else V8's heap limit.
  const need =
    least.bytes > budget.bytes
      ? `${humanBytes(least.bytes)} of memory`
      : `${humanBytes(least.heapBytes)} of JavaScript heap`;
  return { nothingSmaller: `even the smallest run (-b ${sizeName(pageSize)} -v 1) would need about ${need}` };
}

/**
 * `--dry-run`'s answer: the run's estimated memory against the budget and the heap limit, and the
 * `problem` that would refuse it (null: none). A run that would be refused is answered with exit
 * status 1 ({@link AnswerWithStatus}).
 */
/** A `--sweep`'s simulations and how many would run at once (worker threads). */
interface SweepPool {
  readonly runs: number;
  readonly workers: number;
}

function dryRun(
  what: string,
  need: Footprint,
  budget: MemoryBudget,
  problem: string | null,
  json: boolean,
  pool: SweepPool | null,
): string {
  const fits = problem === null;
  const text = json ? dryRunJson(need, budget, problem, pool) : dryRunText(what, need, budget, problem, pool);
  // The answer "it would be refused" is exit status 1: a script can test it (the run itself exits 2).
  if (!fits) throw new AnswerWithStatus(text, 1);
  return text;
}

/** `--dry-run --json`'s object; `refused` says why when it would not fit (null when it would). */
function dryRunJson(
  need: Footprint,
  budget: MemoryBudget,
  problem: string | null,
  pool: SweepPool | null,
): string {
  return JSON.stringify(
    {
      dry_run: true,
      ...(pool === null ? {} : { sweep_runs: pool.runs, sweep_workers: pool.workers }),
      estimated_bytes: Math.round(need.bytes),
      estimated_heap_bytes: Math.round(need.heapBytes),
      budget_bytes: budget.bytes,
      budget_source: budget.source,
      heap_limit_bytes: heapLimit(),
      fits: problem === null,
      refused: problem,
    },
    null,
    2,
  );
}

/** `--dry-run`'s text. */
function dryRunText(
  what: string,
  need: Footprint,
  budget: MemoryBudget,
  problem: string | null,
  pool: SweepPool | null,
): string {
  const fits = problem === null;
  return [
    `${what}: the options are valid; not run (--dry-run)`,
    `estimated peak memory: about ${humanBytes(need.bytes)}${pool === null ? "" : " a run"} ` +
      `(JavaScript heap ${humanBytes(need.heapBytes)})` +
      (pool === null
        ? ""
        : `; the sweep's ${pool.runs} runs would go ${pool.workers} at a time, ` +
          `about ${humanBytes(need.bytes * pool.workers)} together`),
    `budget: ${humanBytes(budget.bytes)} (${budget.source}); heap limit ${humanBytes(heapLimit())}`,
    fits ? "it would run" : `it would be refused: ${problem}`,
  ].join("\n");
}

/**
 * What the injected bug did in the run: how often the code departed from the kernel's in `part`
 * (the timed stages, or a scenario's steps) and in kvm_vm_free after it, or, never, that there was
 * nothing to catch (and where to see it caught).
 */
export function injectedBugLine(
  name: string,
  departures: number,
  teardown = 0,
  part = "the timed stages",
): string {
  const times = (n: number): string => `${count(n)} time${n === 1 ? "" : "s"}`;
  const after = teardown > 0 ? ` (and ${count(teardown)} more in kvm_vm_free, after ${part})` : "";
  if (departures > 0)
    return `injected bug ${name}: the code departed from the kernel's ${times(departures)}${after}`;
  if (teardown > 0) {
    return (
      `injected bug ${name}: ${part} never reached the code it changes; kvm_vm_free, after ` +
      `them, departed from the kernel's ${times(teardown)}`
    );
  }
  return (
    `injected bug ${name}: this run never reached the code it changes, so there was nothing to catch ` +
    `('s2sim scenario list' names a scenario that provokes it)`
  );
}

/** The selftest's timing line and the compact per-stage summary. */
export function stageBlock(s: SimStageReport, report: SimReport): string[] {
  const lines = [
    `${s.name}: total execution time: ${timespec(s.simulated_s)} (simulated, ${report.profile})`,
  ];
  const detail: string[][] = [
    ["faults", `${faultSummary(s.faults)}; S1PTW ${count(s.s1ptw_faults)}`],
    [
      "fault path",
      `maps ${count(s.maps)}, relaxes ${count(s.relaxes)}, -EAGAIN ${count(s.eagain)}, ` +
        `notifier retries ${count(s.retries)}`,
    ],
    [
      "TLBI",
      `by IPA (__kvm_tlb_flush_vmid_ipa) ${count(s.tlbi.ipa)}, ` +
        `whole VMID (__kvm_tlb_flush_vmid) ${count(s.tlbi.vmid)}`,
    ],
    [
      "CMO",
      `D-cache clean+invalidate ${humanBytes(s.cmo_bytes.dcache)}, ` +
        `I-cache invalidate ${humanBytes(s.cmo_bytes.icache)}`,
    ],
    [
      "mmu_lock",
      `${count(s.mmu_lock.acquisitions)} acquisitions, ${count(s.mmu_lock.contended)} contended, ` +
        `wait ${seconds(s.mmu_lock.wait_s)} s, hold ${seconds(s.mmu_lock.hold_s)} s`,
    ],
    [
      "host",
      `${count(s.host.faults)} page faults, ${count(s.host.page_allocs)} page allocations, ` +
        `${humanBytes(s.host.zeroed_bytes)} zeroed; stage-2 table pages +${count(s.table_pages.allocated)} ` +
        `-${count(s.table_pages.freed)}`,
    ],
    ["vCPUs done", doneSummary(s.vcpu_done_s)],
  ];
  lines.push(
    ...columns(
      detail.map(([label, text]) => [`${label}:`, text!]),
      [false, false],
    ),
  );
  lines.push(
    `  where the time went (${report.vcpus} vCPU(s) x ${seconds(s.simulated_s)} s; rows under 0.1 % left out):`,
  );
  const shown = s.attribution.filter((a) => a.share >= MIN_SHARE);
  const fixed = decimalsFor(Math.max(0, ...shown.map((a) => a.vcpu_s)));
  const rows = shown.map((a) => [a.category, a.vcpu_s.toFixed(fixed), `${(a.share * 100).toFixed(1)} %`]);
  lines.push(...columns([["category", "vCPU-s", "share"], ...rows], [false, true, true], "    "));
  const withTimeline = s.timeline === undefined ? lines : lines.concat(timelineBlock(s.timeline, report));
  return s.trace === undefined ? withTimeline : withTimeline.concat(traceBlock(s.trace));
}

/** Most events `--trace` shows per stage. */
const MAX_TRACE_EVENTS = 1_000_000;

/** `--trace`'s block: the stage's first events, one per line. */
function traceBlock(t: StageTrace): string[] {
  if (t.events === 0) return ["  no events"];
  const head = !t.complete
    ? `  its earliest ${count(t.lines.length)} events, in time order (time, CPU, event; recording stopped after ${count(t.events)}, once no event to come could be earlier):`
    : t.lines.length === t.events
      ? `  its ${count(t.events)} events in time order (time, CPU, event):`
      : `  the earliest ${count(t.lines.length)} of its ${count(t.events)} events, in time order (time, CPU, event):`;
  return [head, ...t.lines.map((l) => `    ${l}`)];
}

/** Most rows `--timeline` makes: a table to read, not a trace (`trace` and `--json` are for those). */
const MAX_TIMELINE_ROWS = 65536;

/**
 * `--timeline`'s chunk size: a size that holds at least one of the backing's pages, a multiple of
 * it, that cuts the `memBytes` region into at most {@link MAX_TIMELINE_ROWS} chunks.
 */
function timelineOption(text: string, pageSize: number, memBytes: number): number {
  const chunk = parseSize(text, "timeline chunk (--timeline)");
  if (chunk === 0) throw new S2simError("bad-size", "timeline chunk (--timeline) must not be 0");
  if (chunk < pageSize || chunk % pageSize !== 0) {
    throw new S2simError(
      "bad-size",
      `timeline chunk (--timeline) must be a multiple of the backing's page size ${humanBytes(pageSize)}`,
    );
  }
  const rows = Math.ceil(memBytes / chunk);
  if (rows > MAX_TIMELINE_ROWS) {
    const least = Math.ceil(memBytes / MAX_TIMELINE_ROWS / pageSize) * pageSize;
    throw new S2simError(
      "bad-size",
      `timeline chunk (--timeline) ${text} cuts the region into ${count(rows)} rows, more than ` +
        `${count(MAX_TIMELINE_ROWS)}: use a chunk of at least ${humanBytes(least)}`,
    );
  }
  return chunk;
}

/**
 * The CREATE stage along the region: per chunk, when the last fault there was handled, the time
 * since the chunk before, and per large page (the backing's page) what the fault path did.
 */
function timelineBlock(t: StageTimeline, report: SimReport): string[] {
  const page = backingPageSize(report.backing);
  const unit = t.chunk_bytes === page ? "" : ` (per ${humanBytes(page)} page)`;
  // A chunk as large as the region or larger is the whole region: say so rather than name a size
  // no row has.
  const per =
    t.chunk_bytes >= report.mem_bytes
      ? `in one chunk, the whole ${humanBytes(report.mem_bytes)} region`
      : `per ${humanBytes(t.chunk_bytes)}`;
  const lines = [`  along the region, ${per}${unit}: done = when the last fault there was handled`];
  let before = 0;
  const rows = t.rows.map((r) => {
    const took = r.done_s === null ? "-" : `${((r.done_s - before) * 1e3).toFixed(2)}`;
    if (r.done_s !== null) before = r.done_s;
    // Per page of the chunk, the last one the region's end may cut short.
    const per = Math.min(t.chunk_bytes, report.mem_bytes - r.offset) / page;
    const f = (n: number): string => (n / per).toFixed(1);
    return [
      hex(r.offset),
      r.done_s === null ? "-" : seconds(r.done_s),
      took,
      f(r.aborts),
      f(r.maps),
      f(r.relaxes),
      f(r.retries),
      f(r.eagain),
      humanBytes(r.dcache_bytes / per),
    ];
  });
  // Concatenated, not spread into push: a row per chunk can be more arguments than a call takes.
  return lines.concat(
    columns(
      [["offset", "done s", "ms", "aborts", "maps", "relaxes", "retries", "-EAGAIN", "cleaned"], ...rows],
      [false, true, true, true, true, true, true, true, true],
      "    ",
    ),
  );
}

/**
 * When the last vCPU of each role finished: `even ids by 6.52 s, odd ids by 4.30 s` (the selftest's
 * CREATE stage has even ids write and odd ids read, so this shows split convoys).
 */
function doneSummary(done: readonly number[]): string {
  const last = (parity: number): number => Math.max(...done.filter((_, i) => i % 2 === parity));
  if (done.length === 1) return `by ${seconds(done[0]!)} s`;
  return `even ids by ${seconds(last(0))} s, odd ids by ${seconds(last(1))} s`;
}

/** Decimals that show `max` with four significant digits (at most 9). */
function decimalsFor(max: number): number {
  if (!(max > 0)) return 3;
  return Math.min(9, Math.max(0, 3 - Math.floor(Math.log10(max))));
}

/** Fault kinds in the order they are listed; others follow alphabetically. */
const KIND_ORDER = ["translation", "permission", "access"];

/** Faults grouped by kind: `translation L1 12, L3 4,096; permission L3 2,048`. */
function faultSummary(faults: Record<string, number>): string {
  const byKind = new Map<string, Array<[number, number]>>();
  for (const [key, n] of Object.entries(faults)) {
    const m = /^(.*)-L(\d+)$/.exec(key);
    const kind = m ? m[1]! : key;
    const level = m ? Number(m[2]) : -1;
    const list = byKind.get(kind) ?? [];
    list.push([level, n]);
    byKind.set(kind, list);
  }
  if (byKind.size === 0) return "none";
  const rank = (k: string): number => {
    const i = KIND_ORDER.indexOf(k);
    return i < 0 ? KIND_ORDER.length : i;
  };
  return [...byKind.keys()]
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
    .map((kind) => {
      const levels = byKind
        .get(kind)!
        .sort((a, b) => a[0] - b[0])
        .map(([l, n]) => (l < 0 ? count(n) : `L${l} ${count(n)}`));
      return `${kind} ${levels.join(", ")}`;
    })
    .join("; ");
}
