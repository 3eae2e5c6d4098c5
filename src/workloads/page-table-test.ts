/**
 * kvm_page_table_test's setup and guest program (spec sections 9.1-9.2), driven through the fault
 * model. Each vCPU runs the stage's loop; how the vCPUs interleave is the driver's choice (the
 * simulator's virtual time, or a fixed policy here).
 */
import { S2simError } from "../common/error.js";
import { hex, sizeName } from "../common/format.js";
import type { NumberList } from "../common/number-list.js";
import { type Blocking, type InterleavePolicy, interleave, runToCompletion } from "../common/steps.js";
import { granuleOf, type Granule } from "../arch/granule.js";
import { stage2Geometry } from "../arch/geometry.js";
import { type BackingSource, backingSource } from "../host/backing.js";
import { DEFAULT_GUEST_MODE, type GuestMode, modelledGuestMode } from "./guest-modes.js";
import type { ReleaseOrder } from "./release-order.js";
import { kvmVmFree } from "./teardown.js";
import {
  DEFAULT_GUEST_PHY_PAGES,
  type GuestTables,
  guestTables,
  type Slot0Layout,
  slot0Layout,
} from "./guest-layout.js";
import { disableDirtyLogging, enableDirtyLogging } from "../kvm/dirty-log.js";
import type { VmEvent } from "../kvm/events.js";
import { guestAccess, guestAccessWithTables } from "../kvm/fault.js";
import { type KvmKernel, kvmKernel, withInjectedBug } from "../kvm/kernel.js";
import type { Memslot } from "../kvm/memslot.js";
import { type Vcpu, Vm, type VmOptions, vmIpaBits } from "../kvm/vm.js";
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

/** Host virtual base of memslot 0 (guest code, stacks and page tables). */
export const SLOT0_HVA = 0x2000_0000_0000;

/** A page-table-test configuration (the selftest's -s, -b, -v, -p plus the kernel). */
export interface PageTableTestConfig {
  readonly kernel: KernelVersion;
  /** Backing source name (`-s`). */
  readonly backing: string;
  /** Test region size in bytes (`-b`), rounded up to the larger of the backing and guest page sizes. */
  readonly memBytes: number;
  readonly vcpus: number;
  /**
   * Test GPA (`-p`); default (also for 0, which the selftest takes as "not given"): the top of
   * the IPA space minus the region, aligned.
   */
  readonly gpa?: number;
  /**
   * The selftest's guest mode (`-m`, workloads/guest-modes.ts; default 4): its PA bits are the
   * VM's IPA size, unless `vmOptions.ipaBits` says otherwise; its page size, the guest's tables.
   */
  readonly guestMode?: number;
  readonly vmOptions?: Partial<Omit<VmOptions, "kernel" | "vcpus">>;
  /**
   * Model the guest's own stage-1 tables (in memslot 0, as the selftest builds them) so that
   * first touches take S1PTW faults (spec 9.1). Off for fixed-interleaving tests.
   */
  readonly guestTables?: boolean;
  /** A bug to inject into the kernel (pgtable/bugs.ts), for checker tests and teaching. */
  readonly inject?: string;
  /**
   * In the simulator: let vCPUs complete TLB-hit accesses ahead of others when no TLBI can come
   * before them (see Engine.mayRunAhead). Default true; it changes no result, only speed.
   */
  readonly lookahead?: boolean;
  /**
   * In the simulator: a vCPU makes runs of accesses that would each go on without yielding
   * together: TLB hits at once (GuestAccessPath.hitRun), accesses that walk without a fault with
   * one check for the run (SimVcpu.flowRun). Default true; it changes no result.
   */
  readonly accessRuns?: boolean;
  /**
   * In the simulator: skip the periods of a lock convoy that repeat exactly (see
   * sim/fast-forward.ts). Default true; it changes no result, only speed and engine steps.
   */
  readonly fastForward?: boolean;
  /** In the simulator: the order the vCPUs start each stage in (default fifo, the selftest's). */
  readonly releaseOrder?: ReleaseOrder;
  /** Seed of the run's random choices (only release order "random" makes any). Default 1. */
  readonly seed?: number;
  /**
   * In the simulator: give each stage report a `state_digest` of the machine's state at its end
   * (SimMachine.stateDigest), for tests that compare runs. Default false.
   */
  readonly stateDigest?: boolean;
  /**
   * In the simulator: record the CREATE stage's timeline along the region in chunks of this many
   * bytes (workloads/timeline.ts): what the fault path did in each chunk and when it was done.
   * It listens to events, so the fast-forward is off meanwhile (CREATE never uses it); every
   * result is the same. Default: none.
   */
  readonly timelineChunk?: number;
  /**
   * In the simulator: record the first this many events of each stage as text (workloads/event-trace.ts).
   * It listens to events, so the fast-forward is off meanwhile; every result is the same.
   */
  readonly traceEvents?: number;
}

/** The guest mode of `config` (default 4); errors for one that does not exist or is not modelled. */
function modeOf(config: PageTableTestConfig): GuestMode {
  return modelledGuestMode(config.guestMode ?? DEFAULT_GUEST_MODE.id);
}

/** The sizes a configuration gives the selftest's VM, before anything is allocated. */
export interface TestLayout {
  /** The backing source, resolved for the host page size. */
  readonly src: BackingSource;
  /** The host (and guest) page size. */
  readonly granule: Granule;
  /** The test region: `-b` rounded up to the larger of the backing and guest page sizes. */
  readonly size: number;
  /** Memslot 0 (guest pages and page tables, 2 MiB-aligned), or 0 without guest tables. */
  readonly slot0Size: number;
  /** The test region's guest-physical base. */
  readonly gpa: number;
  /** The guest's stage-1 tables of the region (its guest mode's page size). */
  readonly tables: GuestTables;
  /** Where the guest's stacks and the region's tables are in memslot 0. */
  readonly slot0: Slot0Layout;
}

/**
 * The layout of `config`; errors for an unknown backing source or granule, an empty region, or a
 * region outside the IPA space or over memslot 0.
 */
export function testLayout(config: PageTableTestConfig): TestLayout {
  const tables = guestTables(modeOf(config).pageSize);
  const granule = granuleOf(config.vmOptions?.granule ?? 4096);
  const src = backingSource(config.backing, granule);
  // The selftest rounds the region up to the larger of the backing's and the guest's page sizes.
  const align = Math.max(src.pageSize, tables.page, granule.size);
  const size = Math.ceil(config.memBytes / align) * align;
  if (size <= 0) throw new S2simError("bad-size", "the test region must not be empty");
  // Memslot 0: the guest's own pages, the test region's page tables, then the library's pages.
  const slot0 = slot0Layout(tables, config.vcpus, size);
  const slot0Raw = slot0.used + DEFAULT_GUEST_PHY_PAGES * tables.page;
  const slot0Size = config.guestTables ? Math.ceil(slot0Raw / 2 ** 21) * 2 ** 21 : 0;
  const { ipaBits, ipaLimit } = stage2Geometry(granule, vmIpaBits(vmIpaOf(config)));
  const page = granule.size;
  // The selftest's `if (!p->phys_offset)`: -p 0 means the default.
  const byDefault = config.gpa === undefined || config.gpa === 0;
  let gpa = byDefault ? (ipaLimit / page - 1 - size / page) * page : config.gpa!;
  gpa -= gpa % align;
  if (gpa < 0 || gpa + size > ipaLimit) {
    const space = `the ${ipaBits}-bit IPA space (${sizeName(ipaLimit)}`;
    const region = `the ${sizeName(size)} test region`;
    throw new S2simError(
      "outside-ipa",
      byDefault
        ? `${region} does not fit in ${space}) below its top page, where the default GPA puts it`
        : `${region} at GPA ${hex(gpa)}..${hex(gpa + size - 1)} does not fit in ${space}: GPAs up to ${hex(ipaLimit - 1)})`,
    );
  }
  if (config.guestTables && gpa < slot0Size) {
    throw new S2simError(
      "outside-ipa",
      `the test region (GPA ${hex(gpa)}, ${sizeName(size)}) overlaps memslot 0, which holds the guest's ` +
        `own pages and its page tables for the region up to GPA ${hex(slot0Size)}`,
    );
  }
  return { src, granule, size, slot0Size, gpa, tables, slot0 };
}

/**
 * The IPA size `config` creates its VM with, as the selftests' library does for its guest mode
 * (vm_create: KVM_VM_TYPE_ARM_IPA_SIZE(pa_bits) unless 40 bits, type 0); `vmOptions.ipaBits`, if
 * given, wins. Errors for a mode that does not exist or is not modelled.
 */
export function vmIpaOf(config: PageTableTestConfig): number | undefined {
  const mode = modeOf(config);
  if (config.vmOptions?.ipaBits !== undefined) return config.vmOptions.ipaBits;
  return mode.paBits === 40 ? undefined : mode.paBits;
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
  /**
   * The backing is plain `anonymous` (VM_MEM_SRC_ANONYMOUS): its UPDATE loop writes every host
   * page; every other backing runs the large-page loop, even when L = P (shmem).
   */
  readonly anonymous: boolean;
  readonly hostPage: number;
  readonly size: number;
  /** Memslot 0 with the guest's page tables, when modelled. */
  readonly slot0: Memslot | null = null;
  /** IPA of the first page-table page of the test region (the L2 table of its first GiB). */
  private readonly tablesIpa: number = -1;
  /** The guest's stage-1 tables of the region (its page size). */
  readonly guestTables: GuestTables;
  /** Where the guest's stacks and the region's tables are in memslot 0. */
  private readonly slot0Layout: Slot0Layout;

  constructor(readonly config: PageTableTestConfig) {
    const { src, granule, size, slot0Size, gpa, tables, slot0 } = testLayout(config);
    this.slot0Layout = slot0;
    this.size = size;
    this.guestTables = tables;
    const tablePages = tables.pages(size);
    const kernel: KvmKernel =
      config.inject !== undefined
        ? withInjectedBug(kvmKernel(config.kernel), config.inject)
        : kvmKernel(config.kernel);
    const ipaBits = vmIpaOf(config);
    this.vm = new Vm({
      ...config.vmOptions,
      ...(ipaBits === undefined ? {} : { ipaBits }),
      kernel,
      vcpus: config.vcpus,
      hostBytes: this.size + slot0Size,
    });
    if (config.guestTables) {
      this.slot0 = this.vm.addMemory(0, 0, slot0Size, SLOT0_HVA, "anonymous");
      this.tablesIpa = slot0.tablesIpa;
      // The VMM wrote the guest's page tables before the guest ran: those host pages are present.
      this.vm.host.populate(SLOT0_HVA + this.tablesIpa, tablePages * tables.page);
    }
    this.slot = this.vm.addMemory(1, gpa, this.size, TEST_HVA, src);
    this.largePage = src.pageSize;
    this.anonymous = config.backing === "anonymous";
    this.hostPage = granule.size;
  }

  /**
   * The guest loop of `stage` for one vCPU (even ids write in CREATE, odd ids read) through the
   * plain fault loop, for fixed interleavings; the simulator runs {@link cursor} on its vCPUs.
   */
  *vcpuProgram(vcpu: Vcpu, stage: TestStage, onAccess: () => void): Blocking<void> {
    const c = this.cursor(vcpu, stage);
    while (c.next()) {
      onAccess();
      yield* guestAccessWithTables(this.vm, vcpu, c.ipa, c.write, c.tables, c.nTables);
    }
  }

  /** The accesses of `stage` for one vCPU, one at a time (spec section 9.2). */
  cursor(vcpu: Vcpu, stage: TestStage): GuestAccessCursor {
    return new GuestAccessCursor(this, stage, vcpu.id % 2 === 0);
  }

  /**
   * The guest page-table pages the stage-1 walk of region offset `off` reads that the earlier
   * stage (KVM_BEFORE_MAPPINGS) did not (with 4K guest pages its GiB's L2 table and its 2 MiB's
   * L3 table, allocated in the order virt_map maps the region: an L2 table, then its L3 tables;
   * see {@link GuestTables}). Returns how many.
   */
  s1Tables(off: number, out: Float64Array): number {
    if (this.tablesIpa < 0) return 0;
    return this.guestTables.walked(this.tablesIpa, off, out);
  }

  /**
   * The untimed step before a stage: KVM_BEFORE_MAPPINGS before CREATE, dirty logging on before
   * UPDATE, off before ADJUST.
   */
  prepareStage(stage: TestStage): void {
    switch (stage) {
      case "KVM_CREATE_MAPPINGS":
        this.beforeMappings();
        return;
      case "KVM_UPDATE_MAPPINGS":
        runToCompletion(enableDirtyLogging(this.vm, this.slot));
        return;
      case "KVM_ADJUST_MAPPINGS":
        disableDirtyLogging(this.vm, this.slot);
        return;
    }
  }

  /**
   * KVM_BEFORE_MAPPINGS, as far as later stages can tell: each vCPU's first entry runs guest_code
   * from memslot 0, whose first stage-2 fault on its own stack tops up its memcache and, for the
   * first vCPU, builds the stage-2 tables of memslot 0's first 2 MiB. Modelled as one write per
   * vCPU, in id order, to the top page of its stack ({@link Slot0Layout}; the code and data pages
   * it also touches are shared and change nothing later stages see). Untimed, as in the selftest,
   * and only with memslot 0 modelled (`guestTables`). With 16K or 64K host pages several vCPUs'
   * stack tops may share one host page, and only the first of them faults there; the others top up
   * at their first fault in CREATE.
   */
  private beforeMappings(): void {
    if (this.slot0 === null) return;
    for (const vcpu of this.vm.vcpus) {
      const i = vcpu.id;
      const ipa = this.slot0Layout.stackTop(i);
      this.vm.untimedVcpu = i;
      try {
        runToCompletion(guestAccess(this.vm, vcpu, { ipa, write: true, exec: false, s1ptw: false }));
      } finally {
        // A failed access must not leave later reports naming this vCPU.
        this.vm.untimedVcpu = -1;
      }
    }
  }

  /** kvm_vm_free at the selftest's end (untimed; see {@link kvmVmFree}). */
  free(): void {
    kvmVmFree(this.vm);
  }

  /** Runs one stage with every vCPU, interleaved by `policy`, and counts what happened. */
  runStage(stage: TestStage, policy: InterleavePolicy): StageCounts {
    this.prepareStage(stage);
    const counts = emptyCounts();
    const off = this.vm.events.subscribe((e) => countEvent(counts, e), COUNTED_KINDS);
    try {
      interleave(
        this.vm.vcpus.map((v) => this.vcpuProgram(v, stage, () => counts.accesses++)),
        policy,
        this.vm.heldLocks,
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

/** The event kinds {@link countEvent} counts (others are not built for it). */
const COUNTED_KINDS = [
  "guest-abort",
  "fault-action",
  "tlbi",
  "cmo",
  "host-fault",
  "table-alloc",
  "page-free",
] as const satisfies ReadonlyArray<VmEvent["kind"]>;

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

/** One vCPU's accesses in one stage, produced one at a time without allocating. */
export class GuestAccessCursor {
  /** The current access: guest-physical address and direction. */
  ipa = 0;
  write = false;
  /** The guest table pages its stage-1 walk reads (see {@link PageTableTest.s1Tables}). */
  readonly tables = new Float64Array(2);
  nTables = 0;
  /** Offset of the current access within the region (-1: none yet). */
  private off = -1;
  /** UPDATE on large pages: the large-page iterations begun. */
  private writes = 0;
  /** UPDATE on large pages: the guest's running address, and reads left in this large page. */
  private addr = 0;
  private readsLeft = 0;

  constructor(
    private readonly test: PageTableTest,
    private readonly stage: TestStage,
    private readonly writer: boolean,
  ) {}

  /**
   * How many of the accesses after the current one each step one host page on from the one
   * before, in the same direction and with the same stage-1 tables (within the span of region
   * the guest's tables read for it, GuestTables.span, and the region, and in UPDATE within the
   * large page's reads), for the simulator's fast-forward; 0 before the first access.
   */
  pageRun(): number {
    const t = this.test;
    const P = t.hostPage;
    if (this.off < 0) return 0;
    let left = (t.size - this.off) / P - 1;
    const span = t.guestTables.span;
    const inChunk = (span - (this.off % span)) / P - 1;
    if (inChunk < left) left = inChunk;
    switch (this.stage) {
      case "KVM_CREATE_MAPPINGS":
        return t.largePage === P ? left : 0;
      case "KVM_UPDATE_MAPPINGS":
        if (t.anonymous) return left;
        return this.write ? 0 : Math.min(left, this.readsLeft);
      case "KVM_ADJUST_MAPPINGS":
        return left;
    }
  }

  /** Bytes each access of a {@link pageRun} steps on: one host page. */
  pageStep(): number {
    return this.test.hostPage;
  }

  /**
   * The cursor's state relative to guest IPA `base`, appended to `out` (fast-forward). The reads
   * left in a large page count down each access and only matter where the page run ends, so they
   * are left out; the running address only matters in UPDATE on large pages.
   */
  periodicState(out: NumberList, base: number): void {
    const rel = base - this.test.slot.gpa;
    out.push(this.ipa - base);
    out.push(this.write ? 1 : 0);
    out.push(this.nTables);
    out.push(this.off - rel);
    out.push(this.writes);
    if (this.stage === "KVM_UPDATE_MAPPINGS" && !this.test.anonymous) out.push(this.addr - rel);
    for (let i = 0; i < this.nTables; i++) out.push(this.tables[i]!);
  }

  /** Skips `k` accesses of the {@link pageRun} (fast-forward). */
  skip(k: number): void {
    const t = this.test;
    const d = k * t.hostPage;
    this.off += d;
    this.ipa += d;
    if (this.stage === "KVM_UPDATE_MAPPINGS" && !t.anonymous) {
      this.addr += d;
      this.readsLeft -= k;
    }
    this.nTables = t.s1Tables(this.off, this.tables);
  }

  /** Advances to the next access; false when the stage's loop is over. */
  next(): boolean {
    const t = this.test;
    const L = t.largePage;
    const P = t.hostPage;
    let off: number;
    let write: boolean;
    switch (this.stage) {
      case "KVM_CREATE_MAPPINGS":
        // The first 8 bytes of each large page.
        off = this.off < 0 ? 0 : this.off + L;
        write = this.writer;
        break;
      case "KVM_UPDATE_MAPPINGS":
        if (t.anonymous) {
          // Write every host page.
          off = this.off < 0 ? 0 : this.off + P;
          write = true;
          break;
        }
        // Every other backing, per large page: write at the guest's address, step L/2, then read
        // (L/P)/2 host pages one P apart. With L = P (shmem) there are no reads and each step is
        // only P/2: the guest writes every P/2 over the first half of the region.
        if (this.readsLeft > 0) {
          off = this.addr;
          this.addr += P;
          this.readsLeft--;
          write = false;
          break;
        }
        // The loop runs once per large page: its end is the count, not the address.
        if (this.writes === t.size / L) return false;
        off = this.addr;
        this.writes++;
        this.addr = off + L / 2;
        this.readsLeft = Math.floor(L / P / 2);
        write = true;
        break;
      case "KVM_ADJUST_MAPPINGS":
        off = this.off < 0 ? 0 : this.off + P;
        write = false;
        break;
    }
    if (off >= t.size) return false;
    this.off = off;
    this.ipa = t.slot.gpa + off;
    this.write = write;
    this.nTables = t.s1Tables(off, this.tables);
    return true;
  }
}
