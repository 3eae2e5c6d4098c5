/** `s2sim geometry`: the stage-2 shape KVM would build. */
import { KUNPENG_920 } from "../arch/cpu.js";
import { MIN_IPA_BITS, maxIpaBits, stage2Geometry } from "../arch/geometry.js";
import { granuleOf, leafLevels, levelSize } from "../arch/granule.js";
import { vtcrEl2 } from "../arch/vtcr.js";
import { S2simError } from "../common/error.js";
import { hex, sizeName } from "../common/format.js";
import { parseCount, parseSize } from "../common/size.js";

/** Renders the geometry for `--granule` and `--ipa`. */
export function geometryCommand(opts: { granule: string; ipa: string; json?: boolean }): string {
  const g = granuleOf(parseSize(opts.granule, "granule"));
  // No range here: stage2Geometry refuses what the granule does not allow, naming the range it does.
  const bits = parseCount(opts.ipa, "IPA size", 0, Number.POSITIVE_INFINITY);
  if (!Number.isSafeInteger(bits)) {
    // Past 2^53 a double no longer holds the digits given: quote them rather than a rounded number.
    throw new S2simError(
      "bad-ipa-size",
      `IPA size ${opts.ipa.trim()} bits is not supported with ${g.name} pages: use ${MIN_IPA_BITS}..${maxIpaBits(g)}`,
    );
  }
  const geo = stage2Geometry(g, bits);
  const cpu = { ...KUNPENG_920, paRangeBits: g.size === 65536 ? (52 as const) : (48 as const) };
  const vtcr = vtcrEl2(cpu, geo);
  // Leaves only at levels the tables have: none above the start level (e.g. no 1G at start level 2).
  const blocks = leafLevels(g)
    .filter((l) => l >= geo.startLevel)
    .map((l) => ({ level: l, size: sizeName(levelSize(g, l)) }));
  if (opts.json) {
    return JSON.stringify({
      granule: g.name,
      ipa_bits: geo.ipaBits,
      levels: geo.levels,
      start_level: geo.startLevel,
      pgd_pages: geo.pgdPages,
      memcache_min_pages: geo.cacheMinPages,
      vtcr_el2: hex(vtcr),
      leaf_levels: blocks,
    });
  }
  return [
    `granule ${g.name}, IPA ${geo.ipaBits} bits`,
    `  levels ${geo.levels}, start level ${geo.startLevel}, ${geo.pgdPages} concatenated start-level page(s)`,
    `  memcache top-up minimum ${geo.cacheMinPages} page(s)`,
    `  leaves: ${blocks.map((b) => `L${b.level} ${b.size}`).join(", ")}`,
    `  VTCR_EL2 ${hex(vtcr)} (host PA ${cpu.paRangeBits} bits, 16-bit VMID, HA set)`,
  ].join("\n");
}
