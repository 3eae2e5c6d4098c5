/** `s2sim page-table-test`: text and JSON output, determinism, and one-line errors. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { NODE_FLAG } from "../../src/cli/node-flag.js";
import { MAIN, runMain, s2sim } from "./run.js";

/** The fields of /proc/PID/stat after "(comm)" (state, ppid, ...), or null if it is gone. */
function statAfterComm(pid: number | string): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm may hold spaces and parentheses: the fields start after the last ")".
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

/** The pids of `pid`'s children (Linux /proc). */
function childrenOf(pid: number): number[] {
  return readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name) && Number(statAfterComm(name)?.[1]) === pid)
    .map(Number);
}

/** Whether process `pid` still exists and is not a zombie. */
function alive(pid: number): boolean {
  const f = statAfterComm(pid);
  return f !== null && f[0] !== "Z";
}

const STAGES = ["KVM_CREATE_MAPPINGS", "KVM_UPDATE_MAPPINGS", "KVM_ADJUST_MAPPINGS"];
const SMALL = ["-m", "4", "-s", "anonymous", "-b", "16M", "-v", "2"];

describe("s2sim page-table-test", () => {
  it("prints the selftest's lines and a labelled simulated time per stage", async () => {
    const r = await s2sim("page-table-test", ...SMALL, "--kernel", "v5.12", "--seed", "7");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    const out = r.stdout;
    assert.match(out, /model predictions .*not measurements/);
    assert.match(out, /^vCPUs released in the selftest's order .*; seed 7 /m);
    assert.match(out, /^Testing guest mode: PA-bits:40, {2}VA-bits:48, {2}4K pages$/m);
    assert.match(out, /^Testing memory backing src type: anonymous$/m);
    assert.match(out, /^Testing memory backing src granularity: 0x1000$/m);
    assert.match(out, /^Testing memory size\(aligned\): 0x1000000$/m);
    assert.match(out, /^Guest physical test memory offset: 0x[0-9a-f]+$/m);
    assert.match(out, /^Host {2}virtual {2}test memory offset: 0x[0-9a-f]+$/m);
    assert.match(out, /^Number of testing vCPUs: 2$/m);
    assert.match(out, /^Started all vCPUs successfully$/m);
    for (const stage of STAGES) {
      const re = new RegExp(
        `^${stage}: total execution time: (\\d+)\\.(\\d{9})s \\(simulated, kunpeng920\\)$`,
        "m",
      );
      const m = re.exec(out);
      assert.ok(m, `${stage} timing line`);
    }
    for (const label of ["faults:", "fault path:", "TLBI:", "CMO:", "mmu_lock:", "where the time went"]) {
      assert.equal(out.split(label).length - 1, 3, `${label} once per stage`);
    }
    assert.match(out, /translation (L\d [\d,]+, )*L3 [\d,]+/);
    assert.match(out, /D-cache clean\+invalidate \d/);
  });

  it("prints one JSON object with the runner's report and the seed, identically twice", async () => {
    const args = ["page-table-test", ...SMALL, "--json", "--seed", "42"];
    const [a, b] = await Promise.all([s2sim(...args), s2sim(...args)]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(a.stdout, b.stdout, "deterministic");
    const j = JSON.parse(a.stdout) as Record<string, unknown> & { stages: Array<Record<string, unknown>> };
    assert.equal(j["seed"], 42);
    assert.equal(j["release_order"], "fifo");
    assert.equal(j["kernel"], "v5.14");
    assert.equal(j["backing"], "anonymous");
    assert.equal(j["vcpus"], 2);
    assert.equal(j["mem_bytes"], 16 << 20);
    assert.equal(j["profile"], "kunpeng920");
    assert.equal(typeof j["gpa"], "number");
    assert.deepEqual(
      j.stages.map((s) => s["name"]),
      STAGES,
    );
    for (const s of j.stages) {
      for (const key of [
        "faults",
        "cmo_bytes",
        "tlbi",
        "mmu_lock",
        "attribution",
        "maps",
        "relaxes",
        "eagain",
      ]) {
        assert.ok(key in s, `stage has ${key}`);
      }
    }
    const create = j.stages[0]!;
    assert.ok((create["simulated_s"] as number) > 0);
    assert.ok(Object.values(create["faults"] as Record<string, number>).reduce((x, y) => x + y, 0) > 0);
    assert.ok((create["cmo_bytes"] as { dcache: number }).dcache > 0);
  });

  it("started without its V8 flag, re-executes itself with it: same output, same exit status", async () => {
    const args = [...SMALL, "--json", "--seed", "42"];
    const [direct, reexec] = await Promise.all([
      s2sim("page-table-test", ...args),
      runMain([], ["page-table-test", ...args]),
    ]);
    assert.equal(reexec.code, 0, reexec.stderr);
    assert.equal(reexec.stdout, direct.stdout);
    const bad = await runMain([], ["page-table-test", "-b", "0"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^s2sim: [^\n]+\n$/);
  });

  it(
    "started without its V8 flag, passes a SIGTERM on to the process it started",
    { skip: process.platform !== "linux" },
    async () => {
      const parent = spawn(
        process.execPath,
        [MAIN, "page-table-test", "-s", "anonymous", "-b", "1G", "-v", "80"],
        {
          stdio: "ignore",
        },
      );
      const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
        parent.on("exit", (code, signal) => resolve([code, signal])),
      );
      let kids: number[] = [];
      for (let i = 0; i < 400 && kids.length === 0; i++) {
        await sleep(25);
        kids = childrenOf(parent.pid!);
      }
      assert.equal(kids.length, 1, "one child, the flagged s2sim");
      parent.kill("SIGTERM");
      assert.deepEqual(await exited, [null, "SIGTERM"]);
      for (let i = 0; i < 400 && alive(kids[0]!); i++) await sleep(25);
      assert.equal(alive(kids[0]!), false, "the child ended too");
    },
  );

  it("takes -p as hex or decimal and -s with a block backing", async () => {
    const r = await s2sim(
      "page-table-test",
      "-s",
      "anonymous_thp",
      "-b",
      "8M",
      "-v",
      "2",
      "-p",
      "0x8000000000",
      "--json",
    );
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { gpa: number; stages: Array<{ simulated_s: number }> };
    assert.equal(j.gpa, 0x8000000000);
    assert.ok(j.stages.every((s) => s.simulated_s > 0));
  });

  it("--timeline averages a last chunk the region's end cuts short over its own pages", async () => {
    const r = await s2sim("page-table-test", "-b", "8M", "-v", "2", "--timeline", "3M");
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.split("\n").filter((l) => /^ {4}0x[0-9a-f]+ /.test(l));
    assert.deepEqual(
      rows.map((l) => l.trim().split(/ +/)[0]),
      ["0x0", "0x300000", "0x600000"],
    );
    // Two vCPUs fault once each on every page, in the 2 MiB chunk as in the 3 MiB ones.
    for (const l of rows) assert.equal(l.trim().split(/ +/)[3], "2.0", l);
  });

  it("--timeline shows the CREATE stage along the region, per chunk", async () => {
    const r = await s2sim("page-table-test", ...SMALL, "--timeline", "4M");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.split("along the region, per 4 MiB").length - 1, 1, "once: CREATE only");
    assert.match(r.stdout, /^ +offset +done s +ms +aborts +maps +relaxes +retries +-EAGAIN +cleaned$/m);
    for (const offset of ["0x0", "0x400000", "0x800000", "0xc00000"]) {
      assert.match(r.stdout, new RegExp(`^ +${offset} +\\d`, "m"), offset);
    }
    // A chunk the size of the region or larger: one row, named as the whole region.
    const whole = await s2sim("page-table-test", ...SMALL, "--timeline", "64M");
    assert.match(
      whole.stdout,
      /^ {2}along the region, in one chunk, the whole 16 MiB region \(per 4 KiB page\): /m,
    );
  });

  const errors: Array<[string, string[], RegExp]> = [
    ["-b 0", ["-b", "0"], /-b\) must not be 0/],
    ["unparsable -b", ["-b", "lots"], /"lots" is not a size/],
    ["-v 0", ["-v", "0"], /vCPU count .* between 1 and 512/],
    ["-v 513", ["-v", "513"], /vCPU count .* between 1 and 512/],
    [
      "unknown -s",
      ["-s", "anonymous_bogus"],
      /unknown backing source "anonymous_bogus"; on this 4K-page host: anonymous, anonymous_thp, anonymous_hugetlb, anonymous_hugetlb_64kb, anonymous_hugetlb_2mb, anonymous_hugetlb_32mb, anonymous_hugetlb_1gb, shmem, shared_hugetlb \(the selftest also names anonymous_hugetlb_16kb, .*, for other page sizes\)$/m,
    ],
    [
      "-m 6",
      ["-m", "6"],
      /guest mode 6 \(PA-bits:ANY, VA-bits:48, 4K pages\) is not modelled: it is an x86 mode/,
    ],
    ["unknown kernel", ["--kernel", "v5.13"], /v5\.13.*v5\.12, v5\.14/],
    ["unreadable profile", ["--profile", "/nonexistent/profile.json"], /cannot read profile/],
    ["unknown option", ["--frobnicate"], /unknown option '--frobnicate'/],
    ["bad seed", ["--seed", "x"], /seed "x" is not an integer/],
    [
      "a seed out of range",
      ["--seed", "99999999999999999999"],
      /is out of range: use an integer from 0 to 4294967295 \(the generator's 32-bit state\)/,
    ],
    // One past either end: each seed is a state of the generator, so none may fold onto another.
    ["a seed just above the range", ["--seed", "4294967296"], /"4294967296" is out of range/],
    ["a negative seed", ["--seed", "-1"], /"-1" is out of range/],
    [
      "a test GPA inside memslot 0",
      ["-p", "0x1000"],
      /the test region \(GPA 0x1000, 4M\) overlaps memslot 0, which holds the guest's own pages and its page tables for the region up to GPA 0x/,
    ],
    [
      "unknown release order",
      ["--release-order", "sideways"],
      /'sideways' is invalid.*fifo, id, reverse, random/,
    ],
    ["bad GPA", ["-p", "0xg"], /test GPA "0xg"/],
    [
      "a GPA the selftest would read as octal",
      ["-p", "0100000000"],
      /test GPA "0100000000" has a leading zero/,
    ],
    [
      "a size the selftest would read as octal",
      ["-b", "010M"],
      /"010M" has a leading zero, which C and the selftests read as octal/,
    ],
    [
      "a CMO bug with --fwb",
      ["--fwb", "--inject", "install-no-cmo"],
      /with FEAT_S2FWB \(fwb\) the D-cache clean is a no-op .*, so on this CPU it changes nothing/,
    ],
    ["a --timeline chunk of 0", ["--timeline", "0"], /--timeline\) must not be 0/],
    [
      "an unknown --cpu feature",
      ["--cpu", "ttl,bogus"],
      /--cpu: unknown CPU feature 'bogus'; known: fwb, ttl/,
    ],
    [
      "a CMO bug with --cpu fwb",
      ["--cpu", "fwb", "--inject", "install-no-cmo"],
      /FEAT_S2FWB \(fwb\) the D-cache clean is a no-op and the guest executes nothing here, so on this CPU it changes nothing/,
    ],
    ["a profile value over its bound", ["--set", "exit=1e9ms"], /'exit' must be at most 1 s/],
    [
      "a stage longer than the exact virtual time",
      ["-b", "64M", "-v", "2", "--set", "exit=1000ms"],
      /KVM_CREATE_MAPPINGS passed the 2\.5 simulated hours \(2\^53 ps\) .* \(stopped at 4\.6 hours\)/,
    ],
    [
      // 262,144 faults of over 1 s each: stopped at the first progress tick (65,536 accesses), not
      // after the whole stage's 73 hours.
      "a stage that passes the exact virtual time long before its end",
      ["-b", "1G", "--set", "exit=1000ms", "--stages", "1"],
      /KVM_CREATE_MAPPINGS passed the 2\.5 simulated hours .* \(stopped at 18\.2 hours\)/,
    ],
    ["unparsable --timeline", ["--timeline", "often"], /"often" is not a size/],
    // Input quoted in a message cannot break its line or reach the terminal as an escape sequence.
    ["a size holding a terminal escape", ["-b", "64\u001b[31mM"], /"64\\u001b\[31mM" is not a size/],
    ["a backing name holding a newline", ["-s", "x\ny"], /unknown backing source "x\\u000ay"/],
    ["an unknown option holding a newline", ["--bo\ngus"], /unknown option '--bo\\u000agus'/],
    [
      "a --timeline chunk that is not a whole number of pages",
      ["-s", "anonymous_thp", "--timeline", "1M"],
      /--timeline\) must be a multiple of the backing's page size 2 MiB/,
    ],
    [
      "a run larger than --max-memory",
      ["-b", "1G", "--max-memory", "64M"],
      /-b 1G -v 1 needs about \d+ MiB of memory, more than the 64 MiB --max-memory allows: even the smallest run \(-b 4K -v 1\) would need about \d+ MiB of memory; allow more with --max-memory\n/,
    ],
    [
      "a run that a smaller region would let fit",
      ["-b", "1G", "--max-memory", "118M"],
      /-b 1G -v 1 needs about \d+ MiB of memory, more than the 118 MiB --max-memory allows: use a smaller -b,/,
    ],
    [
      "a run whose --trace does not fit",
      ["-b", "64M", "-v", "8", "--trace", "1000000", "--max-memory", "1G"],
      /-b 64M -v 8 needs about [\d.]+ GiB of memory, more than the 1 GiB --max-memory allows: use a smaller --trace,/,
    ],
    [
      "a run whose --timeline does not fit",
      ["-b", "1G", "--timeline", "16K", "--max-memory", "150M"],
      /more than the 150 MiB --max-memory allows: use a larger --timeline chunk, or none,/,
    ],
    [
      "a run whose --trace and --timeline together do not fit",
      ["-b", "1G", "--timeline", "16K", "--trace", "200000", "--max-memory", "200M"],
      /allows: use a smaller --trace and a larger --timeline chunk, or none,/,
    ],
    [
      "a run whose vCPUs do not fit",
      ["-b", "64M", "-v", "512", "--max-memory", "150M"],
      /-b 64M -v 512 needs about \d+ MiB of memory, more than the 150 MiB --max-memory allows: use fewer vCPUs \(-v\),/,
    ],
    [
      "a --timeline of more rows than a table to read",
      ["-b", "1G", "--timeline", "4K"],
      /cuts the region into 262,144 rows, more than 65,536: use a chunk of at least 16 KiB/,
    ],
    ["an unparsable --max-memory", ["--max-memory", "lots"], /memory limit \(--max-memory\) "lots"/],
    // Commander would keep the last of two silently: a run of another kernel, size or bug.
    // -m may repeat, as in the selftest; each is checked.
    [
      "-m naming another mode the second time",
      ["-m", "4", "-m", "7"],
      /^s2sim: guest mode 7 .* is not modelled/m,
    ],
    // page-table-test's -s takes one backing (reproduce's --src is a list that may repeat).
    [
      "-s given twice",
      ["-s", "anonymous_thp", "-s", "anonymous"],
      /^s2sim: -s\/--src was given twice; give it once$/m,
    ],
    [
      "--kernel given twice, once as -k (as trace and scenario take it)",
      ["-k", "v5.12", "--kernel", "v5.14"],
      /^s2sim: -k\/--kernel was given twice; give it once$/m,
    ],
    [
      "-b given again as --mem",
      ["-b", "8M", "--mem", "8M"],
      /^s2sim: -b\/--mem was given twice; give it once$/m,
    ],
    [
      "--inject given twice",
      ["--inject", "no-break", "--inject", "no-break"],
      /^s2sim: --inject was given twice/m,
    ],
    ["--stages 4", ["--stages", "4"], /stage count \(--stages\) must be between 1 and 3, got 4/],
    ["--trace 0", ["--trace", "0"], /event count \(--trace\) must be between 1 and 1000000, got 0/],
    [
      "an unknown --set parameter",
      ["--set", "nope=1"],
      /--set: profile 'kunpeng920' has no parameter 'nope'/,
    ],
    ["a --set that is not name=value", ["--set", "lock-handoff"], /--set "lock-handoff" is not name=value/],
    [
      "a --set TLB the model cannot index",
      ["--set", "tlb-entries=1000"],
      /\(250 sets\) must be a power of two/,
    ],
    ["a --max-memory of 0", ["--max-memory", "0"], /memory limit \(--max-memory\) must not be 0/],
    [
      "a region outside the IPA space before estimating its memory",
      ["-b", "2T", "--max-memory", "1M"],
      /^s2sim: the 2T test region does not fit in the 40-bit IPA space \(1T\) below its top page, where the default GPA puts it$/m,
    ],
    [
      "a region that runs past the top of the IPA space",
      ["-b", "4M", "-p", "0xfffffff000"],
      /^s2sim: the 4M test region at GPA 0xfffffff000\.\.0x100003fefff does not fit in the 40-bit IPA space \(1T: GPAs up to 0xffffffffff\)$/m,
    ],
    // Addresses past the IPA space, up to past 2^53 (no double holds them exactly), are named as such.
    ...["0x10000000000", "0x20000000000000", "0xffffffffffffffff"].map((gpa): [string, string[], RegExp] => [
      `a test GPA of ${gpa}`,
      ["-p", gpa],
      new RegExp(
        `^s2sim: test GPA ${gpa} is beyond the 40-bit IPA space \\(1T: GPAs up to 0xffffffffff\\)$`,
        "m",
      ),
    ]),
    [
      "a decimal test GPA past 2^64",
      ["-p", "18446744073709551616"],
      /^s2sim: test GPA 18446744073709551616 \(0x10000000000000000\) is beyond the 40-bit IPA space/,
    ],
  ];
  it("takes every seed of the generator's 32-bit state, both ends included", async () => {
    for (const seed of ["0", "4294967295"]) {
      const r = await s2sim("page-table-test", "-b", "4K", "--seed", seed, "--dry-run");
      assert.equal(r.code, 0, r.stderr);
    }
  });

  it("--dry-run checks the options and says what the run would need, without running it", async () => {
    const text = await s2sim(
      "page-table-test",
      "-s",
      "anonymous_thp",
      "-b",
      "1000G",
      "--dry-run",
      "--max-memory",
      "100T",
    );
    assert.equal(text.code, 0, text.stderr);
    assert.match(
      text.stdout,
      /^page-table-test -s anonymous_thp -b 1000G -v 1: the options are valid; not run \(--dry-run\)$/m,
    );
    assert.match(text.stdout, /^estimated peak memory: about [\d.]+ GiB \(JavaScript heap [\d.]+ MiB\)$/m);
    assert.match(text.stdout, /^it would run$/m);
    // The size as parsed: what was typed may hold a line break (accepted around a number, as strtoull does).
    const spaced = await s2sim("page-table-test", "-b", " 2M\n", "--dry-run");
    assert.equal(spaced.code, 0, spaced.stderr);
    assert.match(spaced.stdout, /^page-table-test -s anonymous -b 2M -v 1: the options are valid/);
    // A long --trace of a tiny run needs only the lines such a run can make.
    const tiny = await s2sim(
      "page-table-test",
      "-b",
      "4K",
      "--trace",
      "1000000",
      "--dry-run",
      "--max-memory",
      "1G",
    );
    assert.equal(tiny.code, 0, tiny.stdout);
    assert.match(tiny.stdout, /^it would run$/m);
    // A run that would be refused is answered on stdout with exit status 1, and no error line.
    const json = await s2sim("page-table-test", "-b", "1G", "--dry-run", "--json", "--max-memory", "64M");
    assert.equal(json.code, 1, json.stderr);
    assert.equal(json.stderr, "");
    const j = JSON.parse(json.stdout) as {
      dry_run: boolean;
      estimated_bytes: number;
      budget_bytes: number;
      fits: boolean;
      refused: string | null;
    };
    assert.equal(j.dry_run, true);
    assert.equal(j.budget_bytes, 64 * 2 ** 20);
    assert.ok(j.estimated_bytes > j.budget_bytes);
    assert.equal(j.fits, false);
    // The JSON says why, as the text does.
    assert.match(j.refused ?? "", /needs about .* more than the 64 MiB --max-memory allows/);
    const refused = await s2sim("page-table-test", "-b", "1G", "--dry-run", "--max-memory", "64M");
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(
      refused.stdout,
      /^it would be refused: page-table-test .* needs about .* more than the 64 MiB --max-memory allows/m,
    );
    // Bad options are still errors.
    const bad = await s2sim("page-table-test", "-b", "2T", "--dry-run");
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /test region does not fit in the 40-bit IPA space/);
  });

  it("--trace shows each stage's first events in time order, and changes no result", async () => {
    type Stage = { simulated_s: number; trace?: { events: number; complete: boolean; lines: string[] } };
    const run = async (...extra: string[]): Promise<Stage[]> => {
      const r = await s2sim(
        "page-table-test",
        "-b",
        "8K",
        "-v",
        "2",
        "--kernel",
        "v5.12",
        "--json",
        ...extra,
      );
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { stages: Stage[] }).stages;
    };
    const [plain, traced, cut] = await Promise.all([run(), run("--trace", "100000"), run("--trace", "5")]);
    assert.deepEqual(
      traced.map((s) => s.simulated_s),
      plain.map((s) => s.simulated_s),
    );
    const create = traced[0]!.trace!;
    assert.equal(create.lines.length, create.events);
    assert.ok(traced.every((s) => s.trace!.complete));
    const times = create.lines.map((l) => Number(/^([\d.]+)us /.exec(l)![1]));
    assert.deepEqual(
      times,
      [...times].sort((a, b) => a - b),
    );
    for (const want of [
      / guest-abort vcpu=\d ipa=0x/,
      / handled vcpu=\d: map ipa=/,
      / pte L3 /,
      / cmo dc-civac /,
      / gup fast /,
    ]) {
      assert.ok(
        create.lines.some((l) => want.test(l)),
        String(want),
      );
    }
    assert.equal(cut[0]!.trace!.lines.length, 5);
    // Recording stops once every event to come is later than the five kept.
    assert.equal(cut[0]!.trace!.complete, false);
    assert.ok(cut[0]!.trace!.events < create.events);
    const text = await s2sim("page-table-test", "-b", "8K", "-v", "2", "--trace", "5");
    assert.match(
      text.stdout,
      /^ {2}its earliest 5 events, in time order \(time, CPU, event; recording stopped after \d+, once no event to come could be earlier\):$/m,
    );
    // The earliest five are the full trace's first five (not the first five the engine made).
    assert.deepEqual(cut[0]!.trace!.lines, create.lines.slice(0, 5));
  });

  const THP_8M = ["-s", "anonymous_thp", "-b", "8M", "-v", "4"];
  it("--trace stops recording once no event to come can be earlier, and the fast-forward then runs", async () => {
    type Stage = Record<string, unknown> & { fast_forward_leaves: number; trace?: { complete: boolean } };
    const [plain, traced] = await Promise.all(
      [[], ["--trace", "3"]].map(async (extra) => {
        const r = await s2sim("page-table-test", ...THP_8M, "--json", ...extra);
        assert.equal(r.code, 0, r.stderr);
        return (JSON.parse(r.stdout) as { stages: Stage[] }).stages;
      }),
    );
    assert.ok(traced!.every((s) => s.trace!.complete === false));
    // UPDATE's convoy is skipped as without --trace: recording stopped in its first periods.
    assert.ok(plain![1]!.fast_forward_leaves > 0);
    assert.equal(traced![1]!.fast_forward_leaves, plain![1]!.fast_forward_leaves);
    const drop = (s: Stage): Stage => ({
      ...s,
      trace: undefined,
      engine_steps: 0,
      hit_run_accesses: 0,
      flow_run_accesses: 0,
    });
    assert.deepEqual(traced!.map(drop), plain!.map(drop));
  });

  it("--stages n runs the first n stages, each as the whole run has it", async () => {
    type Report = { stages: Array<{ name: string; simulated_s: number; faults: Record<string, number> }> };
    const [all, first] = await Promise.all(
      [[], ["--stages", "1"]].map(async (extra) => {
        const r = await s2sim("page-table-test", ...SMALL, "--json", ...extra);
        assert.equal(r.code, 0, r.stderr);
        return JSON.parse(r.stdout) as Report;
      }),
    );
    assert.deepEqual(
      first!.stages.map((s) => s.name),
      ["KVM_CREATE_MAPPINGS"],
    );
    assert.deepEqual(first!.stages[0], all!.stages[0]);
  });

  it("--set changes profile parameters for the run and says which", async () => {
    type Report = {
      stages: Array<{ simulated_s: number }>;
      profile_overrides: Array<{ parameter: string; value: number; unit: string }>;
    };
    const run = async (...extra: string[]): Promise<Report> => {
      const r = await s2sim("page-table-test", ...SMALL, "--json", ...extra);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as Report;
    };
    const [plain, cheaper] = await Promise.all([
      run(),
      run("--set", "lock-handoff=100", "--set", "exit=0.5us"),
    ]);
    assert.deepEqual(plain.profile_overrides, []);
    assert.deepEqual(
      cheaper.profile_overrides.map((o) => `${o.parameter}=${o.value}${o.unit}`),
      ["lock-handoff=100ns", "exit=0.5us"],
    );
    // UPDATE's relax convoy passes mmu_lock once per fault: a cheaper handoff and exit shorten it.
    // (CREATE's reader/writer race may go either way: it can change who reaches a page first.)
    assert.ok(cheaper.stages[1]!.simulated_s < plain.stages[1]!.simulated_s);
    const text = await s2sim("page-table-test", "-b", "4M", "--set", "lock-handoff=100");
    assert.match(text.stdout, /^changed with --set: lock-handoff 100 ns \(the profile's: 1100 ns\)$/m);
  });

  it("--fwb: no D-cache maintenance in either kernel, so both take the same time", async () => {
    type Report = { fwb: boolean; stages: Array<{ simulated_s: number; cmo_bytes: { dcache: number } }> };
    const run = async (...extra: string[]): Promise<Report> => {
      const r = await s2sim(
        "page-table-test",
        "-s",
        "anonymous_hugetlb_1gb",
        "-b",
        "2G",
        "-v",
        "4",
        "--json",
        ...extra,
      );
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as Report;
    };
    const [pre, post, plain] = await Promise.all([
      run("--kernel", "v5.12", "--fwb"),
      run("--kernel", "v5.14", "--fwb"),
      run("--kernel", "v5.12"),
    ]);
    assert.equal(pre.fwb, true);
    assert.equal(plain.fwb, false);
    for (const s of [...pre.stages, ...post.stages]) assert.equal(s.cmo_bytes.dcache, 0);
    assert.deepEqual(
      pre.stages.map((s) => s.simulated_s),
      post.stages.map((s) => s.simulated_s),
    );
    // Without FWB, v5.12 cleans a GiB per vCPU fault in CREATE (spec 9.3 b).
    assert.ok(plain.stages[0]!.cmo_bytes.dcache >= 4 * 2 ** 30);
    assert.ok(plain.stages[0]!.simulated_s > 5 * pre.stages[0]!.simulated_s);
    const text = await s2sim("page-table-test", "-b", "4M", "--fwb");
    assert.match(text.stdout, /^CPU changed, fwb: with FEAT_S2FWB/m);
  });

  it("--cpu ttl: the checkers report the kernels' level-hinted TLBI of an unlinked table", async () => {
    const args = ["-s", "anonymous_thp", "-b", "64M", "-v", "4", "--check", "table-free"];
    const [plain, ttl] = await Promise.all([
      s2sim("page-table-test", ...args),
      s2sim("page-table-test", ...args, "--cpu", "ttl"),
    ]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(ttl.code, 1, ttl.stderr);
    assert.match(
      ttl.stderr,
      /^s2sim: check failed: table-free violation .*: the TLBI by IPA hinted L\d it got removes only leaf entries on a FEAT_TTL CPU$/m,
    );
    // --fwb and --cpu add up, and so do several --cpu.
    const json = await s2sim(
      "page-table-test",
      "-b",
      "4M",
      "--cpu",
      "dic",
      "--fwb",
      "--cpu",
      "ttl",
      "--json",
    );
    assert.equal(json.code, 0, json.stderr);
    const r = JSON.parse(json.stdout) as { fwb: boolean; cpu_changes: string[] };
    assert.equal(r.fwb, true);
    assert.deepEqual(r.cpu_changes, ["fwb", "ttl", "dic"]);
  });

  it("--kernel both: v5.12 then v5.14, each as it runs alone, and a table comparing their stages", async () => {
    const args = ["page-table-test", "-s", "anonymous_hugetlb_1gb", "-b", "2G", "-v", "4"];
    type Report = { kernel: string; stages: Array<{ name: string; simulated_s: number }> };
    type Both = {
      before: string;
      after: string;
      runs: Report[];
      comparison: Array<{
        name: string;
        before_s: number;
        after_s: number;
        gain: number;
        cleaning_share_before: number | null;
        cleaning_share_after: number | null;
      }>;
    };
    const [both, v12, v14, text] = await Promise.all([
      s2sim(...args, "--kernel", "both", "--json"),
      s2sim(...args, "--kernel", "v5.12", "--json"),
      s2sim(...args, "--kernel", "v5.14", "--json"),
      s2sim(...args, "--kernel", "both"),
    ]);
    for (const r of [both, v12, v14, text]) assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(both.stdout) as Both;
    assert.deepEqual([j.before, j.after], ["v5.12", "v5.14"]);
    const alone = [v12, v14].map((r) => JSON.parse(r.stdout) as Report);
    assert.deepEqual(
      j.runs.map((r) => r.stages.map((st) => st.simulated_s)),
      alone.map((r) => r.stages.map((st) => st.simulated_s)),
    );
    assert.deepEqual(
      j.comparison.map((c) => c.name),
      ["KVM_CREATE_MAPPINGS", "KVM_UPDATE_MAPPINGS", "KVM_ADJUST_MAPPINGS"],
    );
    for (const [i, c] of j.comparison.entries()) {
      assert.equal(c.before_s, alone[0]!.stages[i]!.simulated_s);
      assert.equal(c.after_s, alone[1]!.stages[i]!.simulated_s);
      assert.equal(c.gain, (c.before_s - c.after_s) / c.before_s);
      // The cleaning runs under mmu_lock: at most the stage's time.
      for (const x of [c.cleaning_share_before!, c.cleaning_share_after!]) assert.ok(x > 0 && x <= 1, `${x}`);
    }
    // The text: both runs in full, then the table (CREATE: a GiB clean per vCPU fault before the series).
    assert.match(text.stdout, /^s2sim page-table-test: kvm_page_table_test on kernel v5\.12, simulated$/m);
    assert.match(text.stdout, /^s2sim page-table-test: kvm_page_table_test on kernel v5\.14, simulated$/m);
    assert.match(
      text.stdout,
      /^v5\.12 \(before\) against v5\.14 \(after\), simulated \(model predictions\)/m,
    );
    assert.match(
      text.stdout,
      /^ {2}KVM_CREATE_MAPPINGS +[\d.]+ +[\d.]+ +\+\d+\.\d\d % +8\.00 GiB +2\.00 GiB +\d+\.\d % +\d+\.\d %$/m,
    );
  });

  it("--kernel both --check names the kernel whose run broke a rule", async () => {
    const r = await s2sim(
      ...["page-table-test", "-s", "anonymous_hugetlb", "-b", "64M", "-v", "4", "--kernel", "both"],
      ...["--inject", "no-tlbi-after-break", "--check"],
    );
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^s2sim: check failed: bbm violation \(kernel v5\.12\) at [^:]*: L2 entry /m);
    const j = await s2sim(
      ...["page-table-test", "-s", "anonymous_hugetlb", "-b", "64M", "-v", "4", "--kernel", "both"],
      ...["--inject", "no-tlbi-after-break", "--check", "--json"],
    );
    assert.equal(j.code, 1, j.stderr);
    const failed = (
      JSON.parse(j.stdout) as { check_failed: { check: string; kernel?: string; what: string } }
    ).check_failed;
    assert.equal(failed.kernel, "v5.12");
    assert.equal(failed.check, "bbm");
    assert.match(failed.what, /^L2 entry /);
  });

  it("refuses a configuration too large for the machine at once, before allocating it", async () => {
    // The largest THP region the IPA space allows: several GiB of simulator state.
    const r = await s2sim("page-table-test", "-s", "anonymous_thp", "-b", "1020G", "--max-memory", "2G");
    assert.equal(r.code, 2);
    assert.equal(r.stdout, "");
    assert.match(
      r.stderr,
      /^s2sim: page-table-test -s anonymous_thp -b 1020G -v 1 needs about [\d.]+ GiB of memory, more than the 2 GiB --max-memory allows/,
    );
    // Allowed that much memory, it still needs more JavaScript heap than a Node with a small heap has.
    const heap = await runMain(
      [NODE_FLAG, "--max-old-space-size=64"],
      ["page-table-test", "-s", "anonymous_thp", "-b", "1020G", "--max-memory", "100T"],
    );
    assert.equal(heap.code, 2);
    assert.match(
      heap.stderr,
      /needs about [\d.]+ MiB of JavaScript heap, more than Node's limit of [\d.]+ MiB: use a smaller -b, or raise the limit \(NODE_OPTIONS=--max-old-space-size=\d+\)\n$/,
    );
  });

  for (const [name, args, re] of errors) {
    it(`rejects ${name} with one line and exit status 2`, async () => {
      // A small region unless the case gives its own (-b may be given once).
      const size = args.some((a) => a === "-b" || a === "--mem") ? [] : ["-b", "4M"];
      const r = await s2sim("page-table-test", ...size, ...args);
      assert.equal(r.code, 2);
      assert.equal(r.stdout, "");
      assert.match(r.stderr, /^s2sim: [^\n]+\n$/);
      assert.match(r.stderr, re);
    });
  }
  it("-m may be given more than once, as the selftest takes it: a mode named twice runs once", async () => {
    const r = await s2sim("page-table-test", ...SMALL, "-m", "04", "--dry-run");
    assert.equal(r.code, 0, r.stderr);
  });

  it("several -m run each mode in turn, in the selftest's order, each as it runs alone", async () => {
    const args = ["-s", "anonymous_thp", "-b", "4M", "-v", "3"];
    const both = await s2sim("page-table-test", "-m", "5", "-m", "2", ...args, "--json");
    assert.equal(both.code, 0, both.stderr);
    const j = JSON.parse(both.stdout) as { guest_modes: Array<{ guest_mode: number; ipa_bits: number }> };
    assert.deepEqual(
      j.guest_modes.map((m) => [m.guest_mode, m.ipa_bits]),
      [
        [2, 48],
        [5, 40],
      ],
    );
    for (const [i, id] of [2, 5].entries()) {
      const alone = await s2sim("page-table-test", "-m", String(id), ...args, "--json");
      assert.deepEqual(j.guest_modes[i], JSON.parse(alone.stdout), `mode ${id}`);
    }
    // Text: each mode's lines in turn; with --kernel both, each mode's comparison after its runs.
    const text = await s2sim("page-table-test", "-m", "5", "-m", "2", ...args, "--kernel", "both");
    assert.equal(text.code, 0, text.stderr);
    const order = [...text.stdout.matchAll(/^(Testing guest mode: .*|v5\.12 \(before\) against.*)$/gm)].map(
      (m) => m[1]!.slice(0, 30),
    );
    assert.deepEqual(order, [
      "Testing guest mode: PA-bits:48",
      "Testing guest mode: PA-bits:48",
      "v5.12 (before) against v5.14 (",
      "Testing guest mode: PA-bits:40",
      "Testing guest mode: PA-bits:40",
      "v5.12 (before) against v5.14 (",
    ]);
    // -p, and the region from it, must fit every mode: the error names the one it does not.
    const high = await s2sim("page-table-test", "-m", "2", "-m", "4", ...args, "-p", "0x100000000000");
    assert.equal(high.code, 2);
    const top = await s2sim("page-table-test", "-m", "2", "-m", "4", "-b", "2M", "-p", "0xfffffff000");
    assert.equal(top.code, 2);
    assert.match(
      top.stderr,
      /^s2sim: guest mode 4 \(40-bit PA\): the 2M test region at GPA 0xfffffff000\.\.0x100001fefff does not fit in the 40-bit IPA space/,
    );
    // 64K guest pages make memslot 0 larger: a GPA mode 4 takes overlaps it in mode 5.
    const low = await s2sim("page-table-test", "-m", "4", "-m", "5", "-b", "2M", "-p", "0x400000");
    assert.equal(low.code, 2);
    assert.match(
      low.stderr,
      /^s2sim: guest mode 5 \(40-bit PA\): the test region \(GPA 0x400000, 2M\) overlaps memslot 0/,
    );
    // A checker's violation names the mode whose run broke the rule (here the first, mode 4).
    const bug = await s2sim(
      "page-table-test",
      "-m",
      "5",
      "-m",
      "4",
      ...args,
      "--inject",
      "install-no-cmo",
      "--check",
      "--json",
    );
    assert.equal(bug.code, 1);
    const failed = JSON.parse(bug.stdout) as { check_failed: { check: string; guest_mode: number } };
    assert.deepEqual([failed.check_failed.check, failed.check_failed.guest_mode], ["coherence", 4]);
    assert.match(
      high.stderr,
      /^s2sim: guest mode 4 \(40-bit PA\): test GPA 0x100000000000 is beyond the 40-bit IPA space/,
    );
    // The dry run's estimate is the peak of the mode whose runs need the most.
    const dry = await s2sim("page-table-test", "-m", "5", "-m", "2", ...args, "--dry-run");
    assert.match(dry.stdout, /^page-table-test -m 2 -m 5 -s anonymous_thp -b 4M -v 3: the options are valid/);
  });

  it("-m 2 runs guest mode 2: a 48-bit guest PA space, so the VM's IPA is 48 bits", async () => {
    const r = await s2sim("page-table-test", "-m", "2", "-b", "2M", "--json");
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { guest_mode: number; ipa_bits: number; gpa: number };
    assert.deepEqual([j.guest_mode, j.ipa_bits, j.gpa], [2, 48, 2 ** 48 - 2 ** 21 - 4096]);
    // -p is checked against the mode's 48-bit IPA space, not mode 4's 40 bits.
    const high = await s2sim("page-table-test", "-m", "2", "-b", "8M", "-p", "0x100000000000", "--dry-run");
    assert.equal(high.code, 0, high.stderr);
    const beyond = await s2sim("page-table-test", "-m", "2", "-b", "8M", "-p", "0x1000000000000");
    assert.match(beyond.stderr, /is beyond the 48-bit IPA space/);
    const text = await s2sim("page-table-test", "-m", "2", "-b", "2M");
    assert.match(text.stdout, /^Testing guest mode: PA-bits:48, {2}VA-bits:48, {2}4K pages$/m);
    assert.match(text.stdout, /^Guest physical test memory offset: 0xffffffdff000$/m);
  });

  it("--inject says whether the run reached the code the bug changes", async () => {
    const noBreak = (src: string, ...extra: string[]) =>
      s2sim("page-table-test", ...["-s", src, "-b", "4M", "-v", "2", "--inject", "no-break"], ...extra);
    // THP memory never splits a block or replaces a valid leaf: no-break has nothing to change.
    const thp = await noBreak("anonymous_thp", "--check");
    assert.equal(thp.code, 0, thp.stderr);
    const never =
      /^injected bug no-break: this run never reached the code it changes, so there was nothing to catch/m;
    assert.match(thp.stdout, never);
    // hugetlb splits its blocks for dirty logging: the checkers catch it (exit 1).
    const hugetlb = await noBreak("anonymous_hugetlb");
    assert.equal(hugetlb.code, 0, hugetlb.stderr);
    assert.match(
      hugetlb.stdout,
      /^injected bug no-break: the code departed from the kernel's [\d,]+ times?/m,
    );
    const json = JSON.parse((await noBreak("anonymous_hugetlb", "--json")).stdout) as {
      injected_bug: { name: string; departures: number };
    };
    assert.equal(json.injected_bug.name, "no-break");
    assert.ok(json.injected_bug.departures > 0);
    assert.equal((await noBreak("anonymous_hugetlb", "--check")).code, 1);
  });

  it("--inject tells the stages' departures from those of kvm_vm_free after them", async () => {
    // Anonymous memory breaks no valid leaf in the stages; kvm_vm_free's memslot deletions do.
    const args = [
      "page-table-test",
      "-s",
      "anonymous",
      "-b",
      "4M",
      "-v",
      "2",
      "--inject",
      "no-tlbi-after-break",
    ];
    const [text, json, checked] = await Promise.all([
      s2sim(...args),
      s2sim(...args, "--json"),
      s2sim(...args, "--check"),
    ]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(
      text.stdout,
      /^injected bug no-tlbi-after-break: the timed stages never reached the code it changes; kvm_vm_free, after them, departed from the kernel's [\d,]+ times?$/m,
    );
    const bug = (
      JSON.parse(json.stdout) as { injected_bug: { departures: number; teardown_departures: number } }
    ).injected_bug;
    assert.equal(bug.departures, 0);
    assert.ok(bug.teardown_departures > 0);
    assert.equal(checked.code, 1);
    assert.match(
      checked.stderr,
      /^s2sim: check failed: \S+ violation \(untimed\) on host: in kvm_vm_free, after the timed stages: /,
    );
  });

  it("--kernel both --dry-run counts the first run's --trace kept while the second runs", async () => {
    const est = async (kernel: string): Promise<number> => {
      const r = await s2sim(
        "page-table-test",
        "-b",
        "4M",
        "--trace",
        "100000",
        "--kernel",
        kernel,
        "--dry-run",
        "--json",
      );
      return (JSON.parse(r.stdout) as { estimated_heap_bytes: number }).estimated_heap_bytes;
    };
    const [one, both, plainOne, plainBoth] = await Promise.all([
      est("v5.14"),
      est("both"),
      s2sim("page-table-test", "-b", "4M", "--dry-run", "--json"),
      s2sim("page-table-test", "-b", "4M", "--kernel", "both", "--dry-run", "--json"),
    ]);
    assert.ok(both > one, `${both} > ${one}`);
    // Without --trace or --timeline a finished run keeps little: the same estimate (the budget,
    // what the machine has available, may move between the two).
    type Est = { estimated_bytes: number; estimated_heap_bytes: number };
    const [a, b] = [plainOne, plainBoth].map((r) => JSON.parse(r.stdout) as Est);
    assert.deepEqual(
      [b!.estimated_bytes, b!.estimated_heap_bytes],
      [a!.estimated_bytes, a!.estimated_heap_bytes],
    );
  });
});
