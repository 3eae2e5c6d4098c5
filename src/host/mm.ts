/**
 * The host process's memory behind a guest: VMAs with their host page tables, page faults
 * (handle_mm_fault for anonymous, THP, hugetlb and shmem mappings), GUP with KVM's writable rules
 * (hva_to_pfn, spec section 9.4) and MMU-notifier calls (spec sections 8 and 9.3).
 */
import type { Granule } from "../arch/granule.js";
import { S2simError } from "../common/error.js";
import type { EventSink } from "../common/events.js";
import { hex, sizeName } from "../common/format.js";
import {
  type Blocking,
  FREE_LOCKS,
  LOCK_HELD,
  type LockId,
  type LockView,
  runToCompletion,
  SCHED,
  type Step,
  type TransientLock,
} from "../common/steps.js";
import { W, WorkMeter } from "../common/work.js";
import { type Footprint, heapFootprint, sumFootprints, typedArrayFootprint } from "../common/footprint.js";
import type { BackingSource } from "./backing.js";
import type { HostEvent, HostFaultResult } from "./events.js";
import type { HostPhys } from "./host-phys.js";
import type { MmuNotifier } from "./notifier.js";

/** Host PTE flags, one byte per host page. */
export const HPTE_PRESENT = 1;
export const HPTE_WRITE = 2;
/** Maps the zero page or (with {@link HPTE_THP}) the huge zero page. */
export const HPTE_ZERO = 4;
/** Part of a PMD mapping (THP or huge zero page). */
export const HPTE_THP = 8;
/** Part of a hugetlb page. */
export const HPTE_HUGETLB = 16;

// Module-private copies: V8 folds these into the code, while an imported binding is re-read.
const W_GUP = W.gup;
const W_HOST_FAULT = W["host-fault"];
const W_HOST_TLBI = W["host-tlbi"];

/** Whether slow GUP can take a page with host PTE flags `f` without faulting it in. */
function gupCanUse(f: number, writeFault: boolean): boolean {
  return (f & HPTE_PRESENT) !== 0 && (!writeFault || (f & HPTE_WRITE) !== 0);
}

/**
 * Slow GUP's writable: a read fault maps writable if the page already is (the second FOLL_WRITE
 * try), when the caller asks (`askWritable`: not for a read-only memslot).
 */
function gupWritable(f: number, writeFault: boolean, askWritable: boolean): boolean {
  return writeFault || (askWritable && (f & HPTE_WRITE) !== 0);
}

/** PMD state of one THP-sized region of a THP VMA. */
const PMD_NONE = 0;
const PMD_THP = 1;
const PMD_HUGE_ZERO = 2;
/** Split, or populated at PTE level. */
const PMD_PTE = 3;
/**
 * Being split (__split_huge_zero_page_pmd, under the PMD lock): the PMD was cleared and the PTE
 * table is not in yet, so it reads as none.
 */
const PMD_SPLITTING = 4;

/** Whether a PMD state reads as none (pmd_none): nothing there, or cleared by a split in flight. */
function pmdNone(state: number): boolean {
  return state === PMD_NONE || state === PMD_SPLITTING;
}

/** What GUP returns: the host page for the address and whether it may be mapped writable. */
export interface GupResult {
  readonly pa: number;
  readonly writable: boolean;
}

/** The split lock of one host PTE page, with its lock and unlock steps built once. */
export interface PteLock {
  readonly lock: LockId;
  readonly take: Step;
  readonly drop: Step;
}

/** A lock of the host mm with its steps, built once. */
function hostLock(name: string, kind: LockId["kind"], transient?: TransientLock): PteLock {
  const lock: LockId =
    transient === undefined ? { name, kind, domain: "host" } : { name, kind, domain: "host", transient };
  return { lock, take: { kind: "lock", lock }, drop: { kind: "unlock", lock } };
}

/**
 * The split page-table locks of one level (pte_lockptr, pmd_lockptr): one spinlock per table page,
 * that is per naturally aligned `span` bytes of address space, made on first use.
 */
class SplitLocks {
  private readonly inv: number;
  /** Number of the first table page the VMA touches (counted from address 0). */
  private readonly base: number;
  private readonly locks: Array<PteLock | undefined>;

  constructor(
    private readonly prefix: string,
    private readonly span: number,
    start: number,
    end: number,
  ) {
    this.inv = 1 / span;
    this.base = Math.floor(start * this.inv);
    const last = Math.floor((end - 1) * this.inv);
    this.locks = new Array<PteLock | undefined>(end > start ? last - this.base + 1 : 0).fill(undefined);
  }

  /** The lock of the table page mapping `hva`. */
  of(hva: number): PteLock {
    const k = Math.floor(hva * this.inv) - this.base;
    let p = this.locks[k];
    if (p === undefined) {
      p = hostLock(`${this.prefix}[${hex((this.base + k) * this.span)}]`, "spinlock");
      this.locks[k] = p;
    }
    return p;
  }
}

/** One mapping of the host process (a vm_area_struct) with its slice of the host page table. */
export class Vma {
  readonly end: number;
  /** Host page size of the mapping's PTEs (PAGE_SIZE). */
  readonly pageSize: number;
  /** PA of each host page, valid when its flags say present. */
  readonly pa: Float64Array;
  readonly flags: Uint8Array;
  /** THP VMAs: per THP-sized region, its PMD state. */
  readonly pmd: Uint8Array;
  /** shmem VMAs: per page, the PA of the page in the file's page cache, or -1. */
  readonly cachePa: Float64Array;
  /** 1 / pageSize (exact: a power of two). */
  private readonly pageInv: number;
  private readonly hugetlbMutexes = new Map<number, LockId>();
  /** shmem: the page locks faults are using now, by page index (see {@link pageLock}). */
  private readonly pageLocks = new Map<number, PteLock>();
  /** The family of the page locks (LockId.transient): a slot per page. */
  private readonly pageLockFamily: { readonly size: number };
  /** The PTE pages' locks (each PTE page maps PAGE_SIZE / 8 pages). */
  private readonly ptls: SplitLocks;
  /** THP and PMD-sized hugetlb VMAs: the PMD pages' locks (each maps PAGE_SIZE / 8 PMD-sized regions). */
  private readonly pmdLocks: SplitLocks;
  /** Whether the backing's pages are PMD-sized (2M with 4K pages): mapped by PMDs, under PMD locks. */
  readonly pmdSized: boolean;

  constructor(
    readonly start: number,
    readonly size: number,
    readonly backing: BackingSource,
    granule: Granule,
  ) {
    this.end = start + size;
    this.pageSize = granule.size;
    this.pageInv = 1 / granule.size;
    const pages = size / granule.size;
    this.pa = new Float64Array(pages);
    this.flags = new Uint8Array(pages);
    this.pmd = new Uint8Array(backing.kind === "thp" ? size / backing.pageSize : 0);
    this.cachePa = new Float64Array(backing.kind === "shmem" ? pages : 0).fill(-1);
    this.pageLockFamily = { size: backing.kind === "shmem" ? pages : 0 };
    // Table pages cover naturally aligned ranges of the address space, whatever the VMA's start.
    const entries = granule.size / 8;
    this.ptls = new SplitLocks("ptl", entries * granule.size, start, this.end);
    this.pmdSized = backing.pageSize === entries * granule.size;
    const pmdLocked = backing.kind === "thp" || (backing.kind === "hugetlb" && this.pmdSized);
    this.pmdLocks = new SplitLocks(
      "pmd_lock",
      entries * backing.pageSize,
      start,
      pmdLocked ? this.end : start,
    );
  }

  /** pte_lockptr: the split page-table lock (a spinlock) of the host PTE page mapping `hva`. */
  ptl(hva: number): PteLock {
    return this.ptls.of(hva);
  }

  /** pmd_lockptr (THP VMAs, PMD-sized hugetlb): the split lock of the host PMD page mapping `hva`. */
  pmdLock(hva: number): PteLock {
    return this.pmdLocks.of(hva);
  }

  /**
   * lock_page of the page-cache page at `hva` (shmem): a sleeping lock, keyed by file index, so it
   * exists before the page does. A fault calls this when it is about to take the lock and
   * {@link endPageLock} once it has dropped it: the lock lives here only while faults use it (the
   * faults racing on a page), so a file of millions of pages keeps no lock per page (a
   * transient lock: the simulator keeps only each page's last holder meanwhile).
   */
  pageLock(hva: number): PteLock {
    const i = this.index(hva);
    let p = this.pageLocks.get(i);
    if (p === undefined) {
      p = hostLock(`page_lock[${hex(this.start + i * this.pageSize)}]`, "mutex", {
        users: 0,
        family: this.pageLockFamily,
        slot: i,
      });
      this.pageLocks.set(i, p);
    }
    p.lock.transient!.users++;
    return p;
  }

  /** A fault is done with the page lock {@link pageLock} gave it (it has dropped it). */
  endPageLock(hva: number, p: PteLock): void {
    if (--p.lock.transient!.users === 0) this.pageLocks.delete(this.index(hva));
  }

  /** Index of the host page holding `hva`. */
  index(hva: number): number {
    return Math.floor((hva - this.start) * this.pageInv);
  }

  /** Whether the VMA is hugetlbfs-backed (is_vm_hugetlb_page). */
  get hugetlb(): boolean {
    return this.backing.kind === "hugetlb";
  }

  /**
   * The hugetlb fault mutex of the huge page holding `hva` (one per page; the kernel's
   * hugetlb_fault_mutex_table hashes pages into a shared set, see docs/model.md). Its
   * waiters spin rather than sleep: a mutex is spun on while its owner runs (optimistic spinning),
   * and the owner runs throughout, clearing the huge page on a CPU with nothing else to do, so the
   * lock behaves as a queued spinlock.
   */
  hugetlbMutex(hva: number): LockId {
    const h = Math.floor((hva - this.start) / this.backing.pageSize);
    let lock = this.hugetlbMutexes.get(h);
    if (lock === undefined) {
      lock = {
        name: `hugetlb_fault_mutex[${hex(this.start + h * this.backing.pageSize)}]`,
        kind: "spinlock",
        domain: "host",
      };
      this.hugetlbMutexes.set(h, lock);
    }
    return lock;
  }
}

/**
 * Heap bytes of one host lock as {@link Vma} keeps it: the PteLock, its LockId and name, its two
 * steps and the entry that finds it (the simulator's own state for the lock is apart). With the
 * engine's state for it, 320 bytes per page lock were measured live (a shmem VMA of 1 GiB).
 */
const HOST_LOCK_BYTES = 120;

/** Heap bytes per real THP in HostMm's set of THP heads. */
const THP_HEAD_BYTES = 48;

/** A {@link Vma}'s footprint, how many host locks it keeps at most, and its transient locks' slots. */
export interface VmaFootprint extends Footprint {
  readonly locks: number;
  /** Slots of its transient locks' family (shmem: a page lock per page, made only while used). */
  readonly transientSlots: number;
}

/**
 * The footprint of a {@link Vma} of `size` bytes of `backing` at its largest: every page's PTE
 * state, and every lock it keeps (one per PTE page, per PMD page of a THP or PMD-sized hugetlb
 * VMA, per hugetlb page; a shmem file's page locks exist only while faults use them), and for THP
 * a head per region.
 */
export function vmaFootprint(size: number, backing: BackingSource, granule: Granule): VmaFootprint {
  const pages = size / granule.size;
  const entries = granule.size / 8;
  const ptePages = Math.ceil(size / (entries * granule.size)) + 1;
  const pmdSized = backing.pageSize === entries * granule.size;
  const pmdPages =
    backing.kind === "thp" || (backing.kind === "hugetlb" && pmdSized)
      ? Math.ceil(size / (entries * backing.pageSize)) + 1
      : 0;
  const huge = size / backing.pageSize;
  // hugetlb entries are locked by the PMD page's lock or mm->page_table_lock, never a PTE page's.
  const pteLocks = backing.kind === "hugetlb" ? 0 : ptePages;
  const locks = pteLocks + pmdPages + (backing.kind === "hugetlb" ? huge : 0);
  const f = sumFootprints(
    typedArrayFootprint(pages, 8),
    typedArrayFootprint(pages, 1),
    typedArrayFootprint(backing.kind === "thp" ? huge : 0, 1),
    typedArrayFootprint(backing.kind === "shmem" ? pages : 0, 8),
    heapFootprint(ptePages + pmdPages, 8),
    heapFootprint(locks, HOST_LOCK_BYTES),
    heapFootprint(backing.kind === "thp" ? huge : 0, THP_HEAD_BYTES),
  );
  return { ...f, locks, transientSlots: backing.kind === "shmem" ? pages : 0 };
}

/**
 * The host mm (struct mm_struct) of the VMM process. `locks` tells whether a lock is held by some
 * CPU at this point and prices follow_page's round trip of a free one: the simulator's engine (as
 * of the start of the asking CPU's code segment), or the locks a fixed interleaving granted
 * (`HeldLocks`). Without it, locks always read as free, which is exact for single-threaded use.
 */
export class HostMm {
  readonly vmas: Vma[] = [];
  private readonly notifiers: MmuNotifier[] = [];
  private readonly thpBases = new Set<number>();
  private readonly thpSize: number;
  private readonly thpInv: number;
  /** The VMA {@link findVma} found last (VMAs are only ever added). */
  private lastVma: Vma | null = null;
  /** mm->page_table_lock: among others, the lock of hugetlb entries other than PMD-sized ones. */
  private readonly pageTableLock = hostLock("page_table_lock", "spinlock");
  /** Result of the last successful {@link gupFast} or {@link gupNoFault}. */
  gupPa = 0;
  gupWritable = false;

  constructor(
    readonly granule: Granule,
    readonly phys: HostPhys,
    readonly events: EventSink<HostEvent>,
    hugeZeroSize: number,
    readonly meter: WorkMeter = new WorkMeter(),
    private readonly locks: LockView = FREE_LOCKS,
  ) {
    this.thpSize = hugeZeroSize;
    this.thpInv = 1 / hugeZeroSize;
  }

  /** mmap of `size` bytes at `start` with a backing source; misaligned or overlapping is an error. */
  mmap(start: number, size: number, backing: BackingSource): Vma {
    const align = backing.pageSize;
    if (start % align !== 0 || size % align !== 0 || size <= 0) {
      throw new S2simError(
        "unaligned",
        `mapping ${hex(start)}+${sizeName(size)} is not aligned to the ${backing.name} page size ${sizeName(align)}`,
      );
    }
    for (const v of this.vmas) {
      if (start < v.end && v.start < start + size) {
        throw new S2simError(
          "overlap",
          `mapping ${hex(start)}+${sizeName(size)} overlaps an existing mapping`,
        );
      }
    }
    const vma = new Vma(start, size, backing, this.granule);
    this.vmas.push(vma);
    return vma;
  }

  /**
   * The VMM writing [start, start + size) before the guest runs (e.g. building the guest's page
   * tables): every host page is faulted in for write. Untimed set-up.
   */
  populate(start: number, size: number): void {
    const page = this.granule.size;
    for (let hva = start - (start % page); hva < start + size; hva += page) {
      const vma = this.findVma(hva);
      if (vma === null) throw new S2simError("outside-mapping", `cannot populate ${hex(hva)}: not mapped`);
      runToCompletion(this.gup(hva, true));
    }
  }

  /** find_vma / vma_lookup. */
  findVma(hva: number): Vma | null {
    const last = this.lastVma;
    if (last !== null && hva >= last.start && hva < last.end) return last;
    const vmas = this.vmas;
    for (let i = 0; i < vmas.length; i++) {
      const v = vmas[i]!;
      if (hva >= v.start && hva < v.end) {
        this.lastVma = v;
        return v;
      }
    }
    return null;
  }

  /** mmu_notifier_register. */
  registerNotifier(n: MmuNotifier): void {
    this.notifiers.push(n);
  }

  /** mmu_notifier_unregister while the mm lives: the notifier's release, then it is gone. */
  *unregisterNotifier(n: MmuNotifier): Blocking<void> {
    if (!this.notifiers.includes(n)) return;
    yield* n.release();
    this.notifiers.splice(this.notifiers.indexOf(n), 1);
  }

  /** kvm_is_transparent_hugepage's view: a THP page, or the huge zero page. */
  isTransparentHugepage(pa: number): boolean {
    const base = Math.floor(pa * this.thpInv) * this.thpSize;
    return base === this.phys.hugeZeroPage || this.thpBases.has(base);
  }

  /** Whether `pa` is the zero page or inside the huge zero page. */
  isZeroPage(pa: number): boolean {
    return (
      pa === this.phys.zeroPage ||
      (pa >= this.phys.hugeZeroPage && pa < this.phys.hugeZeroPage + this.thpSize)
    );
  }

  /**
   * hva_to_pfn for KVM, which asks whether the page is writable (`askWritable`) except for a
   * read-only memslot (__gfn_to_pfn_memslot passes no `writable` there): fast GUP with
   * FOLL_WRITE for a write fault or when asked; else slow GUP (FOLL_WRITE only for write faults),
   * faulting the page in; for read faults when asked, fast FOLL_WRITE again. Returns null for an
   * address with no mapping.
   */
  *gup(hva: number, writeFault: boolean, askWritable = true): Blocking<GupResult | null> {
    if (this.gupNoFault(hva, writeFault, askWritable)) return { pa: this.gupPa, writable: this.gupWritable };
    return yield* this.gupSlow(hva, writeFault, askWritable);
  }

  /**
   * hva_to_pfn up to the point where it would block: fast GUP, else slow GUP when the page is
   * already present with the permission the fault needs (so slow GUP faults nothing in and cannot
   * block). True with gupPa and gupWritable set; false when {@link gupSlow} must run (it also
   * reports an unmapped address). Same work and events as gupFast then gupSlow.
   */
  gupNoFault(hva: number, writeFault: boolean, askWritable = true): boolean {
    if ((writeFault || askWritable) && this.gupFast(hva, writeFault)) return true;
    const vma = this.findVma(hva);
    if (vma === null) return false;
    const i = vma.index(hva);
    const f = vma.flags[i]!;
    if (!gupCanUse(f, writeFault)) return false;
    // follow_page reads the entry under its table's lock: held by another CPU, slow GUP must wait
    // for it (gupSlow); free, GUP takes and drops it at once (takeFree).
    const lock = this.followLock(vma, hva);
    if (lock !== null && !this.takeFree(lock.lock)) return false;
    this.chargeSlowGup(writeFault, askWritable);
    this.gupPa = vma.pa[i]!;
    this.gupWritable = gupWritable(f, writeFault, askWritable);
    if (this.events.active && this.events.wants["gup"])
      this.gupDone(hva, writeFault, "slow", this.gupPa, this.gupWritable);
    return true;
  }

  /** follow_page's round trip of a free lock: a line transfer when another CPU held it last. */
  private takeFree(lock: LockId): boolean {
    const item = this.locks.takeFree(lock);
    if (item === LOCK_HELD) return false;
    if (item >= 0) this.meter.charge(item, 1);
    return true;
  }

  /**
   * The lock follow_page takes to read the entry of `hva`: the PMD page's for a huge PMD
   * (follow_pmd_mask), else the PTE page's (follow_page_pte). A PMD that reads as none is met
   * without a lock (no_page_table); the fault that follows takes the PMD lock itself.
   */
  private followLock(vma: Vma, hva: number): PteLock | null {
    // follow_hugetlb_page reads the entry under huge_pte_lock.
    if (vma.backing.kind === "hugetlb") return this.hugePteLock(vma, hva);
    if (vma.backing.kind === "thp") {
      const state = vma.pmd[Math.floor((hva - vma.start) / vma.backing.pageSize)]!;
      if (state === PMD_HUGE_ZERO || state === PMD_THP) return vma.pmdLock(hva);
      if (pmdNone(state)) return null;
    }
    return vma.ptl(hva);
  }

  /**
   * hva_to_pfn_fast: lockless GUP with FOLL_WRITE; succeeds (setting gupPa, gupWritable) when the
   * host PTE is present and writable. Never blocks and allocates nothing.
   */
  gupFast(hva: number, writeFault: boolean): boolean {
    this.meter.charge(W_GUP, 1);
    const vma = this.findVma(hva);
    if (vma === null) return false;
    const i = vma.index(hva);
    if ((vma.flags[i]! & (HPTE_PRESENT | HPTE_WRITE)) !== (HPTE_PRESENT | HPTE_WRITE)) return false;
    this.gupPa = vma.pa[i]!;
    this.gupWritable = true;
    if (this.events.active && this.events.wants["gup"])
      this.gupDone(hva, writeFault, "fast", this.gupPa, true);
    return true;
  }

  /**
   * The GUP calls of hva_to_pfn_slow that find the page: get_user_pages_unlocked's walk and, for a
   * read fault whose caller asks whether the page is writable, the second fast GUP with
   * FOLL_WRITE (each priced as one `gup`).
   */
  private chargeSlowGup(writeFault: boolean, askWritable: boolean): void {
    this.meter.charge(W_GUP, writeFault || !askWritable ? 1 : 2);
  }

  /** hva_to_pfn_slow (after a failed fast GUP): fault the page in; null for an unmapped address. */
  *gupSlow(hva: number, writeFault: boolean, askWritable = true): Blocking<GupResult | null> {
    const vma = this.findVma(hva);
    if (vma === null) return null;
    const i = vma.index(hva);
    for (let tries = 0; ; tries++) {
      // follow_page: the entry is read under its table's lock, waited for if another CPU holds it,
      // else taken and dropped at once (as in gupNoFault).
      const lock = this.followLock(vma, hva);
      const busy = lock !== null && !this.takeFree(lock.lock);
      if (busy) yield lock.take;
      const f = vma.flags[i]!;
      const pa = vma.pa[i]!;
      if (busy) yield lock.drop;
      if (gupCanUse(f, writeFault)) {
        this.chargeSlowGup(writeFault, askWritable);
        return this.gupDone(hva, writeFault, "slow", pa, gupWritable(f, writeFault, askWritable));
      }
      if (tries === 16) throw new Error(`GUP made no progress at ${hex(hva)}`);
      // A follow_page that found nothing to use, before faulting the page in.
      this.meter.charge(W_GUP, 1);
      yield* this.handleMmFault(vma, hva, writeFault);
    }
  }

  /**
   * handle_mm_fault for one host address. Not a generator itself: it charges the fault and
   * returns the backing's fault handler, so callers (which yield* it at once) resume one
   * generator fewer per step.
   */
  handleMmFault(vma: Vma, hva: number, write: boolean): Blocking<void> {
    this.meter.charge(W_HOST_FAULT, 1);
    switch (vma.backing.kind) {
      case "anonymous":
        return this.anonFault(vma, hva, write);
      case "shmem":
        return this.shmemFault(vma, hva, write);
      case "thp":
        return this.thpFault(vma, hva, write);
      case "hugetlb":
        return this.hugetlbFault(vma, hva, write);
    }
  }

  /** Ages [start, end) (page reclaim / page_idle): clear_flush_young on every notifier. */
  *clearFlushYoung(start: number, end: number): Blocking<boolean> {
    this.notify({ kind: "notifier", op: "clear_flush_young", start, end });
    let young = false;
    for (const n of this.notifiers) young = (yield* n.clearFlushYoung(start, end)) || young;
    return young;
  }

  /** clear_young on every notifier. */
  *clearYoung(start: number, end: number): Blocking<boolean> {
    this.notify({ kind: "notifier", op: "clear_young", start, end });
    let young = false;
    for (const n of this.notifiers) young = (yield* n.clearYoung(start, end)) || young;
    return young;
  }

  /** test_young on every notifier. */
  *testYoung(start: number, end: number): Blocking<boolean> {
    this.notify({ kind: "notifier", op: "test_young", start, end });
    let young = false;
    for (const n of this.notifiers) young = (yield* n.testYoung(start, end)) || young;
    return young;
  }

  // ---------------------------------------------------------------- faults per backing

  /**
   * do_anonymous_page / do_wp_page for a 4K anonymous PTE. Every PTE change happens under the PTE
   * page's lock; a zero-page copy holds it across change_pte (set_pte_at_notify tells the notifiers
   * before the store, after the old PTE was cleared), so other faults and slow GUPs on that PTE
   * page wait meanwhile, and fast GUP finds no PTE.
   */
  private *anonFault(vma: Vma, hva: number, write: boolean): Blocking<void> {
    const i = vma.index(hva);
    const f = vma.flags[i]!;
    const page = vma.pageSize;
    const ptl = vma.ptl(hva);
    if ((f & HPTE_PRESENT) === 0) {
      // A write allocates and clears its page before taking the lock; a read maps the zero page.
      const pa = write ? this.allocZeroed(page) : -1;
      if (write) yield SCHED;
      yield ptl.take;
      if ((vma.flags[i]! & HPTE_PRESENT) !== 0) {
        yield ptl.drop;
        if (write) this.dropRaced(hva, write, pa, page);
        return;
      }
      vma.pa[i] = write ? pa : this.phys.zeroPage;
      vma.flags[i] = write ? HPTE_PRESENT | HPTE_WRITE : HPTE_PRESENT | HPTE_ZERO;
      yield ptl.drop;
      this.faulted(hva, write, write ? "alloc" : "zero-page", page);
      return;
    }
    if (!write || (f & HPTE_WRITE) !== 0) {
      // handle_pte_fault on a present entry that already allows the access (another CPU's fault
      // made it so after follow_page looked): under the PTE lock it only marks it young (and
      // dirty), then GUP looks again.
      yield ptl.take;
      yield ptl.drop;
      return;
    }
    yield ptl.take;
    if (vma.flags[i] !== f) {
      yield ptl.drop; // changed meanwhile: GUP looks again
      return;
    }
    if ((f & HPTE_ZERO) === 0) {
      vma.flags[i] = f | HPTE_WRITE; // wp_page_reuse: sole owner
      this.meter.charge(W_HOST_TLBI, 1);
      yield ptl.drop;
      this.faulted(hva, write, "reuse", page);
      return;
    }
    yield ptl.drop;
    // wp_page_copy from the zero page: new zeroed page, notifier start, then under the lock clear
    // the old PTE, change_pte, store the new one; notifier end.
    const pa = this.allocZeroed(page);
    yield SCHED;
    const start = hva - (hva % page);
    yield* this.invalidateRangeStart(start, start + page);
    yield ptl.take;
    const same = vma.flags[i] === f && vma.pa[i] === this.phys.zeroPage;
    if (same) {
      vma.flags[i] = 0;
      this.meter.charge(W_HOST_TLBI, 1);
      yield* this.changePte(start, pa);
      vma.pa[i] = pa;
      vma.flags[i] = HPTE_PRESENT | HPTE_WRITE;
    }
    yield ptl.drop;
    yield* this.invalidateRangeEnd(start, start + page);
    if (same) this.faulted(hva, write, "cow", page);
    else this.dropRaced(hva, write, pa, page);
  }

  /**
   * shmem_fault (shmem_getpage_gfp) + finish_fault: the page-cache page, locked (lock_page sleeps
   * while another fault holds it); a missing page is allocated, put in the cache and zeroed with
   * its lock held. Then, under the PTE lock, the PTE is installed writable unless another fault
   * installed it meanwhile; the page is unlocked last. So faults racing on one page allocate and
   * zero it once: the others sleep on the page lock and find the PTE there.
   */
  private *shmemFault(vma: Vma, hva: number, write: boolean): Blocking<void> {
    const i = vma.index(hva);
    const ptl = vma.ptl(hva);
    const pageLock = vma.pageLock(hva);
    const page = vma.pageSize;
    yield pageLock.take;
    let pa = vma.cachePa[i]!;
    const fresh = pa < 0;
    if (fresh) {
      pa = this.allocZeroed(page);
      vma.cachePa[i] = pa;
      yield SCHED;
    }
    yield ptl.take;
    const install = (vma.flags[i]! & HPTE_PRESENT) === 0;
    if (install) {
      vma.pa[i] = pa;
      vma.flags[i] = HPTE_PRESENT | HPTE_WRITE;
    }
    yield ptl.drop;
    yield pageLock.drop;
    vma.endPageLock(hva, pageLock);
    if (install) this.faulted(hva, write, fresh ? "alloc" : "page-cache", page);
  }

  /** do_huge_pmd_anonymous_page / do_huge_pmd_wp_page, falling back to PTEs after a split. */
  private *thpFault(vma: Vma, hva: number, write: boolean): Blocking<void> {
    const size = vma.backing.pageSize;
    const h = Math.floor((hva - vma.start) / size);
    const first = (h * size) / vma.pageSize;
    const count = size / vma.pageSize;
    const state = vma.pmd[h]!;
    if (pmdNone(state)) {
      // The fault path's work (for a write, clear_huge_page too) comes before the PMD lock is
      // taken and the PMD re-checked; a PMD populated meanwhile (or split meanwhile: a split in
      // flight holds the lock) is left alone, and GUP looks again.
      const pmdl = vma.pmdLock(hva);
      const pa = write ? this.allocZeroed(size) : -1;
      yield pmdl.take;
      const install = vma.pmd[h] === PMD_NONE;
      if (install && write) {
        this.fillPmd(vma, first, count, pa, HPTE_PRESENT | HPTE_WRITE | HPTE_THP);
        vma.pmd[h] = PMD_THP;
        this.thpBases.add(pa);
      } else if (install) {
        this.fillPmd(vma, first, count, this.phys.hugeZeroPage, HPTE_PRESENT | HPTE_ZERO | HPTE_THP);
        vma.pmd[h] = PMD_HUGE_ZERO;
      }
      yield pmdl.drop;
      if (install) this.faulted(hva, write, write ? "thp-alloc" : "huge-zero", size);
      else if (write) this.dropRaced(hva, write, pa, size);
      return;
    }
    if (state === PMD_HUGE_ZERO && write) yield* this.splitHugeZeroPmd(vma, hva, h);
    else if (state === PMD_HUGE_ZERO || state === PMD_THP) {
      // huge_pmd_set_accessed: a huge PMD that allows the access, under the PMD lock.
      const pmdl = vma.pmdLock(hva);
      yield pmdl.take;
      yield pmdl.drop;
      return;
    }
    if (vma.pmd[h] === PMD_PTE) yield* this.anonFault(vma, hva, write);
  }

  /**
   * __split_huge_pmd, as do_huge_pmd_wp_page calls it on the huge zero page (since v5.8 a write
   * there falls back to 4K CoW): notifier start for the region, then under the PMD lock the split,
   * only if the PMD still maps the huge zero page, then notifier end. Every writer that saw the
   * huge zero PMD gets here; those that waited in the notifier behind the first find the PTEs
   * already there and only pay the notifier calls.
   */
  private *splitHugeZeroPmd(vma: Vma, hva: number, h: number): Blocking<void> {
    const size = vma.backing.pageSize;
    const first = (h * size) / vma.pageSize;
    const count = size / vma.pageSize;
    const regionStart = vma.start + h * size;
    yield* this.invalidateRangeStart(regionStart, regionStart + size);
    const pmdl = vma.pmdLock(hva);
    yield pmdl.take;
    const split = vma.pmd[h] === PMD_HUGE_ZERO;
    if (split) {
      // pmdp_huge_clear_flush, then the PTE table filled and populated: meanwhile the PMD reads as
      // none, to GUP and to faults (which wait for this lock to install).
      vma.pmd[h] = PMD_SPLITTING;
      vma.flags.fill(0, first, first + count);
      this.meter.charge(W["pmd-split"], 1);
      yield SCHED;
      for (let k = 0; k < count; k++) {
        vma.pa[first + k] = this.phys.zeroPage;
        vma.flags[first + k] = HPTE_PRESENT | HPTE_ZERO;
      }
      vma.pmd[h] = PMD_PTE;
    }
    yield pmdl.drop;
    yield* this.invalidateRangeEnd(regionStart, regionStart + size);
    if (split) this.faulted(hva, true, "thp-split", size);
  }

  /**
   * hugetlb_fault: under the page's fault mutex, hugetlb_no_page (allocate and clear, then install
   * under huge_pte_lock) or, for a present entry, under huge_pte_lock: hugetlb_cow's reuse for a
   * write to a read-only one, else only the access flags.
   */
  private *hugetlbFault(vma: Vma, hva: number, write: boolean): Blocking<void> {
    const size = vma.backing.pageSize;
    const h = Math.floor((hva - vma.start) / size);
    const first = (h * size) / vma.pageSize;
    const count = size / vma.pageSize;
    const mutex = vma.hugetlbMutex(hva);
    const ptl = this.hugePteLock(vma, hva);
    yield { kind: "lock", lock: mutex };
    const f = vma.flags[first]!;
    if ((f & HPTE_PRESENT) === 0) {
      const pa = this.allocZeroed(size);
      yield SCHED;
      // A private read fault maps read-only; a write takes the page over at once (hugetlb_cow
      // reuse, still under the lock), whose set_huge_ptep_writable flushes the read-only entry.
      const cow = write && !vma.backing.shared;
      const w = write || vma.backing.shared ? HPTE_WRITE : 0;
      yield ptl.take;
      this.fillPmd(vma, first, count, pa, HPTE_PRESENT | HPTE_HUGETLB | w);
      if (cow) this.meter.charge(W_HOST_TLBI, 1);
      yield ptl.drop;
      this.faulted(hva, write, "hugetlb-alloc", size);
    } else {
      yield ptl.take;
      const reuse = write && (f & HPTE_WRITE) === 0;
      if (reuse) {
        for (let k = 0; k < count; k++) vma.flags[first + k] = vma.flags[first + k]! | HPTE_WRITE;
        this.meter.charge(W_HOST_TLBI, 1);
      }
      yield ptl.drop;
      if (reuse) this.faulted(hva, write, "hugetlb-reuse", size);
    }
    yield { kind: "unlock", lock: mutex };
  }

  /**
   * huge_pte_lock: the PMD page's split lock for PMD-sized hugetlb pages, else the mm's
   * page_table_lock (one for the whole process: 1 GiB pages at the PUD level, contiguous ones).
   */
  private hugePteLock(vma: Vma, hva: number): PteLock {
    return vma.pmdSized ? vma.pmdLock(hva) : this.pageTableLock;
  }

  // ---------------------------------------------------------------- helpers

  private fillPmd(vma: Vma, first: number, count: number, pa: number, flags: number): void {
    const page = vma.pageSize;
    for (let k = 0; k < count; k++) {
      vma.pa[first + k] = pa + k * page;
      vma.flags[first + k] = flags;
    }
  }

  private allocZeroed(size: number): number {
    const pa = this.phys.alloc(size);
    if (pa < 0) throw new S2simError("host-oom", `host memory exhausted allocating ${sizeName(size)}`);
    this.phys.markWritten(pa, size);
    this.meter.charge(W["page-alloc"], 1);
    this.meter.charge(W["zero-byte"], size);
    if (this.events.active && this.events.wants["host-alloc"])
      this.events.emit({ kind: "host-alloc", pa, size });
    return pa;
  }

  private dropRaced(hva: number, write: boolean, pa: number, size: number): void {
    this.phys.free(pa, size);
    if (this.events.active && this.events.wants["host-free"])
      this.events.emit({ kind: "host-free", pa, size });
    this.faulted(hva, write, "raced", size);
  }

  private faulted(hva: number, write: boolean, result: HostFaultResult, size: number): void {
    if (this.events.active && this.events.wants["host-fault"])
      this.events.emit({ kind: "host-fault", hva, write, result, size });
  }

  private gupDone(
    hva: number,
    write: boolean,
    path: "fast" | "slow",
    pa: number,
    writable: boolean,
  ): GupResult {
    if (this.events.active && this.events.wants["gup"])
      this.events.emit({ kind: "gup", hva, write, path, pa, writable });
    return { pa, writable };
  }

  private notify(e: HostEvent): void {
    if (this.events.active && this.events.wants[e.kind]) this.events.emit(e);
  }

  // The notifier calls below report the call and return code that runs every notifier's handler;
  // callers yield* it at once. They are not generators themselves, and with one notifier (KVM's)
  // the handler runs without a wrapping generator.

  private invalidateRangeStart(start: number, end: number): Blocking<void> {
    if (this.events.active && this.events.wants["notifier"])
      this.events.emit({ kind: "notifier", op: "invalidate_range_start", start, end });
    return this.eachNotifier((n) => n.invalidateRangeStart(start, end));
  }

  private invalidateRangeEnd(start: number, end: number): Blocking<void> {
    if (this.events.active && this.events.wants["notifier"])
      this.events.emit({ kind: "notifier", op: "invalidate_range_end", start, end });
    return this.eachNotifier((n) => n.invalidateRangeEnd(start, end));
  }

  private changePte(hva: number, pa: number): Blocking<void> {
    if (this.events.active && this.events.wants["notifier"]) {
      this.events.emit({ kind: "notifier", op: "change_pte", start: hva, end: hva + this.granule.size, pa });
    }
    return this.eachNotifier((n) => n.changePte(hva, pa));
  }

  /** `handler` of every registered notifier, in registration order. */
  private eachNotifier(handler: (n: MmuNotifier) => Blocking<void>): Blocking<void> {
    const ns = this.notifiers;
    return ns.length === 1 ? handler(ns[0]!) : this.allNotifiers(handler);
  }

  private *allNotifiers(handler: (n: MmuNotifier) => Blocking<void>): Blocking<void> {
    for (const n of this.notifiers) yield* handler(n);
  }
}
