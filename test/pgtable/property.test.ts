/**
 * Property-based tests of the stage-2 table model against the independent reference model in
 * reference-model.ts: random op sequences on small IPA spaces, all granules, both kernels.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { GRANULES, type GranuleSize, KUNPENG_920, stage2Geometry } from "../../src/arch/index.js";
import { EAGAIN } from "../../src/common/errno.js";
import { EventBus } from "../../src/common/events.js";
import { W } from "../../src/common/work.js";
import {
  censusTables,
  MemoryCache,
  PhysMem,
  PGTABLE_EVENT_KINDS,
  PROT_R,
  PROT_W,
  PROT_X,
  type PgtableEvent,
  type PgtableKernel,
  Stage2Pgtable,
  V5_12,
  V5_14,
} from "../../src/pgtable/index.js";
import { type RefEvent, type RefPage, RefStage2 } from "./reference-model.js";

// ---------------------------------------------------------------------------- op descriptions

/** An address: anchor + blocks * (smallest block) + pages * page, wrapped into the IPA space. */
interface AddrSpec {
  readonly anchor: number;
  readonly blocks: number;
  readonly pages: number;
}

/** A size: pages, or a block size (0 = smallest, 1 = largest) plus extra pages. */
type SizeSpec =
  | { readonly kind: "pages"; readonly n: number }
  | { readonly kind: "block"; readonly which: number; readonly extra: number };

/** Output address: `linear` = addr + a fixed offset, `aligned` to the largest block, or any page. */
interface PhysSpec {
  readonly mode: "linear" | "aligned" | "random";
  readonly blk: number;
  readonly pages: number;
}

/** Memcache for one map: plenty, a few pages, or none at all. */
type CacheSpec = "plenty" | 0 | 1 | 2 | 3 | "null";

type OpSpec =
  | {
      readonly op: "map";
      readonly at: AddrSpec;
      readonly size: SizeSpec;
      readonly phys: PhysSpec;
      readonly prot: number;
      readonly cache: CacheSpec;
    }
  | { readonly op: "unmap" | "wrprotect"; readonly at: AddrSpec; readonly size: SizeSpec }
  | { readonly op: "relax"; readonly at: AddrSpec; readonly prot: number };

/** One generated run. */
interface Scenario {
  readonly ipaBits: number;
  /** Anchor selectors, resolved per geometry. */
  readonly anchors: readonly number[];
  readonly ops: readonly OpSpec[];
  /** Seed of the page sampler. */
  readonly seed: number;
}

/** IPA sizes per granule: small, with blocks, and some with concatenated start-level pages. */
const IPA_BITS: Readonly<Record<GranuleSize, readonly number[]>> = {
  4096: [32, 33, 34, 35, 36],
  16384: [36, 37, 38],
  65536: [42, 43, 44],
};

const PROTS = [PROT_R, PROT_R | PROT_W, PROT_R | PROT_W | PROT_X, PROT_R | PROT_X];
const RELAX_PROTS = [PROT_R, PROT_W, PROT_R | PROT_W, PROT_X, PROT_R | PROT_W | PROT_X];

const addrArb: fc.Arbitrary<AddrSpec> = fc.record({
  anchor: fc.nat(2),
  blocks: fc.nat(2),
  pages: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, fc.integer({ min: -3, max: 8 }), fc.nat()),
});

const sizeArb: fc.Arbitrary<SizeSpec> = fc.oneof(
  fc.record({
    kind: fc.constant("pages" as const),
    n: fc.oneof(fc.constant(1), fc.integer({ min: 2, max: 8 })),
  }),
  fc.record({
    kind: fc.constant("block" as const),
    which: fc.nat(1),
    extra: fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, fc.integer({ min: 1, max: 8 })),
  }),
);

const physArb: fc.Arbitrary<PhysSpec> = fc.record({
  mode: fc.constantFrom("linear", "linear", "aligned", "random"),
  blk: fc.nat(63),
  pages: fc.nat(),
});

function cacheArb(limited: boolean): fc.Arbitrary<CacheSpec> {
  const few = fc.constantFrom<CacheSpec>(0, 1, 2, 3, "null");
  return limited
    ? few
    : fc.oneof({ weight: 8, arbitrary: fc.constant<CacheSpec>("plenty") }, { weight: 2, arbitrary: few });
}

function opArb(limited: boolean): fc.Arbitrary<OpSpec> {
  return fc.oneof(
    {
      weight: limited ? 8 : 5,
      arbitrary: fc.record({
        op: fc.constant("map" as const),
        at: addrArb,
        size: sizeArb,
        phys: physArb,
        prot: fc.constantFrom(...PROTS),
        cache: cacheArb(limited),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constantFrom("unmap" as const, "wrprotect" as const),
        at: addrArb,
        size: sizeArb,
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant("relax" as const),
        at: addrArb,
        prot: fc.constantFrom(...RELAX_PROTS),
      }),
    },
  );
}

function scenarioArb(g: GranuleSize, limited = false): fc.Arbitrary<Scenario> {
  return fc.record({
    ipaBits: fc.constantFrom(...IPA_BITS[g]),
    anchors: fc.array(fc.nat(), { minLength: 3, maxLength: 3 }),
    ops: fc.array(opArb(limited), { minLength: 1, maxLength: 30 }),
    seed: fc.integer(),
  });
}

// ---------------------------------------------------------------------------- resolving specs

/** Sizes derived from the geometry that the specs refer to. */
interface Shape {
  readonly page: number;
  readonly limit: number;
  /** Block sizes available in this geometry, smallest first. */
  readonly blocks: readonly number[];
  readonly anchors: readonly number[];
}

function shapeOf(ref: RefStage2, anchorSel: readonly number[]): Shape {
  const blocks: number[] = [];
  for (let l = 2; l >= ref.startLevel; l--) if (ref.blockLevel(l)) blocks.push(ref.size(l));
  const big = blocks[blocks.length - 1]!;
  const nBig = ref.ipaLimit / big;
  // Start-level page boundary (concatenated PGD), if there is more than one page.
  const pgdSpan = ref.size(ref.startLevel - 1);
  const anchors = anchorSel.map((n) => {
    switch (n % 4) {
      case 0:
        return 0;
      case 1:
        return (Math.floor(n / 4) % nBig) * big;
      case 2:
        return pgdSpan < ref.ipaLimit ? pgdSpan - big : big;
      default:
        return ref.ipaLimit - big;
    }
  });
  return { page: ref.pageSize, limit: ref.ipaLimit, blocks, anchors };
}

function resolveAddr(s: Shape, a: AddrSpec): number {
  const perBlock = s.blocks[0]! / s.page;
  const pages = a.pages > 8 ? a.pages % perBlock : a.pages;
  const raw = s.anchors[a.anchor % s.anchors.length]! + a.blocks * s.blocks[0]! + pages * s.page;
  return ((raw % s.limit) + s.limit) % s.limit;
}

function resolveSize(s: Shape, z: SizeSpec): number {
  if (z.kind === "pages") return z.n * s.page;
  return s.blocks[Math.min(z.which, s.blocks.length - 1)]! + z.extra * s.page;
}

/** Physical addresses stay far from the table pool and below 2^48. */
const PHYS_LINEAR = 2 ** 45;
const PHYS_OTHER = 2 ** 46;

function resolvePhys(s: Shape, p: PhysSpec, addr: number, size: number): number {
  const small = s.blocks[0]!;
  const big = s.blocks[s.blocks.length - 1]!;
  switch (p.mode) {
    case "linear":
      return PHYS_LINEAR + addr;
    case "aligned":
      return PHYS_OTHER + p.blk * big;
    case "random":
      // Keep maps of a 4K 1G block to at most ~1500 leaves: same offset as addr modulo 2M.
      if (size > small && big > small)
        return PHYS_OTHER + p.blk * big + (addr % small) + (p.pages % (big / small)) * small;
      return PHYS_OTHER + p.blk * big + (p.pages % (big / s.page)) * s.page;
  }
}

// ---------------------------------------------------------------------------- the harness

/**
 * Page view of a descriptor found by the model's lookup, decoded from the spec's bit layout. A
 * valid leaf with attributes KVM never builds for these maps yields a "bad: ..." string.
 */
function modelPage(pgt: Stage2Pgtable, ipa: number): RefPage | string | null {
  const { level, lo, hi } = pgt.lookup(ipa);
  if (level < 0 || (lo & 1) === 0) return null;
  const pageSize = pgt.granule.size;
  const size = 2 ** ((pgt.granule.shift - 3) * (4 - level) + 3);
  // OA bits [47:PAGE_SHIFT]: low word above the page offset, high word bits [15:0].
  const oa = lo - (lo % pageSize) + (hi & 0xffff) * 2 ** 32;
  // Level 3 must be a page (TYPE = 1), a block below it has TYPE = 0; Normal (no FWB), SH = IS,
  // AF set, no upper attribute but XN.
  const ok =
    ((lo >>> 1) & 1) === (level === 3 ? 1 : 0) &&
    ((lo >>> 2) & 0xf) === 0xf &&
    ((lo >>> 8) & 3) === 3 &&
    ((lo >>> 10) & 1) === 1 &&
    (hi & ~((1 << 22) | 0xffff)) === 0 &&
    oa % size === 0;
  if (!ok) return `bad: L${level} descriptor ${hex(hi)}:${hex(lo)}`;
  const base = Math.floor(ipa / size) * size;
  const page = Math.floor(ipa / pageSize) * pageSize;
  return {
    level,
    oa: oa + (page - base),
    r: ((lo >>> 6) & 1) === 1,
    w: ((lo >>> 7) & 1) === 1,
    x: ((hi >>> 22) & 1) === 0,
  };
}

function samePage(a: RefPage | string | null, b: RefPage | null): boolean {
  if (a === null || b === null || typeof a === "string") return a === b;
  return a.level === b.level && a.oa === b.oa && a.r === b.r && a.w === b.w && a.x === b.x;
}

function hex(n: number): string {
  return "0x" + n.toString(16);
}

/** mulberry32: a tiny deterministic PRNG for page sampling. */
function sampler(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One model table paired with its reference, plus the memory bookkeeping. */
class Harness {
  readonly mem: PhysMem;
  readonly bus = new EventBus<PgtableEvent>(PGTABLE_EVENT_KINDS);
  readonly pgt: Stage2Pgtable;
  readonly ref: RefStage2;
  readonly shape: Shape;
  readonly mc: MemoryCache;
  private readonly rand: () => number;
  /** Maps mapChangesNothing said would change nothing (and which did not). */
  quietMaps = 0;

  /**
   * With `record`, the model's TLBI/CMO events of each op are collected (the bus stays silent
   * otherwise, which keeps the model fast).
   */
  constructor(
    g: GranuleSize,
    kernel: PgtableKernel,
    scn: Scenario,
    private readonly record = false,
  ) {
    const granule = GRANULES[g];
    this.mem = new PhysMem(granule);
    this.pgt = new Stage2Pgtable({
      geometry: stage2Geometry(granule, scn.ipaBits),
      kernel,
      cpu: KUNPENG_920,
      mem: this.mem,
      events: this.bus,
    });
    this.ref = new RefStage2({
      pageShift: granule.shift,
      ipaBits: scn.ipaBits,
      kernel: kernel.version,
      fwb: KUNPENG_920.fwb,
      icacheByLine: KUNPENG_920.icache === "pipt" && !KUNPENG_920.dic,
    });
    this.shape = shapeOf(this.ref, scn.anchors);
    this.mc = new MemoryCache(this.mem, 64);
    this.rand = sampler(scn.seed);
  }

  /** Runs `body`, collecting the model's TLBI and CMO events if asked to. */
  private run(body: () => number): { result: number; events: PgtableEvent[] } {
    if (!this.record) return { result: body(), events: [] };
    const events: PgtableEvent[] = [];
    const off = this.bus.subscribe((e) => {
      if (e.kind === "tlbi" || e.kind === "cmo") events.push(e);
    });
    try {
      return { result: body(), events };
    } finally {
      off();
    }
  }

  /** Runs one op on both sides; returns the context string, model events and both return codes. */
  step(spec: OpSpec): {
    ctx: string;
    events: PgtableEvent[];
    ret: number;
    refRet: number;
    lo: number;
    hi: number;
  } {
    const s = this.shape;
    const addr = resolveAddr(s, spec.at);
    switch (spec.op) {
      case "map": {
        const size = resolveSize(s, spec.size);
        const phys = resolvePhys(s, spec.phys, addr, size);
        let mc: MemoryCache | null = this.mc;
        let extra: MemoryCache | null = null;
        if (spec.cache === "plenty") this.mc.topup(this.mc.capacity);
        else if (spec.cache === "null") mc = null;
        else {
          extra = new MemoryCache(this.mem, spec.cache);
          extra.topup(spec.cache);
          mc = extra;
        }
        const refRet = this.ref.map(addr, size, phys, spec.prot, mc === null ? null : mc.count);
        // The simulator's lookahead relies on this answer: when it says the map changes nothing,
        // the map must store no descriptor and issue no TLBI.
        const quiet = this.pgt.mapChangesNothing(addr, size, phys, spec.prot);
        const changes = (): number[] =>
          [W["pte-write"], W["tlbi-ipa"], W["tlbi-vmid"]].map((w) => this.pgt.meter.count[w]!);
        const before = changes();
        const { result, events } = this.run(() => this.pgt.map(addr, size, phys, spec.prot, mc));
        const ctx = `map(${hex(addr)}, ${hex(size)}, ${hex(phys)}, prot ${spec.prot}, cache ${String(spec.cache)})`;
        if (quiet) {
          this.quietMaps++;
          assert.deepEqual([result, ...changes()], [EAGAIN, ...before], `${ctx}: said to change nothing`);
        }
        this.checkAllocated(ctx, extra === null ? 0 : extra.count);
        extra?.free();
        return { ctx, events, ret: result, refRet, lo: addr, hi: addr + size };
      }
      case "unmap":
      case "wrprotect": {
        const size = resolveSize(s, spec.size);
        const refRet = spec.op === "unmap" ? this.ref.unmap(addr, size) : this.ref.wrprotect(addr, size);
        const { result, events } = this.run(() =>
          spec.op === "unmap" ? this.pgt.unmap(addr, size) : this.pgt.wrprotect(addr, size),
        );
        const ctx = `${spec.op}(${hex(addr)}, ${hex(size)})`;
        this.checkAllocated(ctx, 0);
        return { ctx, events, ret: result, refRet, lo: addr, hi: addr + size };
      }
      case "relax": {
        const refRet = this.ref.relaxPerms(addr, spec.prot);
        const { result, events } = this.run(() => this.pgt.relaxPerms(addr, spec.prot));
        const ctx = `relax_perms(${hex(addr)}, prot ${spec.prot})`;
        this.checkAllocated(ctx, 0);
        return { ctx, events, ret: result, refRet, lo: addr, hi: addr + s.page };
      }
    }
  }

  /** Table memory = start-level pages + reference tables + pages still held by memcaches. */
  private checkAllocated(ctx: string, extraCached: number): void {
    const expect = this.pgt.geo.pgdPages + this.ref.tablePages + this.mc.count + extraCached;
    assert.equal(this.mem.allocated, expect, `${ctx}: allocated table pages`);
  }

  /** Compares one page of the model with the reference. */
  comparePage(ctx: string, ipa: number): void {
    if (ipa < 0 || ipa >= this.shape.limit) return;
    const got = modelPage(this.pgt, ipa);
    const want = this.ref.pageAt(ipa);
    if (!samePage(got, want)) assert.deepEqual(got, want, `${ctx}: page ${hex(ipa)}`);
  }

  /** Structure, refcounts and a (sampled or full) page comparison after one op. */
  checkState(ctx: string, lo: number, hi: number, full: boolean): void {
    const census = censusTables(this.pgt);
    assert.deepEqual(census.violations, [], `${ctx}: refcount census`);
    const ref = this.ref;
    for (let l = ref.startLevel; l <= 3; l++) {
      assert.equal(census.leavesPerLevel[l], ref.leafCount(l), `${ctx}: L${l} leaves`);
      const tables = l === ref.startLevel ? this.pgt.geo.pgdPages : ref.tableCount(l - 1);
      assert.equal(census.tablesPerLevel[l], tables, `${ctx}: L${l} table pages`);
    }
    const page = this.shape.page;
    // Leaves this op touched, and all or a sample of the others: first and last page of each.
    const leaves = ref.allLeaves();
    const probe = [...ref.changed];
    if (full || leaves.length <= 128) probe.push(...leaves);
    else for (let i = 0; i < 16; i++) probe.push(leaves[Math.floor(this.rand() * leaves.length)]!);
    for (const { level, base } of probe) {
      this.comparePage(ctx, base);
      this.comparePage(ctx, base + ref.size(level) - page);
    }
    // Op boundaries and random pages inside the op range and anywhere.
    for (const ipa of [lo - page, lo, hi - page, hi]) this.comparePage(ctx, ipa);
    for (let i = 0; i < 8; i++) {
      this.comparePage(ctx, lo + Math.floor(this.rand() * Math.max(1, (hi - lo) / page)) * page);
      this.comparePage(ctx, Math.floor(this.rand() * (this.shape.limit / page)) * page);
    }
  }

  /** destroy + free the memcache: nothing may stay allocated. */
  finish(): void {
    this.pgt.destroy();
    this.mc.free();
    assert.equal(this.mem.allocated, 0, "table pages left after destroy");
  }
}

/** Whether a model TLBI/CMO event is the one the reference expects (a TLBI IPA anywhere in range). */
function sameEvent(e: PgtableEvent, want: RefEvent | undefined): boolean {
  if (want === undefined) return false;
  if (e.kind === "tlbi" && e.scope === "vmid") return want.kind === "tlbi-vmid";
  if (e.kind === "tlbi") {
    return want.kind === "tlbi-ipa" && e.level === want.level && e.ipa >= want.ipaLo && e.ipa < want.ipaHi;
  }
  if (e.kind === "cmo") return want.kind === e.op && e.pa === want.pa && e.size === want.size;
  return false;
}

/** A model TLBI/CMO event, written like {@link refEventName} writes the reference's. */
function modelEventName(e: PgtableEvent): string {
  if (e.kind === "tlbi" && e.scope === "vmid") return "tlbi-vmid";
  if (e.kind === "tlbi") return `tlbi-ipa L${e.level} @${hex(e.ipa)}`;
  if (e.kind === "cmo") return `${e.op} ${hex(e.pa)}+${hex(e.size)}`;
  return e.kind;
}

/** Asserts the model's TLBI/CMO events match the reference's, in order. */
function assertMaintenance(ctx: string, events: PgtableEvent[], expected: RefEvent[]): void {
  if (events.length === expected.length && events.every((e, i) => sameEvent(e, expected[i]))) return;
  assert.deepEqual(
    events.map((e, i) => (sameEvent(e, expected[i]) ? refEventName(expected[i]!) : modelEventName(e))),
    expected.map(refEventName),
    `${ctx}: TLBI/CMO events`,
  );
}

function refEventName(e: RefEvent): string {
  switch (e.kind) {
    case "tlbi-vmid":
      return "tlbi-vmid";
    case "tlbi-ipa":
      return `tlbi-ipa L${e.level} [${hex(e.ipaLo)}, ${hex(e.ipaHi)})`;
    default:
      return `${e.kind} ${hex(e.pa)}+${hex(e.size)}`;
  }
}

/** Maps found to change nothing, over every scenario run so far (a test that can fail needs some). */
let quietMaps = 0;

/** Runs a scenario against the reference; optionally checks TLBI/CMO sequences too. */
function runAgainstReference(
  g: GranuleSize,
  kernel: PgtableKernel,
  scn: Scenario,
  checkEvents: boolean,
): void {
  const h = new Harness(g, kernel, scn, checkEvents);
  scn.ops.forEach((spec, i) => {
    const { ctx: opCtx, events, ret, refRet, lo, hi } = h.step(spec);
    const ctx = `op ${i} ${opCtx}`;
    assert.equal(ret, refRet, `${ctx}: return code`);
    h.checkState(ctx, lo, hi, i === scn.ops.length - 1);
    if (checkEvents) assertMaintenance(ctx, events, h.ref.events);
  });
  quietMaps += h.quietMaps;
  const { events } = h.bus.record(() => h.finish());
  assertMaintenance(
    "destroy",
    events.filter((e) => e.kind === "tlbi" || e.kind === "cmo"),
    [],
  );
}

/** Valid leaves of a model table as "level ipa lo hi" strings, read straight from table memory. */
function modelLeaves(pgt: Stage2Pgtable): string[] {
  const out: string[] = [];
  const g = pgt.granule;
  const walk = (page: number, level: number, base: number): void => {
    const words = pgt.mem.pages[page]!;
    const span = 2 ** ((g.shift - 3) * (4 - level) + 3);
    for (let i = 0; i < g.ptrsPerTable; i++) {
      const lo = words[2 * i]!;
      const hi = words[2 * i + 1]!;
      if ((lo & 1) === 0) continue;
      const ipa = base + i * span;
      if (level < 3 && (lo & 2) !== 0)
        walk(pgt.mem.pageOf(lo - (lo % g.size) + (hi & 0xffff) * 2 ** 32), level + 1, ipa);
      else out.push(`L${level} ${hex(ipa)} ${hex(hi)}:${hex(lo)}`);
    }
  };
  const pgdSpan = 2 ** ((g.shift - 3) * (4 - pgt.geo.startLevel + 1) + 3);
  for (let i = 0; i < pgt.geo.pgdPages; i++) walk(pgt.pgd + i, pgt.geo.startLevel, i * pgdSpan);
  return out;
}

// ---------------------------------------------------------------------------- properties

const GRANULE_SIZES: readonly GranuleSize[] = [4096, 16384, 65536];

/** Runs per property and granule: 64K tables are 8192 entries, so they get fewer. */
const RUNS: Readonly<Record<GranuleSize, { main: number; enomem: number; events: number; agree: number }>> = {
  4096: { main: 200, enomem: 100, events: 100, agree: 150 },
  16384: { main: 150, enomem: 80, events: 80, agree: 100 },
  65536: { main: 80, enomem: 40, events: 40, agree: 40 },
};
const KERNELS: readonly PgtableKernel[] = [V5_12, V5_14];

describe("stage-2 model vs reference (property)", () => {
  for (const g of GRANULE_SIZES) {
    for (const kernel of KERNELS) {
      it(`${GRANULES[g].name} ${kernel.version}: pages, return codes, refcounts, no leak`, () => {
        const quiet = quietMaps;
        fc.assert(
          fc.property(scenarioArb(g), (scn) => runAgainstReference(g, kernel, scn, false)),
          { seed: 0x5e2 + g, numRuns: RUNS[g].main },
        );
        // Each map said to change nothing was checked to; some must have been.
        assert.ok(quietMaps > quiet, "no map was found to change nothing");
      });

      it(`${GRANULES[g].name} ${kernel.version}: small memcaches (-ENOMEM paths)`, () => {
        fc.assert(
          fc.property(scenarioArb(g, true), (scn) => runAgainstReference(g, kernel, scn, false)),
          { seed: 0xe0e + g, numRuns: RUNS[g].enomem },
        );
      });

      it(`${GRANULES[g].name} ${kernel.version}: TLBI and CMO events are the ones the spec allows`, () => {
        fc.assert(
          fc.property(scenarioArb(g), (scn) => runAgainstReference(g, kernel, scn, true)),
          { seed: 0xeb + g, numRuns: RUNS[g].events },
        );
      });
    }

    it(`${GRANULES[g].name}: v5.12 and v5.14 build the same leaves`, () => {
      fc.assert(
        fc.property(scenarioArb(g), (scn) => {
          const a = new Harness(g, V5_12, scn);
          const b = new Harness(g, V5_14, scn);
          scn.ops.forEach((spec, i) => {
            const ra = a.step(spec);
            const rb = b.step(spec);
            assert.equal(ra.ret, rb.ret, `op ${i} ${ra.ctx}: return codes`);
            assert.deepEqual(modelLeaves(a.pgt), modelLeaves(b.pgt), `op ${i} ${ra.ctx}: leaves`);
            assert.deepEqual(
              censusTables(a.pgt).tablesPerLevel,
              censusTables(b.pgt).tablesPerLevel,
              `op ${i}: tables`,
            );
          });
          a.finish();
          b.finish();
        }),
        { seed: 0xc0 + g, numRuns: RUNS[g].agree },
      );
    });
  }
});
