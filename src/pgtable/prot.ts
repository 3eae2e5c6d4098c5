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

// Module-local copies of the imported constants stage2ProtAttr uses on every map: optimized code
// folds a module's own `const`s, but reads an import through its cell, with a TDZ check, per use.
const MEMATTR_SHIFT = ATTR_LO_MEMATTR_SHIFT;
const MEMATTR_DEVICE = MEMATTR_DEVICE_NGNRE;
const XN = ATTR_HI_XN;
const S2AP_R = ATTR_LO_S2AP_R;
const S2AP_W = ATTR_LO_S2AP_W;
const SH_IS = SH_INNER << ATTR_LO_SH_SHIFT;
const AF = ATTR_LO_AF;
const E_INVAL = EINVAL;

export const PROT_X = 1 << 0;
export const PROT_W = 1 << 1;
export const PROT_R = 1 << 2;
export const PROT_DEVICE = 1 << 3;
/** R | W, the usual writable guest mapping. */
export const PROT_RW = PROT_R | PROT_W;

// Private copies of the exported flags (an exported `const` is read through its module cell at
// every use, even in its own module).
const P_X = PROT_X;
const P_W = PROT_W;
const P_R = PROT_R;
const P_DEVICE = PROT_DEVICE;

/** Leaf attributes as the two descriptor words' attribute bits. */
export interface LeafAttr {
  lo: number;
  hi: number;
}

/** stage2_set_prot_attr: attributes for `prot`, or -EINVAL for executable device memory. */
export function stage2ProtAttr(prot: number, fwb: boolean, out: LeafAttr): number {
  const device = (prot & P_DEVICE) !== 0;
  let lo = (device ? MEMATTR_DEVICE : normalMemAttr(fwb)) << MEMATTR_SHIFT;
  let hi = 0;
  if ((prot & P_X) === 0) hi |= XN;
  else if (device) return E_INVAL;
  if ((prot & P_R) !== 0) lo |= S2AP_R;
  if ((prot & P_W) !== 0) lo |= S2AP_W;
  lo |= SH_IS;
  lo |= AF;
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
