/**
 * kvm_page_table_test's setup and guest program (spec sections 9.1-9.2), driven through the fault
 * model. Each vCPU runs the stage's loop; how the vCPUs interleave is the driver's choice (the
 * simulator's virtual time, or a fixed policy here).
 */
import { S2simError } from "../common/error.js";
import { type Blocking, type InterleavePolicy, interleave, runToCompletion } from "../common/steps.js";
import { backingSource } from "../host/backing.js";
import { disableDirtyLogging, enableDirtyLogging } from "../kvm/dirty-log.js";
import type { VmEvent } from "../kvm/events.js";
import { guestAccess } from "../kvm/fault.js";
import type { Memslot } from "../kvm/memslot.js";
import { type Vcpu, Vm, type VmOptions } from "../kvm/vm.js";
import type { KernelVersion } from "../pgtable/kernel.js";

/** The timed stages, named as the selftest prints them. */
export type TestStage = "KVM_CREATE_MAPPINGS" | "KVM_UPDATE_MAPPINGS" | "KVM_ADJUST_MAPPINGS";

/** The timed stages in order. */
export const TEST_STAGES: readonly TestStage[] = [
  "KVM_CREATE_MAPPINGS",
  "KVM_UPDATE_MAPPINGS",
  "KVM_ADJUST_MAPPINGS",
];

/** Host virtual base of the test region (64 TiB: aligned for every backing size). */
export const TEST_HVA = 0x4000_0000_0000;

/** A page-table-test configuration (the selftest's -s, -b, -v, -p plus the kernel). */
export interface PageTableTestConfig {
  readonly kernel: KernelVersion;
  /** Backing source name (`-s`). */
  readonly backing: string;
  /** Test region size in bytes (`-b`), rounded up to the backing page size. */
  readonly memBytes: number;
  readonly vcpus: number;
  /** Test GPA (`-p`); default: the top of the IPA space minus the region, aligned. */
  readonly gpa?: number;
  readonly vmOptions?: Partial<Omit<VmOptions, "kernel" | "vcpus">>;
}

/** Counts of what happened in one stage. */
export interface StageCounts {
  faults: Record<string, number>;
  maps: number;
  relaxes: number;
  eagain: number;
  retries: number;
  tlbiVmidIpa: number;
  tlbiVmid: number;
  dcacheBytes: number;
  icacheBytes: number;
  hostFaults: Record<string, number>;
  tablePagesAllocated: number;
  tablePagesFreed: number;
  accesses: number;
}

/** A VM set up the way the selftest sets it up, ready to run stages. */
export class PageTableTest {
  readonly vm: Vm;
  readonly slot: Memslot;
  /** Backing page size L. */
  readonly largePage: number;
  readonly hostPage: number;
  readonly size: number;

  constructor(readonly config: PageTableTestConfig) {
    const granule = config.vmOptions?.granule ?? 4096;
    const probe = new Vm({ kernel: config.kernel, granule, vcpus: 1, hostBytes: granule });
    const src = backingSource(config.backing, probe.geo.granule);
    const align = Math.max(src.pageSize, granule);
    this.size = Math.ceil(config.memBytes / align) * align;
    if (this.size <= 0) throw new S2simError("bad-size", "the test region must not be empty");
    this.vm = new Vm({
      ...config.vmOptions,
      kernel: config.kernel,
      vcpus: config.vcpus,
      hostBytes: this.size,
    });
    const maxGfn = this.vm.geo.ipaLimit / granule - 1;
    let gpa = config.gpa ?? (maxGfn - this.size / granule) * granule;
    gpa -= gpa % align;
    if (gpa < 0 || gpa + this.size > this.vm.geo.ipaLimit) {
      throw new S2simError("outside-ipa", `a ${this.size}-byte test region does not fit in the IPA space`);
    }
    this.slot = this.vm.addMemory(1, gpa, this.size, TEST_HVA, src);
    this.largePage = src.pageSize;
    this.hostPage = granule;
  }

  /** The guest loop of `stage` for one vCPU (even ids write in CREATE, odd ids read). */
  *vcpuProgram(vcpu: Vcpu, stage: TestStage, onAccess: () => void): Blocking<void> {
    const { vm, slot, largePage: L, hostPage: P, size } = this;
    const access = (ipa: number, write: boolean) => {
      onAccess();
      return guestAccess(vm, vcpu, { ipa, write, exec: false, s1ptw: false });
    };
    switch (stage) {
      case "KVM_CREATE_MAPPINGS": {
        const write = vcpu.id % 2 === 0;
        for (let off = 0; off < size; off += L) yield* access(slot.gpa + off, write);
        return;
      }
      case "KVM_UPDATE_MAPPINGS":
        if (L === P) {
          for (let off = 0; off < size; off += P) yield* access(slot.gpa + off, true);
          return;
        }
        for (let off = 0; off < size; off += L) {
          yield* access(slot.gpa + off, true);
          for (let p = L / 2; p < L; p += P) yield* access(slot.gpa + off + p, false);
        }
        return;
      case "KVM_ADJUST_MAPPINGS":
        for (let off = 0; off < size; off += P) yield* access(slot.gpa + off, false);
        return;
    }
  }

  /** The untimed step before a stage: dirty logging on before UPDATE, off before ADJUST. */
  prepareStage(stage: TestStage): void {
    switch (stage) {
      case "KVM_CREATE_MAPPINGS":
        return;
      case "KVM_UPDATE_MAPPINGS":
        runToCompletion(enableDirtyLogging(this.vm, this.slot));
        return;
      case "KVM_ADJUST_MAPPINGS":
        disableDirtyLogging(this.vm, this.slot);
        return;
    }
  }

  /** Runs one stage with every vCPU, interleaved by `policy`, and counts what happened. */
  runStage(stage: TestStage, policy: InterleavePolicy): StageCounts {
    this.prepareStage(stage);
    const counts = emptyCounts();
    const off = this.vm.events.subscribe((e) => countEvent(counts, e));
    try {
      interleave(
        this.vm.vcpus.map((v) => this.vcpuProgram(v, stage, () => counts.accesses++)),
        policy,
      );
    } finally {
      off();
    }
    return counts;
  }
}

function emptyCounts(): StageCounts {
  return {
    faults: {},
    maps: 0,
    relaxes: 0,
    eagain: 0,
    retries: 0,
    tlbiVmidIpa: 0,
    tlbiVmid: 0,
    dcacheBytes: 0,
    icacheBytes: 0,
    hostFaults: {},
    tablePagesAllocated: 0,
    tablePagesFreed: 0,
    accesses: 0,
  };
}

/** Adds one VM event to the stage's counts. */
export function countEvent(c: StageCounts, e: VmEvent): void {
  switch (e.kind) {
    case "guest-abort": {
      const key = `${e.fsc}-L${e.level}`;
      c.faults[key] = (c.faults[key] ?? 0) + 1;
      return;
    }
    case "fault-action":
      if (e.action === "map") c.maps++;
      else if (e.action === "relax") c.relaxes++;
      else if (e.action === "retry") c.retries++;
      if (e.ret === -11) c.eagain++;
      return;
    case "tlbi":
      if (e.scope === "vmid") c.tlbiVmid++;
      else c.tlbiVmidIpa++;
      return;
    case "cmo":
      if (e.op === "dc-civac") c.dcacheBytes += e.size;
      else c.icacheBytes += e.size;
      return;
    case "host-fault":
      c.hostFaults[e.result] = (c.hostFaults[e.result] ?? 0) + 1;
      return;
    case "table-alloc":
      c.tablePagesAllocated++;
      return;
    case "page-free":
      c.tablePagesFreed++;
      return;
    default:
      return;
  }
}
