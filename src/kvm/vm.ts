/**
 * A VM (struct kvm) with its stage-2 table, memslots, vCPUs, mmu_lock and MMU-notifier state,
 * and the host process memory behind it.
 */
import { type CpuFeatures, KUNPENG_920 } from "../arch/cpu.js";
import { type Stage2Geometry, stage2Geometry } from "../arch/geometry.js";
import { granuleOf, levelSize } from "../arch/granule.js";
import { vtcrEl2 } from "../arch/vtcr.js";
import { S2simError } from "../common/error.js";
import { EventBus } from "../common/events.js";
import { WorkMeter } from "../common/work.js";
import { hex, sizeName } from "../common/format.js";
import { type Blocking, HeldLocks, type LockId, type LockView, type Step } from "../common/steps.js";
import { type BackingSource, backingSource } from "../host/backing.js";
import { HostPhys } from "../host/host-phys.js";
import { HostMm } from "../host/mm.js";
import { NULL_HW, type Stage2Hw } from "../pgtable/hw.js";
import type { KernelVersion } from "../pgtable/kernel.js";
import { MemoryCache } from "../pgtable/memcache.js";
import { PhysMem } from "../pgtable/phys-mem.js";
import type { PgtableTap } from "../pgtable/events.js";
import { type PteObserver, Stage2Pgtable } from "../pgtable/stage2.js";
import { VM_EVENT_KINDS, type VmEvent } from "./events.js";
import { type KvmKernel, kvmKernel } from "./kernel.js";
import { type Memslot, Memslots } from "./memslot.js";
import { KvmMmuNotifier } from "./mmu-notifier.js";
import { FaultStats } from "./stats.js";
import { FaultContext, type FaultShifts, faultShifts } from "./fault.js";

/** How to build a {@link Vm}. */
export interface VmOptions {
  readonly kernel: KernelVersion | KvmKernel;
  /** Host PAGE_SIZE = stage-2 granule, in bytes (default 4096). */
  readonly granule?: number;
  /** IPA bits; absent or 0 means 40, KVM's default (the VM type's IPA field of 0). */
  readonly ipaBits?: number;
  readonly cpu?: CpuFeatures;
  readonly vcpus?: number;
  /** Guest memory the host must be able to back, in bytes (default 1 GiB). */
  readonly hostBytes?: number;
  /** Hardware the TLBIs and CMOs go to (the simulator's); events are emitted regardless. */
  readonly hw?: Stage2Hw;
  readonly events?: EventBus<VmEvent, PgtableTap>;
  readonly meter?: WorkMeter;
  /** Told of every stage-2 descriptor store (the simulator's visibility model). */
  readonly pteObserver?: PteObserver;
  /**
   * Whether a lock is held by some CPU right now, and what taking a free one costs: the
   * simulator's engine. By default the VM's {@link Vm.heldLocks}, which a fixed interleaving
   * keeps up to date.
   */
  readonly locks?: LockView;
}

/** The IPA size of a VM created with `ipaBits` (KVM_VM_TYPE_ARM_IPA_SIZE; 0 or none: 40 bits). */
export function vmIpaBits(ipaBits: number | undefined): number {
  return ipaBits === undefined || ipaBits === 0 ? 40 : ipaBits;
}

/** A vCPU as the KVM code sees it: its id, its table-page memcache and its fault in progress. */
export class Vcpu {
  /** The state of the stage-2 fault this vCPU is handling (reused from fault to fault). */
  readonly fault = new FaultContext();
  constructor(
    readonly id: number,
    readonly memcache: MemoryCache,
  ) {}
}

/** struct kvm for an arm64 guest. */
export class Vm {
  readonly kernel: KvmKernel;
  readonly geo: Stage2Geometry;
  readonly cpu: CpuFeatures;
  readonly vtcr: number;
  /** Every layer's events; its tap is told of the page-table events as numbers. */
  readonly events: EventBus<VmEvent, PgtableTap>;
  readonly tableMem: PhysMem;
  readonly hostPhys: HostPhys;
  readonly host: HostMm;
  readonly pgt: Stage2Pgtable;
  readonly memslots: Memslots;
  readonly vcpus: Vcpu[];
  /** kvm->mmu_lock (a spinlock in v5.12 and v5.14). */
  readonly mmuLock: LockId = { name: "kvm->mmu_lock", kind: "spinlock", domain: "kvm" };
  /** The locks held during a fixed interleaving (pass it to `interleave`). */
  readonly heldLocks = new HeldLocks();
  /** The MMU notifier KVM registered on the VMM's mm. */
  private readonly notifier: KvmMmuNotifier;
  /** The steps that take and release mmu_lock (shared, immutable). */
  readonly lockStep: Step = { kind: "lock", lock: this.mmuLock };
  readonly unlockStep: Step = { kind: "unlock", lock: this.mmuLock };
  /** Mapping-size shifts for user_mem_abort. */
  readonly faultShifts: FaultShifts;
  /** Fault-path counters. */
  readonly faultStats = new FaultStats();
  /** Where every layer counts the work it does (priced by the simulator). */
  readonly meter: WorkMeter;
  /**
   * The vCPU whose guest access runs outside the simulated machine's timed runs (the selftest's
   * untimed first entry), or -1: who the checkers name for what happens then.
   */
  untimedVcpu = -1;
  /** kvm->mmu_notifier_seq. */
  mmuNotifierSeq = 0;
  /** kvm->mmu_notifier_count. */
  mmuNotifierCount = 0;

  constructor(opts: VmOptions) {
    this.kernel = typeof opts.kernel === "string" ? kvmKernel(opts.kernel) : opts.kernel;
    const granule = granuleOf(opts.granule ?? 4096);
    this.geo = stage2Geometry(granule, vmIpaBits(opts.ipaBits));
    this.cpu = opts.cpu ?? KUNPENG_920;
    this.vtcr = vtcrEl2(this.cpu, this.geo);
    this.faultShifts = faultShifts(granule);
    this.events = opts.events ?? new EventBus<VmEvent, PgtableTap>(VM_EVENT_KINDS);
    const vcpus = opts.vcpus ?? 1;
    if (!Number.isInteger(vcpus) || vcpus < 1 || vcpus > 512) {
      throw new S2simError("bad-vcpus", `vCPU count ${vcpus} must be between 1 and 512 (KVM_MAX_VCPUS)`);
    }
    const hugeZero = levelSize(granule, 2);
    this.hostPhys = new HostPhys(granule, opts.hostBytes ?? 2 ** 30, hugeZero);
    this.meter = opts.meter ?? new WorkMeter();
    const held = this.heldLocks;
    this.host = new HostMm(granule, this.hostPhys, this.events, hugeZero, this.meter, opts.locks ?? held);
    this.tableMem = new PhysMem(granule);
    const userHw = opts.hw ?? NULL_HW;
    const phys = this.hostPhys;
    // The CPU's cache maintenance also updates the host pages' coherence state.
    const hw: Stage2Hw = {
      tlbFlushVmidIpa: (ipa, level) => userHw.tlbFlushVmidIpa(ipa, level),
      tlbFlushVmid: () => userHw.tlbFlushVmid(),
      dcacheCleanInvalPoc: (pa, size) => {
        phys.cleanToPoc(pa, size);
        userHw.dcacheCleanInvalPoc(pa, size);
      },
      icacheInvalPou: (pa, size) => {
        phys.invalidateIcache(pa, size);
        userHw.icacheInvalPou(pa, size);
      },
      icacheInvalAll: () => {
        phys.invalidateIcacheAll();
        userHw.icacheInvalAll();
      },
    };
    this.pgt = new Stage2Pgtable({
      geometry: this.geo,
      kernel: this.kernel.pgtable,
      cpu: this.cpu,
      mem: this.tableMem,
      hw,
      events: this.events,
      meter: this.meter,
      ...(opts.pteObserver ? { pteObserver: opts.pteObserver } : {}),
    });
    this.memslots = new Memslots(this.geo.ipaLimit, granule.size);
    this.vcpus = Array.from({ length: vcpus }, (_, i) => new Vcpu(i, new MemoryCache(this.tableMem)));
    this.notifier = new KvmMmuNotifier(this);
    this.host.registerNotifier(this.notifier);
  }

  /**
   * The VMM's mmap of `size` bytes at `hva` with a backing source, then
   * KVM_SET_USER_MEMORY_REGION for slot `id` at `gpa`.
   */
  addMemory(
    id: number,
    gpa: number,
    size: number,
    hva: number,
    backing: string | BackingSource,
    flags = 0,
  ): Memslot {
    const src = typeof backing === "string" ? backingSource(backing, this.geo.granule) : backing;
    if (size % src.pageSize !== 0) {
      throw new S2simError(
        "unaligned",
        `memslot ${id}: size ${sizeName(size)} is not a multiple of the ${src.name} page size ${sizeName(src.pageSize)}`,
      );
    }
    if (hva % src.pageSize !== 0) {
      throw new S2simError(
        "unaligned",
        `memslot ${id}: HVA ${hex(hva)} is not ${sizeName(src.pageSize)}-aligned`,
      );
    }
    const slot = this.memslots.add(id, gpa, size, hva, flags);
    this.host.mmap(hva, size, src);
    // kvm_arch_prepare_memory_region (v5.12) for a new slot: stage2_flush_memslot. A new slot's
    // range maps nothing yet, so the walk cleans nothing; it is the VMM's setup, before any timed
    // run, so mmu_lock is not modelled around it.
    if (this.kernel.flushNewMemslot && !this.cpu.fwb) this.pgt.flush(gpa, size);
    return slot;
  }

  /**
   * KVM_SET_USER_MEMORY_REGION of size 0 for slot `id` (KVM_MR_DELETE): the slot goes, then
   * kvm_arch_flush_shadow_memslot unmaps its stage-2 range under mmu_lock.
   */
  *deleteMemory(id: number): Blocking<void> {
    const slot = this.memslots.remove(id);
    yield this.lockStep;
    this.unmapStage2Range(slot.gpa, slot.size);
    yield this.unlockStep;
  }

  /** __unmap_stage2_range → stage2_apply_range: unmap one start-level chunk at a time. */
  unmapStage2Range(gpa: number, size: number): void {
    const pgt = this.pgt;
    const chunk = pgt.sizes.of(this.geo.startLevel);
    let addr = gpa;
    const end = gpa + size;
    while (addr < end) {
      const next = Math.min(end, Math.floor(addr / chunk) * chunk + chunk);
      pgt.unmap(addr, next - addr);
      addr = next;
    }
  }

  /** Whether kvm_free_stage2_pgd already took the stage-2 table away (the VM is going). */
  private stage2Detached = false;

  /**
   * kvm_free_stage2_pgd's part under mmu_lock: takes the stage-2 table from the VM; true the first
   * time (the caller then destroys it), false once it is gone.
   */
  detachStage2(): boolean {
    if (this.stage2Detached) return false;
    this.stage2Detached = true;
    return true;
  }

  /**
   * kvm_destroy_vm, the stage-2 part: mmu_notifier_unregister (its release frees the stage-2
   * tables), then each vCPU's kvm_arch_vcpu_destroy gives its memcache back.
   */
  *destroy(): Blocking<void> {
    yield* this.host.unregisterNotifier(this.notifier);
    for (const v of this.vcpus) v.memcache.free();
  }

  /** mmu_notifier_retry. */
  mmuNotifierRetry(mmuSeq: number): boolean {
    return this.mmuNotifierCount !== 0 || this.mmuNotifierSeq !== mmuSeq;
  }

  /** kvm_flush_remote_tlbs: TLBI VMALLS12E1IS. */
  flushRemoteTlbs(): void {
    this.pgt.tlbFlushVmid();
  }
}
