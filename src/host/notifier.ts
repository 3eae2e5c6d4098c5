/** The MMU-notifier interface through which the host tells KVM about changes to its page tables. */
import type { Blocking } from "../common/steps.js";

/** struct mmu_notifier_ops, the callbacks KVM registers (all may take KVM's mmu_lock). */
export interface MmuNotifier {
  /** invalidate_range_start over [start, end) of host virtual addresses. */
  invalidateRangeStart(start: number, end: number): Blocking<void>;
  /** invalidate_range_end. */
  invalidateRangeEnd(start: number, end: number): Blocking<void>;
  /** change_pte: the host PTE for `hva` now maps `pa` (between start and end). */
  changePte(hva: number, pa: number): Blocking<void>;
  /** clear_flush_young: age [start, end); true if any of it was young. */
  clearFlushYoung(start: number, end: number): Blocking<boolean>;
  /** clear_young: like clear_flush_young without the TLB flush. */
  clearYoung(start: number, end: number): Blocking<boolean>;
  /** test_young. */
  testYoung(start: number, end: number): Blocking<boolean>;
  /** release: the notifier leaves the mm (mmu_notifier_unregister while the mm lives, or exit). */
  release(): Blocking<void>;
}
