/**
 * Stage-2 geometry of a VM: levels, start level and concatenated start-level pages for a granule
 * and IPA size (spec section 2.3), as KVM computes them.
 */
import { S2simError } from "../common/error.js";
import { type Granule, levelShift } from "./granule.js";

/** Shape of a stage-2 table tree for one granule and IPA size. */
export interface Stage2Geometry {
  readonly granule: Granule;
  /** IPA bits (the VM's phys_shift). */
  readonly ipaBits: number;
  /** Number of lookup levels. */
  readonly levels: number;
  /** First lookup level (4 - levels). */
  readonly startLevel: number;
  /** Physically contiguous start-level pages (1 to 16). */
  readonly pgdPages: number;
  /** 2^ipaBits: the first address outside the IPA space. */
  readonly ipaLimit: number;
  /** Memcache top-up target: one page per level below the PGD (kvm_mmu_cache_min_pages). */
  readonly cacheMinPages: number;
}

/** Smallest IPA size KVM accepts. */
export const MIN_IPA_BITS = 32;

/** Largest IPA size the stage-2 format allows with this granule (52 only with 64K pages here). */
export function maxIpaBits(g: Granule): number {
  return g.size === 65536 ? 52 : 48;
}

/** Number of stage-2 levels KVM uses: max(2, ARM64_HW_PGTABLE_LEVELS(ipa - 4)). */
export function stage2Levels(g: Granule, ipaBits: number): number {
  return Math.max(2, Math.floor((ipaBits - 8) / (g.shift - 3)));
}

/**
 * Computes the geometry of a stage-2 table (kvm_pgtable_stage2_init's sizing). An IPA size
 * outside 32..48 (52 with 64K) is a clear error.
 */
export function stage2Geometry(g: Granule, ipaBits: number): Stage2Geometry {
  const max = maxIpaBits(g);
  if (!Number.isInteger(ipaBits) || ipaBits < MIN_IPA_BITS || ipaBits > max) {
    throw new S2simError(
      "bad-ipa-size",
      // In digits (a number past 1e21 would print in exponent form), as near as a double holds it.
      `IPA size ${ipaBits.toLocaleString("en-US", { useGrouping: false, maximumFractionDigits: 20 })} bits ` +
        `is not supported with ${g.name} pages: use ${MIN_IPA_BITS}..${max}`,
    );
  }
  const levels = stage2Levels(g, ipaBits);
  const startLevel = 4 - levels;
  const ipaLimit = 2 ** ipaBits;
  // ((2^ipa - 1) >> shift(start - 1)) + 1 pages, computed without 32-bit shifts.
  const pgdPages = Math.floor((ipaLimit - 1) / 2 ** levelShift(g, startLevel - 1)) + 1;
  return {
    granule: g,
    ipaBits,
    levels,
    startLevel,
    pgdPages,
    ipaLimit,
    cacheMinPages: levels - 1,
  };
}
