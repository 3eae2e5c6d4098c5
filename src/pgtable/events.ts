/**
 * Events the page-table code emits, one per architecturally or kernel-visible step. Addresses are
 * numbers (all below 2^53). Kernel linear-map addresses are given as the physical address they
 * alias (the model's phys_to_virt is the identity; see docs/model.md).
 */

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
