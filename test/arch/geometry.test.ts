import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type CpuFeatures,
  GRANULES,
  type Granule,
  granuleOf,
  KUNPENG_920,
  kvmIpaLimit,
  stage2Geometry,
  vtcrEl2,
  VTCR_HA,
  VTCR_HD,
  VTCR_RES1,
  VTCR_VS,
} from "../../src/arch/index.js";
import { S2simError } from "../../src/common/error.js";

/** [levels, start level, PGD pages], transcribed row by row from the spec section 2.3 table. */
type Row = readonly [levels: number, start: number, pgdPages: number];

const TABLE_4K: Readonly<Record<number, Row>> = {
  32: [2, 2, 4],
  33: [2, 2, 8],
  34: [2, 2, 16],
  35: [3, 1, 1],
  36: [3, 1, 1],
  37: [3, 1, 1],
  38: [3, 1, 1],
  39: [3, 1, 1],
  40: [3, 1, 2],
  41: [3, 1, 4],
  42: [3, 1, 8],
  43: [3, 1, 16],
  44: [4, 0, 1],
  45: [4, 0, 1],
  46: [4, 0, 1],
  47: [4, 0, 1],
  48: [4, 0, 1],
};

const TABLE_16K: Readonly<Record<number, Row>> = {
  32: [2, 2, 1],
  33: [2, 2, 1],
  34: [2, 2, 1],
  35: [2, 2, 1],
  36: [2, 2, 1],
  37: [2, 2, 2],
  38: [2, 2, 4],
  39: [2, 2, 8],
  40: [2, 2, 16],
  41: [3, 1, 1],
  42: [3, 1, 1],
  43: [3, 1, 1],
  44: [3, 1, 1],
  45: [3, 1, 1],
  46: [3, 1, 1],
  47: [3, 1, 1],
  48: [3, 1, 2],
};

const TABLE_64K: Readonly<Record<number, Row>> = {
  32: [2, 2, 1],
  33: [2, 2, 1],
  34: [2, 2, 1],
  35: [2, 2, 1],
  36: [2, 2, 1],
  37: [2, 2, 1],
  38: [2, 2, 1],
  39: [2, 2, 1],
  40: [2, 2, 1],
  41: [2, 2, 1],
  42: [2, 2, 1],
  43: [2, 2, 2],
  44: [2, 2, 4],
  45: [2, 2, 8],
  46: [2, 2, 16],
  47: [3, 1, 1],
  48: [3, 1, 1],
  49: [3, 1, 1],
  50: [3, 1, 1],
  51: [3, 1, 1],
  52: [3, 1, 1],
};

const TABLES: ReadonlyArray<[Granule, Readonly<Record<number, Row>>, number]> = [
  [GRANULES[4096], TABLE_4K, 48],
  [GRANULES[16384], TABLE_16K, 48],
  [GRANULES[65536], TABLE_64K, 52],
];

for (const [g, table, maxIpa] of TABLES) {
  test(`spec 2.3 table, ${g.name}: every IPA size 32..${maxIpa}`, () => {
    const sizes = Object.keys(table).map(Number);
    assert.deepEqual(
      sizes,
      Array.from({ length: maxIpa - 31 }, (_, i) => 32 + i),
    );
    for (const ipa of sizes) {
      const [levels, start, pages] = table[ipa]!;
      const geo = stage2Geometry(g, ipa);
      const got = [geo.levels, geo.startLevel, geo.pgdPages];
      assert.deepEqual(got, [levels, start, pages], `${g.name} IPA ${ipa}`);
      assert.equal(geo.cacheMinPages, levels - 1, `${g.name} IPA ${ipa} memcache min`);
      assert.equal(geo.ipaLimit, 2 ** ipa);
      assert.equal(geo.ipaBits, ipa);
      assert.equal(geo.granule, g);
    }
  });
}

test("the 40-bit default: 4K concatenates two L1 pages, 16K sixteen L2 pages, 64K one L2 page", () => {
  assert.deepEqual(pick(stage2Geometry(GRANULES[4096], 40)), [3, 1, 2]);
  assert.deepEqual(pick(stage2Geometry(GRANULES[16384], 40)), [2, 2, 16]);
  assert.deepEqual(pick(stage2Geometry(GRANULES[65536], 40)), [2, 2, 1]);
});

function pick(g: { levels: number; startLevel: number; pgdPages: number }): number[] {
  return [g.levels, g.startLevel, g.pgdPages];
}

// ---------------------------------------------------------------- VTCR_EL2 (spec 2.1)

const G4 = GRANULES[4096];
const G16 = GRANULES[16384];
const G64 = GRANULES[65536];

test("VTCR_EL2 for Kunpeng 920, 4K, 40-bit IPA", () => {
  const v = vtcrEl2(KUNPENG_920, stage2Geometry(G4, 40));
  assert.equal(v, 0x802d3558);
  assert.equal(v & 0x3f, 24, "T0SZ = 64 - 40");
  assert.equal((v >>> 6) & 3, 1, "SL0 = 2 - start level 1");
  assert.equal((v >>> 8) & 3, 1, "IRGN0 WBWA");
  assert.equal((v >>> 10) & 3, 1, "ORGN0 WBWA");
  assert.equal((v >>> 12) & 3, 3, "SH0 inner shareable");
  assert.equal((v >>> 14) & 3, 0, "TG0 4K");
  assert.equal((v >>> 16) & 7, 5, "PS 48 bits");
  assert.equal((v & VTCR_VS) !== 0, true, "VS: 16-bit VMID");
  assert.equal((v & VTCR_HA) !== 0, true, "HA always set");
  assert.equal((v & VTCR_HD) !== 0, false, "HD never set");
  assert.equal((v & VTCR_RES1) !== 0, true, "RES1 bit 31");
  assert.equal(VTCR_VS, 1 << 19);
  assert.equal(VTCR_HA, 1 << 21);
  assert.equal(VTCR_HD, 1 << 22);
  assert.equal(VTCR_RES1 >>> 0, 0x80000000);
});

test("VTCR_EL2 T0SZ and SL0 follow the IPA size and start level (4K)", () => {
  assert.equal(vtcrEl2(KUNPENG_920, stage2Geometry(G4, 48)), 0x802d3590, "T0SZ 16, SL0 2 (L0)");
  assert.equal(vtcrEl2(KUNPENG_920, stage2Geometry(G4, 32)), 0x802d3520, "T0SZ 32, SL0 0 (L2)");
  assert.equal(vtcrEl2(KUNPENG_920, stage2Geometry(G4, 39)), 0x802d3559, "T0SZ 25, SL0 1 (L1)");
});

test("VTCR_EL2 TG0 and SL0 base for 16K and 64K", () => {
  // 16K, 40-bit: TG0 = 10, start L2 so SL0 = 3 - 2 = 1.
  assert.equal(vtcrEl2(KUNPENG_920, stage2Geometry(G16, 40)), 0x802db558);
  // 16K, 48-bit: start L1 so SL0 = 2, T0SZ 16.
  assert.equal(vtcrEl2(KUNPENG_920, stage2Geometry(G16, 48)), 0x802db590);
  // 64K, 40-bit: TG0 = 01, SL0 = 1.
  assert.equal(vtcrEl2(KUNPENG_920, stage2Geometry(G64, 40)), 0x802d7558);
});

test("VTCR_EL2 PS: host PARange capped to 48 bits, 52 only with 64K pages", () => {
  const pa52: CpuFeatures = { ...KUNPENG_920, paRangeBits: 52 };
  assert.equal(vtcrEl2(pa52, stage2Geometry(G4, 40)), 0x802d3558, "4K: PS stays 48 (5)");
  assert.equal(kvmIpaLimit(pa52, stage2Geometry(G4, 40)), 48);
  // 64K, 52-bit IPA: T0SZ 12, start L1 so SL0 = 2, PS = 6.
  assert.equal(vtcrEl2(pa52, stage2Geometry(G64, 52)), 0x802e758c);
  assert.equal(kvmIpaLimit(pa52, stage2Geometry(G64, 52)), 52);
  const pa44: CpuFeatures = { ...KUNPENG_920, paRangeBits: 44 };
  assert.equal(vtcrEl2(pa44, stage2Geometry(G4, 40)), 0x802c3558, "PS = 4 (44 bits)");
  const pa36: CpuFeatures = { ...KUNPENG_920, paRangeBits: 36 };
  assert.equal(vtcrEl2(pa36, stage2Geometry(G4, 36)), 0x8029355c, "PS = 1, T0SZ 28");
});

test("VTCR_EL2 VS follows 16-bit VMID support; HA is set even without hardware AF", () => {
  const vmid8: CpuFeatures = { ...KUNPENG_920, vmid16: false };
  assert.equal(vtcrEl2(vmid8, stage2Geometry(G4, 40)), 0x80253558);
  const noHaf: CpuFeatures = { ...KUNPENG_920, hwAccessFlag: false };
  assert.equal(vtcrEl2(noHaf, stage2Geometry(G4, 40)), 0x802d3558);
  const fwb: CpuFeatures = { ...KUNPENG_920, fwb: true };
  assert.equal(vtcrEl2(fwb, stage2Geometry(G4, 40)), 0x802d3558, "FWB does not show in VTCR_EL2");
});

// ---------------------------------------------------------------- invalid configurations

function throwsS2sim(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof S2simError, `expected S2simError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, message);
    return true;
  });
}

test("IPA sizes outside 32..48 (52 with 64K) are rejected with a clear message", () => {
  throwsS2sim(() => stage2Geometry(G4, 31), "bad-ipa-size", /IPA size 31 bits .*4K.*32\.\.48/);
  throwsS2sim(() => stage2Geometry(G4, 49), "bad-ipa-size", /IPA size 49 bits .*4K.*32\.\.48/);
  throwsS2sim(() => stage2Geometry(G16, 49), "bad-ipa-size", /16K.*32\.\.48/);
  throwsS2sim(() => stage2Geometry(G64, 53), "bad-ipa-size", /IPA size 53 bits .*64K.*32\.\.52/);
  throwsS2sim(() => stage2Geometry(G64, 31), "bad-ipa-size", /32\.\.52/);
  throwsS2sim(() => stage2Geometry(G4, 40.5), "bad-ipa-size", /40\.5/);
  throwsS2sim(() => stage2Geometry(G4, Number.NaN), "bad-ipa-size", /NaN/);
});

test("an unsupported granule is rejected", () => {
  throwsS2sim(() => granuleOf(8192), "bad-granule", /8192.*4096, 16384 or 65536/);
  throwsS2sim(() => granuleOf(0), "bad-granule", /unsupported granule 0/);
  assert.equal(granuleOf(4096), G4);
  assert.equal(granuleOf(16384), G16);
  assert.equal(granuleOf(65536), G64);
});

test("an IPA size above the host limit is rejected (spec 2.2)", () => {
  throwsS2sim(
    () => vtcrEl2(KUNPENG_920, stage2Geometry(G64, 52)),
    "bad-ipa-size",
    /IPA size 52 bits exceeds this host's limit of 48 bits/,
  );
  const pa44: CpuFeatures = { ...KUNPENG_920, paRangeBits: 44 };
  throwsS2sim(() => vtcrEl2(pa44, stage2Geometry(G4, 45)), "bad-ipa-size", /45 bits .* 44 bits/);
  // The 40-bit default is refused on a host whose limit is below 40.
  const pa36: CpuFeatures = { ...KUNPENG_920, paRangeBits: 36 };
  throwsS2sim(() => vtcrEl2(pa36, stage2Geometry(G4, 40)), "bad-ipa-size", /40 bits .* 36 bits/);
});
