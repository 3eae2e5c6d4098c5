/** Ageing flushes, DIC-implied execute, initially-set dirty logging and HVA/GPA congruence for blocks. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type CpuFeatures, KUNPENG_920 } from "../../src/arch/cpu.js";
import { runToCompletion } from "../../src/common/steps.js";
import { clearDirtyLog, enableDirtyLogging } from "../../src/kvm/dirty-log.js";
import { guestAccess } from "../../src/kvm/fault.js";
import { Vm } from "../../src/kvm/vm.js";
import type { GuestAccess } from "../../src/pgtable/hw-walk.js";
import { K4, KERNELS, M2, leaf, leaves, makeTest, runStage, summarize } from "./helpers.js";

const HVA = 0x4000_0000_0000;
const GPA = 0x4000_0000;

const access = (ipa: number, kind: "read" | "write" | "exec"): GuestAccess => ({
  ipa,
  write: kind === "write",
  exec: kind === "exec",
  s1ptw: false,
});

for (const kernel of KERNELS) {
  describe(`${kernel} notifier and memslot rules`, () => {
    it("clear_flush_young on a young page flushes the whole VMID once; on the now-old page, not at all", () => {
      const vm = new Vm({ kernel, vcpus: 1, hostBytes: 1 << 20 });
      vm.addMemory(1, GPA, 4 * K4, HVA, "anonymous");
      runToCompletion(guestAccess(vm, vm.vcpus[0]!, access(GPA, "write")));
      assert.equal(vm.pgt.isYoung(GPA), true, "a new leaf has AF set");

      const first = vm.events.record(() => runToCompletion(vm.host.clearFlushYoung(HVA, HVA + K4)));
      assert.equal(first.result, true);
      const s1 = summarize(first.events);
      assert.deepEqual(s1.handler, { age: 1 });
      assert.deepEqual(s1.tlbi, { vmid: 1 }, "exactly one whole-VMID TLBI, no per-IPA TLBI");
      assert.equal(vm.pgt.isYoung(GPA), false, "the leaf is now old");
      assert.deepEqual(leaf(vm, GPA), { level: 3, perm: "rw", xn: true }, "mkold keeps the leaf");

      const second = vm.events.record(() => runToCompletion(vm.host.clearFlushYoung(HVA, HVA + K4)));
      assert.equal(second.result, false);
      const s2 = summarize(second.events);
      assert.deepEqual(s2.handler, { age: 1 });
      assert.deepEqual(s2.tlbi, {}, "an old page needs no flush");
    });

    it("with CTR_EL0.DIC a data fault maps the page executable (XN clear); without DIC it maps XN", () => {
      const run = (cpu: CpuFeatures, first: "read" | "write"): { xn: boolean; execFaults: number } => {
        const vm = new Vm({ kernel, cpu, vcpus: 1, hostBytes: 1 << 20 });
        vm.addMemory(1, GPA, 4 * K4, HVA, "anonymous");
        const v = vm.vcpus[0]!;
        assert.equal(runToCompletion(guestAccess(vm, v, access(GPA, first))), 1);
        const { xn } = leaf(vm, GPA);
        const execFaults = runToCompletion(guestAccess(vm, v, access(GPA, "exec")));
        return { xn, execFaults };
      };
      const dic: CpuFeatures = { ...KUNPENG_920, dic: true };
      const noDic: CpuFeatures = { ...KUNPENG_920, dic: false };
      for (const first of ["read", "write"] as const) {
        assert.deepEqual(run(dic, first), { xn: false, execFaults: 0 }, `DIC, ${first} fault`);
        assert.deepEqual(run(noDic, first), { xn: true, execFaults: 1 }, `no DIC, ${first} fault`);
      }
    });

    it("enabling dirty logging with manual protect and initially-set write-protects nothing and flushes nothing", () => {
      const t = makeTest(kernel, "anonymous", 8 * K4, 1);
      runStage(t, "KVM_CREATE_MAPPINGS");
      const { vm, slot } = t;
      for (let p = 0; p < 8; p++) assert.equal(leaf(vm, slot.gpa + p * K4).perm, "rw");
      const en = vm.events.record(() =>
        runToCompletion(enableDirtyLogging(vm, slot, { manualProtect: true, initiallySet: true })),
      );
      const s = summarize(en.events);
      assert.deepEqual(s.tlbi, {});
      assert.deepEqual(
        en.events.map((e) => e.kind),
        ["dirty-log"],
        "only the enable itself: no descriptor store, no TLBI",
      );
      for (let p = 0; p < 8; p++) assert.equal(leaf(vm, slot.gpa + p * K4).perm, "rw", `page ${p}`);
      // A write needs no fault until KVM_CLEAR_DIRTY_LOG protects the page.
      assert.equal(runToCompletion(guestAccess(vm, vm.vcpus[0]!, access(slot.gpa + 3 * K4, "write"))), 0);
      const c = vm.events.record(() => runToCompletion(clearDirtyLog(vm, slot, 0, Uint32Array.of(0xff, 0))));
      assert.deepEqual(summarize(c.events).tlbi, { vmid: 1 });
      for (let p = 0; p < 8; p++) assert.equal(leaf(vm, slot.gpa + p * K4).perm, "ro", `page ${p}`);
    });

    for (const backing of ["anonymous_thp", "anonymous_hugetlb_2mb"]) {
      it(`${backing}: a memslot whose HVA is not congruent with its GPA modulo 2M maps 4K pages, never a 2M block`, () => {
        const vm = new Vm({ kernel, vcpus: 1, hostBytes: 8 * M2 });
        // Slot 1: HVA and GPA both 2M-aligned (congruent). Slot 2: GPA 4K past a 2M boundary.
        const congruent = vm.addMemory(1, 4 * M2, M2, HVA, backing);
        const skewed = vm.addMemory(2, 8 * M2 + K4, M2, HVA + 2 * M2, backing);
        const v = vm.vcpus[0]!;
        runToCompletion(guestAccess(vm, v, access(congruent.gpa + 5 * K4, "write")));
        assert.deepEqual(leaves(vm), [0, 0, 1, 0], "the congruent slot gets a 2M block");
        for (const p of [0, 5, 255]) {
          const ipa = skewed.gpa + p * K4;
          const f = vm.events.record(() => runToCompletion(guestAccess(vm, v, access(ipa, "write"))));
          const maps = f.events.flatMap((e) =>
            e.kind === "fault-action" ? [[e.action, e.ipa, e.size]] : [],
          );
          assert.deepEqual(maps, [["map", ipa, K4]], `page ${p}`);
          assert.equal(leaf(vm, ipa).level, 3, `page ${p}`);
        }
        assert.deepEqual(leaves(vm), [0, 0, 1, 3]);
      });
    }
  });
}
