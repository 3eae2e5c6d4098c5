import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ATTR_HI_CONTIG,
  ATTR_HI_DBM,
  ATTR_HI_MASK,
  ATTR_HI_SW_MASK,
  ATTR_HI_XN,
  ATTR_LO_AF,
  ATTR_LO_MASK,
  ATTR_LO_MEMATTR_SHIFT,
  ATTR_LO_S2AP_R,
  ATTR_LO_S2AP_W,
  ATTR_LO_SH_SHIFT,
  GRANULES,
  MEMATTR_DEVICE_NGNRE,
  MEMATTR_NORMAL,
  MEMATTR_NORMAL_FWB,
  PTE_TYPE,
  PTE_VALID,
  SH_INNER,
  decodePte,
  differOnlyInPerms,
  leafHi,
  leafLevels,
  leafLo,
  levelSize,
  levelSupportsBlock,
  normalMemAttr,
  oaHi,
  oaLo,
  pteBig,
  pteCacheable,
  pteExecutable,
  pteOa,
  pteTable,
  pteValid,
  pteWords,
  tableLo,
} from "../../src/arch/index.js";

const G4 = GRANULES[4096];
const G16 = GRANULES[16384];
const G64 = GRANULES[65536];

const bit = (n: number): bigint => 1n << BigInt(n);
const has = (v: bigint, n: number): boolean => (v & bit(n)) !== 0n;
const field = (v: bigint, hi: number, lo: number): number =>
  Number((v >> BigInt(lo)) & ((1n << BigInt(hi - lo + 1)) - 1n));

test("common bit positions (spec 1.1-1.3)", () => {
  assert.equal(PTE_VALID, 1 << 0);
  assert.equal(PTE_TYPE, 1 << 1);
  assert.equal(ATTR_LO_S2AP_R, 1 << 6);
  assert.equal(ATTR_LO_S2AP_W, 1 << 7);
  assert.equal(ATTR_LO_SH_SHIFT, 8);
  assert.equal(SH_INNER, 3);
  assert.equal(ATTR_LO_AF, 1 << 10);
  assert.equal(ATTR_LO_MASK, 0xffc, "LO attributes = bits [11:2]");
  // Upper bits live in the high word: bit N is bit N-32 there.
  assert.equal(pteBig(0, ATTR_HI_XN), bit(54));
  assert.equal(pteBig(0, ATTR_HI_CONTIG), bit(52));
  assert.equal(pteBig(0, ATTR_HI_DBM), bit(51));
  assert.equal(pteBig(0, ATTR_HI_SW_MASK), bit(55) | bit(56) | bit(57) | bit(58));
  assert.equal(pteBig(0, ATTR_HI_MASK), ((1n << 13n) - 1n) << 51n, "HI attributes = bits [63:51]");
});

test("MemAttr raw encodings: 0x3C Normal, 0x18 Normal with FWB, 0x04 Device (spec 1.2)", () => {
  assert.equal(MEMATTR_NORMAL << ATTR_LO_MEMATTR_SHIFT, 0x3c);
  assert.equal(MEMATTR_NORMAL_FWB << ATTR_LO_MEMATTR_SHIFT, 0x18);
  assert.equal(MEMATTR_DEVICE_NGNRE << ATTR_LO_MEMATTR_SHIFT, 0x04);
  assert.equal(normalMemAttr(false) << 2, 0x3c);
  assert.equal(normalMemAttr(true) << 2, 0x18);
});

/** Normal RW, inner shareable, AF: the low attributes of a fresh KVM leaf without FWB. */
const ATTR_RW_NORMAL = 0x3c | ATTR_LO_S2AP_R | ATTR_LO_S2AP_W | (3 << 8) | ATTR_LO_AF;

test("a 4K page leaf: every field in place", () => {
  const pa = 0x12_3456_7000;
  const lo = leafLo(G4, pa, ATTR_RW_NORMAL, 3);
  const hi = leafHi(pa, ATTR_HI_XN);
  const v = pteBig(lo, hi);
  assert.equal(v, 0x0040_0012_3456_77ffn);
  assert.equal(has(v, 0), true, "valid");
  assert.equal(has(v, 1), true, "type = page at L3");
  assert.equal(field(v, 5, 2), 0xf, "MemAttr Normal");
  assert.equal(has(v, 6), true, "S2AP R");
  assert.equal(has(v, 7), true, "S2AP W");
  assert.equal(field(v, 9, 8), 3, "SH inner shareable");
  assert.equal(has(v, 10), true, "AF");
  assert.equal(field(v, 47, 12) * 0x1000, pa, "OA bits [47:12]");
  assert.equal(has(v, 54), true, "XN");
  assert.equal(has(v, 52), false, "contiguous never set");
  assert.equal(has(v, 51), false, "DBM never set");
  assert.equal(field(v, 58, 55), 0, "software bits clear");
  assert.equal(pteOa(G4, lo, hi), pa);
  assert.deepEqual(pteWords(v), { lo, hi });
});

test("a 4K block leaf has TYPE clear; a table descriptor is address | 3", () => {
  const pa = 0x20_4000_0000;
  assert.equal(pteBig(leafLo(G4, pa, ATTR_RW_NORMAL, 1), leafHi(pa, 0)), 0x20_4000_07fdn);
  assert.equal(pteBig(leafLo(G4, pa, ATTR_RW_NORMAL, 2), leafHi(pa, 0)), 0x20_4000_07fdn);
  assert.equal(tableLo(G4, 0x4002_9000), 0x4002_9003);
});

test("leaf builders mask what is not theirs", () => {
  // Address bits below PAGE_SHIFT and non-attribute low bits are dropped.
  assert.equal(leafLo(G4, 0x1234, 0xffff_ffff, 3), 0x1fff);
  assert.equal(oaLo(G4, 0x1234), 0x1000);
  // Bits [50:48] of a 4K OA and high attribute bits below 51 are dropped.
  assert.equal(leafHi(0x7_0000_0000_0000, 1 << 10), 0);
  assert.equal(oaHi(0xffff_0000_0000), 0xffff);
});

test("16K OA is bits [47:14]", () => {
  const pa = 0xab_cdef_c000;
  const lo = leafLo(G16, pa, 0, 3);
  assert.equal(lo, 0xcdef_c003);
  assert.equal(pteOa(G16, lo, leafHi(pa, 0)), pa);
  assert.equal(oaLo(G16, 0x7000), 0x4000, "bits below 14 are not address bits");
});

test("64K OA: bits [47:16], and PA[51:48] in descriptor bits [15:12]", () => {
  const pa = 0xa_0012_3456_0000;
  const lo = leafLo(G64, pa, 0, 3);
  const hi = leafHi(pa, 0);
  const v = pteBig(lo, hi);
  assert.equal(field(v, 15, 12), 0xa, "PA[51:48]");
  assert.equal(field(v, 47, 16), 0x0012_3456);
  assert.equal(lo, 0x3456_a003);
  assert.equal(hi, 0x12);
  assert.equal(pteOa(G64, lo, hi), pa);
  // With 4K pages the same bits are part of OA[15:12], not PA[51:48].
  assert.equal(pteOa(G4, 0xa003, 0), 0xa000);
});

test("decodePte names every field", () => {
  const pa = 0x20_0020_0000;
  const lo = leafLo(G4, pa, ATTR_RW_NORMAL & ~ATTR_LO_S2AP_W, 2);
  const hi = leafHi(pa, ATTR_HI_CONTIG | ATTR_HI_DBM | (0x5 << 23));
  assert.deepEqual(decodePte(G4, lo, hi, 2), {
    kind: "block",
    raw: pteBig(lo, hi),
    oa: pa,
    memAttr: 0xf,
    r: true,
    w: false,
    sh: 3,
    af: true,
    xn: false,
    contiguous: true,
    dbm: true,
    sw: 5,
  });
  assert.equal(decodePte(G4, lo, hi, 3).kind, "invalid", "TYPE 0 at L3 is reserved");
  assert.equal(decodePte(G4, lo | PTE_TYPE, hi, 3).kind, "page");
  assert.deepEqual(decodePte(G4, 0x4002_9003, 0, 1), { kind: "table", raw: 0x4002_9003n, next: 0x4002_9000 });
  assert.equal(decodePte(G4, lo & ~PTE_VALID, hi, 2).kind, "invalid");
});

test("predicates: valid, table, cacheable, executable", () => {
  assert.equal(pteValid(1), true);
  assert.equal(pteValid(0x7fe), false);
  assert.equal(pteTable(3, 0), true);
  assert.equal(pteTable(3, 2), true);
  assert.equal(pteTable(3, 3), false, "no table at level 3");
  assert.equal(pteTable(1, 2), false, "block");
  assert.equal(pteTable(2, 2), false, "invalid");
  assert.equal(pteCacheable(0x3c | 1, false), true);
  assert.equal(pteCacheable(0x3c | 1, true), false);
  assert.equal(pteCacheable(0x18 | 1, true), true);
  assert.equal(pteCacheable(0x18 | 1, false), false);
  assert.equal(pteCacheable(0x04 | 1, false), false, "device");
  assert.equal(pteCacheable(0x04 | 1, true), false, "device");
  assert.equal(pteExecutable(0), true);
  assert.equal(pteExecutable(ATTR_HI_XN), false);
  assert.equal(pteExecutable(ATTR_HI_CONTIG), true, "only bit 54 matters");
});

test("differOnlyInPerms: R, W and XN only, in either direction", () => {
  const pa = 0x20_0000_0000;
  const lo = leafLo(G4, pa, ATTR_RW_NORMAL, 3);
  const hi = leafHi(pa, ATTR_HI_XN);
  assert.equal(differOnlyInPerms(lo, hi, lo, hi), true, "identical");
  assert.equal(differOnlyInPerms(lo, hi, lo & ~ATTR_LO_S2AP_W, hi), true, "RO over RW");
  assert.equal(differOnlyInPerms(lo & ~ATTR_LO_S2AP_W, hi, lo, hi), true, "RW over RO");
  assert.equal(differOnlyInPerms(lo, hi, lo & ~ATTR_LO_S2AP_R, hi & ~ATTR_HI_XN), true, "R and XN");
  assert.equal(differOnlyInPerms(lo, hi, lo & ~ATTR_LO_AF, hi), false, "AF");
  assert.equal(differOnlyInPerms(lo, hi, lo + 0x1000, hi), false, "OA");
  assert.equal(differOnlyInPerms(lo, hi, (lo & ~0x3c) | 0x04, hi), false, "MemAttr");
  assert.equal(differOnlyInPerms(lo, hi, lo, hi | ATTR_HI_CONTIG), false, "contiguous");
});

test("block levels and sizes per granule (spec 1.5)", () => {
  const G = 2 ** 30;
  const M = 2 ** 20;
  assert.deepEqual(
    [0, 1, 2, 3].map((l) => levelSupportsBlock(G4, l)),
    [false, true, true, true],
  );
  assert.deepEqual(
    [0, 1, 2, 3].map((l) => levelSupportsBlock(G16, l)),
    [false, false, true, true],
  );
  assert.deepEqual(
    [1, 2, 3].map((l) => levelSupportsBlock(G64, l)),
    [false, true, true],
  );
  assert.deepEqual(leafLevels(G4), [1, 2, 3]);
  assert.deepEqual(leafLevels(G16), [2, 3]);
  assert.deepEqual(leafLevels(G64), [2, 3]);
  // Entry spans: 4K 512G / 1G / 2M / 4K; 16K 128T / 64G / 32M / 16K; 64K 4T / 512M / 64K.
  assert.deepEqual(
    [0, 1, 2, 3].map((l) => levelSize(G4, l)),
    [512 * G, G, 2 * M, 4096],
  );
  assert.deepEqual(
    [0, 1, 2, 3].map((l) => levelSize(G16, l)),
    [2 ** 47, 64 * G, 32 * M, 16384],
  );
  assert.deepEqual(
    [1, 2, 3].map((l) => levelSize(G64, l)),
    [2 ** 42, 512 * M, 65536],
  );
  assert.equal(G4.ptrsPerTable, 512);
  assert.equal(G16.ptrsPerTable, 2048);
  assert.equal(G64.ptrsPerTable, 8192);
});
