/** mmu_notifier_retry (spec 6.2 step 10, 8): a notifier between the seq sample and the lock. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runToCompletion } from "../../src/common/steps.js";
import { guestAccess } from "../../src/kvm/fault.js";
import { KvmMmuNotifier } from "../../src/kvm/mmu-notifier.js";
import { Vm } from "../../src/kvm/vm.js";
import { K4, KERNELS, leaf, summarize } from "./helpers.js";

const HVA = 0x4000_0000_0000;
const GPA = 0x4000_0000;

for (const kernel of KERNELS) {
  describe(`${kernel} mmu_notifier_retry`, () => {
    it("a vCPU whose GUP sleeps across another vCPU's CoW returns without mapping and refaults", () => {
      const vm = new Vm({ kernel, vcpus: 2, hostBytes: 1 << 20 });
      vm.addMemory(1, GPA, 4 * K4, HVA, "anonymous");
      const [v0, v1] = [vm.vcpus[0]!, vm.vcpus[1]!];
      // vCPU 1 reads page 0: the zero page is mapped RO.
      runToCompletion(guestAccess(vm, v1, { ipa: GPA, write: false, exec: false, s1ptw: false }));
      const { events } = vm.events.record(() => {
        // vCPU 1 writes page 1: samples mmu_notifier_seq, then its GUP sleeps zeroing a new page.
        const a = guestAccess(vm, v1, { ipa: GPA + K4, write: true, exec: false, s1ptw: false });
        const first = a.next();
        assert.equal(first.done, false);
        assert.deepEqual(first.value, { kind: "sched" });
        // vCPU 0 writes page 0: host CoW of the zero page runs the notifiers.
        runToCompletion(guestAccess(vm, v0, { ipa: GPA, write: true, exec: false, s1ptw: false }));
        // vCPU 1 resumes alone: lock, retry check, unlock, refault. The retry is what the livelock
        // guard sees as waiting on an invalidation (countFault); the map after it is not.
        let sawRetry = false;
        while (!a.next().done) sawRetry ||= v1.fault.retried;
        assert.ok(sawRetry, "the failed mmu_notifier_retry is recorded on the fault context");
        assert.equal(v1.fault.retried, false, "the successful map after it is not a retry");
      });
      const s = summarize(events);
      const acts = events.flatMap((e) => (e.kind === "fault-action" && e.vcpu === 1 ? [e] : []));
      assert.deepEqual(
        acts.map((e) => [e.action, e.ret]),
        [
          ["retry", 0],
          ["map", 0],
        ],
      );
      // No CMO between vCPU 1's retry decision and its previous event under the lock.
      const iRetry = events.findIndex((e) => e.kind === "fault-action" && e.action === "retry");
      let iLastNotifier = -1;
      events.forEach((e, i) => {
        if (e.kind === "notifier") iLastNotifier = i;
      });
      assert.ok(iLastNotifier < iRetry);
      assert.ok(!events.slice(iLastNotifier + 1, iRetry).some((e) => e.kind === "cmo"));
      const aborts = events.filter((e) => e.kind === "guest-abort" && e.vcpu === 1);
      assert.equal(aborts.length, 2);
      assert.equal(s.notifier["invalidate_range_start"], 1);
      assert.deepEqual(leaf(vm, GPA + K4), { level: 3, perm: "rw", xn: true });
      assert.deepEqual(leaf(vm, GPA), { level: 3, perm: "rw", xn: true });
    });
  });
}

describe("MMU notifiers outside every memslot", () => {
  for (const kernel of KERNELS) {
    it(`${kernel}: invalidate start/end still take mmu_lock and count`, () => {
      const vm = new Vm({ kernel, vcpus: 1, hostBytes: 1 << 20 });
      vm.addMemory(1, GPA, 4 * K4, HVA, "anonymous");
      const n = new KvmMmuNotifier(vm);
      const outside = HVA + 2 ** 30;
      const start = n.invalidateRangeStart(outside, outside + K4);
      assert.deepEqual(start.next().value, vm.lockStep);
      runToCompletionFrom(start);
      assert.equal(vm.mmuNotifierCount, 1);
      runToCompletionFrom(n.invalidateRangeEnd(outside, outside + K4));
      assert.equal(vm.mmuNotifierCount, 0);
      assert.equal(vm.mmuNotifierSeq, 1);
    });

    it(`${kernel}: change_pte and ageing ${kernel === "v5.12" ? "take mmu_lock" : "take no lock"}`, () => {
      const vm = new Vm({ kernel, vcpus: 1, hostBytes: 1 << 20 });
      vm.addMemory(1, GPA, 4 * K4, HVA, "anonymous");
      const n = new KvmMmuNotifier(vm);
      const outside = HVA + 2 ** 30;
      const firsts = [
        n.changePte(outside, 0).next(),
        n.clearFlushYoung(outside, outside + K4).next(),
        n.testYoung(outside, outside + K4).next(),
      ];
      for (const first of firsts) {
        if (kernel === "v5.12") assert.deepEqual(first.value, vm.lockStep);
        else assert.equal(first.done, true);
      }
    });
  }
});

describe("change_pte outside an invalidation", () => {
  for (const kernel of KERNELS) {
    it(`${kernel}: takes mmu_lock for a memslot page${kernel === "v5.12" ? " and bumps the sequence" : " (v5.14 only warns)"}`, () => {
      const vm = new Vm({ kernel, vcpus: 1, hostBytes: 1 << 20 });
      vm.addMemory(1, GPA, 4 * K4, HVA, "anonymous");
      const n = new KvmMmuNotifier(vm);
      const gen = n.changePte(HVA, 0);
      assert.deepEqual(gen.next().value, vm.lockStep);
      runToCompletionFrom(gen);
      assert.equal(vm.mmuNotifierSeq, kernel === "v5.12" ? 1 : 0);
    });
  }
});

/** Runs the rest of a started generator. */
function runToCompletionFrom(gen: Generator<unknown, unknown, void>): void {
  for (let r = gen.next(); r.done !== true; r = gen.next());
}
