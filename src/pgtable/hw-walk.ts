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

/**
 * Walks the stage-2 tables for `access`. With hardware access-flag management (VTCR_EL2.HA on a
 * CPU that has it) a clear AF is set by the walker instead of faulting.
 */
export function hwWalk(pgt: Stage2Pgtable, access: GuestAccess, hwAf: boolean): HwWalkResult {
  const { lo, hi, level } = pgt.lookup(access.ipa);
  if (level < 0 || (lo & 1) === 0) return { kind: "fault", fsc: "translation", level: Math.max(level, 0) };
  // A level-3 entry with TYPE clear, or a block where the granule allows none, is a translation fault.
  if ((level === LAST_LEVEL && (lo & 2) === 0) || !levelSupportsBlock(pgt.granule, level)) {
    return { kind: "fault", fsc: "translation", level };
  }
  if ((lo & ATTR_LO_AF) === 0) {
    if (!hwAf) return { kind: "fault", fsc: "access", level };
  }
  const writeAccess = access.write || access.s1ptw;
  if ((access.exec && (hi & ATTR_HI_XN) !== 0) || (writeAccess && (lo & ATTR_LO_S2AP_W) === 0)) {
    return { kind: "fault", fsc: "permission", level };
  }
  if (!access.exec && !writeAccess && (lo & ATTR_LO_S2AP_R) === 0)
    return { kind: "fault", fsc: "permission", level };
  const size = pgt.sizes.of(level);
  const oa = pteOa(pgt.granule, lo, hi);
  return { kind: "ok", pa: oa + (access.ipa % size), level, size };
}
