/**
 * Events the page-table code emits, one per architecturally or kernel-visible step. Addresses are
 * numbers (all below 2^53). Kernel linear-map addresses are given as the physical address they
 * alias (the model's phys_to_virt is the identity; see docs/model.md).
 */

import type { EventKinds, EventSink } from "../common/events.js";

/** The kvm_pgtable entry points. */
export type PgtableOp =
  | "init"
  | "map"
  | "unmap"
  | "wrprotect"
  | "relax_perms"
  | "mkyoung"
  | "mkold"
  | "is_young"
  | "flush"
  | "destroy";

/** The two TLB maintenance calls the stage-2 code makes (spec section 4.6). */
export type TlbiScope =
  /** __kvm_tlb_flush_vmid_ipa: TLBI IPAS2E1IS (with TTL level hint) + TLBI VMALLE1IS. */
  | "vmid-ipa"
  /** __kvm_tlb_flush_vmid: TLBI VMALLS12E1IS. */
  | "vmid";

/** Cache maintenance performed on guest memory. */
export type CmoOp =
  /** DC CIVAC per line to the PoC, then DSB. */
  | "dc-civac"
  /** IC IVAU per line to the PoU, then DSB ISH + ISB. */
  | "ic-ivau"
  /** IC IALLUIS: whole I-cache (aliasing VIPT I-cache). */
  | "ic-ialluis";

/** Everything the pgtable layer reports. */
export type PgtableEvent =
  | { kind: "op"; op: PgtableOp; addr: number; size: number }
  | { kind: "op-done"; op: PgtableOp; ret: number }
  | {
      kind: "pte";
      /** IPA of the start of the entry's range. */
      ipa: number;
      level: number;
      /** Physical address of the table page holding the entry. */
      table: number;
      index: number;
      old: bigint;
      new: bigint;
    }
  | { kind: "table-alloc"; pa: number; level: number }
  | { kind: "page-free"; pa: number }
  | { kind: "refcount"; pa: number; count: number }
  | { kind: "tlbi"; scope: "vmid-ipa"; ipa: number; level: number }
  | { kind: "tlbi"; scope: "vmid" }
  | { kind: "cmo"; op: CmoOp; pa: number; size: number };

/**
 * The page-table events as plain-number calls, for a listener on the hot path (the checkers):
 * no event object, no BigInt. Table pages are named by their page number in the table memory, and
 * a `pte` call gives the descriptor words as unsigned 32-bit numbers. Set it as the tap of the
 * VM's event bus; the page-table code calls it where it would emit the matching event.
 */
export interface PgtableTap {
  /** An entry point starts (`op` event). */
  op(op: PgtableOp, addr: number, size: number): void;
  /** An entry point returns `ret` (`op-done`). */
  opDone(op: PgtableOp, ret: number): void;
  /** Entry `index` of table page `page`, mapping [ipa, +level size), goes from old to new (`pte`). */
  pte(
    page: number,
    index: number,
    level: number,
    ipa: number,
    oldLo: number,
    oldHi: number,
    newLo: number,
    newHi: number,
  ): void;
  /** Table page `page` was allocated for `level` (`table-alloc`). */
  tableAlloc(page: number, level: number): void;
  /** Table page `page` was freed (`page-free`). */
  pageFree(page: number): void;
  /** Table page `page`'s refcount changed to `count` (`refcount`). */
  refcount(page: number, count: number): void;
  /** __kvm_tlb_flush_vmid_ipa (`tlbi` vmid-ipa). */
  tlbiIpa(ipa: number, level: number): void;
  /** __kvm_tlb_flush_vmid (`tlbi` vmid). */
  tlbiVmid(): void;
  /** Cache maintenance over [pa, pa + size) (`cmo`). */
  cmo(op: CmoOp, pa: number, size: number): void;
}

/** What the page-table code reports to: an event sink, maybe with a {@link PgtableTap}. */
export interface PgtableSink extends EventSink<PgtableEvent> {
  /** Called where an event would be emitted, inside the sink's `active` test; null: none. */
  readonly tap: PgtableTap | null;
}

/** Every kind of {@link PgtableEvent} (for an EventBus). */
export const PGTABLE_EVENT_KINDS: EventKinds<PgtableEvent> = {
  op: true,
  "op-done": true,
  pte: true,
  "table-alloc": true,
  "page-free": true,
  refcount: true,
  tlbi: true,
  cmo: true,
};
