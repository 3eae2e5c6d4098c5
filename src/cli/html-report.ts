/**
 * `--html`: a command's report as one self-contained web page, for people to look at and pass
 * around: charts, then the text report as the command prints it. The page carries Chart.js (MIT)
 * inline, so it opens offline and from a mail attachment. reproduce charts the stage times (log
 * scale), the gains and the D-cache cleaned, each model figure beside the published one;
 * page-table-test charts each stage's time per run, where it went and when each vCPU finished it
 * (the convoys).
 */
import { accessSync, constants, fstatSync, readFileSync, type Stats, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import type { ChartConfiguration } from "chart.js";
import { CheckFailure, type Violation } from "../check/violation.js";
import { S2simError } from "../common/error.js";
import { printable } from "../common/format.js";
import { systemReason } from "../common/small-file.js";
import type { KernelVersion } from "../pgtable/kernel.js";
import type { SimReport, SimStageReport } from "../workloads/page-table-sim.js";
import { isProfilePath } from "../sim/profile.js";
import { PUBLISHED_SOURCE, type PublishedRun } from "./published.js";

/** What the page shows of one stage of one command line, before and after the series. */
export interface HtmlStageRow {
  /** E.g. "anonymous_thp CREATE" (the cover letter's stage name, short). */
  readonly label: string;
  readonly publishedBefore: number;
  readonly publishedAfter: number;
  readonly simulatedBefore: number;
  readonly simulatedAfter: number;
  /** The D-cache the simulated stage cleaned to the PoC, bytes, when the runs' reports are known. */
  readonly cleanedBefore?: number;
  readonly cleanedAfter?: number;
}

/** A simulation of the reproduce and its report (ReproduceRun's jobs). */
interface SimulatedRun {
  readonly src: string;
  readonly kernel: KernelVersion;
  readonly report: SimReport;
}

/** A reproduce row as the page reads it (ReproduceRow's fields it needs). */
interface SimulatedRow {
  readonly src: string;
  readonly stage: string;
  readonly kernel: KernelVersion;
  readonly simulated_s: number;
}

/** The page's rows, in the cover letter's order, from the reproduce's rows of `runs`. */
export function htmlStageRows(
  runs: readonly PublishedRun[],
  rows: readonly SimulatedRow[],
  reports: readonly SimulatedRun[] = [],
): HtmlStageRow[] {
  const simulated = (src: string, stage: string, kernel: KernelVersion): number => {
    const row = rows.find((r) => r.src === src && r.stage === stage && r.kernel === kernel);
    if (row === undefined) throw new Error(`no simulated ${src} ${stage} on ${kernel}`);
    return row.simulated_s;
  };
  // The D-cache a stage cleaned, from its run's report (undefined without one).
  const cleaned = (src: string, stage: string, kernel: KernelVersion): number | undefined =>
    reports.find((r) => r.src === src && r.kernel === kernel)?.report.stages.find((x) => x.name === stage)
      ?.cmo_bytes.dcache;
  return runs.flatMap((run) =>
    run.stages.map((p) => {
      const before = cleaned(run.src, p.stage, PUBLISHED_SOURCE.before);
      const after = cleaned(run.src, p.stage, PUBLISHED_SOURCE.after);
      return {
        label: `${run.src} ${shortStage(p.label)}`,
        publishedBefore: p.before_s,
        publishedAfter: p.after_s,
        simulatedBefore: simulated(run.src, p.stage, PUBLISHED_SOURCE.before),
        simulatedAfter: simulated(run.src, p.stage, PUBLISHED_SOURCE.after),
        ...(before === undefined || after === undefined
          ? {}
          : { cleanedBefore: before, cleanedAfter: after }),
      };
    }),
  );
}

/** (before - after) / before, in per cent, to two decimals. */
function gainPct(before: number, after: number): number {
  return Math.round(((before - after) / before) * 10000) / 100;
}

/**
 * A figure to five significant figures (the published seconds have at most five) for the charts'
 * bars and tooltips; not to a fixed number of decimals: on a log axis a small time rounded to 0
 * would have no bar.
 */
function fiveFigures(x: number): number {
  return Number(x.toPrecision(5));
}

/** Grey for the measurements, colour for the model; before lighter than after. */
const COLOURS = {
  publishedBefore: "#b0b0b0",
  publishedAfter: "#6e6e6e",
  simulatedBefore: "#6fa8dc",
  simulatedAfter: "#e69138",
} as const;

/** The stage times chart: published and simulated, before and after, seconds on a log scale. */
function timesChart(rows: readonly HtmlStageRow[]): ChartConfiguration<"bar"> {
  const { before, after } = PUBLISHED_SOURCE;
  const set = (label: string, color: string, pick: (r: HtmlStageRow) => number) => ({
    label,
    backgroundColor: color,
    data: rows.map((r) => fiveFigures(pick(r))),
  });
  return {
    type: "bar",
    data: {
      labels: rows.map((r) => r.label),
      datasets: [
        set(`published ${before} (measured)`, COLOURS.publishedBefore, (r) => r.publishedBefore),
        set(`s2sim ${before} (model prediction)`, COLOURS.simulatedBefore, (r) => r.simulatedBefore),
        set(`published ${after} (measured)`, COLOURS.publishedAfter, (r) => r.publishedAfter),
        set(`s2sim ${after} (model prediction)`, COLOURS.simulatedAfter, (r) => r.simulatedAfter),
      ],
    },
    options: {
      animation: false,
      plugins: { title: { display: true, text: "Stage time, seconds (log scale)" } },
      scales: {
        y: {
          type: "logarithmic",
          // The log axis's own labels print every decimal of 0.001 steps ("100.000").
          ticks: { format: { maximumSignificantDigits: 3 } },
          title: { display: true, text: "seconds" },
        },
      },
    },
  };
}

/** The gains chart: (before - after) / before, published and simulated, per cent. */
function gainsChart(rows: readonly HtmlStageRow[]): ChartConfiguration<"bar"> {
  return {
    type: "bar",
    data: {
      labels: rows.map((r) => r.label),
      datasets: [
        {
          label: "published gain (measured)",
          backgroundColor: COLOURS.publishedAfter,
          data: rows.map((r) => gainPct(r.publishedBefore, r.publishedAfter)),
        },
        {
          label: "s2sim gain (model prediction)",
          backgroundColor: COLOURS.simulatedAfter,
          data: rows.map((r) => gainPct(r.simulatedBefore, r.simulatedAfter)),
        },
      ],
    },
    options: {
      animation: false,
      plugins: { title: { display: true, text: "Gain = (before - after) / before, %" } },
      scales: { y: { title: { display: true, text: "%" } } },
    },
  };
}

/**
 * What the series changes: the D-cache each kernel's stage cleaned to the PoC, GiB on a log scale
 * (a stage that cleaned nothing has no bar); null when the rows do not know it.
 */
function cleanedChart(rows: readonly HtmlStageRow[]): ChartConfiguration<"bar"> | null {
  if (rows.some((r) => r.cleanedBefore === undefined || r.cleanedAfter === undefined)) return null;
  const GiB = 2 ** 30;
  const { before, after } = PUBLISHED_SOURCE;
  return {
    type: "bar",
    data: {
      labels: rows.map((r) => r.label),
      datasets: [
        {
          label: `s2sim ${before}`,
          backgroundColor: COLOURS.simulatedBefore,
          data: rows.map((r) => fiveFigures((r.cleanedBefore ?? 0) / GiB)),
        },
        {
          label: `s2sim ${after}`,
          backgroundColor: COLOURS.simulatedAfter,
          data: rows.map((r) => fiveFigures((r.cleanedAfter ?? 0) / GiB)),
        },
      ],
    },
    options: {
      animation: false,
      plugins: {
        title: {
          display: true,
          text: "D-cache cleaned to the PoC (DC CIVAC), GiB, log scale (model; no bar: none)",
        },
      },
      scales: {
        y: {
          type: "logarithmic",
          ticks: { format: { maximumSignificantDigits: 3 } },
          title: { display: true, text: "GiB" },
        },
      },
    },
  };
}

/** Text for an HTML element's content. */
function escapeHtml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** JSON for a script element: no `</script>` or comment opener can end it early. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c");
}

/** Chart.js's browser build, read once from the installed package. */
let chartJs: string | null = null;

function chartJsSource(): string {
  if (chartJs === null) {
    const main = createRequire(import.meta.url).resolve("chart.js");
    const source = readFileSync(join(dirname(main), "chart.umd.min.js"), "utf8");
    // Inlined in a script element, which the first "</script" would end.
    chartJs = source.replace(/<\/script/gi, "<\\/script");
  }
  return chartJs;
}

/** One chart of a page: its element id and its Chart.js configuration. */
type PageChart = readonly [id: string, config: ChartConfiguration];

/**
 * A page: `title` (its heading), `intro` (HTML, as it is: callers escape what they put in it),
 * `warnings` in red, `charts`, then the text report
 * `text` (the command's output), with Chart.js inline. The same arguments give the same page,
 * byte for byte.
 */
function htmlPage(
  title: string,
  intro: string,
  warnings: readonly string[],
  charts: readonly PageChart[],
  text: string,
): string {
  return [
    "<!doctype html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    `<title>${escapeHtml(title)}</title>`,
    "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}" +
      "pre{font-size:12px;overflow-x:auto;background:#f6f6f6;padding:1em}" +
      ".chart{position:relative;height:420px;margin:2em 0}</style>",
    "</head>",
    "<body>",
    `<h1>${escapeHtml(title)}</h1>`,
    `<p>${intro} <strong>The s2sim figures are model predictions for the profile's machine, not ` +
      "measurements.</strong></p>",
    ...warnings.map((w) => `<p style="color:#a00"><strong>${escapeHtml(w)}</strong></p>`),
    ...charts.map(([id]) => `<div class="chart"><canvas id="${id}"></canvas></div>`),
    "<h2>The report</h2>",
    `<pre>${escapeHtml(text)}</pre>`,
    `<script>${chartJsSource()}</script>`,
    "<script>",
    ...charts.map(
      ([id, config]) => `new Chart(document.getElementById(${scriptJson(id)}), ${scriptJson(config)});`,
    ),
    "</script>",
    "</body>",
    "</html>",
    "",
  ].join("\n");
}

/** What a reproduce page opens with: the published runs it compares with, escaped. */
function reproduceIntro(): string {
  const src = PUBLISHED_SOURCE;
  return (
    `The kvm_page_table_test runs of ${escapeHtml(src.author)}'s cover letter "${escapeHtml(src.title)}" ` +
    `(${escapeHtml(src.list)}, ${escapeHtml(src.date)}), before (${src.before}) and after (${src.after}) ` +
    `the series; the published figures were measured on a ${escapeHtml(src.machine)}.`
  );
}

/**
 * reproduce's page: the charts of `rows`, `warnings` (what makes the figures other than the
 * profile's predictions for the published command lines: --mem-scale, --set, --cpu) and the text
 * report `text`.
 */
export function reproduceHtml(
  rows: readonly HtmlStageRow[],
  text: string,
  warnings: readonly string[] = [],
): string {
  return htmlPage(
    "s2sim reproduce",
    reproduceIntro(),
    warnings,
    [["times", timesChart(rows)], ["gains", gainsChart(rows)], ...optional("cleaned", cleanedChart(rows))],
    text,
  );
}

/** A reproduce `--sweep`: per row of the table (command line, stage, kernel), its deviation per value. */
export interface HtmlReproduceSweep {
  readonly parameter: string;
  readonly values: readonly string[];
  /** (simulated - published) / published at each value. */
  readonly lines: ReadonlyArray<{ readonly label: string; readonly deviations: readonly number[] }>;
  /** The acceptance band on a time, as a fraction (0.1: ±10 %). */
  readonly band: number;
}

/** Each row's deviation from its published time against the value swept, with the acceptance band. */
function deviationChart(sweep: HtmlReproduceSweep): ChartConfiguration<"line"> {
  const axis = sweepAxis(sweep.parameter, sweep.values);
  const band = (label: string, y: number): (typeof datasets)[number] => ({
    label,
    borderColor: "#888",
    backgroundColor: "#888",
    borderDash: [6, 4],
    pointRadius: 0,
    data: sweepPoints(
      axis,
      sweep.values.map(() => y),
    ),
  });
  const datasets = sweep.lines.map((line, i) => ({
    label: line.label,
    borderColor: colour(i),
    backgroundColor: colour(i),
    borderDash: [] as number[],
    pointRadius: 3,
    data: sweepPoints(
      axis,
      line.deviations.map((d) => fiveFigures(100 * d)),
    ),
  }));
  return {
    type: "line",
    data: {
      ...(axis.numbers === null ? { labels: [...sweep.values] } : {}),
      datasets: [
        ...datasets,
        band(`+${100 * sweep.band} %`, 100 * sweep.band),
        band(`-${100 * sweep.band} %`, -100 * sweep.band),
      ],
    },
    options: {
      animation: false,
      plugins: {
        // Eighteen lines: their names in a column beside the chart, not above it.
        legend: { position: "right", labels: { boxWidth: 10, font: { size: 10 } } },
        title: {
          display: true,
          text: `Deviation of each stage time (model prediction) from the published one, against ${sweep.parameter}`,
        },
      },
      scales: {
        x: sweepScale(axis),
        y: { title: { display: true, text: "(simulated - published) / published, %" } },
      },
    },
  };
}

/** reproduce `--sweep`'s page: each row's deviation against the value, `warnings`, the text report. */
export function reproduceSweepHtml(
  sweep: HtmlReproduceSweep,
  text: string,
  warnings: readonly string[] = [],
): string {
  return htmlPage(
    "s2sim reproduce --sweep",
    `${reproduceIntro()} Simulated once per value of ${escapeHtml(sweep.parameter)}.`,
    warnings,
    [["deviations", deviationChart(sweep)]],
    text,
  );
}

/** One simulated run of page-table-test on a page, with its name there ("v5.12", "-m 3 v5.14"). */
export interface HtmlRun {
  readonly name: string;
  readonly report: SimReport;
}

/** A stage's name, short: CREATE, UPDATE, ADJUST. */
export function shortStage(name: string): string {
  return name.replace(/^KVM_/, "").replace(/_MAPPINGS$/, "");
}

/** Every stage of every run, in order, with its label on the charts ("v5.14 CREATE"). */
function runStages(runs: readonly HtmlRun[]): Array<{ label: string; stage: SimStageReport; mem: number }> {
  return runs.flatMap((run) =>
    run.report.stages.map((stage) => ({
      label: `${run.name} ${shortStage(stage.name)}`,
      stage,
      mem: run.report.mem_bytes,
    })),
  );
}

/**
 * The colour of a chart's `i`th category or run: the palette's, then hues a golden angle apart
 * (alternately darker and lighter), so that runs x stages past the palette do not repeat colours.
 */
export function colour(i: number): string {
  if (i < PALETTE.length) return PALETTE[i]!;
  const k = i - PALETTE.length;
  return `hsl(${((k * 137.508) % 360).toFixed(1)}, 60%, ${k % 2 === 0 ? 40 : 62}%)`;
}

/** A palette for a chart's categories (as many as the attribution has, and more). */
const PALETTE = [
  "#4e79a7",
  "#f28e2b",
  "#e15759",
  "#76b7b2",
  "#59a14f",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
  "#bab0ac",
  "#1f3b73",
  "#8cd17d",
  "#d4a6c8",
  "#86bcb6",
  "#f1ce63",
  "#a0cbe8",
];

/** Each stage's simulated time, one bar per run (kernel, mode) in each stage's group. */
function stageTimesChart(runs: readonly HtmlRun[]): ChartConfiguration<"bar"> {
  const stages = runs[0]!.report.stages.map((s) => s.name);
  return {
    type: "bar",
    data: {
      labels: stages.map(shortStage),
      datasets: runs.map((run, i) => ({
        label: run.name,
        backgroundColor: colour(i),
        data: stages.map((name) =>
          fiveFigures(run.report.stages.find((s) => s.name === name)?.simulated_s ?? 0),
        ),
      })),
    },
    options: {
      animation: false,
      plugins: { title: { display: true, text: "Stage time, seconds (model prediction)" } },
      scales: { y: { beginAtZero: true, title: { display: true, text: "seconds" } } },
    },
  };
}

/** Where each stage's time went: one stacked bar per run and stage, vCPU-seconds per category. */
function attributionChart(runs: readonly HtmlRun[]): ChartConfiguration<"bar"> {
  const bars = runStages(runs);
  // The categories some stage spent time in (the attribution lists every one).
  const categories = [
    ...new Set(
      bars.flatMap(({ stage }) => stage.attribution.filter((a) => a.vcpu_s > 0).map((a) => a.category)),
    ),
  ];
  return {
    type: "bar",
    data: {
      labels: bars.map((b) => b.label),
      datasets: categories.map((category, i) => ({
        label: category,
        backgroundColor: colour(i),
        data: bars.map(({ stage }) => stage.attribution.find((a) => a.category === category)?.vcpu_s ?? 0),
      })),
    },
    options: {
      animation: false,
      plugins: {
        title: { display: true, text: "Where each stage's time went, vCPU-seconds (model prediction)" },
      },
      scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: "vCPU-seconds" } } },
    },
  };
}

/**
 * When each vCPU finished each stage (seconds from the stage's start), by vCPU id: the convoys
 * (in CREATE even ids write and odd ids read).
 */
function vcpuDoneChart(runs: readonly HtmlRun[]): ChartConfiguration<"scatter"> {
  return {
    type: "scatter",
    data: {
      datasets: runStages(runs).map(({ label, stage }, i) => ({
        label,
        backgroundColor: colour(i),
        data: stage.vcpu_done_s.map((s, id) => ({ x: id, y: s })),
      })),
    },
    options: {
      animation: false,
      plugins: { title: { display: true, text: "When each vCPU finished the stage (model prediction)" } },
      scales: {
        x: { ticks: { precision: 0 }, title: { display: true, text: "vCPU id" } },
        y: { beginAtZero: true, title: { display: true, text: "seconds from the stage's start" } },
      },
    },
  };
}

/**
 * With `--timeline`: when the last fault of each chunk of the region was handled in CREATE, along
 * the region, per run (a race that changes regime along the run shows as a bend); null without.
 */
function timelineChart(runs: readonly HtmlRun[]): ChartConfiguration<"line"> | null {
  const lines = runStages(runs).flatMap(({ label, stage, mem }) =>
    stage.timeline === undefined ? [] : [{ label, timeline: stage.timeline, mem }],
  );
  if (lines.length === 0) return null;
  const MiB = 2 ** 20;
  return {
    type: "line",
    data: {
      datasets: lines.map(({ label, timeline, mem }, i) => ({
        label,
        borderColor: colour(i),
        backgroundColor: colour(i),
        pointRadius: 0,
        // Each chunk at its end, the last (which may be short) at the region's.
        data: timeline.rows.flatMap((row) =>
          row.done_s === null
            ? []
            : [{ x: Math.min(row.offset + timeline.chunk_bytes, mem) / MiB, y: row.done_s }],
        ),
      })),
    },
    options: {
      animation: false,
      plugins: {
        title: {
          display: true,
          text: "When each chunk's last fault was handled, along the region (model prediction)",
        },
      },
      scales: {
        x: { type: "linear", title: { display: true, text: "end of the chunk in the region, MiB" } },
        y: { title: { display: true, text: "seconds from the stage's start" } },
      },
    },
  };
}

/** A page's chart `id`, if there is one. */
function optional(id: string, chart: ChartConfiguration | null): PageChart[] {
  return chart === null ? [] : [[id, chart]];
}

/** What a page-table-test page says of the command line, whatever runs completed. */
export interface HtmlRunSetup {
  readonly backing: string;
  readonly vcpus: number;
  /** The profile's name. */
  readonly profile: string;
}

/** A `--sweep`'s values and, per run line (mode, kernel, stage), its stage time at each value. */
export interface HtmlSweep {
  readonly parameter: string;
  readonly values: readonly string[];
  readonly lines: ReadonlyArray<{ readonly label: string; readonly seconds: readonly number[] }>;
}

/** Each stage's time against the swept parameter's value, a line per run and stage. */
/**
 * A sweep's x axis: when every value is a number in one unit ("500 ns", "2000 ns"), a linear axis
 * in that unit, the points in increasing order; else the values as categories, in the order given.
 */
interface SweepAxis {
  /** The x of each value (its number), or null for categories. */
  readonly numbers: readonly number[] | null;
  readonly title: string;
  /** The value indexes in the order the lines pass them. */
  readonly order: readonly number[];
}

function sweepAxis(parameter: string, values: readonly string[]): SweepAxis {
  const parsed = values.map((v) => /^(\S+) (\S+)$/.exec(v));
  const unit = parsed[0]?.[2];
  const numbers = parsed.map((m) => (m !== null && m[2] === unit ? Number(m[1]) : Number.NaN));
  if (unit === undefined || numbers.some((n) => !Number.isFinite(n))) {
    return { numbers: null, title: parameter, order: values.map((_, i) => i) };
  }
  const order = values.map((_, i) => i).sort((a, b) => numbers[a]! - numbers[b]!);
  return { numbers, title: `${parameter} (${unit})`, order };
}

/** A line's points over a sweep's values: {x, y} on a numeric axis, else y per category. */
function sweepPoints(
  axis: SweepAxis,
  ys: readonly (number | null)[],
): Array<number | null | { x: number; y: number | null }> {
  return axis.numbers === null ? [...ys] : axis.order.map((i) => ({ x: axis.numbers![i]!, y: ys[i]! }));
}

/** The x scale of a sweep's chart. */
function sweepScale(axis: SweepAxis): Record<string, unknown> {
  return axis.numbers === null
    ? { title: { display: true, text: axis.title } }
    : { type: "linear", title: { display: true, text: axis.title } };
}

function sweepChart(sweep: HtmlSweep): ChartConfiguration<"line"> {
  const times = sweep.lines.flatMap((l) => l.seconds).filter((t) => t > 0);
  // Stages of very different lengths share the chart on a log axis (which has no 0).
  const log = times.length > 0 && Math.max(...times) > 50 * Math.min(...times);
  const axis = sweepAxis(sweep.parameter, sweep.values);
  return {
    type: "line",
    data: {
      ...(axis.numbers === null ? { labels: [...sweep.values] } : {}),
      datasets: sweep.lines.map((line, i) => ({
        label: line.label,
        borderColor: colour(i),
        backgroundColor: colour(i),
        data: sweepPoints(
          axis,
          line.seconds.map((t) => (log && t <= 0 ? null : fiveFigures(t))),
        ),
      })),
    },
    options: {
      animation: false,
      plugins: {
        title: { display: true, text: `Stage time against ${sweep.parameter}, seconds (model prediction)` },
      },
      scales: {
        x: sweepScale(axis),
        y: log
          ? { type: "logarithmic", title: { display: true, text: "seconds (log scale)" } }
          : { beginAtZero: true, title: { display: true, text: "seconds" } },
      },
    },
  };
}

/**
 * page-table-test's page: the charts of `runs` (none when a checker stopped the first run), with
 * `sweep` first when the runs are a `--sweep`'s, `warnings` and the text report.
 */
export function pageTableTestHtml(
  setup: HtmlRunSetup,
  runs: readonly HtmlRun[],
  text: string,
  warnings: readonly string[] = [],
  sweep?: HtmlSweep,
): string {
  return htmlPage(
    "s2sim page-table-test",
    `kvm_page_table_test with ${escapeHtml(setup.backing)} memory and ${setup.vcpus} vCPUs, simulated on ` +
      `the ${escapeHtml(setup.profile)} profile.`,
    warnings,
    runs.length === 0
      ? []
      : [
          ...(sweep === undefined ? [] : ([["sweep", sweepChart(sweep)]] as const)),
          ["times", stageTimesChart(runs)],
          ["attribution", attributionChart(runs)],
          ["done", vcpuDoneChart(runs)],
          ...optional("timeline", timelineChart(runs)),
        ],
    text,
  );
}

/**
 * Refuses, before anything runs, an `--html` path the page could not be written to (a directory,
 * or a file in a folder that does not exist or is not writable) or should not be: the command's
 * own standard streams, or one of the files it reads (`inputs`: a path, and what it is for errors).
 */
export function checkHtmlPath(
  path: string,
  inputs: ReadonlyArray<{ path: string; what: string }> = [],
): void {
  const refuse = (why: string): never => {
    throw new S2simError("bad-output", `--html ${printable(path)}: ${why}`);
  };
  if (path === "") refuse("no file named");
  // Not standard output, as `-` means to --profile: that carries the text or JSON report.
  if (path === "-") refuse("the page needs a file of its own (standard output carries the report)");
  if (path.endsWith("/")) refuse("it names a directory");
  const full = resolve(path);
  const stat = statOrNull(full);
  // /dev/stdout and the like, when they are a file: the report would overwrite the page's start;
  // and what the command reads (its standard input, a profile file): the page would replace it.
  const same = (other: Stats | null): boolean =>
    stat !== null && other !== null && stat.dev === other.dev && stat.ino === other.ino;
  for (const [fd, stream] of [
    [0, "standard input"],
    [1, "standard output"],
    [2, "standard error"],
  ] as const) {
    if (same(fdStatOrNull(fd))) refuse(`it is this command's ${stream} (the page needs a file of its own)`);
  }
  for (const input of inputs) {
    if (same(statOrNull(input.path))) refuse(`it is ${input.what}, which the command reads`);
  }
  if (stat?.isDirectory()) refuse("it is a directory");
  if (stat !== null && !stat.isFile()) refuse("it is not a regular file");
  const folder = statOrNull(dirname(full));
  if (folder === null) refuse("its folder does not exist");
  else if (!folder.isDirectory()) refuse("its folder is not a directory");
  try {
    accessSync(stat === null ? dirname(full) : full, constants.W_OK);
  } catch (err) {
    refuse(`cannot write there (${systemReason(err)})`);
  }
}

/** The status of open file descriptor `fd`, or null when it is not open. */
function fdStatOrNull(fd: number): Stats | null {
  try {
    return fstatSync(fd);
  } catch {
    return null;
  }
}

/** `--profile`'s file as an input of {@link checkHtmlPath}: none for a bundled name. */
export function profileInput(profile: string | undefined): Array<{ path: string; what: string }> {
  return profile !== undefined && isProfilePath(profile)
    ? [{ path: profile, what: "the --profile file" }]
    : [];
}

/** The file's status, or null when there is none (or it cannot be read). */
function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}

/**
 * What a page says in red when the run's machine is not the profile's as shipped: the profile's
 * `--set` changes (`overrides`, overridesText's wording, or null) and `--cpu`'s (`cpuChanges`).
 */
export function changedMachineWarnings(overrides: string | null, cpuChanges: readonly string[]): string[] {
  return [
    ...(overrides === null
      ? []
      : [`The profile was ${overrides}: a sensitivity run, not the profile's predictions.`]),
    ...(cpuChanges.length === 0
      ? []
      : [`The CPU was changed from the profile's machine (${cpuChanges.join(", ")}), on the same costs.`]),
  ];
}

/** The line a command ends its text with when it wrote its page to `path` (`charts`: with some). */
export function pageWrittenLine(path: string, charts = true): string {
  return `the report as a web page${charts ? " with charts" : ""}: ${printable(path)}`;
}

/**
 * A checked run's violation when the command was to write a page: the page is written anyway, so
 * no older one stays at the path looking like this run's, and the error says where it went.
 */
export class CheckFailureWithPage extends CheckFailure {
  constructor(
    violation: Violation,
    /** Where the page went, as the command says it ({@link pageWrittenLine}). */
    readonly pageLine: string,
  ) {
    super(violation);
  }
}

/**
 * Runs `run`; when a checker's violation stops it and `path` names a page to write, writes the
 * page `pageOf` makes of the violation's report there, then fails with a CheckFailureWithPage.
 */
export function withPageOfViolation<T>(
  path: string | undefined,
  run: () => T,
  pageOf: (violation: string) => string,
): T {
  try {
    return run();
  } catch (err) {
    return pageOfViolation(path, err, pageOf);
  }
}

/** {@link withPageOfViolation} for a run that settles later (simulations on worker threads). */
export async function withPageOfViolationAsync<T>(
  path: string | undefined,
  run: () => Promise<T>,
  pageOf: (violation: string) => string,
): Promise<T> {
  try {
    return await run();
  } catch (err) {
    return pageOfViolation(path, err, pageOf);
  }
}

/** Throws `err` again; a checker's violation, when `path` names a page, once its page is written. */
function pageOfViolation(
  path: string | undefined,
  err: unknown,
  pageOf: (violation: string) => string,
): never {
  if (path === undefined || !(err instanceof CheckFailure)) throw err;
  const page = pageOf(`check failed: ${err.message}`);
  writeHtml(path, page);
  // A run stopped before any completed has nothing to chart.
  throw new CheckFailureWithPage(err.violation, pageWrittenLine(path, page.includes("\nnew Chart(")));
}

/** Writes the page to `path`; an S2simError if it cannot. */
export function writeHtml(path: string, html: string): void {
  try {
    writeFileSync(path, html);
  } catch (err) {
    throw new S2simError("bad-output", `--html ${printable(path)}: cannot write it (${systemReason(err)})`);
  }
}
