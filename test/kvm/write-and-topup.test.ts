/** user_mem_abort's rules on what a fault counts as a write, when it tops up, dirties and invalidates. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { interleave, runToCompletion } from "../../src/common/steps.js";
import { guestAccess } from "../../src/kvm/fault.js";
import type { GuestAccess } from "../../src/pgtable/hw-walk.js";
import type { Vm } from "../../src/kvm/vm.js";
import { K4, KERNELS, M2, leaf, makeTest, summarize } from "./helpers.js";

/** One access of vCPU 0 run to its end (result: the faults it took; a failed one throws), with its events. */
function access(vm: Vm, a: Partial<GuestAccess> & { ipa: number }) {
  const full: GuestAccess = { write: false, exec: false, s1ptw: false, ...a };
  return vm.events.record(() => runToCompletion(guestAccess(vm, vm.vcpus[0]!, full)));
}

for (const kernel of KERNELS) {
  describe(`${kernel} user_mem_abort`, () => {
    it("a stage-1 table walk's fault is a write: GUP breaks the zero page and the leaf is RW (spec 4.5)", () => {
      const t = makeTest(kernel, "anonymous", 4 * K4, 1);
      const { vm, slot } = t;
      // An untouched anonymous page: a read would map the zero page read-only.
      const walk = access(vm, { ipa: slot.gpa, s1ptw: true });
      assert.deepEqual(leaf(vm, slot.gpa), { level: 3, perm: "rw", xn: true });
      const read = access(vm, { ipa: slot.gpa + K4 });
      assert.equal(leaf(vm, slot.gpa + K4).perm, "ro");
      // The walk's page is a new host page; the read's, the shared zero page.
      assert.deepEqual(summarize(walk.events).hostFaults, { alloc: 1 });
      assert.deepEqual(summarize(read.events).hostFaults, { "zero-page": 1 });
    });

    it("only a fault that maps or relaxes (ret 0) marks its page dirty; an -EAGAIN loser does not", () => {
      const t = makeTest(kernel, "anonymous", 4 * K4, 2);
      const { vm, slot } = t;
      const write = { ipa: slot.gpa, write: true, exec: false, s1ptw: false };
      // Both vCPUs fault on the same untouched page at once: one maps it, the other finds it mapped.
      const { events } = vm.events.record(() =>
        interleave(
          vm.vcpus.map((v) => guestAccess(vm, v, write)),
          "round-robin",
          vm.heldLocks,
        ),
      );
      const actions = events.filter((e) => e.kind === "fault-action");
      const done = actions.filter((e) => e.kind === "fault-action" && e.ret === 0 && e.action !== "retry");
      assert.equal(done.length, 1, JSON.stringify(actions));
      assert.ok(
        actions.some((e) => e.kind === "fault-action" && e.ret === -11),
        "no -EAGAIN loser",
      );
      assert.equal(events.filter((e) => e.kind === "mark-dirty").length, 1);
    });
  });
}

describe("user_mem_abort's memcache top-up (spec 4.5 step 5)", () => {
  for (const kernel of KERNELS) {
    it(`${kernel}: a write permission fault under dirty logging tops up, since it maps a page in a new table`, () => {
      const t = makeTest(kernel, "anonymous_hugetlb_2mb", M2, 1);
      const { vm, slot } = t;
      assert.equal(access(vm, { ipa: slot.gpa, write: true }).result, 1);
      assert.deepEqual(leaf(vm, slot.gpa), { level: 2, perm: "rw", xn: true });
      t.prepareStage("KVM_UPDATE_MAPPINGS"); // dirty logging on: the block is write-protected
      const mc = vm.vcpus[0]!.memcache;
      mc.free();
      // Without the top-up the map would find no table page and KVM_RUN fail with -ENOMEM.
      const w = access(vm, { ipa: slot.gpa, write: true });
      assert.equal(w.result, 1);
      assert.deepEqual(summarize(w.events).faults, { "permission-L2": 1 });
      assert.ok(
        w.events.some((e) => e.kind === "memcache-topup"),
        "no top-up",
      );
      assert.deepEqual(leaf(vm, slot.gpa), { level: 3, perm: "rw", xn: true });
    });
  }
  it("tops up whenever fewer pages are held than a walk from the start level can need", () => {
    const t = makeTest("v5.14", "anonymous", 4 * K4, 1);
    const { vm, slot } = t;
    // 4K pages, 40-bit IPA: three levels from L1, so a first fault may need two tables (L2, L3).
    assert.equal(vm.geo.cacheMinPages, 2);
    const mc = vm.vcpus[0]!.memcache;
    mc.free();
    mc.topup(1);
    while (mc.count > 1) mc.alloc();
    const tables = vm.pgt.tablesInstalled;
    // With one page held and no top-up, the map would run out of table pages (-ENOMEM).
    const w = access(vm, { ipa: slot.gpa, write: true });
    assert.equal(vm.pgt.tablesInstalled - tables, 2);
    assert.ok(
      w.events.some((e) => e.kind === "memcache-topup"),
      "no top-up",
    );
  });
});

describe("v5.12's exec fault (spec 4.5 step 14)", () => {
  it("invalidates the I-cache for the whole mapping in user_mem_abort, on a CPU without DIC", () => {
    const t = makeTest("v5.12", "anonymous", 4 * K4, 1);
    const { vm, slot } = t;
    const x = access(vm, { ipa: slot.gpa, exec: true });
    assert.equal(summarize(x.events).icmo, 1);
    assert.equal(leaf(vm, slot.gpa).xn, false);
    // A data fault invalidates nothing.
    assert.equal(summarize(access(vm, { ipa: slot.gpa + K4, write: true }).events).icmo, 0);
  });
});
