/**
 * The end of a selftest VM, as KVM sees it: the library's kvm_vm_free deletes each memslot, then
 * closes the VM. Shared by the selftest run (after its timed stages) and the checker scenarios
 * (after their steps), with any checkers still watching; what they find there is named as found in
 * the teardown.
 */
import { CheckFailure, type Violation } from "../check/violation.js";
import { runToCompletion } from "../common/steps.js";
import type { Vm } from "../kvm/vm.js";

/**
 * kvm_vm_free (tools/testing/selftests/kvm/lib/kvm_util.c), untimed: each memslot deleted in id
 * order (its stage-2 range unmapped), then the VM destroyed (the notifier's release frees the
 * stage-2 tables; the vCPUs' memcaches are given back). The munmap of the regions that follows
 * reaches no memslot, so no KVM work; it is not modelled.
 */
export function kvmVmFree(vm: Vm): void {
  for (const id of vm.memslots.slots.map((s) => s.id).sort((a, b) => a - b)) {
    runToCompletion(vm.deleteMemory(id));
  }
  runToCompletion(vm.destroy());
}

/** `v` as found in kvm_vm_free, which ran `after` (e.g. "after the timed stages"). */
export function inTeardown(v: Violation, after: string): Violation {
  return { ...v, what: `in kvm_vm_free, ${after}: ${v.what}` };
}

/**
 * Runs {@link kvmVmFree}; a checker's CheckFailure there is thrown again with its violation named
 * by {@link inTeardown}.
 */
export function freeWatched(vm: Vm, after: string): void {
  try {
    kvmVmFree(vm);
  } catch (err) {
    if (err instanceof CheckFailure) throw new CheckFailure(inTeardown(err.violation, after));
    throw err;
  }
}
