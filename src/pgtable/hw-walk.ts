/**
 * What the MMU's stage-2 table walker finds for a guest access: the translation, or the fault the
 * hardware reports (fault status code and level, as in ESR_EL2). Fault inputs to KVM come from
 * here, never from a caller's choice.
 */
import { ATTR_LO_AF, ATTR_LO_S2AP_R, ATTR_LO_S2AP_W, ATTR_HI_XN, pteOa } from "../arch/descriptor.js";
import { LAST_LEVEL, levelSupportsBlock } from "../arch/granule.js";
import type { Stage2Pgtable } from "./stage2.js";

/** The stage-2 fault classes KVM handles (ESR.FSC & 0x3c). */
export type FaultStatus = "translation" | "permission" | "access";

/** A guest memory access as the hardware sees it. */
export interface GuestAccess {
  readonly ipa: number;
  /** A data write (ESR.WnR). */
  readonly write: boolean;
  /** An instruction fetch. */
  readonly exec: boolean;
  /** The access is the guest's own stage-1 table walk (reported as a write by KVM). */
  readonly s1ptw: boolean;
}

/** Outcome of a hardware stage-2 walk. */
export type HwWalkResult =
  | { readonly kind: "ok"; readonly pa: number; readonly level: number; readonly size: number }
  | { readonly kind: "fault"; readonly fsc: FaultStatus; readonly level: number };

/** Permission bits of a leaf as the MMU applies them (also what a TLB entry caches). */
export const LEAF_R = 1;
export const LEAF_W = 2;
export const LEAF_X = 4;

/**
 * The fault a walk ending at descriptor `lo` of `level` reports before any permission check:
 * translation (invalid; a level-3 entry with TYPE clear; a block where the granule allows none),
 * access flag (AF clear and no hardware AF management), or null when it translates.
 */
export function leafFault(
  lo: number,
  level: number,
  blockAllowed: boolean,
  hwAf: boolean,
): FaultStatus | null {
  if ((lo & 1) === 0) return "translation";
  if ((level === LAST_LEVEL && (lo & 2) === 0) || !blockAllowed) return "translation";
  if ((lo & ATTR_LO_AF) === 0 && !hwAf) return "access";
  return null;
}

/** The LEAF_R/W/X permissions of a leaf descriptor. */
export function leafPerms(lo: number, hi: number): number {
  let p = 0;
  if ((lo & ATTR_LO_S2AP_R) !== 0) p |= LEAF_R;
  if ((lo & ATTR_LO_S2AP_W) !== 0) p |= LEAF_W;
  if ((hi & ATTR_HI_XN) === 0) p |= LEAF_X;
  return p;
}

/** Whether `perms` allow an access: fetches need X, writes W, plain loads R. */
export function leafPermits(perms: number, write: boolean, exec: boolean): boolean {
  if (exec && (perms & LEAF_X) === 0) return false;
  if (write) return (perms & LEAF_W) !== 0;
  return exec || (perms & LEAF_R) !== 0;
}

/**
 * Walks the stage-2 tables for `access`. With hardware access-flag management (VTCR_EL2.HA on a
 * CPU that has it) a clear AF is set by the walker instead of faulting.
 */
export function hwWalk(pgt: Stage2Pgtable, access: GuestAccess, hwAf: boolean): HwWalkResult {
  const { lo, hi, level } = pgt.lookup(access.ipa);
  if (level < 0) return { kind: "fault", fsc: "translation", level: 0 };
  const fsc = leafFault(lo, level, levelSupportsBlock(pgt.granule, level), hwAf);
  if (fsc !== null) return { kind: "fault", fsc, level };
  if (!leafPermits(leafPerms(lo, hi), access.write || access.s1ptw, access.exec)) {
    return { kind: "fault", fsc: "permission", level };
  }
  const size = pgt.sizes.of(level);
  const oa = pteOa(pgt.granule, lo, hi);
  return { kind: "ok", pa: oa + (access.ipa % size), level, size };
}
