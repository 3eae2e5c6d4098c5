/**
 * `reproduce --html`: the reproduce's report as one self-contained web page, for people to look at
 * and pass around: two charts (the stage times on a log scale, and the gains), each model figure
 * beside the published one, then the text report as the command prints it. The page carries
 * Chart.js (MIT) inline, so it opens offline and from a mail attachment.
 */
import { accessSync, constants, readFileSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import type { ChartConfiguration } from "chart.js";
import { S2simError } from "../common/error.js";
import { systemReason } from "../common/small-file.js";
import type { KernelVersion } from "../pgtable/kernel.js";
import { PUBLISHED_SOURCE, type PublishedRun } from "./published.js";

/** What the page shows of one stage of one command line, before and after the series. */
export interface HtmlStageRow {
  /** E.g. "anonymous_thp CREATE" (the cover letter's stage name, short). */
  readonly label: string;
  readonly publishedBefore: number;
  readonly publishedAfter: number;
  readonly simulatedBefore: number;
  readonly simulatedAfter: number;
}

/** A reproduce row as the page reads it (ReproduceRow's fields it needs). */
interface SimulatedRow {
  readonly src: string;
  readonly stage: string;
  readonly kernel: KernelVersion;
  readonly simulated_s: number;
}

/** The page's rows, in the cover letter's order, from the reproduce's rows of `runs`. */
export function htmlStageRows(runs: readonly PublishedRun[], rows: readonly SimulatedRow[]): HtmlStageRow[] {
  const simulated = (src: string, stage: string, kernel: KernelVersion): number => {
    const row = rows.find((r) => r.src === src && r.stage === stage && r.kernel === kernel);
    if (row === undefined) throw new Error(`no simulated ${src} ${stage} on ${kernel}`);
    return row.simulated_s;
  };
  return runs.flatMap((run) =>
    run.stages.map((p) => ({
      label: `${run.src} ${p.label.replace(/^KVM_/, "").replace(/_MAPPINGS$/, "")}`,
      publishedBefore: p.before_s,
      publishedAfter: p.after_s,
      simulatedBefore: simulated(run.src, p.stage, PUBLISHED_SOURCE.before),
      simulatedAfter: simulated(run.src, p.stage, PUBLISHED_SOURCE.after),
    })),
  );
}

/** (before - after) / before, in per cent, to two decimals. */
function gainPct(before: number, after: number): number {
  return Math.round(((before - after) / before) * 10000) / 100;
}

/** Seconds to the cover letter's precision (two decimals) for the charts' bars and tooltips. */
function secs(x: number): number {
  return Math.round(x * 100) / 100;
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
    data: rows.map((r) => secs(pick(r))),
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
      scales: { y: { type: "logarithmic", title: { display: true, text: "seconds" } } },
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
          label: "published gain",
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

/**
 * The page: a title, `warnings` (what makes the figures other than the profile's predictions for
 * the published command lines: --mem-scale, --set, --cpu), the charts of `rows` and the text
 * report `text` (the command's output), with Chart.js inline. The same arguments give the same
 * page, byte for byte.
 */
export function reproduceHtml(
  rows: readonly HtmlStageRow[],
  text: string,
  warnings: readonly string[] = [],
): string {
  const src = PUBLISHED_SOURCE;
  const charts = [
    ["times", timesChart(rows)],
    ["gains", gainsChart(rows)],
  ] as const;
  return [
    "<!doctype html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    "<title>s2sim reproduce: KVM arm64 stage-2 CMOs, v5.12 against v5.14</title>",
    "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}" +
      "pre{font-size:12px;overflow-x:auto;background:#f6f6f6;padding:1em}" +
      ".chart{position:relative;height:420px;margin:2em 0}</style>",
    "</head>",
    "<body>",
    "<h1>s2sim reproduce</h1>",
    `<p>The kvm_page_table_test runs of ${escapeHtml(src.author)}'s cover letter "${escapeHtml(src.title)}" ` +
      `(${escapeHtml(src.list)}, ${escapeHtml(src.date)}), before (${src.before}) and after (${src.after}) the series. ` +
      "<strong>The s2sim figures are model predictions for the profile's machine, not measurements</strong>; " +
      "the published ones were measured on a " +
      `${escapeHtml(src.machine)}.</p>`,
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

/**
 * Refuses, before anything runs, an `--html` path the page could not be written to: a directory,
 * or a file in a folder that does not exist or is not writable.
 */
export function checkHtmlPath(path: string): void {
  const full = resolve(path);
  const stat = statOrNull(full);
  if (stat?.isDirectory()) throw new S2simError("bad-output", `--html ${path}: it is a directory`);
  try {
    accessSync(stat === null ? dirname(full) : full, constants.W_OK);
  } catch (err) {
    throw new S2simError("bad-output", `--html ${path}: cannot write there (${systemReason(err)})`);
  }
}

function statOrNull(path: string): ReturnType<typeof statSync> | null {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}

/** Writes the page to `path`; an S2simError if it cannot. */
export function writeHtml(path: string, html: string): void {
  try {
    writeFileSync(path, html);
  } catch (err) {
    throw new S2simError("bad-output", `--html ${path}: cannot write it (${systemReason(err)})`);
  }
}
