import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { KernelVersion } from "../../src/pgtable/kernel.js";
import {
  loadProfile,
  parseProfile,
  parseSetting,
  withOverrides,
  type CostProfile,
} from "../../src/sim/profile.js";
import { type SimReport, simulatePageTableTest } from "../../src/workloads/page-table-sim.js";
import type { PageTableTestConfig } from "../../src/workloads/page-table-test.js";
import { RELEASE_ORDERS } from "../../src/workloads/release-order.js";
import { repoRoot } from "../repo-root.js";
import { reportWithoutSpeedFigures } from "../speed-figures.js";

const profile = loadProfile("kunpeng920");
const M = 2 ** 20;
const G = 2 ** 30;

// A guest access whose cost is not whole picoseconds (the engine's lookahead is off then).
const doc = JSON.parse(readFileSync(join(repoRoot(), "profiles", "kunpeng920.json"), "utf8")) as {
  parameters: Record<string, { value: number }>;
};
doc.parameters["guest-access"]!.value = 2.0004;
const fractional = parseProfile(doc, "fractional guest-access");
// Lock costs and a vCPU release that are not whole picoseconds (the engine rounds them: with them
// as they were, the fast-forward's k x period and the k periods' sum differed in the last bits).
const fractionalLocks = withOverrides(
  profile,
  [
    "lock-handoff=1104.285ps",
    "host-lock-handoff=92.601ps",
    "lock-acquire=64.917ps",
    "vcpu-release=2735.245ps",
    "exit=544ps",
    "abort=59ps",
    "entry=658ps",
  ].map(parseSetting),
);

const strip = (r: SimReport): string => reportWithoutSpeedFigures(r);

/**
 * Runs `config` as it is and with `off` applied, and checks that the two reports agree but for
 * the speed figures (engine steps included: the speed-ups count the steps they spare).
 */
function onAndOff(
  config: PageTableTestConfig,
  prof: CostProfile,
  off: Partial<PageTableTestConfig>,
): [SimReport, SimReport] {
  const on = simulatePageTableTest(config, prof);
  const without = simulatePageTableTest({ ...config, ...off }, prof);
  assert.equal(strip(on), strip(without));
  return [on, without];
}

interface Case {
  readonly kernel: KernelVersion;
  readonly backing: string;
  readonly mem: number;
  readonly vcpus: number;
  readonly granule?: number;
  readonly prof?: CostProfile;
  readonly random?: boolean;
  /** An injected bug whose departures from the kernel (counted) the skips replay. */
  readonly inject?: string;
  /** The selftest's guest mode (default 4). */
  readonly guestMode?: number;
}

/** A case's run configuration and a name for it. */
function setUp(c: Case, more: Partial<PageTableTestConfig> = {}): [PageTableTestConfig, string] {
  const config: PageTableTestConfig = {
    kernel: c.kernel,
    backing: c.backing,
    memBytes: c.mem,
    vcpus: c.vcpus,
    ...(c.granule !== undefined ? { vmOptions: { granule: c.granule } } : {}),
    ...(c.random === true ? { releaseOrder: "random" as const, seed: 7 } : {}),
    ...(c.inject !== undefined ? { inject: c.inject } : {}),
    ...(c.guestMode !== undefined ? { guestMode: c.guestMode } : {}),
    ...more,
  };
  const what =
    `${c.kernel} ${c.backing}, ${c.vcpus} vCPUs, ${c.granule ?? 4096}-byte granule` +
    (c.prof === fractional ? ", fractional guest-access cost" : "") +
    (c.prof === fractionalLocks ? ", fractional lock costs" : "") +
    (c.random === true ? ", random release" : "") +
    (c.inject !== undefined ? `, injected ${c.inject}` : "") +
    (c.guestMode !== undefined ? `, guest mode ${c.guestMode}` : "") +
    (more.lookahead === false ? ", no lookahead" : "");
  return [config, what];
}

/** A total over a report's stages. */
const total = (r: SimReport, f: (s: SimReport["stages"][number]) => number): number =>
  r.stages.reduce((a, s) => a + f(s), 0);

// Each backing the convoys skip in, both kernels, the three granules, a random release order and
// a profile without lookahead. The fast-forward must change nothing but its own count.
const cases: Case[] = [
  { kernel: "v5.12", backing: "anonymous_thp", mem: 16 * M, vcpus: 10 },
  { kernel: "v5.14", backing: "anonymous_thp", mem: 16 * M, vcpus: 10 },
  { kernel: "v5.14", backing: "anonymous_thp", mem: 16 * M, vcpus: 7, prof: fractional },
  { kernel: "v5.12", backing: "anonymous_thp", mem: 4 * M, vcpus: 8, prof: fractionalLocks },
  { kernel: "v5.12", backing: "anonymous_thp", mem: 16 * M, vcpus: 9, random: true },
  { kernel: "v5.12", backing: "anonymous_hugetlb", mem: 16 * M, vcpus: 12 },
  { kernel: "v5.14", backing: "shared_hugetlb", mem: 16 * M, vcpus: 6 },
  { kernel: "v5.12", backing: "anonymous_thp", mem: 64 * M, vcpus: 8, granule: 16384 },
  { kernel: "v5.14", backing: "anonymous_thp", mem: 256 * M, vcpus: 5, granule: 65536 },
  { kernel: "v5.12", backing: "anonymous_hugetlb_1gb", mem: G, vcpus: 4 },
  { kernel: "v5.14", backing: "anonymous_hugetlb_1gb", mem: G, vcpus: 4 },
  // Anonymous memory's UPDATE: a convoy of permission relaxes, each with its TLBIs by IPA and a
  // page marked dirty (host pages not evenly spaced after v5.14's CREATE race).
  { kernel: "v5.12", backing: "anonymous", mem: 8 * M, vcpus: 12 },
  { kernel: "v5.14", backing: "anonymous", mem: 8 * M, vcpus: 9 },
  { kernel: "v5.14", backing: "anonymous", mem: 8 * M, vcpus: 6, random: true },
  // A bug departing from the kernel at every new leaf: the skipped leaves count too.
  { kernel: "v5.14", backing: "anonymous_thp", mem: 16 * M, vcpus: 8, inject: "install-no-cmo" },
  // 64K guest pages: a stage-1 walk every 16 host pages, so the periods repeat in cycles of 16.
  { kernel: "v5.14", backing: "anonymous_thp", mem: 16 * M, vcpus: 10, guestMode: 5 },
  // Two vCPUs: the cycle's periods differ in length (the 16th's walk is not hidden by a convoy).
  { kernel: "v5.14", backing: "anonymous_thp", mem: 16 * M, vcpus: 2, guestMode: 5 },
  { kernel: "v5.12", backing: "anonymous", mem: 8 * M, vcpus: 7, guestMode: 3 },
  {
    kernel: "v5.12",
    backing: "anonymous_hugetlb_1gb",
    mem: G,
    vcpus: 5,
    guestMode: 5,
    prof: fractionalLocks,
  },
];

describe("the convoy fast-forward", () => {
  for (const c of cases) {
    // With the state the reports do not show (TLBs, TLBI history, tables, dirty bitmaps).
    const [config, what] = setUp(c, { stateDigest: true });
    it(`changes no figure but its own (${what})`, () => {
      const prof = c.prof ?? profile;
      const [on, off] = onAndOff(config, prof, { fastForward: false });
      assert.deepEqual(
        off.stages.map((s) => s.fast_forward_leaves),
        [0, 0, 0],
      );
      // It did skip: most of UPDATE's new leaves (the maps that did not return -EAGAIN), or for
      // anonymous memory most of its pages' relaxes.
      const u = on.stages[1]!;
      const periods = c.backing === "anonymous" ? c.mem / 4096 : u.maps - u.eagain;
      assert.ok(u.fast_forward_leaves > 0.5 * periods, `${u.fast_forward_leaves} of ${periods}`);
    });
  }
});

describe("the convoy fast-forward's reach", () => {
  it("skips whole cycles of 16 periods with 64K guest pages (a stage-1 walk every 16th)", () => {
    // Until 2026-12-08 it did not run there: the 16th period's walk made no two periods alike.
    const r = simulatePageTableTest(
      { kernel: "v5.14", backing: "anonymous_thp", memBytes: 16 * M, vcpus: 10, guestMode: 5 },
      profile,
    );
    for (const s of r.stages.slice(1)) {
      assert.ok(s.fast_forward_leaves > 0, `${s.name}: nothing skipped`);
      assert.equal(s.fast_forward_leaves % 16, 0, `${s.name}: ${s.fast_forward_leaves} leaves skipped`);
    }
  });

  it("simulates only a region's first and last few periods in full (THP UPDATE and ADJUST)", () => {
    // 8 regions of 2 MiB; each UPDATE region maps its first page and 256 read pages, each ADJUST
    // region its first 255 pages. The convoy forms over the first few periods and ends with the
    // table; a skip reaches the last page the periods touch. Until 2026-12-07 about 15 new leaves
    // per region were simulated (skips stopped 4 pages short of the table's end and took 4 pages
    // of the run to find a repeat), now about 8.
    const r = simulatePageTableTest(
      { kernel: "v5.12", backing: "anonymous_thp", memBytes: 16 * M, vcpus: 10 },
      profile,
    );
    const regions = (16 * M) / (2 * M);
    for (const s of r.stages.slice(1)) {
      const simulated = s.maps - s.eagain - s.fast_forward_leaves;
      assert.ok(
        simulated <= 10 * regions,
        `${s.name}: ${simulated} new leaves simulated in ${regions} regions`,
      );
    }
  });
});

// Runs of accesses made together: TLB hits at once (GuestAccessPath.hitRun) and flowing accesses
// with one check for the run (SimVcpu.flowRun). The lookahead's configurations, each also without
// lookahead (every run is then in sync), and one with a fractional guest-access cost.
const runCases: Case[] = [
  { kernel: "v5.12", backing: "anonymous_hugetlb_1gb", mem: G, vcpus: 8 },
  { kernel: "v5.14", backing: "anonymous_hugetlb", mem: 16 * M, vcpus: 12 },
  { kernel: "v5.14", backing: "anonymous_thp", mem: 16 * M, vcpus: 10 },
  { kernel: "v5.12", backing: "anonymous", mem: 4 * M, vcpus: 6 },
  { kernel: "v5.14", backing: "shmem", mem: 4 * M, vcpus: 5, random: true },
  { kernel: "v5.12", backing: "anonymous_thp", mem: 16 * M, vcpus: 7, prof: fractional },
  // 64K guest pages: a cached stage-1 translation covers 16 host pages (and no fast-forward).
  { kernel: "v5.14", backing: "anonymous_thp", mem: 16 * M, vcpus: 10, guestMode: 5 },
  { kernel: "v5.12", backing: "anonymous", mem: 4 * M, vcpus: 6, guestMode: 3 },
];

describe("runs of accesses made together", () => {
  for (const c of runCases) {
    for (const lookahead of c.prof === undefined ? [true, false] : [true]) {
      const [config, what] = setUp(c, { lookahead });
      it(`change no figure but their own (${what})`, () => {
        const prof = c.prof ?? profile;
        const [on, off] = onAndOff(config, prof, { accessRuns: false });
        const hits = total(on, (s) => s.hit_run_accesses);
        const flows = total(on, (s) => s.flow_run_accesses);
        const all = total(on, (s) => s.accesses);
        // Hit runs need a block entry (hugetlb's ADJUST reads); without lookahead a vCPU is
        // rarely the earliest for long, yet hugetlb 1 GiB still makes some. Flowing runs need
        // accesses that complete without faults (the pages mapped by an earlier stage).
        if (c.prof === fractional) assert.equal(hits, 0);
        else if (c.backing.startsWith("anonymous_hugetlb") && lookahead)
          assert.ok(hits > 0.1 * all, `${hits} of ${all} accesses in hit runs`);
        else if (c.backing === "anonymous_hugetlb_1gb") assert.ok(hits > 0, "no hit run without lookahead");
        if (c.prof === undefined && lookahead && (c.backing === "anonymous" || c.backing === "anonymous_thp"))
          assert.ok(flows > 0.05 * all, `${flows} of ${all} accesses in flowing runs`);
        assert.equal(
          total(off, (s) => s.hit_run_accesses + s.flow_run_accesses),
          0,
        );
      });
    }
  }
});

// Random small configurations (after a reviewer's sweep of 5,500): every speed-up on against all
// off, with TLB shapes that make the fast-forward's TLB guard bind and costs that move the
// convoys' timing.
describe("the speed-ups on random configurations", () => {
  const base = JSON.parse(readFileSync(join(repoRoot(), "profiles", "kunpeng920.json"), "utf8")) as {
    parameters: Record<string, { value: number }>;
  };
  const arbConfig = fc.record({
    backing: fc.constantFrom(
      "anonymous",
      "anonymous_thp",
      "anonymous_hugetlb",
      "anonymous_hugetlb_1gb",
      "shmem",
      "shared_hugetlb",
    ),
    kernel: fc.constantFrom<KernelVersion>("v5.12", "v5.14"),
    granule: fc.constantFrom(4096, 4096, 16384, 65536),
    vcpus: fc.integer({ min: 1, max: 12 }),
    release: fc.constantFrom(...RELEASE_ORDERS),
    seed: fc.integer({ min: 1, max: 1000 }),
    lookahead: fc.boolean(),
    ways: fc.constantFrom(1, 2, 4, 8),
    sets: fc.constantFrom(16, 64, 256),
    handoff: fc.constantFrom(100, 1100, 3000),
    walkLevel: fc.constantFrom(1, 8, 40),
    guestMode: fc.constantFrom(4, 4, 2, 5),
  });
  /** A random configuration's run set-up. */
  const configOf = (
    c: typeof arbConfig extends fc.Arbitrary<infer T> ? T : never,
  ): [PageTableTestConfig, CostProfile] => {
    const granule = c.backing === "anonymous_hugetlb_1gb" ? 4096 : c.granule;
    const small = c.backing === "anonymous" || c.backing === "shmem";
    const mem =
      c.backing === "anonymous_hugetlb_1gb"
        ? G
        : granule === 65536
          ? 512 * M
          : granule === 16384
            ? 32 * M
            : small
              ? 4 * M
              : 16 * M;
    const doc = structuredClone(base);
    doc.parameters["tlb-ways"]!.value = c.ways;
    doc.parameters["tlb-entries"]!.value = c.ways * c.sets;
    doc.parameters["lock-handoff"]!.value = c.handoff;
    doc.parameters["s2-walk-level"]!.value = c.walkLevel;
    const prof = parseProfile(doc, "random");
    const vcpus = c.backing === "anonymous_hugetlb_1gb" || granule === 65536 ? Math.min(c.vcpus, 4) : c.vcpus;
    const config: PageTableTestConfig = {
      kernel: c.kernel,
      backing: c.backing,
      memBytes: mem,
      vcpus,
      lookahead: c.lookahead,
      releaseOrder: c.release,
      seed: c.seed,
      vmOptions: { granule },
      guestMode: c.guestMode,
      stateDigest: true,
    };
    return [config, prof];
  };
  it("change no figure but their own", () => {
    fc.assert(
      fc.property(arbConfig, (c) => {
        const [config, prof] = configOf(c);
        onAndOff(config, prof, { fastForward: false, accessRuns: false });
      }),
      { numRuns: 24, seed: 20261205 },
    );
  });
  // The lookahead spares engine steps only: with every speed-up against none, the same figures
  // and the same state at each stage's end (it runs CPUs ahead of queued mmu_lock holders whose
  // critical sections change nothing, so a wrong answer there shows).
  it("the lookahead too: the same figures but the engine's steps", () => {
    fc.assert(
      fc.property(arbConfig, (c) => {
        const [config, prof] = configOf({ ...c, lookahead: true });
        const on = simulatePageTableTest(config, prof);
        const off = { ...config, lookahead: false, fastForward: false, accessRuns: false };
        assert.equal(
          reportWithoutSpeedFigures(on, true),
          reportWithoutSpeedFigures(simulatePageTableTest(off, prof), true),
        );
      }),
      { numRuns: 24, seed: 20261206 },
    );
  });
  // --trace n stops recording once no event to come can precede the n it keeps
  // (Engine.earliestToCome): what it keeps must be the complete trace's first n, and the rest of
  // the stage, run with the fast paths again, must give the same figures.
  it("a trace cut short: the complete trace's first events, and the same figures", () => {
    fc.assert(
      fc.property(arbConfig, fc.integer({ min: 1, max: 400 }), (c, n) => {
        const [config, prof] = configOf(c);
        const full = simulatePageTableTest({ ...config, traceEvents: 1e7 }, prof);
        const cut = simulatePageTableTest({ ...config, traceEvents: n }, prof);
        full.stages.forEach((s, i) => {
          const t = cut.stages[i]!.trace!;
          assert.ok(s.trace!.complete);
          assert.deepEqual(t.lines, s.trace!.lines.slice(0, n));
          assert.ok(t.events <= s.trace!.events);
          if (t.complete) assert.equal(t.events, s.trace!.events);
        });
        const untraced = (r: SimReport): SimReport => ({
          ...r,
          stages: r.stages.map(({ trace: _, ...s }) => s),
        });
        assert.equal(strip(untraced(cut)), strip(untraced(full)));
        assert.equal(strip(untraced(cut)), strip(simulatePageTableTest(config, prof)));
      }),
      { numRuns: 5, seed: 20261207 },
    );
  });
});
