/**
 * Golden good/bad programs for the checkers: every small scenario runs clean on the unmodified
 * kernels, and with each bug it provokes the expected checker reports first, with the report in
 * test/golden/check/<scenario>.<kernel>.<bug>.txt. Run with UPDATE_GOLDEN=1 to rewrite the files
 * instead of comparing; then review each changed report before keeping it.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { BUG_CAUGHT_BY, parseChecks } from "../../src/check/rules.js";
import { CheckFailure, formatViolation, type Violation } from "../../src/check/violation.js";
import { INJECTED_BUGS } from "../../src/pgtable/bugs.js";
import { KERNEL_VERSIONS } from "../../src/pgtable/kernel.js";
import { loadProfile } from "../../src/sim/profile.js";
import { CHECK_SCENARIOS, runCheckScenario } from "../../src/workloads/check-scenarios.js";
import { repoRoot } from "../repo-root.js";

const GOLDEN_DIR = join(repoRoot(), "test", "golden", "check");
const UPDATE = process.env["UPDATE_GOLDEN"] === "1";
const profile = loadProfile("kunpeng920");
const ALL = parseChecks("all");

if (UPDATE) mkdirSync(GOLDEN_DIR, { recursive: true });

/** Every (scenario, kernel, bug) the scenarios provoke, for kernels the bug applies to. */
const CASES = CHECK_SCENARIOS.flatMap((s) =>
  KERNEL_VERSIONS.flatMap((kernel) =>
    s.provokes
      .filter((bug) => INJECTED_BUGS.find((b) => b.name === bug)!.kernels.includes(kernel))
      .map((bug) => ({ scenario: s, kernel, bug })),
  ),
);

describe("checker scenarios", () => {
  for (const s of CHECK_SCENARIOS) {
    for (const kernel of KERNEL_VERSIONS) {
      it(`${s.name} on unmodified ${kernel}: no violation`, () => {
        const r = runCheckScenario(s, profile, { kernel, checks: ALL, mode: "collect" });
        assert.deepEqual(r.violations.map(formatViolation), []);
        assert.equal(r.bugDepartures, 0);
        assert.equal(r.teardownDepartures, 0);
        assert.match(r.steps.at(-1)!.what, /^kvm_vm_free: /);
      });
    }
  }

  for (const { scenario, kernel, bug } of CASES) {
    const key = `${scenario.name}.${kernel}.${bug}`;
    it(`${key}: caught by ${BUG_CAUGHT_BY[bug]} (golden report)`, () => {
      const r = runCheckScenario(scenario, profile, { kernel, inject: bug, checks: ALL, mode: "collect" });
      assert.ok(r.violations.length > 0, "the bug went unnoticed");
      // The run reached the code the bug changes, and counted it.
      assert.ok(r.bugDepartures > 0, "no departure counted");
      const first = r.violations[0]!;
      assert.equal(first.check, BUG_CAUGHT_BY[bug]);
      const actual = formatViolation(first) + "\n";
      const file = join(GOLDEN_DIR, `${key}.txt`);
      if (UPDATE) {
        writeFileSync(file, actual);
        return;
      }
      assert.ok(existsSync(file), `missing ${file}: run the tests with UPDATE_GOLDEN=1`);
      assert.equal(actual, readFileSync(file, "utf8"));
    });
  }

  it("the teardown is watched and told apart: no-tlbi-after-break in first-touch departs only there", () => {
    const s = CHECK_SCENARIOS.find((x) => x.name === "first-touch")!;
    const r = runCheckScenario(s, profile, {
      kernel: "v5.14",
      inject: "no-tlbi-after-break",
      checks: ALL,
      mode: "collect",
    });
    // A first write installs into invalid entries only; kvm_vm_free's unmap breaks the leaf and
    // unlinks the tables.
    assert.equal(r.bugDepartures, 0);
    assert.ok(r.teardownDepartures > 0);
    assert.ok(r.violations.length > 0);
    for (const v of r.violations) assert.match(v.what, /^in kvm_vm_free, after the steps: /);
    // In fail-fast mode too.
    assert.throws(
      () =>
        runCheckScenario(s, profile, {
          kernel: "v5.14",
          inject: "no-tlbi-after-break",
          checks: ALL,
          mode: "fail-fast",
        }),
      (e: unknown) =>
        e instanceof CheckFailure && /^in kvm_vm_free, after the steps: /.test(e.violation.what),
    );
  });

  it("in fail-fast mode the first violation throws a CheckFailure carrying its report", () => {
    const { scenario, kernel, bug } = CASES[0]!;
    assert.throws(
      () => runCheckScenario(scenario, profile, { kernel, inject: bug, checks: ALL, mode: "fail-fast" }),
      (e: unknown) => e instanceof CheckFailure && e.message === formatViolation(e.violation),
    );
  });

  it("coalesce-tlbi-ipa: bbm reports the coalesce itself, the conflict checker the later fill", () => {
    const s = CHECK_SCENARIOS.find((x) => x.name === "coalesce")!;
    const run = (checks: string): readonly Violation[] =>
      runCheckScenario(s, profile, {
        kernel: "v5.14",
        inject: "coalesce-tlbi-ipa",
        checks: parseChecks(checks),
        mode: "collect",
      }).violations;
    const bbm = run("bbm");
    assert.equal(bbm.length, 1);
    assert.match(bbm[0]!.what, /made valid again \(leaf .*\) with 2 valid leaves of the table it held/);
    const conflict = run("tlb-conflict");
    assert.equal(conflict.length, 1);
    // Under its own rule's name, whichever checkers are on.
    assert.equal(conflict[0]!.check, "tlb-conflict");
    assert.equal(bbm[0]!.check, "bbm");
    assert.ok(conflict[0]!.timePs > bbm[0]!.timePs, "the conflict shows only when vCPU 1 caches the block");
  });

  it("a checker that is off stays silent", () => {
    const s = CHECK_SCENARIOS.find((x) => x.name === "coalesce")!;
    const r = runCheckScenario(s, profile, {
      kernel: "v5.14",
      inject: "coalesce-tlbi-ipa",
      checks: parseChecks("table-free,refcount,coherence"),
      mode: "collect",
    });
    assert.deepEqual(r.violations, []);
  });

  it("every injectable bug is provoked by some scenario on every kernel it applies to", () => {
    for (const b of INJECTED_BUGS) {
      for (const kernel of b.kernels) {
        assert.ok(
          CASES.some((c) => c.bug === b.name && c.kernel === kernel),
          `${b.name} on ${kernel}`,
        );
      }
    }
  });

  it("no stale golden files", { skip: UPDATE }, () => {
    const expected = new Set(CASES.map((c) => `${c.scenario.name}.${c.kernel}.${c.bug}.txt`));
    assert.deepEqual(
      readdirSync(GOLDEN_DIR).filter((f) => !expected.has(f)),
      [],
    );
  });
});
