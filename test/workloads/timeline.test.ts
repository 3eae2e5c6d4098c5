/**
 * The CREATE stage's timeline along the region (workloads/timeline.ts): it changes no result, its
 * rows add up to the stage's faults in the region, and one vCPU cleans each page once.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadProfile } from "../../src/sim/profile.js";
import type { PageTableTestConfig } from "../../src/workloads/page-table-test.js";
import { type SimStageReport, simulatePageTableTest } from "../../src/workloads/page-table-sim.js";

const profile = loadProfile("kunpeng920");
const M = 2 ** 20;

function run(config: PageTableTestConfig): SimStageReport[] {
  return simulatePageTableTest(config, profile).stages;
}

/** A stage report without the timeline and the speed-only figures. */
function results(s: SimStageReport): Record<string, unknown> {
  const rest: Record<string, unknown> = { ...s };
  for (const k of [
    "timeline",
    "engine_steps",
    "fast_forward_leaves",
    "hit_run_accesses",
    "flow_run_accesses",
  ])
    delete rest[k];
  return rest;
}

test("recording the timeline changes no result; only CREATE has one; its rows add up", () => {
  const config: PageTableTestConfig = { kernel: "v5.12", backing: "anonymous", memBytes: 8 * M, vcpus: 4 };
  const plain = run(config);
  const timed = run({ ...config, timelineChunk: 2 * M });
  assert.deepEqual(timed.map(results), plain.map(results));
  assert.deepEqual(
    timed.map((s) => s.timeline !== undefined),
    [true, false, false],
  );
  const create = timed[0]!;
  const t = create.timeline!;
  assert.equal(t.chunk_bytes, 2 * M);
  assert.deepEqual(
    t.rows.map((r) => r.offset),
    [0, 2 * M, 4 * M, 6 * M],
  );
  const sum = (f: (r: (typeof t.rows)[number]) => number): number => t.rows.reduce((a, r) => a + f(r), 0);
  const aborts = Object.values(create.faults).reduce((a, n) => a + n, 0);
  // Every abort outside the region is a stage-1 table walk's (memslot 0).
  assert.equal(
    sum((r) => r.aborts),
    aborts - create.s1ptw_faults,
  );
  assert.equal(
    sum((r) => r.maps + r.relaxes + r.retries),
    sum((r) => r.aborts),
  );
  assert.ok(sum((r) => r.eagain) <= create.eagain);
  assert.ok(sum((r) => r.dcache_bytes) <= create.cmo_bytes.dcache);
  let before = 0;
  for (const r of t.rows) {
    assert.ok(r.done_s !== null && r.done_s > before && r.done_s <= create.simulated_s, `chunk ${r.offset}`);
    before = r.done_s;
  }
});

test("with one vCPU each page of the region is cleaned once, in both kernels", () => {
  for (const kernel of ["v5.12", "v5.14"] as const) {
    const s = run({ kernel, backing: "anonymous", memBytes: 4 * M, vcpus: 1, timelineChunk: M })[0]!;
    assert.deepEqual(
      s.timeline!.rows.map((r) => [r.maps, r.dcache_bytes]),
      [
        [256, M],
        [256, M],
        [256, M],
        [256, M],
      ],
      kernel,
    );
  }
});
