/**
 * `page-table-test --sweep`: the runs once per value of one profile parameter, each the run that
 * `--set` with that value makes, side by side; its errors.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { workersThatFit } from "../../src/cli/sim-pool.js";
import { s2sim } from "./run.js";

const RUN = ["page-table-test", "-s", "anonymous_thp", "-b", "4M", "-v", "4"];

describe("page-table-test --sweep", { timeout: 120_000 }, () => {
  it("runs each value as --set would, and says so in one JSON object", async () => {
    const sweep = await s2sim(...RUN, "--kernel", "both", "--sweep", "host-fault=500ns,1us,2000ns", "--json");
    assert.equal(sweep.code, 0, sweep.stderr);
    const j = JSON.parse(sweep.stdout) as {
      sweep: { parameter: string; profile_value: string; values: string[] };
      runs: Array<Record<string, unknown> & { value: string }>;
    };
    assert.deepEqual(j.sweep, {
      parameter: "host-fault",
      profile_value: "1000 ns",
      values: ["500 ns", "1 us", "2000 ns"],
    });
    for (const [i, set] of ["host-fault=500ns", "host-fault=1us", "host-fault=2000ns"].entries()) {
      const one = await s2sim(...RUN, "--kernel", "both", "--set", set, "--json");
      assert.equal(one.code, 0, one.stderr);
      const { value, ...run } = j.runs[i]!;
      assert.equal(value, j.sweep.values[i]);
      assert.deepEqual(run, JSON.parse(one.stdout), set);
    }
  });

  it("prints a row per value, kernel and stage, the profile's value marked, and each stage's gain", async () => {
    const r = await s2sim(...RUN, "--kernel", "both", "--sweep", "lock-handoff=800ns,1.1us");
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /^lock-handoff swept over 800 ns, 1\.1 us \(the profile's: 1100 ns\); every other cost as the profile$/m,
    );
    const rows = r.stdout
      .split("\n")
      .filter((l) => /^ {2}(800 ns|1\.1 us \(profile\)) +v5\.1[24] +KVM_/.test(l));
    assert.equal(rows.length, 2 * 2 * 3);
    // The profile's own value, given in another unit, is marked.
    assert.ok(rows.slice(6).every((l) => l.startsWith("  1.1 us (profile)")));
    assert.ok(rows.slice(0, 6).every((l) => !l.includes("(profile)")));
    assert.match(
      r.stdout,
      /^v5\.12 \(before\) against v5\.14 \(after\); gain = \(before - after\) \/ before:$/m,
    );
    assert.equal(
      r.stdout.split("\n").filter((l) => / KVM_\w+ +[\d.]+ +[\d.]+ +[+-][\d.]+ %$/.test(l)).length,
      6,
    );
  });

  it("writes a page whose first chart is each stage's time against the value", async () => {
    const dir = mkdtempSync(join(tmpdir(), "s2sim-sweep-"));
    try {
      const file = join(dir, "sweep.html");
      const r = await s2sim(...RUN, "-m", "4", "-m", "2", "--sweep", "exit=2us,0.5us,1us", "--html", file);
      assert.equal(r.code, 0, r.stderr);
      const charts = [
        ...readFileSync(file, "utf8").matchAll(/^new Chart\(document\.getElementById\("(\w+)"\), (.*)\);$/gm),
      ];
      assert.equal(charts[0]![1], "sweep");
      const line = JSON.parse(charts[0]![2]!) as {
        data: {
          labels?: string[];
          datasets: Array<{ label: string; data: Array<{ x: number; y: number }> }>;
        };
        options: { scales: { x: { type?: string; title: { text: string } } } };
      };
      // Values in one unit: a numeric axis in it, the points in increasing order.
      assert.equal(line.data.labels, undefined);
      assert.deepEqual(line.options.scales.x, {
        type: "linear",
        title: { display: true, text: "exit (us)" },
      });
      assert.deepEqual(
        line.data.datasets[0]!.data.map((p) => p.x),
        [0.5, 1, 2],
      );
      assert.deepEqual(
        line.data.datasets.map((d) => [d.label, d.data.length]),
        ["-m 2 v5.14 CREATE", "-m 2 v5.14 UPDATE", "-m 2 v5.14 ADJUST", "-m 4 v5.14 CREATE"]
          .concat(["-m 4 v5.14 UPDATE", "-m 4 v5.14 ADJUST"])
          .map((l) => [l, 3]),
      );
      // The other charts have a bar per run: each named by its value.
      const times = JSON.parse(charts[1]![2]!) as { data: { datasets: Array<{ label: string }> } };
      assert.equal(times.data.datasets[0]!.label, "exit 2 us -m 2 v5.14");
      assert.equal(times.data.datasets.length, 6);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("names the value of a run a checker stops", async () => {
    const r = await s2sim(...RUN, "--sweep", "exit=1us,2us", "--inject", "install-no-cmo", "--check");
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^s2sim: check failed: coherence violation \(exit 1 us, untimed\) on vCPU 0: /);
    const j = await s2sim(
      ...RUN,
      "--sweep",
      "exit=1us,2us",
      "--inject",
      "install-no-cmo",
      "--check",
      "--json",
    );
    assert.equal(j.code, 1);
    assert.equal(
      (JSON.parse(j.stdout) as { check_failed: { setting: string } }).check_failed.setting,
      "exit 1 us",
    );
  });

  it("says for each run whether it reached an injected bug, as a run alone does", async () => {
    const r = await s2sim(...RUN, "--inject", "no-break", "--sweep", "exit=1us,2us");
    assert.equal(r.code, 0, r.stderr);
    for (const value of ["1 us", "2 us"]) {
      assert.match(
        r.stdout,
        new RegExp(`^exit ${value} v5\\.14: injected bug no-break: this run never reached`, "m"),
      );
    }
  });

  it("reports the first failing run in job order, named, whichever worker fails first", async () => {
    // Both runs pass the engine's exact time limit; the 1000 ms one gets there sooner on the host.
    const r = await s2sim("page-table-test", "-b", "64M", "-v", "2", "--sweep", "exit=600ms,1000ms");
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /^s2sim: exit 600 ms v5\.14: KVM_CREATE_MAPPINGS passed the 2\.5 simulated hours [^\n]*\n$/,
    );
  });

  it("says in a dry run how many runs it would make and how many at once", async () => {
    const r = await s2sim(...RUN, "--kernel", "both", "--sweep", "exit=1us,2us,3us", "--dry-run", "--json");
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { sweep_runs: number; sweep_workers: number };
    assert.equal(j.sweep_runs, 6);
    assert.ok(j.sweep_workers >= 1 && j.sweep_workers <= 6);
    const checked = await s2sim(...RUN, "--sweep", "exit=1us,2us", "--check", "--dry-run");
    assert.match(
      checked.stdout,
      /^estimated peak memory: about [\d.]+ MiB a run \(JavaScript heap [^)]*\); the sweep's 2 runs would go 1 at a time, /m,
    );
  });

  it("runs as many at once as the memory holds, at least one", () => {
    assert.equal(workersThatFit([100, 100, 100], 250, 6), 2);
    assert.equal(workersThatFit([100, 100, 100], 1000, 2), 2);
    assert.equal(workersThatFit([300, 100], 350, 6), 1);
    assert.equal(workersThatFit([300], 10, 6), 1);
    assert.equal(workersThatFit([50, 300, 60], 370, 6), 2);
  });

  it("refuses what is not a sweep with one line", async () => {
    for (const [args, why] of [
      [["--sweep", "host-fault"], /^s2sim: --sweep "host-fault" is not name=value,value,\.\.\. /],
      [["--sweep", "host-fault=1us,"], /^s2sim: --sweep "host-fault=1us," has an empty value$/],
      [
        ["--sweep", "host-fault=1us,1000ns"],
        /^s2sim: --sweep host-fault: the value 1000 ns costs the same as 1 us$/,
      ],
      [
        ["--sweep", "exit=1us,5us=3"],
        /^s2sim: --sweep exit: the value "5us=3" is not a number with an optional unit /,
      ],
      [
        ["--sweep", "tlb-entries=4,6"],
        /^s2sim: --sweep tlb-entries: the value "6": tlb-entries must be a multiple of tlb-ways$/,
      ],
      [["--sweep", "nope=1us"], /^s2sim: --sweep: profile 'kunpeng920' has no parameter 'nope'; /],
      [["--sweep", "exit=5xx"], /^s2sim: --sweep exit: the value "5xx": unit 'xx' is not one s2sim knows; /],
      [["--sweep", "exit=-1"], /^s2sim: --sweep exit: the value "-1" must be a finite number >= 0$/],
      [
        ["--sweep", `exit=${Array.from({ length: 33 }, (_, i) => i).join(",")}`],
        /^s2sim: --sweep exit: at most 32 values$/,
      ],
      [
        ["--set", "exit=1us", "--sweep", "exit=2us,3us"],
        /^s2sim: --sweep exit: --set changes it too; give one of them$/,
      ],
      [
        ["--timeline", "2M", "--sweep", "exit=2us,3us"],
        /^s2sim: --sweep compares runs in a table; --timeline shows one run/,
      ],
      [
        ["--trace", "5", "--sweep", "exit=2us,3us"],
        /^s2sim: --sweep compares runs in a table; --trace shows one run/,
      ],
    ] as Array<[string[], RegExp]>) {
      const r = await s2sim(...RUN, ...args);
      assert.equal(r.code, 2, args.join(" "));
      assert.equal(r.stdout, "");
      assert.match(r.stderr, /^s2sim: [^\n]+\n$/);
      assert.match(r.stderr.trimEnd(), why, args.join(" "));
    }
  });
});
