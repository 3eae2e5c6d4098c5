/**
 * KVM's MMU-notifier handlers (kvm_main.c + mmu.c, spec section 8) for both kernels: unmap on
 * invalidate_range_start, sequence bump on end, set_spte on change_pte, ageing.
 */
import { pteValid } from "../arch/descriptor.js";
import { ATTR_LO_AF, pteWords } from "../arch/descriptor.js";
import type { Blocking } from "../common/steps.js";
import { W } from "../common/work.js";
import type { MmuNotifier } from "../host/notifier.js";
import { cleanDcacheGuestPage } from "../pgtable/hw.js";
import { PROT_R } from "../pgtable/prot.js";
import type { Memslot } from "./memslot.js";
import type { Vm } from "./vm.js";

/** The notifier KVM registers on the VMM's mm. */
export class KvmMmuNotifier implements MmuNotifier {
  constructor(private readonly vm: Vm) {}

  /**
   * Whether a handler-only notifier (change_pte, ageing) takes mmu_lock for [start, end): v5.12
   * always does; v5.14's __kvm_handle_hva_range takes it only once a memslot overlaps the range.
   * invalidate_range_start/end always take it in both: v5.14's path with an on_lock step has no
   * lock elision (that came in v5.15).
   */
  private locks(start: number, end: number): boolean {
    if (this.vm.kernel.notifierApi === "hva") return true;
    return this.vm.memslots.slots.some((s) => start < s.hva + s.size && s.hva < end);
  }

  /** kvm_mmu_notifier_invalidate_range_start: count++, then unmap every overlapping slot range. */
  *invalidateRangeStart(start: number, end: number): Blocking<void> {
    const vm = this.vm;
    yield vm.lockStep;
    vm.mmuNotifierCount++;
    this.forEachRange(start, end, (_slot, gpa, size) => {
      this.report("unmap", gpa, size);
      vm.unmapStage2Range(gpa, size);
    });
    // kvm_unmap_hva_range / kvm_unmap_gfn_range report no flush needed on arm64.
    yield vm.unlockStep;
  }

  /** kvm_mmu_notifier_invalidate_range_end: seq++, count--. */
  *invalidateRangeEnd(_start: number, _end: number): Blocking<void> {
    const vm = this.vm;
    yield vm.lockStep;
    vm.mmuNotifierSeq++;
    vm.mmuNotifierCount--;
    yield vm.unlockStep;
  }

  /**
   * kvm_mmu_notifier_change_pte → kvm_set_spte_hva (v5.12: seq++ and an unconditional clean of the
   * new page first) or kvm_set_spte_gfn (v5.14): map the new page read-only with no memcache.
   * v5.14 only WARNs when no invalidation is in progress; the early return on a zero
   * mmu_notifier_count came in v5.15.
   */
  *changePte(hva: number, pa: number): Blocking<void> {
    const vm = this.vm;
    const page = vm.geo.granule.size;
    if (!this.locks(hva, hva + page)) return;
    yield vm.lockStep;
    if (vm.kernel.notifierApi === "hva") vm.mmuNotifierSeq++;
    // v5.12 cleans the new page once, before it looks for memslots.
    if (vm.kernel.faultCmos === "user_mem_abort") cleanDcacheGuestPage(vm.pgt, pa, page);
    this.forEachRange(hva, hva + page, (_slot, gpa) => {
      this.report("set_spte", gpa, page);
      // -ENOMEM when the tables are missing is ignored: the page will simply fault.
      vm.pgt.map(gpa, page, pa, PROT_R, null);
    });
    yield vm.unlockStep;
  }

  /** kvm_mmu_notifier_clear_flush_young: mkold each range; flush the VMID if any was young. */
  *clearFlushYoung(start: number, end: number): Blocking<boolean> {
    const vm = this.vm;
    if (!this.locks(start, end)) return false;
    yield vm.lockStep;
    const young = this.age(start, end, "mkold");
    if (young) vm.flushRemoteTlbs();
    yield vm.unlockStep;
    return young;
  }

  /** kvm_mmu_notifier_clear_young: mkold without the flush. */
  *clearYoung(start: number, end: number): Blocking<boolean> {
    const vm = this.vm;
    if (!this.locks(start, end)) return false;
    yield vm.lockStep;
    const young = this.age(start, end, "mkold");
    yield vm.unlockStep;
    return young;
  }

  /** kvm_mmu_notifier_test_young → kvm_test_age_hva/gfn: is_young. */
  *testYoung(start: number, end: number): Blocking<boolean> {
    const vm = this.vm;
    if (!this.locks(start, end)) return false;
    yield vm.lockStep;
    const young = this.age(start, end, "is_young");
    yield vm.unlockStep;
    return young;
  }

  /**
   * kvm_mmu_notifier_release → kvm_arch_flush_shadow_all → kvm_free_stage2_pgd: the stage-2 table
   * is detached under mmu_lock and destroyed after it (no TLBI: the VMID goes with the VM).
   */
  *release(): Blocking<void> {
    const vm = this.vm;
    yield vm.lockStep;
    const detached = vm.detachStage2();
    yield vm.unlockStep;
    if (detached) vm.pgt.destroy();
  }

  /** kvm_age_hva_handler / kvm_age_gfn and the test variants: the page at the range's start. */
  private age(start: number, end: number, op: "mkold" | "is_young"): boolean {
    const pgt = this.vm.pgt;
    let young = false;
    this.forEachRange(start, end, (_slot, gpa, size) => {
      this.report(op === "mkold" ? "age" : "test_age", gpa, size);
      if (op === "is_young") {
        young = pgt.isYoung(gpa) || young;
      } else {
        const { lo } = pteWords(pgt.mkold(gpa));
        young = (pteValid(lo) && (lo & ATTR_LO_AF) !== 0) || young;
      }
    });
    return young;
  }

  /** handle_hva_to_gpa / __kvm_handle_hva_range: the GPA range of each slot overlapping [start, end). */
  private forEachRange(
    start: number,
    end: number,
    fn: (slot: Memslot, gpa: number, size: number) => void,
  ): void {
    for (const slot of this.vm.memslots.slots) {
      const s = Math.max(start, slot.hva);
      const e = Math.min(end, slot.hva + slot.size);
      if (s >= e) continue;
      fn(slot, slot.gpaOf(s), e - s);
    }
  }

  private report(op: string, gpa: number, size: number): void {
    this.vm.meter.charge(W["notifier-handler"], 1);
    const ev = this.vm.events;
    if (ev.active && ev.wants["notifier-handler"]) ev.emit({ kind: "notifier-handler", op, gpa, size });
  }
}
