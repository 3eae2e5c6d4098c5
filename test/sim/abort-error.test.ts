/** A stage-2 abort the handler fails stops a simulated run with a clear error (KVM_RUN fails). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { S2simError } from "../../src/common/error.js";
import { Vm } from "../../src/kvm/vm.js";
import { SimMachine } from "../../src/sim/machine.js";
import { loadProfile } from "../../src/sim/profile.js";
import type { AccessStream } from "../../src/sim/vcpu.js";

/** One write to `ipa`. */
class OneWrite implements AccessStream {
  write = true;
  readonly tables = new Float64Array(0);
  readonly nTables = 0;
  private done = false;
  constructor(readonly ipa: number) {}
  next(): boolean {
    if (this.done) return false;
    this.done = true;
    return true;
  }
}

test("simulator: -EFAULT from the abort handler (a memslot with no VMA) is a kvm-run-failed error", () => {
  const machine = new SimMachine(loadProfile("kunpeng920"), 512);
  const vm = new Vm({ kernel: "v5.14", vcpus: 1, hostBytes: 2 ** 21, ...machine.vmHooks() });
  vm.memslots.add(1, 2 ** 30, 2 ** 21, 2 ** 40, 0); // no mmap behind it
  machine.attach(vm);
  assert.throws(
    () => machine.run([new OneWrite(2 ** 30)]),
    (e: unknown) =>
      e instanceof S2simError && e.code === "kvm-run-failed" && /vCPU 0.*-EFAULT/.test(e.message),
  );
});
