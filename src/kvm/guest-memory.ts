/**
 * How a guest program's memory accesses reach the machine. A workload issues each access through
 * this port: `tryAccess` completes it when no exit and no wait is needed (the common case, kept
 * free of generators), otherwise `access` completes it the slow way, taking and handling the
 * stage-2 faults. `tables` lists the IPAs of the guest's own stage-1 table pages the access's
 * stage-1 walk reads (their stage-2 faults are S1PTW faults); workloads that do not model the
 * guest's stage 1 pass none.
 */
import type { Blocking } from "../common/steps.js";
import { guestAccess } from "./fault.js";
import type { Vcpu, Vm } from "./vm.js";

/** A guest memory access path. */
export interface GuestMemory {
  /** Completes the access if it needs neither an exit nor a wait; false otherwise (nothing done). */
  tryAccess(vcpu: Vcpu, ipa: number, write: boolean, tables: Float64Array, nTables: number): boolean;
  /** Completes an access {@link tryAccess} refused. */
  access(vcpu: Vcpu, ipa: number, write: boolean, tables: Float64Array, nTables: number): Blocking<void>;
}

/** The plain path: every access is a hardware walk and the fault loop, with no TLB and no clock. */
export class DirectGuestMemory implements GuestMemory {
  constructor(private readonly vm: Vm) {}

  tryAccess(): boolean {
    return false;
  }

  *access(vcpu: Vcpu, ipa: number, write: boolean, tables: Float64Array, nTables: number): Blocking<void> {
    for (let i = 0; i < nTables; i++) {
      yield* guestAccess(this.vm, vcpu, { ipa: tables[i]!, write: false, exec: false, s1ptw: true });
    }
    yield* guestAccess(this.vm, vcpu, { ipa, write, exec: false, s1ptw: false });
  }
}
