/** Bad inputs are S2simErrors with stable codes. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { S2simError } from "../../src/common/error.js";
import { runToCompletion } from "../../src/common/steps.js";
import { guestAccess } from "../../src/kvm/fault.js";
import { Vm } from "../../src/kvm/vm.js";
import { K4, KERNELS, M2 } from "./helpers.js";

const code = (c: string) => (e: unknown) => e instanceof S2simError && e.code === c;
const HVA = 0x4000_0000_0000;

for (const kernel of KERNELS) {
  describe(`${kernel} bad inputs`, () => {
    const vm = () => new Vm({ kernel, vcpus: 1, hostBytes: 4 * M2 });
    it("an abort the handler fails (-EFAULT: a memslot with no VMA behind it) stops KVM_RUN", () => {
      const v = vm();
      v.memslots.add(1, M2, M2, HVA, 0);
      assert.throws(
        () =>
          runToCompletion(guestAccess(v, v.vcpus[0]!, { ipa: M2, write: true, exec: false, s1ptw: false })),
        (e: unknown) => code("kvm-run-failed")(e) && /returned -EFAULT/.test((e as Error).message),
      );
    });
    it("overlapping memslots", () => {
      const v = vm();
      v.addMemory(1, M2, M2, HVA, "anonymous");
      assert.throws(() => v.addMemory(2, M2 + K4, K4, HVA + 2 * M2, "anonymous"), code("overlap"));
    });
    it("a slot outside the IPA space", () => {
      assert.throws(() => vm().addMemory(1, 2 ** 40 - K4, 2 * K4, HVA, "anonymous"), code("outside-ipa"));
    });
    it("unaligned size, GPA and HVA", () => {
      assert.throws(() => vm().addMemory(1, 0, K4 + 1, HVA, "anonymous"), code("unaligned"));
      assert.throws(() => vm().addMemory(1, 123, K4, HVA, "anonymous"), code("unaligned"));
      assert.throws(() => vm().addMemory(1, 0, K4, HVA + 8, "anonymous"), code("unaligned"));
      assert.throws(() => vm().addMemory(1, 0, K4, HVA, "anonymous_hugetlb_2mb"), code("unaligned"));
      assert.throws(() => vm().addMemory(1, 0, M2, HVA + K4, "anonymous_hugetlb_2mb"), code("unaligned"));
    });
    it("hugetlb sizes the granule cannot back", () => {
      assert.throws(
        () => vm().addMemory(1, 0, 16384, HVA, "anonymous_hugetlb_16kb"),
        code("unsupported-backing"),
      );
      const v64 = new Vm({ kernel, granule: 65536, ipaBits: 42, hostBytes: 2 ** 30 });
      assert.throws(
        () => v64.addMemory(1, 0, 2 ** 30, HVA, "anonymous_hugetlb_1gb"),
        code("unsupported-backing"),
      );
    });
    it("an unknown backing name", () => {
      assert.throws(() => vm().addMemory(1, 0, K4, HVA, "anonymous_huge"), code("unknown-backing"));
    });
    it("an access outside every memslot", () => {
      const v = vm();
      v.addMemory(1, M2, M2, HVA, "anonymous");
      const acc = { ipa: 0x1000, write: false, exec: false, s1ptw: false };
      assert.throws(() => runToCompletion(guestAccess(v, v.vcpus[0]!, acc)), code("outside-memslots"));
    });
  });
}
