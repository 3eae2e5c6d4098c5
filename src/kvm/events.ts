/** Events of the KVM layer, and the union of every event a VM emits. */
import type { EventKinds } from "../common/events.js";
import { HOST_EVENT_KINDS, type HostEvent } from "../host/events.js";
import type { FaultStatus } from "../pgtable/hw-walk.js";
import { PGTABLE_EVENT_KINDS, type PgtableEvent } from "../pgtable/events.js";

/** What the fault handler decided under mmu_lock. */
export type FaultAction =
  /** kvm_pgtable_stage2_map of `size`. */
  | "map"
  /** kvm_pgtable_stage2_relax_perms. */
  | "relax"
  /** mmu_notifier_retry: returned without touching the table. */
  | "retry"
  /** handle_access_fault: mkyoung. */
  | "mkyoung";

/** KVM-level events. */
export type KvmEvent =
  | {
      kind: "guest-abort";
      vcpu: number;
      ipa: number;
      fsc: FaultStatus;
      level: number;
      write: boolean;
      exec: boolean;
      /** The guest's stage-1 walk faulted on its table page (ESR.S1PTW; a write to KVM). */
      s1ptw: boolean;
    }
  | {
      kind: "fault-action";
      vcpu: number;
      action: FaultAction;
      ipa: number;
      size: number;
      prot: number;
      ret: number;
    }
  | { kind: "memcache-topup"; vcpu: number; pages: number }
  | { kind: "mark-dirty"; gpa: number }
  | { kind: "notifier-handler"; op: string; gpa: number; size: number }
  | { kind: "dirty-log"; op: "enable" | "get" | "clear" | "disable"; slot: number };

/** Every event of a VM: KVM, pgtable and host. */
export type VmEvent = KvmEvent | PgtableEvent | HostEvent;

/** Every kind of {@link VmEvent} (for the VM's EventBus). */
export const VM_EVENT_KINDS: EventKinds<VmEvent> = {
  "guest-abort": true,
  "fault-action": true,
  "memcache-topup": true,
  "mark-dirty": true,
  "notifier-handler": true,
  "dirty-log": true,
  ...PGTABLE_EVENT_KINDS,
  ...HOST_EVENT_KINDS,
};
