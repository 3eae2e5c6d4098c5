/**
 * The page-table benchmark: map a region with 4 KiB leaves, write-protect it and unmap it, on the
 * model's kvm_pgtable, and report ns per 4 KiB page, table memory per page and peak memory.
 */
import { KUNPENG_920, GRANULES, stage2Geometry } from "../src/arch/index.js";
import { EAGAIN } from "../src/common/errno.js";
import {
  MemoryCache,
  NULL_HW,
  PhysMem,
  PROT_R,
  PROT_W,
  Stage2Pgtable,
  type Stage2Hw,
  V5_12,
  V5_14,
  type PgtableKernel,
} from "../src/pgtable/index.js";
import type { BenchOptions, WalkFigures } from "./options.js";
import { checkMemory, memoryBudget } from "../src/cli/memory.js";
import { heapFootprint, scaleFootprint, sumFootprints } from "../src/common/footprint.js";
import { tablePagesFootprint } from "../src/pgtable/phys-mem.js";
import { sizeName } from "../src/common/format.js";

const PAGE = 4096;
/** IPA bits of the benchmark VM: 3 levels of 4K tables starting at level 1 (2 concatenated pages). */
const IPA_BITS = 40;
/** Where the guest region starts (IPA): 1 GiB, like a typical guest RAM base. */
const IPA_BASE = 2 ** 30;
/** Host physical base: 4K-aligned but not 2M-aligned, so the map walk can never use a block. */
const PHYS_BASE = 0x10_0000_0000 + PAGE;
/** Untimed rounds before each timed series, so the JIT has settled. */
const WARMUP = 2;
/** Entries per 4K table page: a level-3 table maps 2 MiB. */
const PER_TABLE = 512;

/** Results of {@link benchPgtable}; the JSON output is this object. */
export interface PgtableResult extends WalkFigures {
  readonly benchmark: "pgtable";
  /** One map() of one 4K page into an existing level-3 table (a new leaf), ns per call. */
  readonly map_new_leaf_per_call_ns: number;
  /** One map() of one 4K page that is already mapped identically (returns -EAGAIN), ns per call. */
  readonly map_eagain_per_call_ns: number;
  /** One relaxPerms(addr, R|W) on a write-protected 4K page (PTE store + TLBI), ns per call. */
  readonly relax_perms_per_call_ns: number;
  /**
   * The single-walk map, wrprotect and unmap with a hardware model attached (methods that do
   * nothing, but not NULL_HW), so no run is quiet: every leaf goes through its calls and charges
   * one at a time, as under the simulator (without its pricing and store observer). ns per page.
   */
  readonly map_per_leaf_ns_per_page: number;
  readonly wrprotect_per_leaf_ns_per_page: number;
  readonly unmap_per_leaf_ns_per_page: number;
  readonly peak_rss_bytes: number;
  readonly peak_heap_used_bytes: number;
  readonly peak_array_buffers_bytes: number;
  readonly pages: number;
  readonly runs: number;
  readonly kernel: string;
  readonly granule: string;
  readonly ipa_bits: number;
  readonly cpu_features: string;
  readonly memcache: string;
  readonly timing: string;
  /** Whether a full GC ran between rounds (only when Node was started with --expose-gc). */
  readonly gc_between_rounds: boolean;
  readonly node: string;
  readonly cpu_model: string;
  readonly cpu_cores: number;
  readonly date: string;
}

/** One table with a memory cache holding every page the map will need, allocated untimed. */
interface Setup {
  readonly mem: PhysMem;
  readonly pgt: Stage2Pgtable;
  readonly mc: MemoryCache;
}

/**
 * Table pages a 4K-mapped region of `pages` pages at IPA_BASE needs below the start level: one L3
 * table per 2 MiB and one L2 table per 1 GiB (exact, since IPA_BASE is 1 GiB-aligned).
 */
function tablePagesNeeded(pages: number): number {
  return Math.ceil(pages / 512) + Math.ceil(pages / (512 * 512));
}

/**
 * Hardware whose methods do nothing, as NULL_HW's, but which is not NULL_HW: a table with it never
 * runs leaves quietly (Stage2Pgtable.quietRun).
 */
const NO_OP_HW: Stage2Hw = { ...NULL_HW };

/** A fresh table; `perLeaf`: with {@link NO_OP_HW}, so every leaf takes its calls one at a time. */
function setup(kernel: PgtableKernel, pages: number, perLeaf = false): Setup {
  const g = GRANULES[4096];
  const mem = new PhysMem(g);
  const pgt = new Stage2Pgtable({
    geometry: stage2Geometry(g, IPA_BITS),
    kernel,
    cpu: KUNPENG_920,
    mem,
    ...(perLeaf ? { hw: NO_OP_HW } : {}),
  });
  const need = tablePagesNeeded(pages) + 2;
  const mc = new MemoryCache(mem, need);
  if (mc.topup(need) < 0) throw new Error(`cannot preallocate ${need} table pages`);
  return { mem, pgt, mc };
}

function now(): bigint {
  return process.hrtime.bigint();
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g !== undefined) g();
}

/** Whether {@link gc} can collect (Node started with --expose-gc, as `npm run bench` does). */
function gcAvailable(): boolean {
  return typeof (globalThis as { gc?: unknown }).gc === "function";
}

function check(ret: number, what: string): void {
  if (ret !== 0) throw new Error(`${what} returned ${ret}`);
}

const PROT_RW = PROT_R | PROT_W;

// The timed per-call loops live in these small functions rather than in benchPgtable: the JIT
// then optimizes each loop on its own, and the figures measure the page-table calls instead of
// a large, partly unoptimized harness function.

/** One map() per 4K page of [IPA_BASE, IPA_BASE + pages * 4K), each returning `expect`. */
function mapEachPage(pgt: Stage2Pgtable, mc: MemoryCache, pages: number, expect: number): void {
  for (let i = 0; i < pages; i++) {
    const ret = pgt.map(IPA_BASE + i * PAGE, PAGE, PHYS_BASE + i * PAGE, PROT_RW, mc);
    if (ret !== expect) fail("map", ret, expect);
  }
}

/** One map() for the first 4K page of each 2 MiB of the region (creates every table). */
function mapOnePerTable(pgt: Stage2Pgtable, mc: MemoryCache, chunks: number): void {
  for (let c = 0; c < chunks; c++) {
    const off = c * PER_TABLE * PAGE;
    const ret = pgt.map(IPA_BASE + off, PAGE, PHYS_BASE + off, PROT_RW, mc);
    if (ret !== 0) fail("map", ret, 0);
  }
}

/** One map() per 4K page except the first of each 2 MiB (their level-3 tables exist already). */
function mapNewLeaves(pgt: Stage2Pgtable, mc: MemoryCache, chunks: number): void {
  for (let c = 0; c < chunks; c++) {
    for (let j = 1; j < PER_TABLE; j++) {
      const off = (c * PER_TABLE + j) * PAGE;
      const ret = pgt.map(IPA_BASE + off, PAGE, PHYS_BASE + off, PROT_RW, mc);
      if (ret !== 0) fail("map", ret, 0);
    }
  }
}

/** One relaxPerms(addr, R|W) per 4K page of the region. */
function relaxEachPage(pgt: Stage2Pgtable, pages: number): void {
  for (let i = 0; i < pages; i++) {
    const ret = pgt.relaxPerms(IPA_BASE + i * PAGE, PROT_RW);
    if (ret !== 0) fail("relaxPerms", ret, 0);
  }
}

function fail(what: string, ret: number, expect: number): never {
  throw new Error(`${what} returned ${ret}, expected ${expect === EAGAIN ? "-EAGAIN" : expect}`);
}

/** Peak process memory seen at the sample points. */
class MemPeak {
  rss = 0;
  heapUsed = 0;
  arrayBuffers = 0;

  sample(): void {
    const m = process.memoryUsage();
    this.rss = Math.max(this.rss, m.rss);
    this.heapUsed = Math.max(this.heapUsed, m.heapUsed);
    this.arrayBuffers = Math.max(this.arrayBuffers, m.arrayBuffers);
  }
}

const round2 = (x: number): number => Math.round(x * 100) / 100;

/** Best times (ns) of the single-walk series, and the table pages the map left in use. */
interface WalkTimes {
  readonly map: number;
  readonly wrprotect: number;
  readonly unmap: number;
  readonly tablePages: number;
}

/**
 * The single walks: the whole region in one map call, then wrprotect and unmap likewise, each
 * round on a fresh table (`perLeaf`: with {@link NO_OP_HW}); the first WARMUP rounds let the JIT
 * settle and are not counted.
 */
function singleWalks(
  kernel: PgtableKernel,
  size: number,
  runs: number,
  peak: MemPeak,
  perLeaf: boolean,
): WalkTimes {
  const pages = size / PAGE;
  let mapBest = Infinity;
  let wrpBest = Infinity;
  let unmapBest = Infinity;
  let tablePages = 0;
  for (let run = 0; run < WARMUP + runs; run++) {
    gc();
    const s = setup(kernel, pages, perLeaf);
    const before = s.mem.allocated - s.mc.count;
    let t0 = now();
    check(s.pgt.map(IPA_BASE, size, PHYS_BASE, PROT_RW, s.mc), "map");
    let t1 = now();
    const counted = run >= WARMUP;
    if (counted) mapBest = Math.min(mapBest, Number(t1 - t0));
    // Table pages in use = allocated minus those still waiting in the memcache.
    tablePages = s.mem.allocated - s.mc.count;
    if (tablePages - before !== tablePagesNeeded(pages)) {
      // Sanity: 4K leaves really were installed (one L3 table per 2 MiB).
      throw new Error(`unexpected table count ${tablePages - before}`);
    }
    peak.sample();
    t0 = now();
    check(s.pgt.wrprotect(IPA_BASE, size), "wrprotect");
    t1 = now();
    if (counted) wrpBest = Math.min(wrpBest, Number(t1 - t0));
    t0 = now();
    check(s.pgt.unmap(IPA_BASE, size), "unmap");
    t1 = now();
    if (counted) unmapBest = Math.min(unmapBest, Number(t1 - t0));
    if (s.mem.allocated - s.mc.count !== before) throw new Error("unmap left table pages behind");
    peak.sample();
  }
  return { map: mapBest, wrprotect: wrpBest, unmap: unmapBest, tablePages };
}

/** Runs the page-table benchmark. */
export function benchPgtable(opts: BenchOptions, cpuModel: string, cores: number): PgtableResult {
  const kernel = opts.kernel === "v5.12" ? V5_12 : V5_14;
  const size = opts.size;
  const pages = size / PAGE;
  // Refused before anything is allocated if it cannot fit (measured: 260 MiB at 20 GiB, most of it
  // the table pages a round keeps while the next one builds its own).
  const tablesNeeded = Math.ceil(pages / 511) + 2;
  const need = sumFootprints(
    heapFootprint(1, 96 * 2 ** 20),
    scaleFootprint(tablePagesFootprint(GRANULES[4096], tablesNeeded), 4),
  );
  checkMemory(
    need,
    memoryBudget(undefined, process.platform, null),
    `the pgtable benchmark at --size ${sizeName(opts.size)}`,
    "use a smaller --size",
  );
  const peak = new MemPeak();
  let perCallBest = Infinity;

  // Single walk: the whole region in one map call, then wrprotect and unmap likewise.
  const walks = singleWalks(kernel, size, opts.runs, peak, false);
  const tablePages = walks.tablePages;
  const tableBytes = tablePages * PAGE;

  // Per call: one map() per 4K page, as the fault path does, each round on a fresh table.
  for (let run = 0; run < WARMUP + opts.runs; run++) {
    gc();
    const { pgt, mc } = setup(kernel, pages);
    const t0 = now();
    mapEachPage(pgt, mc, pages, 0);
    const t1 = now();
    if (run >= WARMUP) perCallBest = Math.min(perCallBest, Number(t1 - t0));
    peak.sample();
  }
  // Per call, the fault path's three cases, each round on a fresh table. (1) A new leaf into an
  // existing level-3 table: the first page of each 2 MiB is mapped untimed, so every table exists,
  // then the other 511 pages of each 2 MiB are mapped one call each. (2) The same map again on the
  // now fully mapped region: every call finds an identical leaf and returns -EAGAIN. (3) After an
  // untimed wrprotect, relaxPerms(R|W) per page: one PTE store and one TLBI each.
  const chunks = pages / PER_TABLE;
  const newLeaves = pages - chunks;
  let newLeafBest = Infinity;
  let eagainBest = Infinity;
  let relaxBest = Infinity;
  for (let run = 0; run < WARMUP + opts.runs; run++) {
    gc();
    const { pgt, mc } = setup(kernel, pages);
    mapOnePerTable(pgt, mc, chunks);
    let t0 = now();
    mapNewLeaves(pgt, mc, chunks);
    let t1 = now();
    const counted = run >= WARMUP;
    if (counted) newLeafBest = Math.min(newLeafBest, Number(t1 - t0));
    t0 = now();
    mapEachPage(pgt, mc, pages, EAGAIN);
    t1 = now();
    if (counted) eagainBest = Math.min(eagainBest, Number(t1 - t0));
    check(pgt.wrprotect(IPA_BASE, size), "wrprotect");
    t0 = now();
    relaxEachPage(pgt, pages);
    t1 = now();
    if (counted) relaxBest = Math.min(relaxBest, Number(t1 - t0));
    peak.sample();
  }
  // Last, so that the other series run where the JIT has seen only NULL_HW.
  const perLeaf = singleWalks(kernel, size, opts.runs, peak, true);
  const maxRss = process.resourceUsage().maxRSS * 1024;
  return {
    benchmark: "pgtable",
    map_ns_per_page: round2(walks.map / pages),
    map_per_call_ns_per_page: round2(perCallBest / pages),
    wrprotect_ns_per_page: round2(walks.wrprotect / pages),
    unmap_ns_per_page: round2(walks.unmap / pages),
    map_new_leaf_per_call_ns: round2(newLeafBest / newLeaves),
    map_eagain_per_call_ns: round2(eagainBest / pages),
    relax_perms_per_call_ns: round2(relaxBest / pages),
    map_per_leaf_ns_per_page: round2(perLeaf.map / pages),
    wrprotect_per_leaf_ns_per_page: round2(perLeaf.wrprotect / pages),
    unmap_per_leaf_ns_per_page: round2(perLeaf.unmap / pages),
    table_bytes_per_page: round2(tableBytes / pages),
    table_pages: tablePages,
    peak_rss_bytes: Math.max(peak.rss, maxRss),
    peak_heap_used_bytes: peak.heapUsed,
    peak_array_buffers_bytes: peak.arrayBuffers,
    size_bytes: size,
    pages,
    runs: opts.runs,
    kernel: kernel.version,
    granule: "4K",
    ipa_bits: IPA_BITS,
    cpu_features:
      "KUNPENG_920 (no FWB: v5.14 map cleans each new leaf to the PoC, per leaf in the *_per_leaf_* " +
      "series, counted per run of leaves in the quiet single walks; NULL_HW)",
    memcache:
      "one MemoryCache per run, sized for every table page the map needs and topped up before the " +
      "clock starts: page allocation from the cache is timed, the refill is not",
    timing:
      `best of runs after ${WARMUP} untimed warm-up rounds (per series); wall clock; each round uses ` +
      "a fresh PhysMem and table; no event subscriber, so the single walks run their leaves quietly " +
      "(work counted per run, see docs/model.md) except in the *_per_leaf_* series; map is one call over the region with phys 4K- " +
      "but not 2M-aligned (4K leaves only); per-call map is one map() per 4K page; the *_per_call_ns " +
      "figures are ns per call: map of a new leaf into an existing level-3 table, map returning " +
      "-EAGAIN (identical leaf present), relaxPerms(R|W) on a write-protected page",
    gc_between_rounds: gcAvailable(),
    node: process.version,
    cpu_model: cpuModel,
    cpu_cores: cores,
    date: new Date().toISOString(),
  };
}

/** The human-readable rendering of a {@link PgtableResult}. */
export function formatPgtable(r: PgtableResult): string {
  const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const rows: Array<[string, string]> = [
    ["map (one walk)", `${r.map_ns_per_page.toFixed(2)} ns/page`],
    ["map (one call per page)", `${r.map_per_call_ns_per_page.toFixed(2)} ns/page`],
    ["map new leaf, per call", `${r.map_new_leaf_per_call_ns.toFixed(2)} ns/call`],
    ["map -EAGAIN, per call", `${r.map_eagain_per_call_ns.toFixed(2)} ns/call`],
    ["relaxPerms, per call", `${r.relax_perms_per_call_ns.toFixed(2)} ns/call`],
    ["wrprotect", `${r.wrprotect_ns_per_page.toFixed(2)} ns/page`],
    ["unmap", `${r.unmap_ns_per_page.toFixed(2)} ns/page`],
    ["map, leaf by leaf (hardware attached)", `${r.map_per_leaf_ns_per_page.toFixed(2)} ns/page`],
    ["wrprotect, leaf by leaf", `${r.wrprotect_per_leaf_ns_per_page.toFixed(2)} ns/page`],
    ["unmap, leaf by leaf", `${r.unmap_per_leaf_ns_per_page.toFixed(2)} ns/page`],
    ["table memory", `${r.table_bytes_per_page.toFixed(2)} bytes/page (${r.table_pages} table pages)`],
    ["peak RSS", mib(r.peak_rss_bytes)],
    ["peak heapUsed", mib(r.peak_heap_used_bytes)],
    ["peak arrayBuffers", mib(r.peak_array_buffers_bytes)],
  ];
  const head =
    `pgtable benchmark: ${r.kernel}, ${r.granule} granule, ${r.ipa_bits}-bit IPA, ` +
    `${mib(r.size_bytes)} = ${r.pages} pages, best of ${r.runs}\n` +
    `${r.cpu_model} (${r.cpu_cores} cores), node ${r.node}, ${r.date}\n`;
  const w = Math.max(...rows.map(([k]) => k.length));
  const gcNote = r.gc_between_rounds
    ? ""
    : "  note: no GC between rounds (run Node with --expose-gc, as npm run bench does): rounds may pay for earlier ones' garbage\n";
  return (
    head +
    rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join("\n") +
    `\n  memcache: ${r.memcache}\n` +
    gcNote
  );
}
