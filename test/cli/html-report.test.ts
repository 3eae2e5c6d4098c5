/**
 * `--html` of reproduce and page-table-test: the pages' charts, their escaping and determinism,
 * and the paths refused before anything runs.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { colour, htmlStageRows, reproduceHtml } from "../../src/cli/html-report.js";
import { PUBLISHED } from "../../src/cli/published.js";
import { repoRoot } from "../repo-root.js";
import { S2SIM_ARGV, s2sim, sh } from "./run.js";

/** Runs `test` with a new temporary folder, removed afterwards. */
async function inTempDir(test: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "s2sim-html-"));
  try {
    await test(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The chart configurations a page passes to `new Chart(...)`, parsed. */
function chartConfigs(html: string): Array<{
  type: string;
  data: { labels: string[]; datasets: Array<{ label: string; data: number[] }> };
}> {
  return [...html.matchAll(/^new Chart\(document\.getElementById\("\w+"\), (.*)\);$/gm)].map(
    (m) => JSON.parse(m[1]!) as ReturnType<typeof chartConfigs>[number],
  );
}

/** Rows of every published stage, with simulated times made up for the test. */
const rows = PUBLISHED.flatMap((run) =>
  run.stages.flatMap((p, k) =>
    (["v5.12", "v5.14"] as const).map((kernel) => ({
      src: run.src,
      stage: p.stage,
      kernel,
      simulated_s: kernel === "v5.12" ? 100 + k : 50 + k,
    })),
  ),
);

describe("reproduce --html", () => {
  it("charts each stage's published and simulated times and gains, in the cover letter's order", () => {
    const page = reproduceHtml(htmlStageRows(PUBLISHED, rows), "the text <report> & more");
    const [times, gains, ...more] = chartConfigs(page);
    assert.equal(more.length, 0, "no cleaning chart without the runs' reports");
    assert.deepEqual(times!.data.labels, [
      "anonymous CREATE",
      "anonymous UPDATE",
      "anonymous_thp CREATE",
      "anonymous_thp UPDATE",
      "anonymous_thp REBUILD_BLOCKS",
      "anonymous_hugetlb_1gb CREATE",
      "anonymous_hugetlb_1gb UPDATE",
      "anonymous_hugetlb_1gb REBUILD_BLOCKS",
    ]);
    const byLabel = Object.fromEntries(times!.data.datasets.map((d) => [d.label, d.data]));
    assert.deepEqual(byLabel["published v5.12 (measured)"]!.slice(0, 3), [104.35, 78.64, 15.66]);
    assert.deepEqual(byLabel["s2sim v5.12 (model prediction)"]!.slice(0, 3), [100, 101, 100]);
    assert.deepEqual(byLabel["s2sim v5.14 (model prediction)"]!.slice(0, 3), [50, 51, 50]);
    // Gains in per cent: the published +13.35 %, the made-up (100 - 50) / 100.
    assert.deepEqual(
      gains!.data.datasets.map((d) => d.data[0]),
      [13.35, 50],
    );
    // The text is escaped, the page the same for the same input.
    assert.match(page, /<pre>the text &lt;report&gt; &amp; more<\/pre>/);
    assert.equal(page, reproduceHtml(htmlStageRows(PUBLISHED, rows), "the text <report> & more"));
    // Chart.js inline (offline), and no script ended early.
    assert.match(page, /<script>\/\*!\n \* Chart\.js v4/);
    assert.equal(page.match(/<\/script>/g)!.length, 2);
    assert.match(page, /model predictions for the profile's machine, not measurements/);
  });

  it("draws a bar for a time too small for the cover letter's two decimals (a log axis has no 0)", () => {
    const tiny = rows.map((r) => ({ ...r, simulated_s: r.simulated_s / 25_000 }));
    const [times] = chartConfigs(reproduceHtml(htmlStageRows(PUBLISHED, tiny), ""));
    const model = times!.data.datasets.find((d) => d.label === "s2sim v5.14 (model prediction)")!;
    assert.deepEqual(model.data.slice(0, 2), [0.002, 0.00204]);
  });

  it("shows what makes the figures something else than the profile's predictions", () => {
    const page = reproduceHtml(htmlStageRows(PUBLISHED, rows), "", ["WARNING: <scaled>"]);
    assert.match(page, /<p style="color:#a00"><strong>WARNING: &lt;scaled&gt;<\/strong><\/p>/);
  });

  it("is written by a reproduce run, which prints its usual output too", { timeout: 120_000 }, async () =>
    inTempDir(async (dir) => {
      const file = join(dir, "report.html");
      const args = ["--mem-scale", "1/1024", "--src", "anonymous_thp"];
      const r = await s2sim("reproduce", ...args, "--html", file);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^the report as a web page with charts: ${file}$`, "m"));
      const page = readFileSync(file, "utf8");
      const [times, , cleaned] = chartConfigs(page);
      // What the series changes: the D-cache each kernel cleaned, from the runs' reports (GiB).
      const byKernel = Object.fromEntries(cleaned!.data.datasets.map((d) => [d.label, d.data]));
      assert.deepEqual(Object.keys(byKernel), ["s2sim v5.12", "s2sim v5.14"]);
      // THP UPDATE: v5.12 cleans a page per faulting vCPU, v5.14 one per new leaf (spec 9.3).
      assert.ok(byKernel["s2sim v5.12"]![1]! > 10 * byKernel["s2sim v5.14"]![1]!, JSON.stringify(byKernel));
      assert.deepEqual(times!.data.labels, [
        "anonymous_thp CREATE",
        "anonymous_thp UPDATE",
        "anonymous_thp REBUILD_BLOCKS",
      ]);
      // The scaled run's warning stands out on the page, above the charts.
      assert.match(page, /<p style="color:#a00"><strong>WARNING: --mem-scale 1\/1024 multiplies every -b/);
      // The page holds the text report, and with --json stdout stays one JSON object.
      assert.ok(page.includes("KVM_REBUILD_BLOCKS"));
      const j = await s2sim("reproduce", ...args, "--json", "--html", file);
      assert.equal(j.code, 0, j.stderr);
      assert.equal((JSON.parse(j.stdout) as { rows: unknown[] }).rows.length, 6);
    }),
  );

  it("page-table-test --html charts where each stage's time went and when each vCPU finished", async () =>
    inTempDir(async (dir) => {
      const file = join(dir, "run.html");
      const args = ["-s", "anonymous", "-b", "4M", "-v", "3", "--kernel", "both", "--html", file];
      const r = await s2sim("page-table-test", ...args);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^the report as a web page with charts: ${file}$`, "m"));
      const page = readFileSync(file, "utf8");
      const [times, attribution, done] = chartConfigs(page);
      // Each stage's time, a bar per kernel (the runs' simulated_s, checked against --json below).
      assert.deepEqual(times!.data.labels, ["CREATE", "UPDATE", "ADJUST"]);
      assert.deepEqual(
        times!.data.datasets.map((d) => d.label),
        ["v5.12", "v5.14"],
      );
      const stages = ["CREATE", "UPDATE", "ADJUST"];
      const names = ["v5.12", "v5.14"].flatMap((k) => stages.map((s) => `${k} ${s}`));
      assert.deepEqual(attribution!.data.labels, names);
      // Stacked categories: each bar sums to the stage's vCPUs x its time (the attribution's whole, to
      // the rounding of its parts).
      const json = await s2sim("page-table-test", ...args.slice(0, -2), "--json");
      const runs = (JSON.parse(json.stdout) as { runs: Array<{ stages: Array<{ simulated_s: number }> }> })
        .runs;
      const totals = names.map((_, i) => attribution!.data.datasets.reduce((a, d) => a + d.data[i]!, 0));
      const wanted = runs.flatMap((run) => run.stages.map((s) => 3 * s.simulated_s));
      assert.deepEqual(
        times!.data.datasets.map((d) => d.data),
        runs.map((run) => run.stages.map((s) => Number(s.simulated_s.toPrecision(5)))),
      );
      totals.forEach((t, i) =>
        assert.ok(Math.abs(t - wanted[i]!) <= 1e-6 * wanted[i]!, `${names[i]}: ${t} vs ${wanted[i]}`),
      );
      // One point per vCPU and stage.
      assert.deepEqual(
        done!.data.datasets.map((d) => [d.label, d.data.length]),
        names.map((n) => [n, 3]),
      );
      assert.equal(chartConfigs(page).length, 3, "no timeline chart without --timeline");
      // With --timeline: CREATE's last fault per chunk along the region, a point per chunk.
      const tl = await s2sim(
        "page-table-test",
        ...args.slice(0, -2),
        "--timeline",
        "1M",
        "--stages",
        "1",
        "--html",
        file,
      );
      assert.equal(tl.code, 0, tl.stderr);
      const line = chartConfigs(readFileSync(file, "utf8"))[3]!;
      assert.deepEqual(
        line.data.datasets.map((d) => [d.label, d.data.length]),
        [
          ["v5.12 CREATE", 4],
          ["v5.14 CREATE", 4],
        ],
      );
      // Several modes: each run named by its mode.
      const modes = await s2sim(
        "page-table-test",
        "-m",
        "4",
        "-m",
        "2",
        "-s",
        "anonymous",
        "-b",
        "2M",
        "-v",
        "1",
        "--stages",
        "1",
        "--html",
        file,
      );
      assert.equal(modes.code, 0, modes.stderr);
      assert.deepEqual(chartConfigs(readFileSync(file, "utf8"))[1]!.data.labels, [
        "-m 2 v5.14 CREATE",
        "-m 4 v5.14 CREATE",
      ]);
    }));

  it("page-table-test --html writes the page of a run a checker stopped: the violation, in red and in full", async () =>
    inTempDir(async (dir) => {
      const file = join(dir, "run.html");
      // An older page at the path must not stay, looking like this run's.
      writeFileSync(file, "an older page");
      const args = ["-s", "anonymous", "-b", "2M", "-v", "2", "--inject", "install-no-cmo", "--check"];
      const r = await s2sim("page-table-test", ...args, "--html", file);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^s2sim: check failed: coherence violation /);
      // Its page has no chart: the run stopped before a stage ended.
      assert.match(r.stderr, new RegExp(`\\ns2sim: the report as a web page: ${file}\\n$`));
      const page = readFileSync(file, "utf8");
      assert.match(
        page,
        /<strong>A checker found a violation, which stopped the run there \(exit status 1\)/,
      );
      assert.match(page, /<strong>The kernels run with the injected bug install-no-cmo\.<\/strong>/);
      assert.match(page, /<pre>check failed: coherence violation \(untimed\) on vCPU 0: /);
      // It stopped before the first stage ended: no run to chart.
      assert.equal(chartConfigs(page).length, 0);
      // With --json the violation is the answer on stdout, and the page is written the same.
      rmSync(file);
      const j = await s2sim("page-table-test", ...args, "--json", "--html", file);
      assert.equal(j.code, 1, j.stderr);
      assert.equal(
        (JSON.parse(j.stdout) as { check_failed: { check: string } }).check_failed.check,
        "coherence",
      );
      assert.equal(readFileSync(file, "utf8"), page);
    }));

  it("gives each of many runs x stages a colour of its own (the vCPU chart has one per pair)", () => {
    const colours = Array.from({ length: 96 }, (_, i) => colour(i));
    assert.equal(new Set(colours).size, colours.length);
    assert.equal(colour(0), "#4e79a7");
    assert.match(colour(16), /^hsl\(0\.0, 60%, 40%\)$/);
  });

  it("refuses the command's own standard output or error as the page's file, which the report would overwrite", async () =>
    inTempDir(async (dir) => {
      const out = join(dir, "out.txt");
      // Both streams go to the file, as `> out 2>&1` sends them: each device is standard output.
      for (const device of ["/dev/stdout", "/dev/stderr"]) {
        const r = await sh(
          'f="$1"; d="$2"; shift 2; "$@" page-table-test -b 1M --html "$d" > "$f" 2>&1',
          out,
          device,
          ...S2SIM_ARGV,
        );
        assert.equal(r.code, 2, device);
        assert.equal(
          readFileSync(out, "utf8"),
          `s2sim: --html ${device}: it is this command's standard output (the page needs a file of its own)\n`,
        );
      }
      // What the command reads: its standard input, or the --profile file.
      const profile = join(dir, "mine.json");
      writeFileSync(profile, readFileSync(join(repoRoot(), "profiles", "kunpeng920.json")));
      const stdin = await sh(
        'p="$1"; shift; "$@" page-table-test -b 1M --profile - --html /dev/stdin < "$p"',
        profile,
        ...S2SIM_ARGV,
      );
      assert.equal(stdin.code, 2);
      assert.match(stdin.stderr, /^s2sim: --html \/dev\/stdin: it is this command's standard input /);
      for (const command of [
        ["page-table-test", "-b", "1M"],
        ["reproduce", "--mem-scale", "1/4096"],
      ]) {
        const r = await s2sim(...command, "--profile", profile, "--html", profile);
        assert.equal(r.code, 2, command[0]);
        assert.equal(
          r.stderr,
          `s2sim: --html ${profile}: it is the --profile file, which the command reads\n`,
        );
      }
      assert.match(readFileSync(profile, "utf8"), /^\{\n {2}"name": "kunpeng920"/);
      // Standard error alone in the file.
      const e = await sh(
        'f="$1"; shift; "$@" page-table-test -b 1M --html /dev/stderr 2> "$f"',
        out,
        ...S2SIM_ARGV,
      );
      assert.equal(e.code, 2);
      assert.equal(
        readFileSync(out, "utf8"),
        "s2sim: --html /dev/stderr: it is this command's standard error (the page needs a file of its own)\n",
      );
    }));

  it("refuses a path it could not write to before anything runs (a dry run too)", async () =>
    inTempDir(async (dir) => {
      const file = join(dir, "a-file");
      writeFileSync(file, "");
      for (const [path, why] of [
        [dir, /: it is a directory\n$/],
        ["", /^s2sim: --html : no file named\n$/],
        [`${dir}/new/`, /: it names a directory\n$/],
        [join(dir, "missing", "r.html"), /: its folder does not exist\n$/],
        [join(file, "r.html"), /: its folder is not a directory\n$/],
        ["-", /^s2sim: --html -: the page needs a file of its own \(standard output carries the report\)\n$/],
      ] as Array<[string, RegExp]>) {
        // Small runs, should a check ever let one through.
        for (const args of [
          ["reproduce", "--mem-scale", "1/1024", "--src", "anonymous_thp"],
          ["page-table-test", "-b", "2M", "--dry-run"],
        ]) {
          const r = await s2sim(...args, "--html", path);
          assert.equal(r.code, 2, `${args[0]} ${path}`);
          assert.equal(r.stdout, "");
          assert.match(r.stderr, /^s2sim: --html /);
          assert.match(r.stderr, why);
        }
      }
    }));
});
