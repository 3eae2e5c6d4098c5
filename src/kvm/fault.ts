/**
 * The stage-2 fault path (spec section 6): kvm_handle_guest_abort, user_mem_abort for v5.12 and
 * v5.14, handle_access_fault, and the guest access that drives them. Code under mmu_lock runs
 * between the lock and unlock steps it yields, so a driver can interleave vCPUs exactly there.
 */
import { pteValid, pteWords } from "../arch/descriptor.js";
import { type Granule, levelShift } from "../arch/granule.js";
import { EAGAIN, EFAULT, ENOEXEC, errnoName } from "../common/errno.js";
import { S2simError } from "../common/error.js";
import { hex } from "../common/format.js";
import type { Blocking } from "../common/steps.js";
import { W } from "../common/work.js";
import { cleanDcacheGuestPage, invalidateIcacheGuestPage } from "../pgtable/hw.js";
import { type FaultStatus, type GuestAccess, hwWalk } from "../pgtable/hw-walk.js";
import { PROT_R, PROT_W, PROT_X } from "../pgtable/prot.js";
import type { FaultAction } from "./events.js";
import { KVM_MEM_READONLY, type Memslot } from "./memslot.js";
import type { Vcpu, Vm } from "./vm.js";

/** A stage-2 abort as ESR_EL2/HPFAR_EL2 report it. */
export interface Stage2Abort {
  readonly access: GuestAccess;
  readonly fsc: FaultStatus;
  /** ESR.FSC & 3: the level of the descriptor that faulted. */
  readonly level: number;
}

/**
 * How many times one guest access may fault, not counting the faults that found an MMU-notifier
 * invalidation in progress (`mmu_notifier_retry`: another CPU is changing the host page, which
 * takes as long as the profile says), before the model calls it a livelock.
 */
export const MAX_STUCK_FAULTS = 64;
/** How many times one guest access may fault in all, invalidations included. */
export const MAX_FAULTS_PER_ACCESS = 1_000_000;

/**
 * Counts a fault of vCPU `vcpu`'s access to `ipa`, the `faults`-th (from 0) of that access, of
 * which `stuck` found no invalidation in progress; returns the new `stuck`. Throws the model's
 * livelock error when either limit is passed.
 */
export function countFault(vcpu: Vcpu, ipa: number, faults: number, stuck: number): number {
  // The handler's last outcome for this access (before its first fault, the previous access's).
  const waiting = faults > 0 && vcpu.fault.retried;
  const now = waiting ? stuck : stuck + 1;
  if (now > MAX_STUCK_FAULTS || faults >= MAX_FAULTS_PER_ACCESS) {
    throw new S2simError(
      "livelock",
      `vCPU ${vcpu.id}'s guest access to IPA ${hex(ipa)} faulted ${faults + 1} times (${now} of them ` +
        `with no invalidation in progress) and the model gave up: a livelock, or costs out of proportion ` +
        `(check the profile's values and --set)`,
    );
  }
  return now;
}

// Module-private copies: V8 folds these into the code, while an imported binding is re-read.
const W_ABORT = W.abort;
const W_MEMCACHE_PAGE = W["memcache-page"];
const W_MARK_DIRTY = W["mark-dirty"];

/**
 * One guest memory access by `vcpu`: a hardware stage-2 walk, and on a fault the exit to
 * kvm_handle_guest_abort and a retry, until the access completes. Returns the faults taken.
 */
export function* guestAccess(vm: Vm, vcpu: Vcpu, access: GuestAccess): Blocking<number> {
  let stuck = 0;
  for (let faults = 0; ; faults++) {
    const r = hwWalk(vm.pgt, access, vm.cpu.hwAccessFlag);
    if (r.kind === "ok") return faults;
    // As the simulator's vCPU.
    stuck = countFault(vcpu, access.ipa, faults, stuck);
    vm.meter.charge(W.exit, 1);
    const ret = yield* kvmHandleGuestAbort(vm, vcpu, { access, fsc: r.fsc, level: r.level });
    checkAbortReturn(ret, vcpu, access.ipa);
    // Back into the guest, which replays the access.
    vm.meter.charge(W.entry, 1);
  }
}

/**
 * A guest access preceded by its stage-1 walk's reads of the guest's own table pages at `tables`
 * (their stage-2 faults are S1PTW faults); the plain fault loop for each.
 */
export function* guestAccessWithTables(
  vm: Vm,
  vcpu: Vcpu,
  ipa: number,
  write: boolean,
  tables: Float64Array,
  nTables: number,
): Blocking<void> {
  for (let i = 0; i < nTables; i++) {
    yield* guestAccess(vm, vcpu, { ipa: tables[i]!, write: false, exec: false, s1ptw: true });
  }
  yield* guestAccess(vm, vcpu, { ipa, write, exec: false, s1ptw: false });
}

/**
 * What KVM_RUN makes of kvm_handle_guest_abort's return value: 0 or 1 resume the guest (which
 * replays the access); a negative code fails KVM_RUN to userspace, where the selftest stops, and
 * -ENOEXEC would inject a prefetch abort into the guest, which is not modelled. Either way the
 * model stops with an error naming the code.
 */
export function checkAbortReturn(ret: number, vcpu: Vcpu, ipa: number): void {
  if (ret >= 0) return;
  throw new S2simError(
    "kvm-run-failed",
    ret === ENOEXEC
      ? `vCPU ${vcpu.id}: the abort at IPA ${hex(ipa)} would inject a prefetch abort (-ENOEXEC), which is not modelled`
      : `KVM_RUN failed on vCPU ${vcpu.id}: the stage-2 abort at IPA ${hex(ipa)} returned ${errnoName(ret)}`,
  );
}

/** kvm_is_write_fault: S1PTW counts as a write, instruction aborts never do. */
function isWriteFault(a: GuestAccess): boolean {
  if (a.s1ptw) return true;
  if (a.exec) return false;
  return a.write;
}

/** What kvm_handle_guest_abort's first part decided. */
export const ABORT_USER_MEM = 0;
export const ABORT_ACCESS_FLAG = 1;

/** A phase finished and the fault continues with the next one. */
export const CONTINUE = 1;

/**
 * The state of one stage-2 fault as it moves through the handler's phases (the locals of
 * kvm_handle_guest_abort and user_mem_abort). Each vCPU owns one and reuses it.
 */
export class FaultContext {
  access: GuestAccess = { ipa: 0, write: false, exec: false, s1ptw: false };
  fsc: FaultStatus = "translation";
  level = 0;
  slot: Memslot | null = null;
  hva = 0;
  writeFault = false;
  execFault = false;
  faultIpa = 0;
  faultGranule = 0;
  logging = false;
  forcePte = false;
  vmaPagesize = 0;
  /** PMD_SIZE of the host granule. */
  pmdSize = 0;
  gpa = 0;
  mmuSeq = 0;
  pa = 0;
  writable = false;
  device = false;
  /** Pages the memcache top-up of this fault allocated (step 5). */
  toppedUp = 0;
  action: FaultAction = "retry";
  /**
   * Whether the handling of this vCPU's last fault found an MMU-notifier invalidation in progress
   * (`mmu_notifier_retry`), for the livelock guard ({@link countFault}); reset as each abort begins.
   */
  retried = false;
  prot = 0;
  ret = 0;
}

/** kvm_handle_guest_abort: classify, find the memslot, and handle the fault; returns 1 to resume. */
export function* kvmHandleGuestAbort(vm: Vm, vcpu: Vcpu, abort: Stage2Abort): Blocking<number> {
  const ctx = vcpu.fault;
  if (abortBegin(vm, vcpu, ctx, abort.access, abort.fsc, abort.level) === ABORT_ACCESS_FLAG) {
    yield* handleAccessFault(vm, vcpu, abort.access.ipa);
    return 1;
  }
  const ret = yield* userMemAbort(vm, vcpu, ctx);
  return ret === 0 ? 1 : ret;
}

/**
 * kvm_handle_guest_abort up to the handler call: report the abort, find the memslot (an abort
 * outside every writable memslot would be MMIO emulation, which is not modelled) and choose the
 * handler (ABORT_ACCESS_FLAG or ABORT_USER_MEM).
 */
export function abortBegin(
  vm: Vm,
  vcpu: Vcpu,
  ctx: FaultContext,
  access: GuestAccess,
  fsc: FaultStatus,
  level: number,
): number {
  const writeFault = isWriteFault(access);
  const ev = vm.events;
  ctx.retried = false;
  vm.meter.charge(W_ABORT, 1);
  vm.faultStats.abort(fsc, level, access.s1ptw);
  if (ev.active && ev.wants["guest-abort"]) {
    ev.emit({
      kind: "guest-abort",
      vcpu: vcpu.id,
      ipa: access.ipa,
      fsc,
      level,
      write: writeFault,
      exec: access.exec,
      s1ptw: access.s1ptw,
    });
  }
  const slot = vm.memslots.find(access.ipa);
  if (slot === null || (writeFault && (slot.flags & KVM_MEM_READONLY) !== 0)) {
    throw new S2simError(
      "outside-memslots",
      `guest access to ${hex(access.ipa)} is outside every writable memslot (MMIO emulation is not modelled)`,
    );
  }
  ctx.access = access;
  ctx.fsc = fsc;
  ctx.level = level;
  ctx.slot = slot;
  ctx.hva = slot.hvaOf(access.ipa);
  ctx.writeFault = writeFault;
  return fsc === "access" ? ABORT_ACCESS_FLAG : ABORT_USER_MEM;
}

/** handle_access_fault: mkyoung under mmu_lock. */
export function* handleAccessFault(vm: Vm, vcpu: Vcpu, ipa: number): Blocking<void> {
  yield vm.lockStep;
  const old = vm.pgt.mkyoung(ipa);
  yield vm.unlockStep;
  report(vm, vcpu, "mkyoung", ipa, 0, 0, pteValid(pteWords(old).lo) ? 0 : EFAULT);
}

/** fault_supports_stage2_huge_mapping: congruent GPA/HVA and the whole block inside the slot. */
export function faultSupportsStage2HugeMapping(slot: Memslot, hva: number, mapSize: number): boolean {
  if (modPow2(slot.gpa, mapSize) !== modPow2(slot.hva, mapSize)) return false;
  const base = hva - modPow2(hva, mapSize);
  return base >= slot.hva && base + mapSize <= slot.hva + slot.size;
}

/** x mod size for a power-of-two size and 0 <= x < 2^53 (exact; cheaper than a float %). */
function modPow2(x: number, size: number): number {
  return x - Math.floor(x / size) * size;
}

/**
 * user_mem_abort, v5.12 and v5.14 in the spec's step order (sections 6.2 and 6.3), as the
 * composition of its phases: before GUP, GUP (hva_to_pfn: fast, else slow, which may block),
 * after GUP, under mmu_lock, and after. The kernels differ only in where the CMOs happen
 * (`kernel.faultCmos`); the pgtable profile does the rest. The simulator composes the same phases
 * without a generator.
 */
export function* userMemAbort(vm: Vm, vcpu: Vcpu, ctx: FaultContext): Blocking<number> {
  let r = umaBeforeGup(vm, vcpu, ctx);
  if (r !== CONTINUE) return r;
  umaSampleSeq(vm, ctx);
  const gupHva = ctx.slot!.hvaOf(ctx.gpa);
  // __gfn_to_pfn_memslot asks no `writable` of a read-only memslot: its pages map read-only.
  const askWritable = !ctx.slot!.readonly;
  if (!vm.host.gupNoFault(gupHva, ctx.writeFault, askWritable)) {
    const gup = yield* vm.host.gupSlow(gupHva, ctx.writeFault, askWritable);
    if (gup === null) return EFAULT;
    ctx.pa = gup.pa;
    ctx.writable = gup.writable;
  } else {
    ctx.pa = vm.host.gupPa;
    ctx.writable = vm.host.gupWritable;
  }
  r = umaAfterGup(ctx);
  if (r !== CONTINUE) return r;
  yield vm.lockStep;
  umaLocked(vm, vcpu, ctx);
  yield vm.unlockStep;
  return umaDone(vm, vcpu, ctx);
}

/**
 * user_mem_abort steps 1-5: sanity check, VMA lookup and mapping size, memcache top-up (the pages
 * it allocated in ctx.toppedUp). Returns CONTINUE, or the handler's return value; step 6 is
 * {@link umaSampleSeq}.
 */
export function umaBeforeGup(vm: Vm, vcpu: Vcpu, ctx: FaultContext): number {
  const g = vm.geo.granule;
  const page = g.size;
  const { access, fsc } = ctx;
  const slot = ctx.slot!;
  const hva = ctx.hva;
  let faultIpa = access.ipa;
  ctx.faultGranule = vm.pgt.sizes.of(ctx.level);
  const writeFault = ctx.writeFault;
  ctx.execFault = access.exec && !access.s1ptw;
  // 1. A permission fault that is neither a write nor an exec is unexpected.
  if (fsc === "permission" && !writeFault && !ctx.execFault) return EFAULT;

  // 2. VMA lookup under mmap_read_lock; logging forces PAGE_SIZE.
  const vma = vm.host.findVma(hva);
  if (vma === null) return EFAULT;
  const logging = slot.logging;
  ctx.logging = logging;
  let vmaShift = vma.hugetlb ? vma.backing.shift : g.shift;
  let forcePte = false;
  if (logging) {
    forcePte = true;
    vmaShift = g.shift;
  }
  // 3. Size selection: PUD (4K only), CONT_PMD -> PMD, PMD, CONT_PTE -> PAGE with force_pte.
  const shifts = vm.faultShifts;
  const pudShift = shifts.pud;
  const pmdShift = shifts.pmd;
  let sel = vmaShift;
  if (sel === pudShift && page === 4096) {
    if (!faultSupportsStage2HugeMapping(slot, hva, shifts.pudSize)) sel = shifts.contPmd;
  }
  if (sel === shifts.contPmd) sel = pmdShift;
  if (sel === pmdShift) {
    if (!faultSupportsStage2HugeMapping(slot, hva, shifts.pmdSize)) sel = shifts.contPte;
  }
  if (sel === shifts.contPte) {
    sel = g.shift;
    forcePte = true;
  }
  const vmaPagesize = sel === g.shift ? page : sel === pmdShift ? shifts.pmdSize : 2 ** sel;
  // 4. Block-sized mappings start at the block.
  if (vmaPagesize === shifts.pmdSize || (page === 4096 && vmaPagesize === shifts.pudSize)) {
    faultIpa -= modPow2(faultIpa, vmaPagesize);
  }
  ctx.forcePte = forcePte;
  ctx.vmaPagesize = vmaPagesize;
  ctx.pmdSize = shifts.pmdSize;
  ctx.faultIpa = faultIpa;
  ctx.gpa = faultIpa - modPow2(faultIpa, page);

  // 5. Top up the memcache unless this is a permission fault that cannot need tables.
  ctx.toppedUp = 0;
  if (fsc !== "permission" || (logging && writeFault)) {
    const added = vcpu.memcache.topup(vm.geo.cacheMinPages);
    if (added < 0) return added;
    vm.meter.charge(W_MEMCACHE_PAGE, added);
    ctx.toppedUp = added;
    if (added > 0 && vm.events.active && vm.events.wants["memcache-topup"])
      vm.events.emit({ kind: "memcache-topup", vcpu: vcpu.id, pages: added });
  }
  return CONTINUE;
}

/** user_mem_abort step 6: sample the notifier sequence before GUP (step 7, the caller's next phase). */
export function umaSampleSeq(vm: Vm, ctx: FaultContext): void {
  ctx.mmuSeq = vm.mmuNotifierSeq;
}

/** user_mem_abort steps 8-9, after GUP set ctx.pa and ctx.writable. */
export function umaAfterGup(ctx: FaultContext): number {
  // 8. Reads during dirty logging map read-only (all host memory here is normal memory).
  if (ctx.logging && !ctx.writeFault) ctx.writable = false;
  // 9. exec on device memory would be -ENOEXEC; device memory is not modelled.
  ctx.device = false;
  if (ctx.execFault && ctx.device) return ENOEXEC;
  return CONTINUE;
}

/** user_mem_abort step 11's test: the page belongs to a THP that can be mapped as a whole PMD. */
function mapsWholeThp(vm: Vm, ctx: FaultContext): boolean {
  return (
    ctx.vmaPagesize === vm.geo.granule.size &&
    !ctx.forcePte &&
    vm.host.isTransparentHugepage(ctx.pa) &&
    faultSupportsStage2HugeMapping(ctx.slot!, ctx.hva, ctx.pmdSize)
  );
}

/** user_mem_abort steps 12, 14 and 15: the permissions of the mapping. */
function faultProt(vm: Vm, ctx: FaultContext): number {
  let prot = PROT_R | (ctx.writable ? PROT_W : 0);
  if (ctx.execFault) prot |= PROT_X;
  if (vm.cpu.dic) prot |= PROT_X;
  return prot;
}

/** user_mem_abort step 16's test: relax_perms, as the leaf already has the right size. */
function relaxes(ctx: FaultContext, size: number): boolean {
  return ctx.fsc === "permission" && size === ctx.faultGranule;
}

/**
 * Whether {@link umaLocked} for `ctx` would certainly store no stage-2 descriptor and issue no
 * TLBI, run now or after critical sections that change neither (for the simulator's lookahead):
 * the notifier sequence moved since the sample (a retry whatever else happens: it only grows), or
 * the map it would make returns -EAGAIN from the tables as they are. Its THP test reads host
 * state, which must be settled: a THP stays one (the host model never makes a THP's pages
 * anything else) and the 4K zero page never becomes one; any other page might, so then false.
 * Changes nothing.
 */
export function umaLockedChangesNothing(vm: Vm, ctx: FaultContext): boolean {
  if (vm.mmuNotifierSeq !== ctx.mmuSeq) return true;
  if (ctx.slot === null) return false;
  let ipa = ctx.faultIpa;
  let pa = ctx.pa;
  let size = ctx.vmaPagesize;
  if (size === vm.geo.granule.size && !ctx.forcePte) {
    if (!vm.host.isTransparentHugepage(pa) && !vm.host.isZeroPage(pa)) return false;
    if (mapsWholeThp(vm, ctx)) {
      size = ctx.pmdSize;
      ipa -= modPow2(ipa, size);
      pa -= modPow2(pa, size);
    }
  }
  if (relaxes(ctx, size)) return false;
  return vm.pgt.mapChangesNothing(ipa, size, pa, faultProt(vm, ctx));
}

/** user_mem_abort steps 10-17, run while holding mmu_lock. */
export function umaLocked(vm: Vm, vcpu: Vcpu, ctx: FaultContext): void {
  const slot = ctx.slot!;
  ctx.ret = 0;
  ctx.action = "retry";
  ctx.prot = 0;
  // 10. Invalidated since the sample: back to the guest, which refaults.
  ctx.retried = vm.mmuNotifierRetry(ctx.mmuSeq);
  if (ctx.retried) return;
  // 11. THP: map the whole PMD if the page belongs to one (the huge zero page included).
  if (mapsWholeThp(vm, ctx)) {
    const pmdSize = ctx.pmdSize;
    ctx.faultIpa -= modPow2(ctx.faultIpa, pmdSize);
    ctx.pa -= modPow2(ctx.pa, pmdSize);
    ctx.vmaPagesize = pmdSize;
  }
  // 12. Permissions (with 14's X for an exec fault and 15's: with DIC all normal memory is
  // mapped executable).
  const prot = faultProt(vm, ctx);
  // 13-14. v5.12: every faulting vCPU cleans (and for exec invalidates) the whole mapping here.
  const cmoHere = vm.kernel.faultCmos === "user_mem_abort";
  if (cmoHere && ctx.fsc !== "permission" && !ctx.device)
    cleanDcacheGuestPage(vm.pgt, ctx.pa, ctx.vmaPagesize);
  if (ctx.execFault && cmoHere) invalidateIcacheGuestPage(vm.pgt, ctx.pa, ctx.vmaPagesize);
  ctx.prot = prot;
  // 16. relax_perms when the leaf already has the right size, map otherwise.
  if (relaxes(ctx, ctx.vmaPagesize)) {
    ctx.action = "relax";
    ctx.ret = vm.pgt.relaxPerms(ctx.faultIpa, prot);
  } else {
    ctx.action = "map";
    ctx.ret = vm.pgt.map(ctx.faultIpa, ctx.vmaPagesize, ctx.pa, prot, vcpu.memcache);
  }
  // 17. Dirty tracking for a successful writable mapping (kvm_set_pfn_dirty + mark_page_dirty).
  if (ctx.writable && ctx.ret === 0) {
    slot.markDirty(ctx.gpa);
    vm.meter.charge(W_MARK_DIRTY, 1);
    if (vm.events.active && vm.events.wants["mark-dirty"])
      vm.events.emit({ kind: "mark-dirty", gpa: ctx.gpa });
  }
}

/** user_mem_abort's exit after unlocking: report; -EAGAIN counts as success. */
export function umaDone(vm: Vm, vcpu: Vcpu, ctx: FaultContext): number {
  const ret = ctx.ret;
  report(vm, vcpu, ctx.action, ctx.faultIpa, ctx.action === "retry" ? 0 : ctx.vmaPagesize, ctx.prot, ret);
  return ret === EAGAIN ? 0 : ret;
}

/** The mapping-size shifts user_mem_abort chooses among, for one granule. */
export interface FaultShifts {
  readonly pud: number;
  readonly pmd: number;
  readonly pudSize: number;
  readonly pmdSize: number;
  readonly contPmd: number;
  readonly contPte: number;
}

/** PUD_SHIFT, PMD_SHIFT, CONT_PMD_SHIFT and CONT_PTE_SHIFT of a host granule. */
export function faultShifts(g: Granule): FaultShifts {
  const pmd = levelShift(g, 2);
  const pud = levelShift(g, 1);
  return {
    pud,
    pmd,
    pudSize: 2 ** pud,
    pmdSize: 2 ** pmd,
    contPmd: pmd + contShift(g.size, 2),
    contPte: g.shift + contShift(g.size, 3),
  };
}

/** log2 of entries in a contiguous range (CONT_PTES / CONT_PMDS) for a granule and level. */
function contShift(granule: number, level: 2 | 3): number {
  switch (granule) {
    case 4096:
      return 4;
    case 16384:
      return level === 3 ? 7 : 5;
    default:
      return 5;
  }
}

function report(
  vm: Vm,
  vcpu: Vcpu,
  action: FaultAction,
  ipa: number,
  size: number,
  prot: number,
  ret: number,
): void {
  vm.faultStats.action(action, ret);
  if (vm.events.active && vm.events.wants["fault-action"])
    vm.events.emit({ kind: "fault-action", vcpu: vcpu.id, action, ipa, size, prot, ret });
}
