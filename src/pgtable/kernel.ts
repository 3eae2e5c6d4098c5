/**
 * Kernel profiles of the pgtable code: the few places where v5.12 and v5.14 differ (spec sections
 * 1.4, 4.2-4.5, 5). Everything else is shared code.
 */

import type { InjectedBug } from "./bugs.js";

/** Kernel versions the model implements. */
export type KernelVersion = "v5.12" | "v5.14";

/** The kernel versions, oldest first. */
export const KERNEL_VERSIONS: readonly KernelVersion[] = ["v5.12", "v5.14"];

/** How the pgtable code of one kernel behaves where the versions differ. */
export interface PgtableKernel {
  readonly version: KernelVersion;
  /**
   * Which entries hold a reference on their table page: `valid` (v5.12: kvm_pte_valid) or
   * `non-zero` (v5.14: stage2_pte_is_counted).
   */
  readonly counted: "valid" | "non-zero";
  /** How an entry is broken: clear bit 0 only (kvm_set_invalid_pte) or write 0 (kvm_clear_pte). */
  readonly invalidate: "clear-valid-bit" | "zero";
  /** Whether the guest mm_ops carry the CMO callbacks (the series' patch 1). */
  readonly mmOpsCmoCallbacks: boolean;
  /**
   * Table-to-block coalescing at TABLE_POST: v5.12 frees the old child (found through the stale
   * address left in the invalidated entry) before storing the block; v5.14 remembers the detached
   * child at TABLE_PRE, stores the block (with its CMOs) and then frees the child.
   */
  readonly coalesce: "free-child-then-block" | "block-then-free-child";
  /** A bug injected for checker tests and teaching (see bugs.ts), or null: the kernel as it is. */
  readonly bug: InjectedBug | null;
}

/** Linux v5.12: CMOs in user_mem_abort, invalid = bit 0 cleared. */
export const V5_12: PgtableKernel = {
  version: "v5.12",
  counted: "valid",
  invalidate: "clear-valid-bit",
  mmOpsCmoCallbacks: false,
  coalesce: "free-child-then-block",
  bug: null,
};

/** Linux v5.14: CMOs in the map and attribute walkers, invalid = zero. */
export const V5_14: PgtableKernel = {
  version: "v5.14",
  counted: "non-zero",
  invalidate: "zero",
  mmOpsCmoCallbacks: true,
  coalesce: "block-then-free-child",
  bug: null,
};

/** The pgtable profile of a kernel version. */
export function pgtableKernel(version: KernelVersion): PgtableKernel {
  switch (version) {
    case "v5.12":
      return V5_12;
    case "v5.14":
      return V5_14;
  }
}
