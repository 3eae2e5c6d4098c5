/** The memory estimate made before a run allocates: what it counts against what the model builds. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TEST_STAGES, PageTableTest } from "../../src/workloads/page-table-test.js";
import {
  pageTableTestFootprint,
  pageTableTestLiveFootprint,
  pageTableTestTablePages,
} from "../../src/workloads/memory-estimate.js";
import { simulatePageTableTest } from "../../src/workloads/page-table-sim.js";
import { loadProfile } from "../../src/sim/profile.js";
import { MEMCACHE_CAPACITY } from "../../src/pgtable/memcache.js";
import { TRACE_LINE_HEAP_BYTES } from "../../src/workloads/event-trace.js";

const M = 2 ** 20;
const G = 2 ** 30;
const profile = loadProfile("kunpeng920");
const footprint = (backing: string, memBytes: number, vcpus = 1) =>
  pageTableTestFootprint({ kernel: "v5.14", backing, memBytes, vcpus }, profile);

describe("page-table-test memory estimate", () => {
  // Each backing's stage-2 tables at their fullest (CREATE, UPDATE's splits, ADJUST's coalescing),
  // built by the fault model through all three stages in two interleavings.
  const cases: Array<[string, number]> = [
    ["anonymous", 8 * M],
    ["anonymous_thp", 16 * M],
    ["anonymous_hugetlb_64kb", 8 * M],
    ["anonymous_hugetlb_2mb", 16 * M],
    ["anonymous_hugetlb_32mb", 128 * M],
    ["anonymous_hugetlb_1gb", 1 * G],
    ["shmem", 8 * M],
    ["shared_hugetlb", 16 * M],
  ];
  for (const [backing, memBytes] of cases) {
    for (const policy of ["sequential", "round-robin"] as const) {
      it(`counts at least the table pages ${backing} builds (${policy})`, () => {
        const config = { kernel: "v5.14" as const, backing, memBytes, vcpus: 2, guestTables: true };
        const t = new PageTableTest(config);
        for (const stage of TEST_STAGES) t.runStage(stage, policy);
        const peak = t.vm.tableMem.peakAllocated;
        const estimate = pageTableTestTablePages(config);
        assert.ok(peak <= estimate, `peak ${peak} > estimate ${estimate}`);
        // Close to it, not a blanket bound: within the upper levels, the root's 16 pages and the
        // memcaches, which need not all be full at the peak.
        const slack = 24 + config.vcpus * MEMCACHE_CAPACITY;
        assert.ok(estimate - peak <= slack, `estimate ${estimate} far above peak ${peak}`);
      });
    }
  }

  // Every typed array's bytes reachable from the machine and the VM, each buffer once: what the
  // simulation really holds off the heap (plus the small arrays V8 keeps on it).
  function typedArrayBytes(roots: readonly unknown[]): number {
    const seen = new Set<object>();
    const buffers = new Set<ArrayBufferLike>();
    const stack: unknown[] = [...roots];
    while (stack.length > 0) {
      const x = stack.pop();
      if (typeof x !== "object" || x === null || seen.has(x)) continue;
      seen.add(x);
      if (ArrayBuffer.isView(x)) {
        buffers.add(x.buffer);
        continue;
      }
      if (x instanceof Map) for (const [k, v] of x) stack.push(k, v);
      else if (x instanceof Set) for (const v of x) stack.push(v);
      else for (const v of Object.values(x)) stack.push(v);
    }
    let bytes = 0;
    for (const b of buffers) bytes += b.byteLength;
    return bytes;
  }

  const sims: Array<[string, number, number]> = [
    ["anonymous", 64 * M, 17],
    ["anonymous_thp", 64 * M, 4],
    ["anonymous_hugetlb_1gb", 2 * G, 2],
    ["shmem", 16 * M, 17],
  ];
  for (const [backing, memBytes, vcpus] of sims) {
    it(`counts at least the typed arrays a simulation holds (${backing}, ${vcpus} vCPUs)`, () => {
      const config = { kernel: "v5.14" as const, backing, memBytes, vcpus, timelineChunk: 4 * M };
      let most = 0;
      simulatePageTableTest(config, profile, undefined, 3, undefined, (machine, test) => {
        most = Math.max(most, typedArrayBytes([machine, test]));
      });
      const live = pageTableTestLiveFootprint(config, profile);
      assert.ok(most > 0);
      assert.ok(most <= live.bytes, `${backing}: ${most} bytes of typed arrays, estimate ${live.bytes}`);
    });
  }

  it("grows with the region and the vCPUs; shmem's page locks add only a last holder per page", () => {
    const small = footprint("anonymous", 1 * G);
    const large = footprint("anonymous", 64 * G);
    assert.ok(large.bytes > small.bytes + 300 * M, `${large.bytes} vs ${small.bytes}`);
    assert.ok(footprint("anonymous", 1 * G, 512).bytes > small.bytes + 512 * 70_000);
    // The page locks live only while faults use them: shmem costs about what anonymous memory does.
    const shmem = footprint("shmem", 4 * G);
    const anon = footprint("anonymous", 4 * G);
    assert.ok(shmem.bytes > anon.bytes && shmem.bytes < 1.2 * anon.bytes, `${shmem.bytes} vs ${anon.bytes}`);
    assert.ok(shmem.heapBytes <= shmem.bytes);
  });

  it("refuses what the simulator would refuse, before allocating", () => {
    assert.throws(() => footprint("anonymous_bogus", 1 * G), /unknown backing source/);
    assert.throws(() => footprint("anonymous", 2 * 2 ** 40), /does not fit in the 40-bit IPA space/);
  });
});

describe("page-table-test memory estimate with --trace", () => {
  const traced = (memBytes: number, vcpus: number, traceEvents: number) =>
    pageTableTestFootprint({ kernel: "v5.12", backing: "anonymous", memBytes, vcpus, traceEvents }, profile);
  it("counts no more lines than a stage of the run can make, and at least those it makes", () => {
    // A one-page run keeps a few dozen lines whatever n is: its estimate stops growing with n.
    assert.equal(traced(4096, 1, 1_000_000).heapBytes, traced(4096, 1, 10_000_000).heapBytes);
    assert.ok(traced(4096, 1, 1_000_000).heapBytes < 64 * M);
    // A large run can fill n lines per stage: n counts in full.
    assert.ok(traced(64 * M, 8, 1_000_000).heapBytes - traced(64 * M, 8, 0).heapBytes >= 3 * 1_000_000 * 700);
    // What a small run of the busiest stage makes (anonymous CREATE before the series, 80 vCPUs)
    // stays inside the bound's share of the estimate.
    const r = simulatePageTableTest(
      { kernel: "v5.12", backing: "anonymous", memBytes: 256 * 1024, vcpus: 80, traceEvents: 1_000_000 },
      profile,
      undefined,
      1,
    );
    const events = r.stages[0]!.trace!.events;
    assert.ok(r.stages[0]!.trace!.complete);
    const bound =
      (traced(256 * 1024, 80, 1_000_000).heapBytes - traced(256 * 1024, 80, 0).heapBytes) /
      (3 * TRACE_LINE_HEAP_BYTES);
    assert.ok(events <= bound, `${events} events, bound ${bound}`);
  });
});
