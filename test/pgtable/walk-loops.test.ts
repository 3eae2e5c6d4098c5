/**
 * The walker's copies of its loop (WALK_LOOP_MAP, _ATTR, _UNMAP) against the generic one, and runs
 * of last-level leaves (Visitor.leafRun) against one visit per entry: the same source text, and
 * the same walks: random operation sequences run on two tables, one of them with
 * `genericWalkLoop` and without `leafRuns`, must agree on every return value, event, store
 * observed, work count, descriptor and refcount. A third table, watched by nobody, runs its leaves
 * quietly (Stage2Pgtable.quietRun) and must agree on return values, work counts and tables.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type CpuFeatures,
  GRANULES,
  type GranuleSize,
  KUNPENG_920,
  stage2Geometry,
} from "../../src/arch/index.js";
import { EventBus } from "../../src/common/events.js";
import {
  MemoryCache,
  PhysMem,
  PGTABLE_EVENT_KINDS,
  PROT_DEVICE,
  PROT_R,
  PROT_W,
  PROT_X,
  type PgtableEvent,
  type PgtableKernel,
  Stage2Pgtable,
  V5_12,
  V5_14,
  WALK_LEAF,
  Walker,
} from "../../src/pgtable/index.js";
import { INJECTED_BUGS } from "../../src/pgtable/bugs.js";
import { W } from "../../src/common/work.js";
import { S2simError } from "../../src/common/error.js";

describe("walk loop copies", () => {
  it("are the generic loop's text under another name", () => {
    const proto = Walker.prototype as unknown as Record<string, unknown>;
    const generic = proto["walkTable"];
    assert.equal(typeof generic, "function");
    for (const name of ["walkTableMap", "walkTableAttr", "walkTableUnmap"]) {
      const copy = proto[name];
      assert.equal(typeof copy, "function", name);
      const text = String(copy).split(name).join("walkTable");
      assert.equal(text, String(generic), `${name} differs from walkTable`);
    }
  });
});

/** A seeded xorshift generator: integers in [0, n). */
function rng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

/** An event as a string: its fields' values in order (every event kind has a fixed field order). */
function show(e: PgtableEvent): string {
  return Object.values(e).join(" ");
}

type SideKind = "generic" | "runs" | "quiet";

/** One table and everything it reports. */
class Side {
  readonly mem: PhysMem;
  readonly pgt: Stage2Pgtable;
  readonly mc: MemoryCache;
  /** Events and observed stores, as strings (cheap to compare). */
  readonly log: string[] = [];
  private readonly bus = new EventBus<PgtableEvent>(PGTABLE_EVENT_KINDS);
  private off: (() => void) | null = null;

  /**
   * @param kind "generic": the generic loop, one visit per entry; "runs": the loop copies and leaf
   *   runs; both with a subscriber and a store observer. "quiet": the loop copies and leaf runs with
   *   neither (so Stage2Pgtable.quietRun holds where the kernel, CPU and bug allow it): only its
   *   work counts and tables can be compared.
   */
  constructor(g: GranuleSize, ipaBits: number, kernel: PgtableKernel, cpu: CpuFeatures, kind: SideKind) {
    const granule = GRANULES[g];
    this.mem = new PhysMem(granule);
    const log = this.log;
    const generic = kind === "generic";
    const watched = kind !== "quiet";
    this.pgt = new Stage2Pgtable({
      geometry: stage2Geometry(granule, ipaBits),
      kernel,
      cpu,
      mem: this.mem,
      ...(watched ? { events: this.bus } : {}),
      genericWalkLoop: generic,
      leafRuns: !generic,
      ...(watched
        ? {
            pteObserver: {
              pteWritten(table: number, index: number, oldLo: number, oldHi: number) {
                log.push(`store ${table} ${index} ${oldLo} ${oldHi}`);
              },
            },
          }
        : {}),
    });
    this.mc = new MemoryCache(this.mem, 16);
  }

  /** Subscribes to every event (or stops: the walks then run without a subscriber). */
  listen(on: boolean): void {
    if (on && this.off === null) this.off = this.bus.subscribe((e) => this.log.push(show(e)));
    if (!on && this.off !== null) {
      this.off();
      this.off = null;
    }
  }

  /** What an operation reported: the log so far and the work counts. */
  state(): unknown {
    return { log: this.log.splice(0), count: this.counts() };
  }

  /** The work counts so far. */
  counts(): number[] {
    return Array.from(this.pgt.meter.count);
  }

  /** The tables themselves: every page's words and refcount (compare at once: not copies). */
  tables(): unknown {
    return {
      pages: this.mem.pages,
      refs: this.mem.refcount.subarray(0, this.mem.pages.length),
      allocated: this.mem.allocated,
      installed: this.pgt.tablesInstalled,
    };
  }
}

const KERNELS: readonly PgtableKernel[] = [
  V5_12,
  V5_14,
  ...INJECTED_BUGS.flatMap((b) =>
    b.kernels.map((v) => ({ ...(v === "v5.12" ? V5_12 : V5_14), bug: b.name })),
  ),
];

const CPUS: readonly CpuFeatures[] = [
  KUNPENG_920,
  { ...KUNPENG_920, fwb: true },
  { ...KUNPENG_920, icache: "vipt" },
  { ...KUNPENG_920, icache: "vpipt", vhe: false },
  { ...KUNPENG_920, dic: true },
  // D- and I-cache lines of different sizes: an executable leaf counts lines of both in turn.
  { ...KUNPENG_920, icacheLine: 32 },
];

/** Granule, IPA bits, and whether the injected bugs run there too (not on the slowest). */
const GEOMETRIES: ReadonlyArray<[GranuleSize, number, boolean]> = [
  [4096, 33, true],
  [4096, 40, true],
  [16384, 37, true],
  [65536, 43, true],
  // 52-bit IPAs, and output addresses of 2^48 and above (PA[51:48] in bits 15:12).
  [65536, 52, false],
];

const PROTS = [
  PROT_R,
  PROT_R | PROT_W,
  PROT_R | PROT_W | PROT_X,
  PROT_R | PROT_X,
  PROT_W,
  PROT_X,
  // Device memory: no CMO although the callbacks exist.
  PROT_R | PROT_W | PROT_DEVICE,
];

describe("walk loop copies", () => {
  it("walk as the generic loop does one visit at a time (random operations, all kernels, bugs and granules)", () => {
    let seed = 1;
    for (const [g, ipaBits, bugs] of GEOMETRIES) {
      for (const kernel of bugs ? KERNELS : [V5_12, V5_14]) {
        for (const cpu of CPUS) {
          const r = rng(seed++ * 2654435761);
          const a = new Side(g, ipaBits, kernel, cpu, "runs");
          const b = new Side(g, ipaBits, kernel, cpu, "generic");
          const q = new Side(g, ipaBits, kernel, cpu, "quiet");
          const page = g;
          const block = page * (page / 8);
          // A window of a few blocks somewhere in the IPA space.
          const base = r(Math.floor(2 ** ipaBits / block) - 8) * block;
          for (let step = 0; step < 60; step++) {
            const listen = r(4) !== 0;
            a.listen(listen);
            b.listen(listen);
            const addr = base + r(4) * block + (r(3) === 0 ? 0 : r(page / 8) * page);
            const big = r(5) === 0;
            const size = big ? (1 + r(2)) * block : (1 + r(24)) * page;
            // Past 4K, a block's worth of page leaves is thousands of events: map blocks there.
            const linear = r(2) === 0 || (big && g !== 4096);
            // Sometimes high: runs across 2^32, or (52-bit) at 2^48 and above.
            const high = !big && r(4) === 0 ? (ipaBits === 52 ? 2 ** 48 : 2 ** 32) - r(8) * page : 0;
            const phys = high > 0 ? high : linear ? addr + 2 ** 34 : (r(2 ** 20) + 1) * page;
            const prot = PROTS[r(PROTS.length)]!;
            const op = r(10);
            // Op 9: part of the range mapped first at the same output address, so the run over
            // the whole range meets identical leaves (-EAGAIN) after new ones.
            const skip = (1 + r(8)) * page;
            const min = r(3);
            const noCache = min === 0 && r(2) === 0;
            const run = (s: Side): unknown => {
              const p = s.pgt;
              switch (op) {
                case 0:
                case 1:
                  if (min > 0) s.mc.topup(min);
                  return p.map(addr, size, phys, prot, noCache ? null : s.mc);
                case 2:
                  return p.unmap(addr, size);
                case 3:
                  return p.wrprotect(addr, size);
                case 4:
                  return p.relaxPerms(addr, prot);
                case 5:
                  return p.mkyoung(addr);
                case 6:
                  return p.mkold(addr);
                case 7:
                  return p.isYoung(addr);
                case 9:
                  s.mc.topup(3);
                  return [
                    p.map(addr + skip, size, phys + skip, prot, s.mc),
                    p.map(addr, size, phys, prot, s.mc),
                  ];
                default:
                  return p.flush(addr, size);
              }
            };
            const ret = run(b);
            assert.deepEqual(run(a), ret, `step ${step} op ${op}`);
            assert.deepEqual(run(q), ret, `step ${step} op ${op}: quiet`);
            assert.deepEqual(a.state(), b.state(), `step ${step} op ${op}: state`);
            assert.deepEqual(q.counts(), b.counts(), `step ${step} op ${op}: quiet counts`);
            if (step % 20 === 19) {
              assert.deepEqual(a.tables(), b.tables(), `step ${step}: tables`);
              assert.deepEqual(q.tables(), b.tables(), `step ${step}: quiet tables`);
            }
          }
          for (const s of [a, b, q]) s.pgt.destroy();
          assert.deepEqual(a.state(), b.state(), "destroy");
          assert.deepEqual(q.counts(), b.counts(), "destroy: quiet counts");
          assert.deepEqual(a.tables(), b.tables(), "destroy: tables");
          assert.deepEqual(q.tables(), b.tables(), "destroy: quiet tables");
        }
      }
    }
  });
});

describe("quiet runs", () => {
  const geo = stage2Geometry(GRANULES[4096], 40);
  const table = (opts: Partial<ConstructorParameters<typeof Stage2Pgtable>[0]> = {}): Stage2Pgtable => {
    const mem = new PhysMem(GRANULES[4096]);
    return new Stage2Pgtable({ geometry: geo, kernel: V5_14, cpu: KUNPENG_920, mem, ...opts });
  };

  it("run only when nobody can tell: no observer, subscriber, hardware, own mm_ops, bug or cost", () => {
    assert.equal(table().quietRun(), true);
    assert.equal(table({ pteObserver: { pteWritten() {} } }).quietRun(), false);
    assert.equal(table({ hw: { ...table().hw } }).quietRun(), false);
    assert.equal(table({ kernel: { ...V5_14, bug: "install-no-cmo" } }).quietRun(), false);
    assert.equal(table({ cpu: { ...KUNPENG_920, icache: "vpipt", vhe: false } }).quietRun(), false);
    const bus = new EventBus<PgtableEvent>(PGTABLE_EVENT_KINDS);
    const heard = table({ events: bus });
    assert.equal(heard.quietRun(), true);
    const off = bus.subscribe(() => {});
    assert.equal(heard.quietRun(), false);
    off();
    const priced = table();
    priced.meter.cost[W["dc-civac-line"]] = 1;
    assert.equal(priced.quietRun(), false);
  });

  it("are only handed real output addresses: map refuses any other phys (its D-cache lines would be NaN)", () => {
    for (const phys of [Number.NaN, Infinity, -4096, 2 ** 52, 2 ** 70, 4096.5]) {
      const p = table();
      const mc = new MemoryCache(p.mem, 4);
      mc.topup(4);
      assert.throws(
        () => p.map(0x4000_0000, 0x4000, phys, PROT_R | PROT_W, mc),
        (e: unknown) => e instanceof S2simError && e.code === "bad-phys",
        String(phys),
      );
      assert.equal(p.meter.count[W["pte-write"]], 0, "nothing stored");
    }
    const p = table();
    const mc = new MemoryCache(p.mem, 4);
    mc.topup(4);
    assert.equal(p.map(0x4000_0000, 0x4000, 2 ** 52 - 0x4000, PROT_R | PROT_W, mc), 0);
  });

  // D-cache lines that divide the granule, one that does not (48: no quiet map, unmap per leaf),
  // one larger than it, and FWB (no cleans).
  const cpus: readonly CpuFeatures[] = [
    KUNPENG_920,
    { ...KUNPENG_920, dcacheLine: 16 },
    { ...KUNPENG_920, dcacheLine: 48 },
    { ...KUNPENG_920, dcacheLine: 128 },
    { ...KUNPENG_920, dcacheLine: 8192 },
    { ...KUNPENG_920, fwb: true },
  ];

  it("leave the tables and counts of leaf-by-leaf runs over a whole level-3 table (both kernels)", () => {
    for (const [kernel, cpu] of [V5_12, V5_14].flatMap((k) => cpus.map((c) => [k, c] as const))) {
      const mem = [new PhysMem(GRANULES[4096]), new PhysMem(GRANULES[4096])];
      const [quiet, watched] = mem.map(
        (m, i) =>
          new Stage2Pgtable({
            geometry: geo,
            kernel,
            cpu,
            mem: m,
            ...(i === 1 ? { pteObserver: { pteWritten() {} } } : {}),
          }),
      ) as [Stage2Pgtable, Stage2Pgtable];
      assert.equal(quiet.quietRun(), true);
      const mc = mem.map((m) => new MemoryCache(m, 8));
      for (const [i, p] of [quiet, watched].entries()) {
        mc[i]!.topup(4);
        // 1 GiB + 64 KiB .. 1 GiB + 2 MiB + 64 KiB: two level-3 tables, and a page mapped
        // elsewhere already in the way (a break in the middle of the run).
        assert.equal(p.map(2 ** 30 + 2 ** 20, 4096, 2 ** 34, PROT_R, mc[i]!), 0);
        assert.equal(p.map(2 ** 30 + 65536, 2 ** 21, 2 ** 33 + 65536, PROT_R | PROT_W, mc[i]!), 0);
        // An owner annotation (invalid, non-zero: counted in v5.14 only) in the second table.
        const at = { table: -1, idx: -1 };
        p.walk(2 ** 30 + 2 ** 21 + 100 * 4096, 4096, {
          flags: WALK_LEAF,
          visit(_a, _e, _l, table, idx) {
            at.table = table;
            at.idx = idx;
            return 0;
          },
        });
        p.mem.pages[at.table]![2 * at.idx] = 2 << 2;
        if (kernel === V5_14) p.mem.refcount[at.table]!++;
        assert.equal(p.unmap(2 ** 30 + 4096, 2 ** 21 + 2 ** 20), 0);
      }
      const what = `${kernel.version}, line ${cpu.dcacheLine}, fwb ${cpu.fwb}`;
      assert.deepEqual(Array.from(quiet.meter.count), Array.from(watched.meter.count), what);
      assert.deepEqual(mem[0]!.pages, mem[1]!.pages, what);
      assert.deepEqual(mem[0]!.refcount, mem[1]!.refcount, what);
      assert.equal(quiet.meter.count[W["dc-civac-line"]]! > 0, !cpu.fwb, what);
    }
  });

  it("leave a free that a broken refcount brings mid-run to the leaf path", () => {
    const sides = [0, 1].map((i) => {
      const mem = new PhysMem(GRANULES[4096]);
      const p = new Stage2Pgtable({
        geometry: geo,
        kernel: V5_14,
        cpu: KUNPENG_920,
        mem,
        ...(i === 1 ? { pteObserver: { pteWritten() {} } } : {}),
      });
      const mc = new MemoryCache(mem, 4);
      mc.topup(4);
      assert.equal(p.map(2 ** 30, 16 * 4096, 2 ** 33, PROT_R, mc), 0);
      return { p, mem };
    });
    for (const s of sides) {
      let table = -1;
      s.p.walk(2 ** 30, 4096, {
        flags: WALK_LEAF,
        visit(_a, _e, _l, t) {
          table = t;
          return 0;
        },
      });
      // The level-3 table holds 16 leaves: claim 5 references instead of 17.
      s.mem.refcount[table] = 5;
    }
    assert.equal(sides[0]!.p.quietRun(), true);
    for (const s of sides) s.p.unmap(2 ** 30, 16 * 4096);
    assert.deepEqual(Array.from(sides[0]!.p.meter.count), Array.from(sides[1]!.p.meter.count));
    assert.equal(sides[0]!.p.meter.count[W["table-free"]], 1);
    assert.deepEqual(sides[0]!.mem.pages, sides[1]!.mem.pages);
    assert.deepEqual(sides[0]!.mem.refcount, sides[1]!.mem.refcount);
  });
});
