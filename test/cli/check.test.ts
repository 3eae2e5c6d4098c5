/** `--check`, `--inject` and `s2sim scenario` on the command line. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CheckFailure, type Violation } from "../../src/check/violation.js";
import { namingGuestMode, namingKernel, violationJson } from "../../src/cli/check.js";
import { s2sim } from "./run.js";

const SMALL = ["-s", "anonymous_hugetlb", "-b", "8M", "-v", "2"];

describe("s2sim checkers on the command line", () => {
  it("page-table-test --check runs clean on an unmodified kernel and says so", async () => {
    const r = await s2sim("page-table-test", ...SMALL, "--kernel", "v5.12", "--check");
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /checkers bbm, tlb-conflict, stale-tlb, table-free, refcount, coherence: no violation/,
    );
  });

  it("a checked run of a buggy kernel fails with the violation report and exit status 1", async () => {
    const r = await s2sim("page-table-test", ...SMALL, "--inject", "no-tlbi-after-break", "--check", "bbm");
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /^s2sim: check failed: bbm violation at [\d.]+ us on vCPU \d+: /);
    assert.match(r.stderr, /^ {2}rule: break-before-make/m);
    assert.match(r.stderr, /^ {2}history \(most recent last\):$/m);
  });

  it("the lists are JSON with --json", async () => {
    const bugs = await s2sim("page-table-test", "--inject", "list", "--json");
    assert.equal(bugs.code, 0, bugs.stderr);
    const b = JSON.parse(bugs.stdout) as {
      injectable_bugs: Array<{ name: string; kernels: string[]; caught_by: string; summary: string }>;
    };
    assert.deepEqual(b.injectable_bugs.find((x) => x.name === "coalesce-no-cmo")?.kernels, ["v5.14"]);
    assert.equal(b.injectable_bugs.find((x) => x.name === "free-before-tlbi")?.caught_by, "table-free");
    for (const cmd of ["page-table-test", "scenario"]) {
      const checks = await s2sim(cmd, "--check", "list", "--json");
      const c = JSON.parse(checks.stdout) as { checkers: Array<{ name: string; rule: string }> };
      assert.equal(c.checkers.length, 6, cmd);
      assert.equal(c.checkers[0]!.name, "bbm");
    }
    const scenarios = await s2sim("scenario", "list", "--json");
    const s = JSON.parse(scenarios.stdout) as { scenarios: Array<{ name: string; provokes: string[] }> };
    assert.deepEqual(
      s.scenarios.map((x) => x.name),
      ["first-touch", "split", "coalesce", "coalesce-unclean"],
    );
  });

  it("--check given twice runs the checkers of both lists", async () => {
    // The bbm violation of a split without a break is found whichever list names bbm.
    for (const order of [
      ["bbm", "refcount"],
      ["refcount", "bbm"],
    ]) {
      const r = await s2sim(
        "page-table-test",
        ...SMALL,
        "--inject",
        "no-break",
        "--check",
        order[0]!,
        "--check",
        order[1]!,
      );
      assert.equal(r.code, 1, order.join(" "));
      assert.match(r.stderr, /^s2sim: check failed: bbm violation/);
    }
    const both = await s2sim("scenario", "split", "--check", "bbm", "--check", "refcount", "--json");
    assert.deepEqual((JSON.parse(both.stdout) as { checkers: string[] }).checkers, ["bbm", "refcount"]);
    // A --check with no names asks for every checker, so the union is all of them.
    const all = await s2sim("scenario", "split", "--check", "bbm", "--check", "--json");
    assert.equal((JSON.parse(all.stdout) as { checkers: string[] }).checkers.length, 6);
    // Every name given is checked, before or after a bare --check.
    for (const args of [
      ["--check", "--check", "bogus"],
      ["--check", "bogus", "--check"],
    ]) {
      const bad = await s2sim("page-table-test", "-b", "1M", "-v", "2", ...args);
      assert.equal(bad.code, 2, args.join(" "));
      assert.match(bad.stderr, /^s2sim: unknown checker 'bogus'; --check takes all, or a comma list of /);
    }
    const list = await s2sim("page-table-test", "-b", "1M", "--check", "--check", "list");
    assert.equal(list.code, 2);
    assert.match(list.stderr, /^s2sim: --check list names the checkers only on its own; /);
  });

  it("with --json, a checked run's violation is a JSON object on stdout, and still exit status 1", async () => {
    const r = await s2sim(
      "page-table-test",
      ...SMALL,
      "--inject",
      "no-tlbi-after-break",
      "--check",
      "bbm",
      "--json",
    );
    assert.equal(r.code, 1);
    assert.equal(r.stderr, "");
    const j = JSON.parse(r.stdout) as {
      check_failed: {
        check: string;
        rule: string;
        what: string;
        vcpu: number;
        time_ps: number;
        history: string[];
      };
    };
    const v = j.check_failed;
    assert.equal(v.check, "bbm");
    assert.match(v.rule, /^break-before-make/);
    assert.ok(v.what.length > 0 && v.vcpu >= 0 && v.time_ps > 0, JSON.stringify(v));
    assert.ok(v.history.length > 0 && v.history.every((l) => /^\S/.test(l)), JSON.stringify(v.history));
  });

  it("an injected bug without --check runs and says the bug is there", async () => {
    const r = await s2sim("page-table-test", ...SMALL, "--inject", "coalesce-tlbi-ipa");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Injected bug: coalesce-tlbi-ipa \(no checkers: add --check to catch it\)$/m);
  });

  it("--inject list and --check list name the bugs and the checkers", async () => {
    const bugs = await s2sim("page-table-test", "--inject", "list");
    assert.equal(bugs.code, 0);
    for (const b of [
      "no-tlbi-after-break",
      "no-break",
      "coalesce-tlbi-ipa",
      "coalesce-no-cmo",
      "install-no-cmo",
      "free-before-tlbi",
    ]) {
      assert.match(bugs.stdout, new RegExp(`^ {2}${b} `, "m"));
    }
    for (const command of ["page-table-test", "scenario split"]) {
      const checks = await s2sim(...command.split(" "), "--check", "list");
      assert.equal(checks.code, 0, `${command}: ${checks.stderr}`);
      assert.match(checks.stdout, /^ {2}stale-tlb +a TLB hit agrees with the tables/m, command);
    }
  });

  it("--check takes 'all' in a list, and refuses an empty value instead of running every checker", async () => {
    const all = await s2sim("page-table-test", ...SMALL, "--stages", "1", "--check", "all,bbm");
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, /checkers bbm, tlb-conflict, stale-tlb, table-free, refcount, coherence: no/);
    for (const args of [
      ["page-table-test", "--check", ""],
      ["page-table-test", "--check="],
      ["scenario", "split", "--check", ""],
    ]) {
      const r = await s2sim(...args);
      assert.equal(r.code, 2, JSON.stringify(args));
      assert.match(r.stderr, /^s2sim: --check needs checker names: all, or a comma list of bbm, [^\n]+\n$/);
    }
  });

  it("bad names are one-line errors", async () => {
    for (const args of [
      ["page-table-test", "--check", "bbm,nope"],
      ["page-table-test", "--inject", "nope"],
      ["page-table-test", ...SMALL, "--kernel", "v5.12", "--inject", "coalesce-no-cmo"],
      ["scenario", "nope"],
    ]) {
      const r = await s2sim(...args);
      assert.equal(r.code, 2, args.join(" "));
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, /^s2sim: /);
    }
  });

  it("scenario without a name says why, when --check took the scenario name as its value", async () => {
    for (const [args, line] of [
      [
        ["--check", "split"],
        "scenario: 'split' was read as --check's value; put the scenario name first: s2sim scenario split --check",
      ],
      // A repeated --check joins its lists, the name among them.
      [
        ["--check", "bbm", "--check", "split"],
        "scenario: 'split' was read as --check's value; put the scenario name first: s2sim scenario split --check",
      ],
      [[], "scenario: missing the scenario name; scenarios: first-touch, split, coalesce, coalesce-unclean"],
    ] as Array<[string[], string]>) {
      const r = await s2sim("scenario", ...args);
      assert.equal(r.code, 2, args.join(" "));
      assert.equal(r.stderr, `s2sim: ${line}\n`);
    }
  });

  it("scenario runs a small program, lists its steps and shows the violations", async () => {
    const list = await s2sim("scenario", "list");
    assert.match(list.stdout, /^ {2}coalesce +provokes coalesce-tlbi-ipa, free-before-tlbi/m);
    const clean = await s2sim("scenario", "coalesce", "--kernel", "v5.12");
    assert.equal(clean.code, 0, clean.stderr);
    assert.match(clean.stdout, /^ {2}6\. +vCPU 0 reads page 3 \(coalesce to 2M\) +done at [\d.]+ us$/m);
    assert.match(clean.stdout, /^no violation$/m);
    // Without --check every checker still runs: what it finds fails the run, with no error line.
    const bad = await s2sim("scenario", "coalesce", "--inject", "free-before-tlbi");
    assert.equal(bad.code, 1, bad.stderr);
    assert.equal(bad.stderr, "");
    assert.match(bad.stdout, /^table-free violation at /m);
    const failed = await s2sim("scenario", "coalesce", "--inject", "free-before-tlbi", "--check");
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /^s2sim: check failed: table-free violation/);
  });

  it("scenario --kernel both runs it on v5.12 then v5.14; a --check failure names its kernel", async () => {
    const r = await s2sim("scenario", "coalesce", "--kernel", "both", "--inject", "coalesce-tlbi-ipa");
    assert.equal(r.code, 1, r.stderr);
    const heads = r.stdout.split("\n").filter((l) => l.startsWith("scenario coalesce on kernel"));
    assert.deepEqual(
      heads.map((l) => /on kernel (v5\.1\d)/.exec(l)![1]),
      ["v5.12", "v5.14"],
    );
    assert.equal(r.stdout.split("\nbbm violation at ").length - 1, 2, "one bbm report per kernel");
    const checked = await s2sim(
      "scenario",
      "coalesce",
      "--kernel",
      "both",
      "--inject",
      "coalesce-tlbi-ipa",
      "--check",
    );
    assert.equal(checked.code, 1);
    assert.match(checked.stderr, /^s2sim: check failed: bbm violation \(kernel v5\.12\) at [^:]*: L2 entry/);
    // A bug only one kernel has cannot run on both.
    const one = await s2sim(
      "scenario",
      "coalesce-unclean",
      "--kernel",
      "both",
      "--inject",
      "coalesce-no-cmo",
    );
    assert.equal(one.code, 2);
    assert.match(one.stderr, /^s2sim: bug 'coalesce-no-cmo' changes code that only v5\.14 has, not v5\.12$/m);
  });

  it("scenario --json: the scenario, and per kernel its steps and violations, with the same exit status", async () => {
    type Out = {
      scenario: string;
      checkers: string[];
      runs: Array<{
        kernel: string;
        steps: Array<{ what: string; end_ps: number }>;
        found: number;
        violations: Array<{ check: string; kernel?: string }>;
        bug_departures?: number;
        teardown_departures?: number;
      }>;
    };
    const bad = await s2sim(
      "scenario",
      "coalesce",
      "--kernel",
      "both",
      "--inject",
      "free-before-tlbi",
      "--json",
    );
    assert.equal(bad.code, 1, bad.stderr);
    assert.equal(bad.stderr, "");
    const j = JSON.parse(bad.stdout) as Out;
    assert.equal(j.scenario, "coalesce");
    assert.deepEqual(
      j.runs.map((r) => r.kernel),
      ["v5.12", "v5.14"],
    );
    for (const r of j.runs) {
      // The scenario's seven steps, then kvm_vm_free.
      assert.equal(r.steps.length, 8);
      assert.match(r.steps[7]!.what, /^kvm_vm_free: /);
      assert.equal(r.teardown_departures, 0);
      assert.ok(r.steps.every((st, i) => i === 0 || st.end_ps >= r.steps[i - 1]!.end_ps));
      assert.equal(r.violations[0]?.check, "table-free");
      assert.ok(r.bug_departures! > 0);
    }
    const clean = await s2sim("scenario", "split", "--json");
    assert.equal(clean.code, 0, clean.stderr);
    const c = JSON.parse(clean.stdout) as Out;
    assert.deepEqual(
      c.runs.map((r) => [r.kernel, r.found, r.violations.length]),
      [["v5.14", 0, 0]],
    );
    assert.equal("bug_departures" in c.runs[0]!, false);
    // With --check the first violation is the answer, as page-table-test gives it.
    const failed = await s2sim("scenario", "coalesce", "--inject", "free-before-tlbi", "--check", "--json");
    assert.equal(failed.code, 1);
    assert.equal(
      (JSON.parse(failed.stdout) as { check_failed: { check: string } }).check_failed.check,
      "table-free",
    );
  });

  it("scenario --set changes a profile parameter for the run and says so", async () => {
    const [plain, set] = await Promise.all([
      s2sim("scenario", "split"),
      s2sim("scenario", "split", "--set", "dc-civac-line=20ns"),
    ]);
    assert.match(set.stdout, /^changed with --set: dc-civac-line 20 ns \(the profile's: [\d.]+ ns\)$/m);
    // A lock cost the engine's clock takes in whole picoseconds says what it takes.
    const lock = await s2sim("scenario", "split", "--set", "lock-handoff=2.4996ps");
    assert.match(
      lock.stdout,
      /^changed with --set: lock-handoff 2\.4996 ps \(the engine's clock takes 3 ps; the profile's: 1100 ns\)$/m,
    );
    const firstStep = (out: string): string => /^ {2}1\. .* done at (.*)$/m.exec(out)![1]!;
    assert.notEqual(firstStep(set.stdout), firstStep(plain.stdout), "the 2M block's clean costs more");
    const json = await s2sim("scenario", "split", "--set", "dc-civac-line=20ns", "--json");
    const j = JSON.parse(json.stdout) as { profile_overrides: Array<{ parameter: string }> };
    assert.deepEqual(
      j.profile_overrides.map((o) => o.parameter),
      ["dc-civac-line"],
    );
  });

  it("scenario --cpu runs on the changed CPU and says so", async () => {
    const r = await s2sim("scenario", "split", "--cpu", "ttl,dic");
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /^CPU changed, ttl: with FEAT_TTL/m);
    assert.match(r.stdout, /^CPU changed, dic: with CTR_EL0\.DIC/m);
    // The steps are clean; kvm_vm_free's unmap then unlinks the tables with TLBIs hinted at their
    // levels, which on a FEAT_TTL CPU remove only leaves (as in page-table-test --cpu ttl).
    const reports = r.stdout.split("\n").filter((l) => / violation /.test(l));
    assert.ok(reports.length > 0);
    for (const l of reports) {
      assert.match(l, /^(bbm|table-free) violation \(untimed\) on host: in kvm_vm_free, after the steps: /);
    }
    const dic = await s2sim("scenario", "split", "--cpu", "dic");
    assert.equal(dic.code, 0, dic.stderr);
    assert.match(dic.stdout, /^no violation$/m);
    // The first write's 4 KiB clean is gone with FWB: the step ends 496 ns sooner.
    const stepEnd = (out: string): string =>
      /^ {2}1\. +vCPU 0 writes page 0 +done at ([\d.]+ us)$/m.exec(out)![1]!;
    const [plain, fwb] = await Promise.all([
      s2sim("scenario", "first-touch"),
      s2sim("scenario", "first-touch", "--cpu", "fwb"),
    ]);
    assert.equal(stepEnd(plain.stdout), "21.957051 us");
    assert.equal(stepEnd(fwb.stdout), "21.461051 us");
    // A bug that only drops CMOs is refused on a CPU where they do nothing, as page-table-test does.
    for (const cpu of [["--fwb"], ["--cpu", "fwb"]]) {
      const refused = await s2sim("scenario", "first-touch", "--inject", "install-no-cmo", ...cpu);
      assert.equal(refused.code, 2);
      assert.match(
        refused.stderr,
        /^s2sim: bug 'install-no-cmo' leaves out a leaf's CMOs: .* so on this CPU it changes nothing$/m,
      );
    }
    const bad = await s2sim("scenario", "split", "--cpu", "sve");
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^s2sim: --cpu: unknown CPU feature 'sve'/);
  });
});

describe("namingKernel", () => {
  const violation: Violation = {
    check: "bbm",
    what: "a report",
    vcpu: 0,
    timePs: 1000,
    ipa: 0x4000_0000,
    level: 3,
    history: [],
  };
  const failing = (): never => {
    throw new CheckFailure(violation);
  };

  it("names the kernel whose run failed, the second of two too", () => {
    // Each kernel's run is wrapped alone, so a failure in v5.14 after a clean v5.12 names v5.14.
    assert.equal(
      namingKernel("v5.12", true, () => 7),
      7,
    );
    assert.throws(
      () => namingKernel("v5.14", true, failing),
      (e: unknown) =>
        e instanceof CheckFailure &&
        e.violation.kernel === "v5.14" &&
        /^bbm violation \(kernel v5\.14\) at /.test(e.message),
    );
  });

  it("names the guest mode too when several run (page-table-test -m 2 -m 3 --kernel both)", () => {
    assert.throws(
      () => namingGuestMode(3, true, () => namingKernel("v5.14", true, failing)),
      (e: unknown) =>
        e instanceof CheckFailure &&
        e.violation.guestMode === 3 &&
        violationJson(e.violation)["guest_mode"] === 3 &&
        /^bbm violation \(kernel v5\.14, guest mode 3\) at /.test(e.message),
    );
    assert.throws(
      () => namingGuestMode(3, true, failing),
      (e: unknown) => e instanceof CheckFailure && /^bbm violation \(guest mode 3\) at /.test(e.message),
    );
    assert.throws(
      () => namingGuestMode(3, false, failing),
      (e: unknown) => e instanceof CheckFailure && e.violation.guestMode === undefined,
    );
  });

  it("leaves a one-kernel run's violation, and any other error, as they are", () => {
    assert.throws(
      () => namingKernel("v5.14", false, failing),
      (e: unknown) => e instanceof CheckFailure && e.violation.kernel === undefined,
    );
    assert.throws(
      () =>
        namingKernel("v5.14", true, () => {
          throw new RangeError("other");
        }),
      RangeError,
    );
  });
});
