/**
 * Translation granules. Levels follow the Arm ARM: 0 is the top, 3 holds pages.
 */
import { S2simError } from "../common/error.js";

/** A translation granule (the host PAGE_SIZE, which is also the stage-2 granule). */
export type GranuleSize = 4096 | 16384 | 65536;

/** The last lookup level; it holds pages. */
export const LAST_LEVEL = 3;

/** Static facts of one granule. */
export interface Granule {
  /** Bytes per page: 4 KiB, 16 KiB or 64 KiB. */
  readonly size: GranuleSize;
  /** log2 of {@link size} (PAGE_SHIFT). */
  readonly shift: number;
  /** Descriptors per table page (PTRS_PER_PTE). */
  readonly ptrsPerTable: number;
  /** The granule's short name: `4K`, `16K` or `64K`. */
  readonly name: string;
  /** VTCR_EL2.TG0 encoding. */
  readonly tg0: number;
  /** TGRAN_SL0_BASE: SL0 = base - start level. */
  readonly sl0Base: number;
  /** Mask of the output-address bits [31:PAGE_SHIFT] in a descriptor's low word. */
  readonly addrMaskLo: number;
}

function makeGranule(size: GranuleSize, tg0: number, sl0Base: number, name: string): Granule {
  const shift = Math.log2(size);
  return {
    size,
    shift,
    ptrsPerTable: size / 8,
    name,
    tg0,
    sl0Base,
    addrMaskLo: (0xffffffff << shift) >>> 0,
  };
}

/** The three AArch64 granules. */
export const GRANULES: Readonly<Record<GranuleSize, Granule>> = {
  4096: makeGranule(4096, 0b00, 2, "4K"),
  16384: makeGranule(16384, 0b10, 3, "16K"),
  65536: makeGranule(65536, 0b01, 3, "64K"),
};

/** Looks a granule up by bytes; anything other than 4K/16K/64K is a clear error. */
export function granuleOf(size: number): Granule {
  if (size === 4096 || size === 16384 || size === 65536) return GRANULES[size];
  throw new S2simError(
    "bad-granule",
    `unsupported granule ${size}: use 4K, 16K or 64K (4096, 16384 or 65536)`,
  );
}

/** log2 of the size an entry at `level` spans (ARM64_HW_PGTABLE_LEVEL_SHIFT). May be called with level -1. */
export function levelShift(g: Granule, level: number): number {
  return (g.shift - 3) * (4 - level) + 3;
}

/** Bytes an entry at `level` maps (kvm_granule_size). */
export function levelSize(g: Granule, level: number): number {
  return 2 ** levelShift(g, level);
}

/** Whether `level` may hold a block or page descriptor (kvm_level_supports_block_mapping). */
export function levelSupportsBlock(g: Granule, level: number): boolean {
  if (level <= 0) return false;
  if (level === 1 && g.size !== 4096) return false;
  return level <= LAST_LEVEL;
}

/** Levels at which a leaf can be installed for this granule, largest first. */
export function leafLevels(g: Granule): number[] {
  const out: number[] = [];
  for (let l = 0; l <= LAST_LEVEL; l++) if (levelSupportsBlock(g, l)) out.push(l);
  return out;
}
