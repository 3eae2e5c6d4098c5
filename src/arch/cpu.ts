/**
 * The CPU features the stage-2 code consults. These are properties of the host machine, not of a
 * kernel version.
 */
import { S2simError } from "../common/error.js";

/** I-cache indexing policy, from CTR_EL0.L1Ip. */
export type IcachePolicy = "pipt" | "vipt" | "vpipt";

/** PARange values of ID_AA64MMFR0_EL1, in bits. */
export type PaRangeBits = 32 | 36 | 40 | 42 | 44 | 48 | 52;

/** Host CPU features relevant to stage 2. */
export interface CpuFeatures {
  /** FEAT_S2FWB (ARM64_HAS_STAGE2_FWB). */
  readonly fwb: boolean;
  /** CTR_EL0.DIC: no I-cache invalidation needed for D/I coherence. */
  readonly dic: boolean;
  /** CTR_EL0.IDC: no D-cache clean to PoU needed for D/I coherence. */
  readonly idc: boolean;
  /** I-cache policy; `vipt` is treated as aliasing. */
  readonly icache: IcachePolicy;
  /** The host kernel runs KVM in VHE mode (EL2 host). */
  readonly vhe: boolean;
  /** Physical address range the host supports. */
  readonly paRangeBits: PaRangeBits;
  /** 16-bit VMIDs supported. */
  readonly vmid16: boolean;
  /** FEAT_TTL: TLBI by IPA carries a level hint. */
  readonly ttl: boolean;
  /** FEAT_HAFDBS access-flag management (VTCR_EL2.HA has an effect). */
  readonly hwAccessFlag: boolean;
  /** D-cache line size in bytes (CTR_EL0.DminLine). */
  readonly dcacheLine: number;
  /** I-cache line size in bytes (CTR_EL0.IminLine). */
  readonly icacheLine: number;
}

/**
 * The features of the HiSilicon Kunpeng 920 (TaiShan v110, ARMv8.2) as far as the public record
 * says: no FWB, 64-byte lines, 48-bit PA. DIC/IDC are not published; DIC is taken as absent.
 */
export const KUNPENG_920: CpuFeatures = {
  fwb: false,
  dic: false,
  idc: true,
  icache: "pipt",
  vhe: true,
  paRangeBits: 48,
  vmid16: true,
  ttl: false,
  hwAccessFlag: true,
  dcacheLine: 64,
  icacheLine: 64,
};

const PARANGE_ENC: Readonly<Record<PaRangeBits, number>> = {
  32: 0,
  36: 1,
  40: 2,
  42: 3,
  44: 4,
  48: 5,
  52: 6,
};

/** ID_AA64MMFR0_EL1.PARange encoding for a PA size. */
export function paRangeEncoding(bits: number): number {
  const enc = (PARANGE_ENC as Record<number, number | undefined>)[bits];
  if (enc === undefined) {
    throw new S2simError("bad-pa-range", `PA range ${bits} bits is not an AArch64 PARange value`);
  }
  return enc;
}
