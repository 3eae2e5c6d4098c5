/** The fault loop's livelock guard: waiting on an invalidation is progress, faulting again is not. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { S2simError } from "../../src/common/error.js";
import { countFault, MAX_STUCK_FAULTS } from "../../src/kvm/fault.js";
import { Vm } from "../../src/kvm/vm.js";
import { loadProfile, withOverrides } from "../../src/sim/profile.js";
import { simulatePageTableTest } from "../../src/workloads/page-table-sim.js";

test("an access that faults again and again with nothing in progress is a livelock, with a clear error", () => {
  const vcpu = new Vm({ kernel: "v5.14", vcpus: 1, hostBytes: 2 ** 21 }).vcpus[0]!;
  vcpu.fault.retried = false;
  let stuck = 0;
  for (let f = 0; f < MAX_STUCK_FAULTS; f++) stuck = countFault(vcpu, 0x1000, f, stuck);
  assert.throws(
    () => countFault(vcpu, 0x1000, MAX_STUCK_FAULTS, stuck),
    (e: unknown) =>
      e instanceof S2simError && e.code === "livelock" && /IPA 0x1000 faulted 65 times/.test(e.message),
  );
  // Faults that found an invalidation in progress (mmu_notifier_retry) do not count.
  vcpu.fault.retried = true;
  for (let f = 1; f < 10 * MAX_STUCK_FAULTS; f++) assert.equal(countFault(vcpu, 0x1000, f, 1), 1);
});

test("a long host operation makes the readers retry for as long as it lasts, not a livelock", () => {
  // A 200 us huge-zero PMD split keeps the notifier count raised: the reader retries about 90 times.
  const profile = withOverrides(loadProfile("kunpeng920"), [
    { parameter: "pmd-split", value: 200, unit: "us" },
  ]);
  const r = simulatePageTableTest(
    { kernel: "v5.14", backing: "anonymous_thp", memBytes: 4 * 2 ** 20, vcpus: 2 },
    profile,
    undefined,
    1,
  );
  assert.ok(r.stages[0]!.retries > MAX_STUCK_FAULTS, `${r.stages[0]!.retries} retries`);
});
