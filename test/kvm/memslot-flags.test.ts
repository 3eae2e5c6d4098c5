/** Memslot flags at creation: KVM_MEM_READONLY and KVM_MEM_LOG_DIRTY_PAGES. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KUNPENG_920 } from "../../src/arch/cpu.js";
import { ATTR_LO_S2AP_W } from "../../src/arch/descriptor.js";
import { runToCompletion } from "../../src/common/steps.js";
import { guestAccess } from "../../src/kvm/fault.js";
import { KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY } from "../../src/kvm/memslot.js";
import { Vm } from "../../src/kvm/vm.js";
import { K4, KERNELS, M2 } from "./helpers.js";

const HVA = 0x4000_0000_0000;
const read = { ipa: M2, write: false, exec: false, s1ptw: false };
const write = { ...read, write: true };

for (const kernel of KERNELS) {
  describe(`${kernel} memslot flags`, () => {
    /** A VM with one anonymous slot of 2 MiB at GPA 2 MiB whose first host page the VMM wrote. */
    const vmWith = (flags: number): Vm => {
      const v = new Vm({ kernel, vcpus: 1, hostBytes: 4 * M2 });
      v.addMemory(1, M2, M2, HVA, "anonymous", flags);
      runToCompletion(v.host.gup(HVA, true));
      return v;
    };
    const writable = (v: Vm): boolean => (v.pgt.lookup(M2).lo & ATTR_LO_S2AP_W) !== 0;

    it("a read from a read-only slot maps its page read-only, however writable the host page", () => {
      const plain = vmWith(0);
      runToCompletion(guestAccess(plain, plain.vcpus[0]!, read));
      // GUP's second FOLL_WRITE probe finds the host page writable: the read maps it writable.
      assert.equal(writable(plain), true);
      const ro = vmWith(KVM_MEM_READONLY);
      runToCompletion(guestAccess(ro, ro.vcpus[0]!, read));
      // __gfn_to_pfn_memslot asks no `writable` of a read-only slot.
      assert.equal(ro.pgt.lookup(M2).level, 3);
      assert.equal(writable(ro), false);
    });

    it("a slot created with KVM_MEM_LOG_DIRTY_PAGES logs from the start", () => {
      const v = vmWith(KVM_MEM_LOG_DIRTY_PAGES);
      const slot = v.memslots.byId(1);
      assert.equal(slot.logging, true);
      // Reads while logging map read-only; a write is marked dirty.
      runToCompletion(guestAccess(v, v.vcpus[0]!, read));
      assert.equal(writable(v), false);
      assert.equal(slot.isDirty(M2), false);
      runToCompletion(guestAccess(v, v.vcpus[0]!, write));
      assert.equal(writable(v), true);
      assert.equal(slot.isDirty(M2), true);
      assert.equal(slot.isDirty(M2 + K4), false);
    });
  });
}

// kvm_arch_prepare_memory_region: v5.12 cleans a new slot's stage-2 range (stage2_flush_memslot)
// unless the CPU has FWB; v5.14 does not (spec 5.6). Nothing is mapped there yet: a walk, no CMO.
for (const kernel of KERNELS) {
  for (const fwb of [false, true]) {
    it(`${kernel}${fwb ? " with FWB" : ""}: creating a memslot ${kernel === "v5.12" && !fwb ? "walks it with kvm_pgtable_stage2_flush" : "walks nothing"}`, () => {
      const v = new Vm({ kernel, vcpus: 1, hostBytes: 4 * M2, cpu: { ...KUNPENG_920, fwb } });
      const ops: string[] = [];
      const off = v.events.subscribe(
        (e) => ops.push(e.kind === "op" ? `${e.op} ${e.addr} ${e.size}` : e.kind),
        ["op", "cmo", "pte", "tlbi"],
      );
      v.addMemory(1, M2, M2, HVA, "anonymous");
      off();
      assert.deepEqual(ops, kernel === "v5.12" && !fwb ? [`flush ${M2} ${M2}`] : []);
    });
  }
}
