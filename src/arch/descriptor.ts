/**
 * Stage-2 descriptor encoding (spec section 1). A 64-bit descriptor is held as two unsigned 32-bit
 * words, `lo` = bits [31:0] and `hi` = bits [63:32], so hot paths never touch BigInt. Bits above 31
 * are named here by their position in `hi` (bit N of the descriptor = bit N-32 of `hi`).
 */
import type { Granule } from "./granule.js";
import { LAST_LEVEL } from "./granule.js";

/**
 * LAST_LEVEL as a module-local constant: optimized code folds a module's own `const`s, but reads
 * an imported binding through its cell, with a TDZ check, at every use.
 */
const LAST = LAST_LEVEL;

/** Bit 0: valid. */
export const PTE_VALID = 1 << 0;
/** Bit 1: table (levels 0-2) or page (level 3). */
export const PTE_TYPE = 1 << 1;
/** Bits [5:2]: stage-2 MemAttr. */
export const ATTR_LO_MEMATTR_SHIFT = 2;
export const ATTR_LO_MEMATTR_MASK = 0xf << ATTR_LO_MEMATTR_SHIFT;
/** Bit 6: S2AP[0], read. */
export const ATTR_LO_S2AP_R = 1 << 6;
/** Bit 7: S2AP[1], write. */
export const ATTR_LO_S2AP_W = 1 << 7;
/** Bits [9:8]: shareability. */
export const ATTR_LO_SH_SHIFT = 8;
export const ATTR_LO_SH_MASK = 3 << ATTR_LO_SH_SHIFT;
/** Inner shareable, the only value KVM uses. */
export const SH_INNER = 3;
/** Bit 10: access flag. */
export const ATTR_LO_AF = 1 << 10;
/** Bits [11:2]: the lower leaf attributes (KVM_PTE_LEAF_ATTR_LO). */
export const ATTR_LO_MASK = 0xffc;
/** Bits [15:12] of a 64K-granule descriptor: PA[51:48]. */
export const ADDR_51_48_SHIFT = 12;
export const ADDR_51_48_MASK = 0xf << ADDR_51_48_SHIFT;
/** Bits [47:32] of the output address, in `hi`. */
export const ADDR_HI_MASK = 0xffff;
/** Bit 51: DBM (hi bit 19). */
export const ATTR_HI_DBM = 1 << 19;
/** Bit 52: contiguous hint (hi bit 20). */
export const ATTR_HI_CONTIG = 1 << 20;
/** Bit 54: XN (hi bit 22). */
export const ATTR_HI_XN = 1 << 22;
/** Bits [58:55]: software / ignored (hi bits 26:23). */
export const ATTR_HI_SW_SHIFT = 23;
export const ATTR_HI_SW_MASK = 0xf << ATTR_HI_SW_SHIFT;
/** Bits [63:51]: the upper leaf attributes (KVM_PTE_LEAF_ATTR_HI), as a `hi` mask. */
export const ATTR_HI_MASK = 0xfff80000 | 0;
/** KVM_PTE_LEAF_ATTR_S2_PERMS in `lo`: R | W. */
export const PERMS_LO = ATTR_LO_S2AP_R | ATTR_LO_S2AP_W;
/** KVM_PTE_LEAF_ATTR_S2_PERMS in `hi`: XN. */
export const PERMS_HI = ATTR_HI_XN;

/** MemAttr for Normal write-back memory without FEAT_S2FWB (outer WB, inner WB). */
export const MEMATTR_NORMAL = 0xf;
/** MemAttr for Normal memory with FEAT_S2FWB ("force write-back"). */
export const MEMATTR_NORMAL_FWB = 0x6;
/** MemAttr for Device-nGnRE memory, with or without FWB. */
export const MEMATTR_DEVICE_NGNRE = 0x1;

// Private copies of the exported constants for this module's helpers, which sit on the page-table
// hot paths: an exported `const` is read through its module cell, with a TDZ check, at every use
// (even here), while a private one is folded into optimized code.
const VALID = PTE_VALID;
const TYPE = PTE_TYPE;
const MEMATTR_MASK = ATTR_LO_MEMATTR_MASK;
const MEMATTR_SHIFT = ATTR_LO_MEMATTR_SHIFT;
const LO_MASK = ATTR_LO_MASK;
const HI_MASK = ATTR_HI_MASK;
const OA_HI_MASK = ADDR_HI_MASK;
const OA_51_48_MASK = ADDR_51_48_MASK;
const OA_51_48_SHIFT = ADDR_51_48_SHIFT;
const XN = ATTR_HI_XN;
const NOT_PERMS_LO = ~PERMS_LO;
const NOT_PERMS_HI = ~PERMS_HI;
const NORMAL = MEMATTR_NORMAL;
const NORMAL_FWB = MEMATTR_NORMAL_FWB;

const TWO_32 = 4294967296;
const TWO_48 = 281474976710656;
const TWO_53 = 9007199254740992;
/** Exact reciprocals (powers of two), so dividing becomes a multiplication. */
const INV_TWO_32 = 1 / TWO_32;
const INV_TWO_48 = 1 / TWO_48;

/** The MemAttr value KVM uses for Normal memory given whether stage-2 FWB is in use. */
export function normalMemAttr(fwb: boolean): number {
  return fwb ? NORMAL_FWB : NORMAL;
}

/** kvm_pte_valid. */
export function pteValid(lo: number): boolean {
  return (lo & VALID) !== 0;
}

/** kvm_pte_table: valid, type 1 and above the last level. */
export function pteTable(lo: number, level: number): boolean {
  return level < LAST && (lo & 3) === 3;
}

/** Output address of a descriptor (kvm_pte_to_phys). */
export function pteOa(g: Granule, lo: number, hi: number): number {
  let pa = ((lo & g.addrMaskLo) >>> 0) + (hi & OA_HI_MASK) * TWO_32;
  if (g.size === 65536) pa += ((lo & OA_51_48_MASK) >>> OA_51_48_SHIFT) * TWO_48;
  return pa;
}

/** The low word holding `pa`'s address bits (kvm_phys_to_pte, low half). */
export function oaLo(g: Granule, pa: number): number {
  // `&` takes its operand modulo 2^32 (ToInt32), which is pa % 2^32 for 0 <= pa < 2^53 without
  // a floating-point modulo; anything else, and the 64K granule's PA[51:48], go the long way.
  if (pa >= 0 && pa < TWO_53 && g.size !== 65536) return (pa & g.addrMaskLo) >>> 0;
  return oaLoAny(g, pa);
}

/** {@link oaLo} for any pa and granule. */
function oaLoAny(g: Granule, pa: number): number {
  let lo = pa >= 0 && pa < TWO_53 ? (pa & g.addrMaskLo) >>> 0 : ((pa % TWO_32) & g.addrMaskLo) >>> 0;
  if (g.size === 65536) lo = (lo | ((Math.floor(pa * INV_TWO_48) & 0xf) << OA_51_48_SHIFT)) >>> 0;
  return lo;
}

/** The high word holding `pa`'s address bits [47:32] (kvm_phys_to_pte, high half). */
export function oaHi(pa: number): number {
  return Math.floor(pa * INV_TWO_32) & OA_HI_MASK;
}

/** MemAttr of a descriptor. */
export function pteMemAttr(lo: number): number {
  return (lo & MEMATTR_MASK) >>> MEMATTR_SHIFT;
}

/** stage2_pte_cacheable: MemAttr equals the Normal encoding for this FWB setting. */
export function pteCacheable(lo: number, fwb: boolean): boolean {
  return pteMemAttr(lo) === normalMemAttr(fwb);
}

/** stage2_pte_executable: XN clear. */
export function pteExecutable(hi: number): boolean {
  return (hi & XN) === 0;
}

/** Whether two descriptors differ only in R, W and XN (or not at all). */
export function differOnlyInPerms(oldLo: number, oldHi: number, newLo: number, newHi: number): boolean {
  return ((oldLo ^ newLo) & NOT_PERMS_LO) === 0 && ((oldHi ^ newHi) & NOT_PERMS_HI) === 0;
}

/** Builds a table descriptor pointing at `pa` (kvm_set_table_pte's value), low word. */
export function tableLo(g: Granule, pa: number): number {
  return (oaLo(g, pa) | TYPE | VALID) >>> 0;
}

/** Builds a valid leaf (kvm_init_valid_leaf_pte), low word, from masked attributes. */
export function leafLo(g: Granule, pa: number, attrLo: number, level: number): number {
  const type = level === LAST ? TYPE : 0;
  return (oaLo(g, pa) | (attrLo & LO_MASK) | type | VALID) >>> 0;
}

/** Builds a valid leaf, high word. */
export function leafHi(pa: number, attrHi: number): number {
  return (oaHi(pa) | (attrHi & HI_MASK)) >>> 0;
}

/** A descriptor as one 64-bit value, for display and tests (never on hot paths). */
export function pteBig(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** Splits a 64-bit descriptor value into its two words. */
export function pteWords(value: bigint): { lo: number; hi: number } {
  return { lo: Number(value & 0xffffffffn), hi: Number((value >> 32n) & 0xffffffffn) };
}

/** A decoded descriptor, for reports and tests. */
export type DecodedPte =
  | { kind: "invalid"; raw: bigint }
  | { kind: "table"; raw: bigint; next: number }
  | {
      kind: "block" | "page";
      raw: bigint;
      oa: number;
      memAttr: number;
      r: boolean;
      w: boolean;
      sh: number;
      af: boolean;
      xn: boolean;
      contiguous: boolean;
      dbm: boolean;
      sw: number;
    };

/** Decodes a descriptor found at `level` of a table with granule `g`. */
export function decodePte(g: Granule, lo: number, hi: number, level: number): DecodedPte {
  const raw = pteBig(lo, hi);
  if (!pteValid(lo)) return { kind: "invalid", raw };
  if (pteTable(lo, level)) return { kind: "table", raw, next: pteOa(g, lo, hi) };
  // A level-3 descriptor with TYPE clear is reserved: the hardware treats it as invalid.
  if (level === LAST_LEVEL && (lo & PTE_TYPE) === 0) return { kind: "invalid", raw };
  return {
    kind: level === LAST_LEVEL ? "page" : "block",
    raw,
    oa: pteOa(g, lo, hi),
    memAttr: pteMemAttr(lo),
    r: (lo & ATTR_LO_S2AP_R) !== 0,
    w: (lo & ATTR_LO_S2AP_W) !== 0,
    sh: (lo & ATTR_LO_SH_MASK) >>> ATTR_LO_SH_SHIFT,
    af: (lo & ATTR_LO_AF) !== 0,
    xn: (hi & ATTR_HI_XN) !== 0,
    contiguous: (hi & ATTR_HI_CONTIG) !== 0,
    dbm: (hi & ATTR_HI_DBM) !== 0,
    sw: (hi & ATTR_HI_SW_MASK) >>> ATTR_HI_SW_SHIFT,
  };
}
