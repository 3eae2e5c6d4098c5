/**
 * The unmodified kernels obey every rule: all three timed stages of kvm_page_table_test, on every
 * backing type, with all checkers on, report no violation (small sizes; the 1 GiB hugetlb backing
 * at its smallest, one page).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KUNPENG_920 } from "../../src/arch/cpu.js";
import { parseChecks } from "../../src/check/rules.js";
import { formatViolation } from "../../src/check/violation.js";
import { KERNEL_VERSIONS } from "../../src/pgtable/kernel.js";
import { loadProfile } from "../../src/sim/profile.js";
import { simulatePageTableTest } from "../../src/workloads/page-table-sim.js";

const profile = loadProfile("kunpeng920");
const BACKINGS: ReadonlyArray<readonly [string, number, number]> = [
  ["anonymous", 8 << 20, 4],
  ["anonymous_thp", 8 << 20, 4],
  ["anonymous_hugetlb", 8 << 20, 4],
  ["anonymous_hugetlb_64kb", 8 << 20, 3],
  ["anonymous_hugetlb_1gb", 2 ** 30, 2],
  ["shmem", 8 << 20, 3],
  ["shared_hugetlb", 8 << 20, 3],
];

describe("kvm_page_table_test under every checker", () => {
  for (const kernel of KERNEL_VERSIONS) {
    for (const [backing, memBytes, vcpus] of BACKINGS) {
      it(`${kernel} ${backing}: no violation in CREATE, UPDATE or ADJUST`, () => {
        const r = simulatePageTableTest({ kernel, backing, memBytes, vcpus }, profile, undefined, 3, {
          checks: parseChecks("all"),
          mode: "collect",
        });
        assert.equal(r.stages.length, 3);
        assert.ok(r.check !== undefined);
        assert.deepEqual(r.check.violations.map(formatViolation), []);
        assert.equal(r.check.found, 0);
      });
    }
  }

  it("a CPU with FEAT_TTL (level-hinted TLBIs remove only their level): no violation either", () => {
    for (const kernel of KERNEL_VERSIONS) {
      for (const backing of ["anonymous_thp", "anonymous_hugetlb"]) {
        const r = simulatePageTableTest(
          { kernel, backing, memBytes: 8 << 20, vcpus: 3, vmOptions: { cpu: { ...KUNPENG_920, ttl: true } } },
          profile,
          undefined,
          3,
          { checks: parseChecks("all"), mode: "collect" },
        );
        assert.deepEqual(r.check!.violations.map(formatViolation), [], `${kernel} ${backing}`);
      }
    }
  });

  it("checking changes nothing the model computes", () => {
    const config = { kernel: "v5.12" as const, backing: "anonymous_hugetlb", memBytes: 8 << 20, vcpus: 4 };
    const plain = simulatePageTableTest(config, profile);
    const checked = simulatePageTableTest(config, profile, undefined, 3, {
      checks: parseChecks("all"),
      mode: "collect",
    });
    assert.deepEqual(checked.stages, plain.stages);
  });
});
