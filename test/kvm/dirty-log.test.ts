/** Dirty logging (spec 7): enable, GET, CLEAR with manual protect, disable and lazy rebuild. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runToCompletion } from "../../src/common/steps.js";
import { clearDirtyLog, enableDirtyLogging, getDirtyLog } from "../../src/kvm/dirty-log.js";
import { guestAccess } from "../../src/kvm/fault.js";
import type { KernelVersion } from "../../src/pgtable/kernel.js";
import { K4, KERNELS, M2, leaf, leaves, makeTest, runStage, summarize } from "./helpers.js";

/** 8 pages after CREATE, with logging on and page 2 written (so dirty and mapped RW again). */
function loggingAfterOneWrite(kernel: KernelVersion) {
  const t = makeTest(kernel, "anonymous", 8 * K4, 1);
  runStage(t, "KVM_CREATE_MAPPINGS");
  const { vm, slot } = t;
  runToCompletion(enableDirtyLogging(vm, slot));
  runToCompletion(
    guestAccess(vm, vm.vcpus[0]!, { ipa: slot.gpa + 2 * K4, write: true, exec: false, s1ptw: false }),
  );
  return t;
}

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
      const { vm, slot } = loggingAfterOneWrite(kernel);
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

    it("initially-set marks exactly the slot's pages; CLEAR checks its range", () => {
      const t = makeTest(kernel, "anonymous", 40 * K4, 1);
      runStage(t, "KVM_CREATE_MAPPINGS");
      const { vm, slot } = t;
      runToCompletion(enableDirtyLogging(vm, slot, { manualProtect: true, initiallySet: true }));
      assert.deepEqual([...slot.dirtyBitmap!], [0xffffffff, 0xff]);
      // The whole last 64-page word may be given; pages past the slot's end are not dirty.
      runToCompletion(clearDirtyLog(vm, slot, 0, Uint32Array.of(0xffffffff, 0xffffffff)));
      assert.deepEqual([...slot.dirtyBitmap!], [0, 0]);
      for (let p = 0; p < 40; p++) assert.equal(leaf(vm, slot.gpa + p * K4).perm, "ro");
      const bad = (first: number, words: number) => () =>
        runToCompletion(clearDirtyLog(vm, slot, first, new Uint32Array(words)));
      assert.throws(bad(32, 2), { code: "bad-dirty-log-range" }); // not 64-aligned
      assert.throws(bad(64, 2), { code: "bad-dirty-log-range" }); // past the slot
      assert.throws(bad(0, 4), { code: "bad-dirty-log-range" }); // a whole word past the end
    });

    it("GET and CLEAR on a slot that does not log fail with -ENOENT", () => {
      const t = makeTest(kernel, "anonymous", 8 * K4, 1);
      const { vm, slot } = t;
      assert.throws(() => runToCompletion(getDirtyLog(vm, slot)), { code: "dirty-log-off" });
      assert.throws(() => runToCompletion(clearDirtyLog(vm, slot, 0, new Uint32Array(2))), {
        code: "dirty-log-off",
      });
    });

    it("enabling again while logging changes nothing (same flags: no memslot update)", () => {
      const { vm, slot } = loggingAfterOneWrite(kernel);
      assert.equal(leaf(vm, slot.gpa + 2 * K4).perm, "rw");
      const again = vm.events.record(() => runToCompletion(enableDirtyLogging(vm, slot)));
      assert.deepEqual(again.events, []);
      assert.equal(slot.isDirty(slot.gpa + 2 * K4), true);
      assert.equal(leaf(vm, slot.gpa + 2 * K4).perm, "rw");
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
