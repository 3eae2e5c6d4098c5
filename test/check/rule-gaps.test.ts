/**
 * Rules a review found the checkers applying too loosely: the stale-TLB checker on a block entry
 * (a hit that agrees with the tables at one address must not count for the rest of the block),
 * and the table-free checker on the descendants of a cut table (a TLBI by IPA removes the cached
 * walk of that address only).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseChecks } from "../../src/check/rules.js";
import { KERNEL_VERSIONS } from "../../src/pgtable/kernel.js";
import { loadProfile } from "../../src/sim/profile.js";
import { simulatePageTableTest } from "../../src/workloads/page-table-sim.js";
import { type CheckScenario, runCheckScenario } from "../../src/workloads/check-scenarios.js";

const profile = loadProfile("kunpeng920");
const r = (page: number): { page: number; write: boolean } => ({ page, write: false });
const w = (page: number): { page: number; write: boolean } => ({ page, write: true });

// The "split" scenario, but vCPU 1 first reads page 0 (which the split maps again) and only then
// page 2 (which it does not).
const SPLIT_THEN_ELSEWHERE: CheckScenario = {
  name: "split-then-elsewhere",
  summary: "a block split with its TLBI left out, then hit where the tables agree and where they do not",
  backing: "anonymous_hugetlb",
  vcpus: 2,
  memBytes: 2 ** 21,
  provokes: ["no-tlbi-after-break"],
  steps: [
    { kind: "run", what: "vCPU 0 writes page 0 (2M block)", vcpus: [[w(0)], []] },
    { kind: "dirty-log", on: true },
    { kind: "run", what: "vCPU 1 reads page 1 (caches the RO block)", vcpus: [[], [r(1)]] },
    { kind: "run", what: "vCPU 0 writes page 0 (split to 4K)", vcpus: [[w(0)], []] },
    { kind: "run", what: "vCPU 1 reads page 0, then page 2", vcpus: [[], [r(0), r(2)]] },
  ],
};

for (const kernel of KERNEL_VERSIONS) {
  test(`stale-tlb: a block entry verified at one address is still judged at another (${kernel})`, () => {
    const checks = parseChecks("stale-tlb");
    const clean = runCheckScenario(SPLIT_THEN_ELSEWHERE, profile, { kernel, checks, mode: "collect" });
    assert.deepEqual(clean.violations, []);
    const bad = runCheckScenario(SPLIT_THEN_ELSEWHERE, profile, {
      kernel,
      inject: "no-tlbi-after-break",
      checks,
      mode: "collect",
    });
    const stale = bad.violations.filter((v) => v.check === "stale-tlb");
    assert.ok(stale.length > 0, "the read of page 2 through the stale block is reported");
    assert.ok(stale.some((v) => v.ipa === 2 ** 30 + 2 * 4096));
  });
}

for (const kernel of KERNEL_VERSIONS) {
  test(`table-free: a coalesce's TLBI by IPA does not cover the way to the other tables it frees (${kernel})`, () => {
    const run = (inject?: "coalesce-tlbi-ipa") =>
      simulatePageTableTest(
        {
          kernel,
          backing: "anonymous_hugetlb_1gb",
          memBytes: 2 ** 30,
          vcpus: 2,
          ...(inject ? { inject } : {}),
        },
        profile,
        undefined,
        3,
        { checks: parseChecks("table-free"), mode: "collect" },
      ).check!.violations;
    assert.deepEqual(run(), []);
    const found = run("coalesce-tlbi-ipa");
    assert.ok(found.length > 0, "the freed L3 tables of the coalesced GiB are reported");
    assert.match(found[0]!.what, /removes the cached walk of that address only, not the way to this page/);
  });
}
