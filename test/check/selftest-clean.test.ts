/**
 * The unmodified kernels obey every rule: all three timed stages of kvm_page_table_test, on every
 * backing type, with all checkers on, report no violation (small sizes; the 1 GiB hugetlb backing
 * at its smallest, one page).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KUNPENG_920 } from "../../src/arch/cpu.js";
import { parseChecks } from "../../src/check/rules.js";
import { formatViolation, type Violation } from "../../src/check/violation.js";
import { KERNEL_VERSIONS, type KernelVersion } from "../../src/pgtable/kernel.js";
import { loadProfile } from "../../src/sim/profile.js";
import { simulatePageTableTest } from "../../src/workloads/page-table-sim.js";
import { withoutSpeedFigures } from "../speed-figures.js";

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

  // The other guest modes: a 48-bit IPA (four stage-2 levels from level 0) and 64K guest pages.
  for (const [guestMode, backing] of [
    [2, "anonymous_thp"],
    [3, "anonymous"],
    [5, "anonymous_hugetlb"],
  ] as const) {
    it(`v5.14 ${backing} in guest mode ${guestMode}: no violation`, () => {
      const r = simulatePageTableTest(
        { kernel: "v5.14", backing, memBytes: 8 << 20, vcpus: 3, guestMode },
        profile,
        undefined,
        3,
        { checks: parseChecks("all"), mode: "collect" },
      );
      assert.deepEqual(r.check!.violations.map(formatViolation), []);
      // The mode ran: its IPA size, and its guest pages' S1PTW faults (8 MiB: 5 with 4K pages,
      // an L2 table and 4 L3 tables; 1 with 64K, a 4 KiB piece of one L3 table; per vCPU at most).
      assert.equal(r.ipa_bits, guestMode === 5 ? 40 : 48);
      const s1ptw = r.stages.reduce((a, s) => a + s.s1ptw_faults, 0);
      if (guestMode === 2) assert.ok(s1ptw >= 5, `${s1ptw}`);
      else assert.ok(s1ptw >= 1 && s1ptw <= 3, `${s1ptw}`);
    });
  }

  it("a CPU with FEAT_TTL: the level hint on a table unlink is reported (a known bug of both kernels)", () => {
    // v5.12 and v5.14 unmap an empty table with a TLBI by IPA hinted at the table's level; with
    // FEAT_TTL a hint names a leaf level, so the walk caches may keep the way to the freed table
    // (fixed by Linux 36e008323926). THP's notifier unmaps free such tables, and so does the
    // selftest's kvm_vm_free; the Kunpeng 920 has no FEAT_TTL, so the same runs there are clean.
    const ttl = { ...KUNPENG_920, ttl: true };
    const run = (kernel: KernelVersion, backing: string): { violations: readonly Violation[] } =>
      simulatePageTableTest(
        { kernel, backing, memBytes: 8 << 20, vcpus: 3, vmOptions: { cpu: ttl } },
        profile,
        undefined,
        3,
        { checks: parseChecks("all"), mode: "collect" },
      ).check!;
    for (const kernel of KERNEL_VERSIONS) {
      const thp = run(kernel, "anonymous_thp");
      assert.ok(thp.violations.length > 0, `${kernel}: the hinted table unlink went unnoticed`);
      const first = thp.violations[0]!;
      assert.equal(first.check, "table-free", formatViolation(first));
      assert.match(
        first.what,
        /the TLBI by IPA hinted L\d it got removes only leaf entries on a FEAT_TTL CPU/,
      );
      assert.ok(
        thp.violations.every((v) => /hinted L\d/.test(v.what)),
        thp.violations.map(formatViolation).join("\n"),
      );
      // Leaf hints are right: hugetlb frees no table in the stages, so the only reports come from
      // kvm_vm_free, whose memslot deletions unlink tables with the same hinted TLBI (untimed, by
      // the host).
      const hugetlb = run(kernel, "anonymous_hugetlb").violations;
      assert.ok(hugetlb.length > 0, `${kernel}: the teardown's hinted table unlinks went unnoticed`);
      assert.ok(
        hugetlb.every((v) => v.vcpu === -1 && Number.isNaN(v.timePs) && /hinted L\d/.test(v.what)),
        hugetlb.map(formatViolation).join("\n"),
      );
    }
  });

  it("a report about the untimed first entry names the vCPU whose fault it is, not the host", () => {
    const r = simulatePageTableTest(
      { kernel: "v5.14", backing: "anonymous", memBytes: 4 << 20, vcpus: 2, inject: "install-no-cmo" },
      profile,
      undefined,
      1,
      { checks: parseChecks("coherence"), mode: "collect" },
    );
    const first = r.check!.violations[0]!;
    // The top page of vCPU 0's stack (five pages from KVM_UTIL_MIN_PFN) in memslot 0, faulted
    // before CREATE.
    assert.equal(first.ipa, 0x6000);
    assert.equal(first.vcpu, 0);
    assert.ok(Number.isNaN(first.timePs));
    assert.match(formatViolation(first), /^coherence violation \(untimed\) on vCPU 0: /);
  });

  it("checking changes nothing the model computes", () => {
    const config = { kernel: "v5.12" as const, backing: "anonymous_hugetlb", memBytes: 8 << 20, vcpus: 4 };
    const plain = simulatePageTableTest(config, profile);
    const checked = simulatePageTableTest(config, profile, undefined, 3, {
      checks: parseChecks("all"),
      mode: "collect",
    });
    // The checkers turn the fast-forward and access runs off (they look at every step and hit);
    // those are the speed-ups' own counts.
    const strip = (stages: typeof plain.stages): unknown[] => stages.map((s) => withoutSpeedFigures(s, true));
    assert.deepEqual(strip(checked.stages), strip(plain.stages));
    assert.ok(plain.stages[1]!.fast_forward_leaves > 0);
    assert.deepEqual(
      checked.stages.map((s) => s.fast_forward_leaves),
      [0, 0, 0],
    );
  });
});
