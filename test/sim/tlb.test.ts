import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { stage2Geometry } from "../../src/arch/geometry.js";
import { Digest } from "../../src/common/digest.js";
import { NumberList } from "../../src/common/number-list.js";
import { granuleOf, leafLevels } from "../../src/arch/granule.js";
import { LevelSizes } from "../../src/pgtable/walker.js";
import { LEAF_R as TLB_R, LEAF_W as TLB_W } from "../../src/pgtable/hw-walk.js";
import { Stage2Tlb } from "../../src/sim/tlb.js";
import { TlbiLog } from "../../src/sim/tlbi-log.js";
import { PteVisibility } from "../../src/sim/visibility.js";

const g = granuleOf(4096);
const sizes = new LevelSizes(stage2Geometry(g, 40));
const levels = leafLevels(g);
const BASE = 2 ** 39;

function setup(ways = 4): { log: TlbiLog; tlb: Stage2Tlb } {
  const log = new TlbiLog(sizes, levels);
  log.track(BASE, 2 ** 31);
  return { log, tlb: new Stage2Tlb(64, ways, sizes, levels, log) };
}

describe("stage-2 TLB", () => {
  it("with FEAT_TTL a TLBI by IPA with a level hint removes only entries of that level", () => {
    const log = new TlbiLog(sizes, levels, true);
    log.track(BASE, 2 ** 31);
    const tlb = new Stage2Tlb(64, 4, sizes, levels, log);
    tlb.fill(BASE, 2, 0x1000_0000, TLB_R, Infinity);
    tlb.fill(BASE + 2 ** 21, 3, 0x2000_0000, TLB_R, Infinity);
    log.invalidateIpa(BASE + 2 ** 21, 2);
    assert.ok(tlb.lookup(BASE + 2 ** 21, 0), "the L3 entry survives an L2-hinted TLBI");
    log.invalidateIpa(BASE + 5 * 4096, 2);
    assert.ok(!tlb.lookup(BASE + 4096, 0), "the L2 block is gone");
    log.invalidateIpa(BASE + 2 ** 21, 0);
    assert.ok(!tlb.lookup(BASE + 2 ** 21, 0), "no hint: every level");
  });

  it("finds conflicting entries: overlapping sizes, or the same block elsewhere", () => {
    const { log, tlb } = setup();
    tlb.fill(BASE + 4096, 3, 0x3000_1000, TLB_R, Infinity);
    assert.ok(tlb.findConflict(BASE, 2, 0x3000_0000, 0) >= 0, "a 2M fill over a live 4K entry");
    assert.equal(tlb.findConflict(BASE + 4096, 3, 0x3000_1000, 0), -1, "the same entry again");
    assert.ok(tlb.findConflict(BASE + 4096, 3, 0x4000_1000, 0) >= 0, "same block, another PA");
    tlb.fill(BASE + 2 ** 30, 1, 0x4000_0000, TLB_R, Infinity);
    assert.ok(tlb.findConflict(BASE + 2 ** 30 + 8192, 3, 0x4000_2000, 0) >= 0, "a 4K fill under a live 1G");
    assert.equal(
      tlb.findConflict(BASE + 2 ** 30 + 8192, 3, 0x4000_2000, 0, false),
      -1,
      "larger not looked for",
    );
    log.flushVmid();
    assert.equal(tlb.findConflict(BASE, 2, 0x3000_0000, 0), -1, "dead entries do not conflict");
  });

  it("holds entries of their real size", () => {
    const { tlb } = setup();
    tlb.fill(BASE, 1, 0x80000000, TLB_R | TLB_W, Infinity);
    assert.ok(tlb.lookup(BASE + 12345 * 4096, 0));
    assert.equal(tlb.hitLevel, 1);
    assert.equal(tlb.hitPa, 0x80000000 + 12345 * 4096);
    assert.ok(!tlb.lookup(BASE + 2 ** 30, 0));
  });

  it("a TLBI by IPA anywhere inside a block removes the block, others stay", () => {
    const { log, tlb } = setup();
    tlb.fill(BASE, 2, 0x1000_0000, TLB_R, Infinity);
    tlb.fill(BASE + 2 ** 21, 2, 0x2000_0000, TLB_R, Infinity);
    log.invalidateIpa(BASE + 5 * 4096);
    assert.ok(!tlb.lookup(BASE, 0));
    assert.ok(tlb.lookup(BASE + 2 ** 21, 0));
    log.flushVmid();
    assert.ok(!tlb.lookup(BASE + 2 ** 21, 0));
  });

  it("an entry filled after a TLBI survives it; an entry read from an in-flight value expires", () => {
    const { log, tlb } = setup();
    log.invalidateIpa(BASE);
    tlb.fill(BASE, 3, 0x5000, TLB_R, 1000);
    assert.ok(tlb.lookup(BASE, 999));
    assert.ok(!tlb.lookup(BASE, 1000));
  });
});

/** Every slot's entry (IPAs and output address as they are). */
function slots(tlb: Stage2Tlb): number[] {
  const out = new NumberList();
  for (let i = 0; i < tlb.capacity; i++) tlb.slotState(out, i, 0, { ipa: (x) => x, pa: (_b, pa) => pa });
  return out.toArray();
}

describe("the fast-forward's fill runs", () => {
  const P = 4096;
  // A 64-entry TLB has 16 sets: runs of up to 80 fills go round every set up to five times.
  const run = fc.record({
    before: fc.array(fc.integer({ min: 0, max: 200 }), { maxLength: 60 }),
    start: fc.integer({ min: 0, max: 200 }),
    n: fc.integer({ min: 1, max: 80 }),
    after: fc.array(fc.integer({ min: 0, max: 600 }), { maxLength: 20 }),
    tlbis: fc.array(fc.integer({ min: 0, max: 80 }), { maxLength: 5 }),
  });

  it("fillRun leaves the entries and victims that the fills one by one would", () => {
    fc.assert(
      fc.property(run, ({ before, start, n, after, tlbis }) => {
        const a = setup();
        const b = setup();
        const one = a.tlb;
        const all = b.tlb;
        for (const p of before) {
          one.fill(BASE + p * P, 3, 0x4000_0000 + p * P, TLB_R, Infinity);
          all.fill(BASE + p * P, 3, 0x4000_0000 + p * P, TLB_R, Infinity);
        }
        const first = BASE + (300 + start) * P;
        for (let j = 0; j < n; j++) one.fill(first + j * P, 3, 0x8000_0000 + j * 2 * P, TLB_W, 99);
        const pas = Float64Array.from({ length: n }, (_, j) => 0x8000_0000 + j * 2 * P);
        all.fillRun(first, 3, pas, TLB_W, 99, b.log.seq, 0, n);
        assert.deepEqual(slots(all), slots(one));
        assert.equal(all.fills, one.fills);
        assert.equal(all.lastFillBase, one.lastFillBase);
        // Each entry is removed by the TLBIs of its own block (slotState says whether it is live).
        for (const j of tlbis) {
          a.log.invalidateIpa(first + j * P, 3);
          b.log.invalidateIpa(first + j * P, 3);
        }
        assert.deepEqual(slots(all), slots(one));
        // The sets' victims: later fills take the same slots.
        for (const p of after) {
          one.fill(BASE + p * P, 3, p * P, TLB_R, Infinity);
          all.fill(BASE + p * P, 3, p * P, TLB_R, Infinity);
        }
        assert.deepEqual(slots(all), slots(one));
      }),
    );
  });

  it("onlyLiveLeaf and liveAbove: a lookup there can only find that leaf, or a larger one is live", () => {
    const { log, tlb } = setup();
    const page = BASE + 5 * P;
    tlb.fill(page, 3, 0x1000_0000, TLB_R, Infinity);
    const slot = tlb.onlyLiveLeaf(page, 3, 0);
    assert.ok(slot >= 0);
    assert.ok(!tlb.liveAbove(BASE, BASE + 100 * P, 3, 0));
    // A live 2 MiB block over it: a lookup might find either.
    tlb.fill(BASE, 2, 0x2000_0000, TLB_R, Infinity);
    assert.equal(tlb.onlyLiveLeaf(page, 3, 0), -1);
    assert.ok(tlb.liveAbove(BASE + 100 * P, BASE + 200 * P, 3, 0));
    assert.ok(!tlb.liveAbove(BASE + 2 ** 21, BASE + 2 ** 21 + P, 3, 0));
    // A TLBI by IPA elsewhere in the block removes the block (which contains it), not the page.
    log.invalidateIpa(BASE + 7 * P, 3);
    assert.ok(!tlb.liveAbove(BASE, BASE + 100 * P, 3, 0));
    assert.equal(tlb.onlyLiveLeaf(page, 3, 0), slot);
    // One at the page removes it too; filled again, it is the only one.
    log.invalidateIpa(page, 3);
    assert.equal(tlb.onlyLiveLeaf(page, 3, 0), -1);
    tlb.fill(page, 3, 0x1000_0000, TLB_R, Infinity);
    assert.equal(tlb.onlyLiveLeaf(page, 3, 0), slot);
    // An entry that expires is not live after.
    tlb.fill(BASE + 2 ** 21, 2, 0x2000_0000, TLB_R, 50);
    assert.ok(tlb.liveAbove(BASE + 2 ** 21, BASE + 2 ** 21, 3, 49));
    assert.ok(!tlb.liveAbove(BASE + 2 ** 21, BASE + 2 ** 21, 3, 50));
  });

  it("flowFills leaves the TLB as a flowing run's lookups and fills one by one would", () => {
    const tables = fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 3 });
    const looks = fc.array(fc.integer({ min: 0, max: 200 }), { maxLength: 8 });
    fc.assert(
      fc.property(run, tables, looks, ({ before, start, n }, tbl, look) => {
        const a = setup();
        const b = setup();
        const one = a.tlb;
        const all = b.tlb;
        // The stage-1 table pages, far from the data, filled among the other entries; some
        // lookups turn the recent slots.
        const T = [...new Set(tbl)].map((t) => BASE + 2 ** 30 + t * P);
        const prior = [...before.map((p) => BASE + p * P), ...T];
        for (const tlb of [one, all]) {
          prior.forEach((ipa, i) => tlb.fill(ipa, 3, 0x4000_0000 + i * P, TLB_R | TLB_W, Infinity));
          for (const p of look) tlb.lookup(BASE + p * P, 0);
        }
        const hits = Int32Array.from(T, (t) => all.onlyLiveLeaf(t, 3, 0));
        const first = BASE + (300 + start) * P;
        const m = all.fillRunLimit(first, 3, n, [...hits]);
        const pas = Float64Array.from({ length: m }, (_, j) => 0x8000_0000 + j * 2 * P);
        for (let j = 0; j < m; j++) {
          for (const t of T) assert.ok(one.lookup(t, 0), "a table page's entry hits");
          assert.ok(!one.lookup(first + j * P, 0), "the data page misses");
          one.fill(first + j * P, 3, pas[j]!, TLB_W, Infinity);
        }
        all.flowFills(first, 3, pas, TLB_W, b.log.seq, m, hits, hits.length);
        const digest = (tlb: Stage2Tlb): string => {
          const d = new Digest();
          tlb.digest(d, 0);
          return d.toString();
        };
        assert.deepEqual(slots(all), slots(one));
        assert.equal(digest(all), digest(one));
        assert.equal(all.lastSlot, m > 0 ? one.lastSlot : all.lastSlot);
        // Later lookups find the same entries first.
        for (const p of look) assert.equal(all.lookup(BASE + p * P, 0), one.lookup(BASE + p * P, 0));
        assert.equal(digest(all), digest(one));
      }),
    );
  });

  it("fillRunLimit stops at the first fill that takes a kept slot or meets its own block (2, 4 and 8 ways)", () => {
    fc.assert(
      fc.property(
        // Pages filled before, relative to the run's first: most of them inside it, in a few sets
        // (16 pages apart), so that every way of those sets holds some.
        fc.array(
          fc
            .tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: -1, max: 4 }))
            .map(([s, m]) => s + 16 * m),
          { minLength: 12, maxLength: 40 },
        ),
        fc.integer({ min: 1, max: 80 }),
        // Often nothing kept, so that runs also stop at a tagged block in any way of a set.
        fc.oneof(fc.constant([]), fc.array(fc.integer({ min: 0, max: 63 }), { maxLength: 6 })),
        fc.constantFrom(2, 4, 8),
        (before, n, keep, ways) => {
          const { tlb } = setup(ways);
          const first = BASE + 100 * P;
          for (const d of before) tlb.fill(first + d * P, 3, (100 + d) * P, TLB_R, Infinity);
          const limit = tlb.fillRunLimit(first, 3, n, keep);
          // The fills one by one: the first whose block was tagged before the run, or that takes a
          // kept slot.
          const tagged = Array.from({ length: n }, (_, j) => tlb.slotOf(first + j * P, 3) >= 0);
          let expect = n;
          for (let j = 0; j < n; j++) {
            if (tagged[j]) {
              expect = j;
              break;
            }
            const was = keep.map((i) => entryAt(tlb, i));
            tlb.fill(first + j * P, 3, first + j * P, TLB_R, Infinity);
            if (keep.some((i, m) => entryAt(tlb, i) !== was[m])) {
              expect = j;
              break;
            }
          }
          assert.equal(limit, expect);
        },
      ),
      { numRuns: 400 },
    );
  });
});

/** Slot `i`'s entry as a string (to see whether a fill replaced it). */
function entryAt(tlb: Stage2Tlb, i: number): string {
  const out = new NumberList();
  tlb.slotState(out, i, 0, { ipa: (x) => x, pa: (_b, pa) => pa });
  return out.toArray().join(",");
}

describe("store visibility", () => {
  it("a walk before a store lands sees the old value, after it the new", () => {
    let now = 100;
    const vis = new PteVisibility(512, () => now);
    vis.pteWritten(7, 3, 0x11, 0x22); // lands at 100
    now = 150;
    vis.pteWritten(7, 3, 0x33, 0x44); // lands at 150
    vis.settle(50);
    vis.read(7, 3, 0x55, 0x66);
    assert.deepEqual([vis.lo, vis.hi, vis.until], [0x11, 0x22, 100]);
    vis.settle(120);
    vis.read(7, 3, 0x55, 0x66);
    assert.deepEqual([vis.lo, vis.hi, vis.until], [0x33, 0x44, 150]);
    vis.settle(150);
    vis.read(7, 3, 0x55, 0x66);
    assert.deepEqual([vis.lo, vis.hi, vis.until], [0x55, 0x66, Infinity]);
    assert.equal(vis.pending, false);
  });

  it("a walk run ahead reads in-flight stores as of its own time, without settling (readAt)", () => {
    let now = 100;
    const vis = new PteVisibility(512, () => now);
    vis.pteWritten(7, 3, 0x11, 0x22); // lands at 100
    now = 150;
    vis.pteWritten(7, 3, 0x33, 0x44); // lands at 150
    vis.pteWritten(7, 4, 0x77, 0x88); // another entry, lands at 150
    const at = (t: number): number[] => {
      vis.readAt(7, 3, 0x55, 0x66, t);
      return [vis.lo, vis.hi, vis.until];
    };
    assert.deepEqual(at(50), [0x11, 0x22, 100]);
    assert.deepEqual(at(99), [0x11, 0x22, 100]);
    // A store landing at exactly the walk's time is visible to it.
    assert.deepEqual(at(100), [0x33, 0x44, 150]);
    assert.deepEqual(at(120), [0x33, 0x44, 150]);
    assert.deepEqual(at(150), [0x55, 0x66, Infinity]);
    assert.deepEqual(at(200), [0x55, 0x66, Infinity]);
    // Nothing was forgotten: an in-order walk at an earlier time still sees the oldest value.
    assert.equal(vis.pending, true);
    vis.settle(50);
    vis.read(7, 3, 0x55, 0x66);
    assert.deepEqual([vis.lo, vis.hi, vis.until], [0x11, 0x22, 100]);
    // And after the overlay compacts and grows, the same answers.
    vis.settle(100);
    for (let i = 0; i < 600; i++) vis.pteWritten(9, i % 512, i, i);
    assert.deepEqual(at(120), [0x33, 0x44, 150]);
    assert.deepEqual(at(150), [0x55, 0x66, Infinity]);
  });

  it("ignores stores made outside a simulated run", () => {
    const vis = new PteVisibility(512, () => Number.NaN);
    vis.pteWritten(1, 1, 1, 1);
    assert.equal(vis.pending, false);
  });
});
