/** Dirty logging (spec 7): enable, GET, CLEAR with manual protect, disable and lazy rebuild. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runToCompletion } from "../../src/common/steps.js";
import { clearDirtyLog, enableDirtyLogging, getDirtyLog } from "../../src/kvm/dirty-log.js";
import { guestAccess } from "../../src/kvm/fault.js";
import { K4, KERNELS, M2, leaf, leaves, makeTest, runStage, summarize } from "./helpers.js";

for (const kernel of KERNELS) {
  describe(`${kernel} dirty logging`, () => {
    it("enable write-protects with one VMID TLBI; GET returns written pages and re-protects", () => {
      const t = makeTest(kernel, "anonymous", 8 * K4, 1);
      runStage(t, "KVM_CREATE_MAPPINGS");
      const { vm, slot } = t;
      const en = vm.events.record(() => runToCompletion(enableDirtyLogging(vm, slot)));
      const se = summarize(en.events);
      assert.deepEqual(se.tlbi, { vmid: 1 });
      assert.deepEqual(se.dcmo, []);
      assert.equal(en.events[en.events.length - 1]!.kind, "tlbi");
      for (let p = 0; p < 8; p++) assert.equal(leaf(vm, slot.gpa + p * K4).perm, "ro");
      const w = (p: number) =>
        runToCompletion(
          guestAccess(vm, vm.vcpus[0]!, { ipa: slot.gpa + p * K4, write: true, exec: false, s1ptw: false }),
        );
      w(2);
      w(5);
      assert.equal(leaf(vm, slot.gpa + 2 * K4).perm, "rw");
      const g = vm.events.record(() => runToCompletion(getDirtyLog(vm, slot)));
      assert.equal(g.result[0], (1 << 2) | (1 << 5));
      assert.deepEqual(summarize(g.events).tlbi, { vmid: 1 });
      assert.equal(leaf(vm, slot.gpa + 2 * K4).perm, "ro");
      assert.equal(leaf(vm, slot.gpa + 5 * K4).perm, "ro");
      assert.equal(runToCompletion(getDirtyLog(vm, slot))[0], 0);
    });

    it("GET returns what each word held when exchanged under mmu_lock", () => {
      const t = makeTest(kernel, "anonymous", 8 * K4, 1);
      runStage(t, "KVM_CREATE_MAPPINGS");
      const { vm, slot } = t;
      runToCompletion(enableDirtyLogging(vm, slot));
      runToCompletion(
        guestAccess(vm, vm.vcpus[0]!, { ipa: slot.gpa + 2 * K4, write: true, exec: false, s1ptw: false }),
      );
      const get = getDirtyLog(vm, slot);
      assert.equal(get.next().done, false); // waiting for mmu_lock
      slot.markDirty(slot.gpa + 6 * K4); // marked by a vCPU that held it
      let r = get.next();
      while (r.done !== true) r = get.next();
      assert.equal(r.value[0], (1 << 2) | (1 << 6));
      assert.equal(slot.isDirty(slot.gpa + 6 * K4), false);
    });

    it("manual protect: GET only copies, CLEAR re-protects and flushes", () => {
      const t = makeTest(kernel, "anonymous", 8 * K4, 1);
      runStage(t, "KVM_CREATE_MAPPINGS");
      const { vm, slot } = t;
      const mode = { manualProtect: true, initiallySet: false };
      runToCompletion(enableDirtyLogging(vm, slot, mode));
      runToCompletion(
        guestAccess(vm, vm.vcpus[0]!, { ipa: slot.gpa + 3 * K4, write: true, exec: false, s1ptw: false }),
      );
      const g = vm.events.record(() => runToCompletion(getDirtyLog(vm, slot, mode)));
      assert.equal(g.result[0], 1 << 3);
      assert.deepEqual(summarize(g.events).tlbi, {});
      assert.equal(leaf(vm, slot.gpa + 3 * K4).perm, "rw");
      const c = vm.events.record(() =>
        runToCompletion(clearDirtyLog(vm, slot, 0, Uint32Array.of(0xffffffff, 0xffffffff))),
      );
      assert.deepEqual(summarize(c.events).tlbi, { vmid: 1 });
      assert.equal(leaf(vm, slot.gpa + 3 * K4).perm, "ro");
      assert.equal(slot.isDirty(slot.gpa + 3 * K4), false);
    });

    it("disable leaves stage 2 alone; blocks come back lazily in ADJUST", () => {
      const t = makeTest(kernel, "anonymous_hugetlb_2mb", 2 * M2, 1);
      runStage(t, "KVM_CREATE_MAPPINGS");
      runStage(t, "KVM_UPDATE_MAPPINGS");
      const before = leaves(t.vm);
      const d = t.vm.events.record(() => t.prepareStage("KVM_ADJUST_MAPPINGS"));
      assert.deepEqual(
        d.events.filter((e) => e.kind !== "dirty-log"),
        [],
      );
      assert.deepEqual(leaves(t.vm), before);
      assert.deepEqual(before, [0, 0, 0, 2 * 257]);
      const a = runStage(t, "KVM_ADJUST_MAPPINGS");
      assert.deepEqual(a.faults, { "translation-L3": 2 });
      assert.deepEqual(a.tlbi, { vmid: 2 });
      assert.deepEqual(leaves(t.vm), [0, 0, 2, 0]);
    });
  });
}
