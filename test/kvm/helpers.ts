/** Shared helpers for the KVM fault-path tests: run a selftest stage in a fixed interleaving. */
import { ATTR_HI_XN, ATTR_LO_S2AP_R, ATTR_LO_S2AP_W } from "../../src/arch/descriptor.js";
import { type InterleavePolicy, interleave } from "../../src/common/steps.js";
import type { VmEvent } from "../../src/kvm/events.js";
import type { Vm } from "../../src/kvm/vm.js";
import { censusTables } from "../../src/pgtable/invariants.js";
import { PageTableTest, type TestStage } from "../../src/workloads/page-table-test.js";
import type { KernelVersion } from "../../src/pgtable/kernel.js";

export const KERNELS: readonly KernelVersion[] = ["v5.12", "v5.14"];
export const K4 = 4096;
export const M2 = 2 << 20;
export const G1 = 2 ** 30;

/** How the vCPUs of a stage are scheduled. */
export type Order = "reader-first" | "writer-first" | "round-robin";
export const ORDERS: readonly Order[] = ["reader-first", "writer-first", "round-robin"];

/** What one stage did, in the terms the spec's tables use. */
export interface Summary {
  /** "translation-L3" -> count. */
  faults: Record<string, number>;
  maps: number;
  relaxes: number;
  eagain: number;
  retries: number;
  /** "ipa-L3" / "vmid" -> count. */
  tlbi: Record<string, number>;
  /** D-CMO sizes in emission order. */
  dcmo: number[];
  icmo: number;
  /** "invalidate_range_start" etc. -> count. */
  notifier: Record<string, number>;
  /** KVM handler ops ("unmap", "set_spte", ...). */
  handler: Record<string, number>;
  hostFaults: Record<string, number>;
  events: VmEvent[];
}

const inc = (r: Record<string, number>, k: string): void => {
  r[k] = (r[k] ?? 0) + 1;
};

export function summarize(events: VmEvent[]): Summary {
  const s: Summary = {
    faults: {},
    maps: 0,
    relaxes: 0,
    eagain: 0,
    retries: 0,
    tlbi: {},
    dcmo: [],
    icmo: 0,
    notifier: {},
    handler: {},
    hostFaults: {},
    events,
  };
  for (const e of events) {
    switch (e.kind) {
      case "guest-abort":
        inc(s.faults, `${e.fsc}-L${e.level}`);
        break;
      case "fault-action":
        if (e.action === "map") s.maps++;
        else if (e.action === "relax") s.relaxes++;
        else if (e.action === "retry") s.retries++;
        if (e.ret === -11) s.eagain++;
        break;
      case "tlbi":
        inc(s.tlbi, e.scope === "vmid" ? "vmid" : `ipa-L${e.level}`);
        break;
      case "cmo":
        if (e.op === "dc-civac") s.dcmo.push(e.size);
        else s.icmo++;
        break;
      case "notifier":
        inc(s.notifier, e.op);
        break;
      case "notifier-handler":
        inc(s.handler, e.op);
        break;
      case "host-fault":
        inc(s.hostFaults, e.result);
        break;
      default:
        break;
    }
  }
  return s;
}

/** Sum of D-CMO bytes. */
export const dBytes = (s: Summary): number => s.dcmo.reduce((a, b) => a + b, 0);

/** A page-table test with `vcpus` vCPUs over `bytes` of `backing`. */
export function makeTest(
  kernel: KernelVersion,
  backing: string,
  bytes: number,
  vcpus: number,
): PageTableTest {
  return new PageTableTest({ kernel, backing, memBytes: bytes, vcpus });
}

/**
 * Runs `stage` (after its untimed preparation). With 2 vCPUs, "reader-first" runs vCPU 1's task
 * to completion before vCPU 0's, "writer-first" the reverse, "round-robin" interleaves them.
 */
export function runStage(t: PageTableTest, stage: TestStage, order: Order = "writer-first"): Summary {
  t.prepareStage(stage);
  const vcpus = t.vm.vcpus;
  const progs = vcpus.map((v) => t.vcpuProgram(v, stage, () => {}));
  const tasks = order === "reader-first" ? [...progs].reverse() : progs;
  const policy: InterleavePolicy = order === "round-robin" ? "round-robin" : "sequential";
  const { events } = t.vm.events.record(() => interleave(tasks, policy, t.vm.heldLocks));
  return summarize(events);
}

/** Leaf level and permissions at `ipa` ("none" when unmapped). */
export function leaf(vm: Vm, ipa: number): { level: number; perm: "none" | "ro" | "rw"; xn: boolean } {
  const { level, lo, hi } = vm.pgt.lookup(ipa);
  if (level < 0 || (lo & 1) === 0) return { level, perm: "none", xn: false };
  const w = (lo & ATTR_LO_S2AP_W) !== 0;
  const r = (lo & ATTR_LO_S2AP_R) !== 0;
  return { level, perm: w ? "rw" : r ? "ro" : "none", xn: (hi & ATTR_HI_XN) !== 0 };
}

/** Leaves per level [L0, L1, L2, L3], asserting the table invariants hold. */
export function leaves(vm: Vm): number[] {
  const c = censusTables(vm.pgt);
  if (c.violations.length > 0) throw new Error(`table invariants: ${c.violations.join("; ")}`);
  return c.leavesPerLevel;
}
