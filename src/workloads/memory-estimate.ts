/**
 * How much memory a simulated page-table-test needs at its peak, estimated from its configuration
 * before anything is allocated (docs/model.md, "Memory"): the host's per-page state and locks,
 * the stage-2 table pages the selftest's stages build at most, the engine's lock states and the
 * vCPUs' TLBs, plus the garbage collector's slack and the process itself.
 */
import {
  type Footprint,
  heapFootprint,
  scaleFootprint,
  sumFootprints,
  typedArrayFootprint,
} from "../common/footprint.js";
import type { Granule } from "../arch/granule.js";
import { leafLevels, levelSize } from "../arch/granule.js";
import { backingSource, thpSize } from "../host/backing.js";
import { hostPhysFootprint } from "../host/host-phys.js";
import { vmaFootprint } from "../host/mm.js";
import { MEMCACHE_CAPACITY } from "../pgtable/memcache.js";
import { tablePagesFootprint } from "../pgtable/phys-mem.js";
import { engineLocksFootprint } from "../sim/engine.js";
import type { CostProfile } from "../sim/profile.js";
import { stage2TlbFootprint } from "../sim/tlb.js";
import { tlbiLogFootprint } from "../sim/tlbi-log.js";
import { type PageTableTestConfig, type TestLayout, testLayout } from "./page-table-test.js";
import { TRACE_LINE_HEAP_BYTES } from "./event-trace.js";

/** Node, s2sim's code and the simulator's fixed state, before a run's own structures. */
const PROCESS_BASE: Footprint = { bytes: 96 * 2 ** 20, heapBytes: 16 * 2 ** 20 };

/**
 * Resident memory per live byte. Typed-array stores are allocated once and kept: a tenth for the
 * allocator. The heap grows to about three times its live objects before V8 collects the garbage
 * the simulation makes (peak resident size against live heap, measured: BENCHMARKS.md, "Memory").
 */
const OFF_HEAP_SLACK = 1.1;
const HEAP_SLACK = 3;

/** Heap bytes per vCPU besides its TLB: its thread code, memcache, access stream, fault context. */
const VCPU_HEAP_BYTES = 16 * 1024;

/**
 * Locks besides the VMAs': mmu_lock and the host mm's page_table_lock. (The estimate adds one per
 * vCPU for transient locks, which live only while faults use them: at most one per fault.)
 */
const OTHER_LOCKS = 2;

/**
 * Heap bytes per row of the CREATE timeline: its counts' row object, and the row rendered as text
 * or JSON (65,536 rows at 1 GiB raised the peak resident size by 84 MiB, with the heap's slack).
 */
const TIMELINE_ROW_HEAP_BYTES = 480;

/** The CREATE timeline's footprint for `rows` chunks: 7 counts each while recording, then its rows. */
function timelineFootprint(rows: number): Footprint {
  return sumFootprints(
    scaleFootprint(typedArrayFootprint(rows, 8), 7),
    heapFootprint(rows, TIMELINE_ROW_HEAP_BYTES),
  );
}

/**
 * Stage-2 table pages of a test region at their peak over the selftest's stages. Backing pages no
 * larger than what a last-level table spans end up mapped by pages everywhere (4 KiB mappings,
 * THP regions split by their zero-page path, blocks split by dirty logging): a last-level table
 * per span. Larger backing pages (1 GiB hugetlb) have, at the end of UPDATE, a last-level table for
 * the written page and one per span of the half that was read (spec 9.3 b). Then the tables above.
 */
function stage2TablePages(layout: Pick<TestLayout, "src" | "granule" | "size">): number {
  const { src, granule, size } = layout;
  const l3Span = levelSize(granule, 2);
  const l2Span = levelSize(granule, 1);
  const last =
    src.pageSize <= l3Span
      ? Math.ceil(size / l3Span)
      : (size / src.pageSize) * (1 + Math.ceil(src.pageSize / 2 / l3Span));
  // The levels above, each rounded up a table for a misaligned region, and a concatenated root.
  return last + Math.ceil(size / l2Span) + 1 + Math.ceil(size / levelSize(granule, 0)) + 1 + 16;
}

/** Stage-2 table pages of memslot 0 (the guest's pages and page tables, 4 KiB mappings). */
function slot0TablePages(granule: Granule, slot0Size: number): number {
  return Math.ceil(slot0Size / levelSize(granule, 2)) + 2;
}

/**
 * The most events one stage of a run can make, for `--trace`'s estimate: a stage keeps only the
 * events there are. Measured (2026-12-07): at most 13 per 4 KiB page per vCPU (anonymous CREATE
 * before the series, 80 and 160 vCPUs; THP and hugetlb stages under 3), and 35 in all for a
 * one-page run. The bound allows 64 per page per vCPU, plus 1,024 per vCPU and 16,384.
 */
function stageEventsBound(size: number, granule: Granule, vcpus: number): number {
  return 64 * Math.ceil(size / granule.size) * vcpus + 1024 * vcpus + 16384;
}

/**
 * Table pages the simulated `config` holds at most at once: the stage-2 tables of both memslots,
 * and the pages in the vCPUs' memcaches (each filled to capacity by a top-up).
 */
export function pageTableTestTablePages(config: PageTableTestConfig): number {
  return tablePagesOf(testLayout({ ...config, guestTables: true }), config.vcpus);
}

/** {@link pageTableTestTablePages} for a layout already made. */
function tablePagesOf(layout: TestLayout, vcpus: number): number {
  return (
    stage2TablePages(layout) + slot0TablePages(layout.granule, layout.slot0Size) + vcpus * MEMCACHE_CAPACITY
  );
}

/**
 * The structures the simulated `config` holds at its peak (what simulatePageTableTest allocates),
 * without the process or the collector's slack. Throws the configuration's own errors (unknown
 * backing source or granule, empty region, region outside the IPA space).
 */
export function pageTableTestLiveFootprint(config: PageTableTestConfig, profile: CostProfile): Footprint {
  const layout = testLayout({ ...config, guestTables: true });
  const { src, granule, size, slot0Size } = layout;
  const vcpus = config.vcpus;
  const tablePages = tablePagesOf(layout, vcpus);
  const slot0 = vmaFootprint(slot0Size, backingSource("anonymous", granule), granule);
  const region = vmaFootprint(size, src, granule);
  return sumFootprints(
    slot0,
    region,
    hostPhysFootprint(granule, size + slot0Size, thpSize(granule)),
    tablePagesFootprint(granule, tablePages),
    // The engine's tasks: the vCPUs and the selftest's main thread.
    engineLocksFootprint(
      slot0.locks + region.locks + OTHER_LOCKS + vcpus,
      vcpus + 1,
      slot0.transientSlots + region.transientSlots,
    ),
    tlbiLogFootprint(
      [slot0Size, size],
      leafLevels(granule).map((l) => levelSize(granule, l)),
    ),
    scaleFootprint(stage2TlbFootprint(profile.tlb.entries, profile.tlb.ways), vcpus),
    heapFootprint(vcpus, VCPU_HEAP_BYTES),
    // The dirty bitmap (UPDATE), a bit per page.
    typedArrayFootprint(Math.ceil(size / granule.size / 32), 4),
    timelineFootprint(config.timelineChunk === undefined ? 0 : Math.ceil(size / config.timelineChunk)),
    // --trace: each stage's lines (the reports keep all three).
    heapFootprint(
      3 * Math.min(config.traceEvents ?? 0, stageEventsBound(size, granule, vcpus)),
      TRACE_LINE_HEAP_BYTES,
    ),
  );
}

/**
 * The memory the simulated `config` needs at its peak: `bytes` resident (its live structures, the
 * process and the collector's slack) and `heapBytes` live on the JavaScript heap (against V8's heap
 * limit, which a collection near it can reach). An estimate, made without allocating anything.
 */
export function pageTableTestFootprint(config: PageTableTestConfig, profile: CostProfile): Footprint {
  const live = pageTableTestLiveFootprint(config, profile);
  return {
    bytes: PROCESS_BASE.bytes + OFF_HEAP_SLACK * (live.bytes - live.heapBytes) + HEAP_SLACK * live.heapBytes,
    heapBytes: PROCESS_BASE.heapBytes + live.heapBytes,
  };
}
