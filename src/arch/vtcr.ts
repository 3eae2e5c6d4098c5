/**
 * VTCR_EL2 as KVM programs it for a VM (spec section 2.1): kvm_arm_setup_stage2 in v5.12,
 * kvm_get_vtcr in v5.14.
 */
import { S2simError } from "../common/error.js";
import { type CpuFeatures, type PaRangeBits, paRangeEncoding } from "./cpu.js";
import type { Stage2Geometry } from "./geometry.js";

export const VTCR_T0SZ_MASK = 0x3f;
export const VTCR_SL0_SHIFT = 6;
export const VTCR_IRGN0_SHIFT = 8;
export const VTCR_ORGN0_SHIFT = 10;
export const VTCR_SH0_SHIFT = 12;
export const VTCR_TG0_SHIFT = 14;
export const VTCR_PS_SHIFT = 16;
export const VTCR_VS = 1 << 19;
export const VTCR_HA = 1 << 21;
export const VTCR_HD = 1 << 22;
export const VTCR_RES1 = 1 << 31;

/** Cacheability WBWA for IRGN0/ORGN0. */
const WBWA = 0b01;
/** Inner shareable for SH0. */
const SH_IS = 0b11;

/**
 * The host PA size KVM programs into VTCR_EL2.PS: the host PARange capped to PARANGE_MAX
 * (48 bits, or 52 only with 64K pages and CONFIG_ARM64_PA_BITS_52).
 */
export function kvmPaBits(cpu: CpuFeatures, geo: Stage2Geometry): PaRangeBits {
  const cap = geo.granule.size === 65536 ? 52 : 48;
  return Math.min(cpu.paRangeBits, cap) as PaRangeBits;
}

/** kvm_ipa_limit: the largest IPA size this host lets a VM use. */
export function kvmIpaLimit(cpu: CpuFeatures, geo: Stage2Geometry): number {
  return kvmPaBits(cpu, geo);
}

/** Computes VTCR_EL2 for a VM; an IPA size larger than the host allows is a clear error. */
export function vtcrEl2(cpu: CpuFeatures, geo: Stage2Geometry): number {
  const limit = kvmIpaLimit(cpu, geo);
  if (geo.ipaBits > limit) {
    throw new S2simError(
      "bad-ipa-size",
      `IPA size ${geo.ipaBits} bits exceeds this host's limit of ${limit} bits`,
    );
  }
  let v = (64 - geo.ipaBits) & VTCR_T0SZ_MASK;
  v |= (geo.granule.sl0Base - geo.startLevel) << VTCR_SL0_SHIFT;
  v |= WBWA << VTCR_IRGN0_SHIFT;
  v |= WBWA << VTCR_ORGN0_SHIFT;
  v |= SH_IS << VTCR_SH0_SHIFT;
  v |= geo.granule.tg0 << VTCR_TG0_SHIFT;
  v |= paRangeEncoding(kvmPaBits(cpu, geo)) << VTCR_PS_SHIFT;
  if (cpu.vmid16) v |= VTCR_VS;
  v |= VTCR_HA;
  v |= VTCR_RES1;
  return v >>> 0;
}
