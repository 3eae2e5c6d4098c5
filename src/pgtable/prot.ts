/**
 * enum kvm_pgtable_prot and its translation to stage-2 leaf attributes (stage2_set_prot_attr).
 */
import {
  ATTR_HI_XN,
  ATTR_LO_AF,
  ATTR_LO_MEMATTR_SHIFT,
  ATTR_LO_S2AP_R,
  ATTR_LO_S2AP_W,
  ATTR_LO_SH_SHIFT,
  MEMATTR_DEVICE_NGNRE,
  SH_INNER,
  normalMemAttr,
} from "../arch/descriptor.js";
import { EINVAL } from "../common/errno.js";

export const PROT_X = 1 << 0;
export const PROT_W = 1 << 1;
export const PROT_R = 1 << 2;
export const PROT_DEVICE = 1 << 3;
/** R | W, the usual writable guest mapping. */
export const PROT_RW = PROT_R | PROT_W;

/** Leaf attributes as the two descriptor words' attribute bits. */
export interface LeafAttr {
  lo: number;
  hi: number;
}

/** stage2_set_prot_attr: attributes for `prot`, or -EINVAL for executable device memory. */
export function stage2ProtAttr(prot: number, fwb: boolean, out: LeafAttr): number {
  const device = (prot & PROT_DEVICE) !== 0;
  let lo = (device ? MEMATTR_DEVICE_NGNRE : normalMemAttr(fwb)) << ATTR_LO_MEMATTR_SHIFT;
  let hi = 0;
  if ((prot & PROT_X) === 0) hi |= ATTR_HI_XN;
  else if (device) return EINVAL;
  if ((prot & PROT_R) !== 0) lo |= ATTR_LO_S2AP_R;
  if ((prot & PROT_W) !== 0) lo |= ATTR_LO_S2AP_W;
  lo |= SH_INNER << ATTR_LO_SH_SHIFT;
  lo |= ATTR_LO_AF;
  out.lo = lo >>> 0;
  out.hi = hi >>> 0;
  return 0;
}

/** A prot value as the kernel would describe it, e.g. `R|W`, `R|X`, `R|DEVICE`. */
export function protName(prot: number): string {
  const parts: string[] = [];
  if (prot & PROT_R) parts.push("R");
  if (prot & PROT_W) parts.push("W");
  if (prot & PROT_X) parts.push("X");
  if (prot & PROT_DEVICE) parts.push("DEVICE");
  return parts.length > 0 ? parts.join("|") : "none";
}
