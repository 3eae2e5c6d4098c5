/**
 * The stage-2 fault path (spec section 6): kvm_handle_guest_abort, user_mem_abort for v5.12 and
 * v5.14, handle_access_fault, and the guest access that drives them. Code under mmu_lock runs
 * between the lock and unlock steps it yields, so a driver can interleave vCPUs exactly there.
 */
import { pteValid, pteWords } from "../arch/descriptor.js";
import { levelShift, levelSize } from "../arch/granule.js";
import { EAGAIN, EFAULT, ENOEXEC } from "../common/errno.js";
import { S2simError } from "../common/error.js";
import { hex } from "../common/format.js";
import type { Blocking } from "../common/steps.js";
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

/** How many times one guest access may fault before the model calls it a livelock. */
const MAX_FAULTS_PER_ACCESS = 64;

/**
 * One guest memory access by `vcpu`: a hardware stage-2 walk, and on a fault the exit to
 * kvm_handle_guest_abort and a retry, until the access completes. Returns the faults taken.
 */
export function* guestAccess(vm: Vm, vcpu: Vcpu, access: GuestAccess): Blocking<number> {
  for (let faults = 0; faults < MAX_FAULTS_PER_ACCESS; faults++) {
    const r = hwWalk(vm.pgt, access, vm.cpu.hwAccessFlag);
    if (r.kind === "ok") return faults;
    yield* kvmHandleGuestAbort(vm, vcpu, { access, fsc: r.fsc, level: r.level });
  }
  throw new Error(`guest access to ${hex(access.ipa)} by vCPU ${vcpu.id} keeps faulting`);
}

/** kvm_is_write_fault: S1PTW counts as a write, instruction aborts never do. */
function isWriteFault(a: GuestAccess): boolean {
  if (a.s1ptw) return true;
  if (a.exec) return false;
  return a.write;
}

/** kvm_handle_guest_abort: classify, find the memslot, and handle the fault; returns 1 to resume. */
export function* kvmHandleGuestAbort(vm: Vm, vcpu: Vcpu, abort: Stage2Abort): Blocking<number> {
  const { access, fsc, level } = abort;
  const writeFault = isWriteFault(access);
  const ev = vm.events;
  if (ev.active) {
    ev.emit({
      kind: "guest-abort",
      vcpu: vcpu.id,
      ipa: access.ipa,
      fsc,
      level,
      write: writeFault,
      exec: access.exec,
    });
  }
  const slot = vm.memslots.find(access.ipa);
  if (slot === null || (writeFault && (slot.flags & KVM_MEM_READONLY) !== 0)) {
    throw new S2simError(
      "outside-memslots",
      `guest access to ${hex(access.ipa)} is outside every writable memslot (MMIO emulation is not modelled)`,
    );
  }
  if (fsc === "access") {
    yield* handleAccessFault(vm, vcpu, access.ipa);
    return 1;
  }
  const ret = yield* userMemAbort(vm, vcpu, abort, slot, slot.hvaOf(access.ipa));
  return ret === 0 ? 1 : ret;
}

/** handle_access_fault: mkyoung under mmu_lock. */
export function* handleAccessFault(vm: Vm, vcpu: Vcpu, ipa: number): Blocking<void> {
  yield { kind: "lock", lock: vm.mmuLock };
  const old = vm.pgt.mkyoung(ipa);
  yield { kind: "unlock", lock: vm.mmuLock };
  report(vm, vcpu, "mkyoung", ipa, 0, 0, pteValid(pteWords(old).lo) ? 0 : EFAULT);
}

/** fault_supports_stage2_huge_mapping: congruent GPA/HVA and the whole block inside the slot. */
export function faultSupportsStage2HugeMapping(slot: Memslot, hva: number, mapSize: number): boolean {
  if (slot.gpa % mapSize !== slot.hva % mapSize) return false;
  const base = hva - (hva % mapSize);
  return base >= slot.hva && base + mapSize <= slot.hva + slot.size;
}

/**
 * user_mem_abort, v5.12 and v5.14 in the spec's step order (sections 6.2 and 6.3). The kernels
 * differ only in where the CMOs happen (`kernel.faultCmos`); the pgtable profile does the rest.
 */
export function* userMemAbort(
  vm: Vm,
  vcpu: Vcpu,
  abort: Stage2Abort,
  slot: Memslot,
  hva: number,
): Blocking<number> {
  const g = vm.geo.granule;
  const page = g.size;
  const { access, fsc } = abort;
  let faultIpa = access.ipa;
  const faultGranule = levelSize(g, abort.level);
  const writeFault = isWriteFault(access);
  const execFault = access.exec && !access.s1ptw;
  // 1. A permission fault that is neither a write nor an exec is unexpected.
  if (fsc === "permission" && !writeFault && !execFault) return EFAULT;

  // 2. VMA lookup under mmap_read_lock; logging forces PAGE_SIZE.
  const vma = vm.host.findVma(hva);
  if (vma === null) return EFAULT;
  const logging = slot.logging;
  let vmaShift = vma.hugetlb ? Math.log2(vma.backing.pageSize) : g.shift;
  let forcePte = false;
  if (logging) {
    forcePte = true;
    vmaShift = g.shift;
  }
  // 3. Size selection: PUD (4K only), CONT_PMD -> PMD, PMD, CONT_PTE -> PAGE with force_pte.
  const pudShift = levelShift(g, 1);
  const pmdShift = levelShift(g, 2);
  const contPmdShift = pmdShift + contShift(g.size, 2);
  const contPteShift = g.shift + contShift(g.size, 3);
  let sel = vmaShift;
  if (sel === pudShift && g.size === 4096) {
    if (!faultSupportsStage2HugeMapping(slot, hva, 2 ** pudShift)) sel = contPmdShift;
  }
  if (sel === contPmdShift) sel = pmdShift;
  if (sel === pmdShift) {
    if (!faultSupportsStage2HugeMapping(slot, hva, 2 ** pmdShift)) sel = contPteShift;
  }
  if (sel === contPteShift) {
    sel = g.shift;
    forcePte = true;
  }
  vmaShift = sel;
  let vmaPagesize = 2 ** vmaShift;
  // 4. Block-sized mappings start at the block.
  if (vmaPagesize === 2 ** pmdShift || (g.size === 4096 && vmaPagesize === 2 ** pudShift)) {
    faultIpa -= faultIpa % vmaPagesize;
  }
  const gpa = faultIpa - (faultIpa % page);

  // 5. Top up the memcache unless this is a permission fault that cannot need tables.
  if (fsc !== "permission" || (logging && writeFault)) {
    const added = vcpu.memcache.topup(vm.geo.cacheMinPages);
    if (added < 0) return added;
    if (added > 0 && vm.events.active)
      vm.events.emit({ kind: "memcache-topup", vcpu: vcpu.id, pages: added });
  }
  // 6. Sample the notifier sequence before GUP.
  const mmuSeq = vm.mmuNotifierSeq;
  // 7. GUP (may fault the page in on the host, allocate, zero, CoW, call notifiers, sleep).
  const gup = yield* vm.host.gup(slot.hvaOf(gpa), writeFault);
  if (gup === null) return EFAULT;
  let pa = gup.pa;
  let writable = gup.writable;
  // 8. Reads during dirty logging map read-only (all host memory here is normal memory).
  if (logging && !writeFault) writable = false;
  // 9. exec on device memory would be -ENOEXEC; device memory is not modelled.
  const device = false;
  if (execFault && device) return ENOEXEC;

  yield { kind: "lock", lock: vm.mmuLock };
  let ret = 0;
  let action: FaultAction = "retry";
  let prot = 0;
  // 10. Invalidated since the sample: back to the guest, which refaults.
  if (!vm.mmuNotifierRetry(mmuSeq)) {
    // 11. THP: map the whole PMD if the page belongs to one (the huge zero page included).
    if (vmaPagesize === page && !forcePte) {
      const pmdSize = 2 ** pmdShift;
      if (vm.host.isTransparentHugepage(pa) && faultSupportsStage2HugeMapping(slot, hva, pmdSize)) {
        faultIpa -= faultIpa % pmdSize;
        pa -= pa % pmdSize;
        vmaPagesize = pmdSize;
      }
    }
    // 12. Permissions.
    prot = PROT_R | (writable ? PROT_W : 0);
    // 13-14. v5.12: every faulting vCPU cleans (and for exec invalidates) the whole mapping here.
    const cmoHere = vm.kernel.faultCmos === "user_mem_abort";
    if (cmoHere && fsc !== "permission" && !device) cleanDcacheGuestPage(vm.pgt, pa, vmaPagesize);
    if (execFault) {
      prot |= PROT_X;
      if (cmoHere) invalidateIcacheGuestPage(vm.pgt, pa, vmaPagesize);
    }
    // 15. With DIC all normal memory is mapped executable.
    if (vm.cpu.dic) prot |= PROT_X;
    // 16. relax_perms when the leaf already has the right size, map otherwise.
    if (fsc === "permission" && vmaPagesize === faultGranule) {
      action = "relax";
      ret = vm.pgt.relaxPerms(faultIpa, prot);
    } else {
      action = "map";
      ret = vm.pgt.map(faultIpa, vmaPagesize, pa, prot, vcpu.memcache);
    }
    // 17. Dirty tracking for a successful writable mapping (kvm_set_pfn_dirty + mark_page_dirty).
    if (writable && ret === 0) {
      slot.markDirty(gpa);
      if (vm.events.active) vm.events.emit({ kind: "mark-dirty", gpa });
    }
  }
  yield { kind: "unlock", lock: vm.mmuLock };
  report(vm, vcpu, action, faultIpa, action === "retry" ? 0 : vmaPagesize, prot, ret);
  return ret === EAGAIN ? 0 : ret;
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
  if (vm.events.active) vm.events.emit({ kind: "fault-action", vcpu: vcpu.id, action, ipa, size, prot, ret });
}
