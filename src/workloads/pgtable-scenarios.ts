/**
 * Named kvm_pgtable scenarios: short, fixed sequences of stage-2 operations that each exercise one
 * rule of the behaviour spec (sections 4 and 5), run on a chosen kernel and rendered as a trace.
 * They back the golden-trace tests and the `s2sim trace <scenario>` command.
 *
 * Every scenario uses a 4K granule, a 40-bit IPA space (3 levels from L1, two concatenated L1
 * pages) and the Kunpeng 920 CPU (no FWB) unless its description says otherwise. Guest addresses
 * lie in the 1022 GiB region of the IPA space; the guest memory they map lies at host PA 128 GiB
 * (0x20_0000_0000 and up), apart from the table pages, which come from the 1 GiB table pool.
 *
 * A scenario's setup (building the state it starts from) is not traced; the trace holds the
 * events of the operations the scenario is about, plus `#` note lines for returned values.
 */
import { type CpuFeatures, KUNPENG_920 } from "../arch/cpu.js";
import { GRANULES } from "../arch/granule.js";
import { stage2Geometry } from "../arch/geometry.js";
import { S2simError } from "../common/error.js";
import { EventBus } from "../common/events.js";
import { hex } from "../common/format.js";
import { PGTABLE_EVENT_KINDS, type PgtableEvent } from "../pgtable/events.js";
import { KERNEL_VERSIONS, type KernelVersion, pgtableKernel } from "../pgtable/kernel.js";
import { MemoryCache } from "../pgtable/memcache.js";
import { PhysMem } from "../pgtable/phys-mem.js";
import { PROT_DEVICE, PROT_R, PROT_RW, PROT_W, PROT_X } from "../pgtable/prot.js";
import { Stage2Pgtable } from "../pgtable/stage2.js";
import { formatPgtableEvent } from "../pgtable/trace-format.js";

/** Guest IPA base used by the scenarios: 1022 GiB, a 1G-aligned address in the second L1 page. */
export const SCENARIO_IPA = 0xff_8000_0000;
/** Host PA base of the guest memory the scenarios map: 128 GiB, 1G-aligned. */
export const SCENARIO_PA = 0x20_0000_0000;
/** IPA bits of the scenario VMs (KVM's default). */
export const SCENARIO_IPA_BITS = 40;

const SZ_4K = 0x1000;
const SZ_2M = 0x20_0000;
const SZ_1G = 0x4000_0000;

/** What a scenario's `run` gets: a fresh stage-2 table and the means to trace it. */
export interface PgtableScenarioContext {
  /** The kernel the scenario runs on. */
  readonly kernel: KernelVersion;
  /** The table under test, freshly initialised (init is not traced). */
  readonly pgt: Stage2Pgtable;
  /** Table-page memory backing {@link pgt}. */
  readonly mem: PhysMem;
  /** A vCPU memcache topped up the way user_mem_abort does (to capacity). */
  readonly mc: MemoryCache;
  /** Runs `body` without tracing its events: the state the scenario starts from. */
  setup(body: () => void): void;
  /** Appends a `# text` line to the trace, e.g. a value an operation returned. */
  note(text: string): void;
}

/** One named scenario. */
export interface PgtableScenario {
  /** Kebab-case name, used on the command line and for golden files. */
  readonly name: string;
  /** One line: what the spec says should happen, with the spec section. */
  readonly description: string;
  /** Host FEAT_S2FWB forced by the scenario; when absent the caller's choice (default off) applies. */
  readonly fwb?: boolean;
  /** Drives the operations; setup goes through {@link PgtableScenarioContext.setup}. */
  run(ctx: PgtableScenarioContext): void;
}

/** Options of {@link runPgtableScenario}. */
export interface PgtableScenarioOptions {
  /** Host FEAT_S2FWB, for scenarios that do not fix it themselves (default false). */
  readonly fwb?: boolean;
  /** The host CPU's features (default: the Kunpeng 920's); `fwb` above, if given, decides FWB. */
  readonly cpu?: CpuFeatures;
}

/** Everything a scenario run produced, for tests and tools that inspect the final state. */
export interface PgtableScenarioRun {
  readonly scenario: PgtableScenario;
  /** Formatted trace lines (see {@link runPgtableScenario}). */
  readonly lines: string[];
  /** The traced events, in order (note lines are not events). */
  readonly events: PgtableEvent[];
  /** The table after the scenario. */
  readonly pgt: Stage2Pgtable;
  /** Table-page memory after the scenario. */
  readonly mem: PhysMem;
}

/** Fails the scenario when a setup step does not return 0: the starting state would be wrong. */
function ok(ret: number, what: string): void {
  if (ret !== 0) throw new Error(`scenario setup failed: ${what} returned ${ret}`);
}

/** Maps [IPA + off, IPA + off + size) to PA + poff during setup; any failure aborts the scenario. */
function setupMap(ctx: PgtableScenarioContext, off: number, size: number, poff: number, prot: number): void {
  ok(ctx.pgt.map(SCENARIO_IPA + off, size, SCENARIO_PA + poff, prot, ctx.mc), `map ${hex(off)}`);
}

/** The scenarios, in the order the issue lists them. */
export const PGTABLE_SCENARIOS: readonly PgtableScenario[] = [
  {
    name: "map-page",
    description:
      "First 4K map: allocate and link an L2 and an L3 table, store the page with get_page; no TLBI; v5.14 adds a 4K D-CMO just before the store (4.2, 4.5).",
    run(ctx) {
      ctx.pgt.map(SCENARIO_IPA, SZ_4K, SCENARIO_PA, PROT_RW, ctx.mc);
    },
  },
  {
    name: "map-block-2m",
    description:
      "First 2M map: one new L2 table, then a 2M block at L2; no TLBI; v5.14 adds a 2M D-CMO before the block store (1.5, 4.2, 4.5).",
    run(ctx) {
      ctx.pgt.map(SCENARIO_IPA, SZ_2M, SCENARIO_PA, PROT_RW, ctx.mc);
    },
  },
  {
    name: "map-block-1g",
    description:
      "First 1G map: a 1G block stored straight into the L1 entry, no table allocated, no TLBI; v5.14 adds a 1G D-CMO before the store (1.5, 4.2, 4.5).",
    run(ctx) {
      ctx.pgt.map(SCENARIO_IPA, SZ_1G, SCENARIO_PA, PROT_RW, ctx.mc);
    },
  },
  {
    name: "map-same",
    description:
      "Re-mapping an identical 4K leaf returns -EAGAIN and changes nothing: no store, no TLBI, no CMO in either kernel (4.2 step 3).",
    run(ctx) {
      ctx.setup(() => setupMap(ctx, 0, SZ_4K, 0, PROT_RW));
      ctx.pgt.map(SCENARIO_IPA, SZ_4K, SCENARIO_PA, PROT_RW, ctx.mc);
    },
  },
  {
    name: "map-perms-only",
    description:
      "A map differing only in permissions returns -EAGAIN with no change, in both directions: RO over RW keeps RW, RW over RO stays RO (4.2 step 3).",
    run(ctx) {
      ctx.setup(() => {
        setupMap(ctx, 0, SZ_4K, 0, PROT_RW);
        setupMap(ctx, SZ_4K, SZ_4K, SZ_4K, PROT_R);
      });
      ctx.pgt.map(SCENARIO_IPA, SZ_4K, SCENARIO_PA, PROT_R, ctx.mc);
      ctx.pgt.map(SCENARIO_IPA + SZ_4K, SZ_4K, SCENARIO_PA + SZ_4K, PROT_RW, ctx.mc);
      const rw = ctx.pgt.lookup(SCENARIO_IPA);
      const ro = ctx.pgt.lookup(SCENARIO_IPA + SZ_4K);
      ctx.note(`leaf ${hex(SCENARIO_IPA)} W=${(rw.lo & 0x80) !== 0 ? 1 : 0} (still RW)`);
      ctx.note(`leaf ${hex(SCENARIO_IPA + SZ_4K)} W=${(ro.lo & 0x80) !== 0 ? 1 : 0} (still RO)`);
    },
  },
  {
    name: "map-different-leaf",
    description:
      "A 4K map with a new OA over a valid page: break-before-make = invalidate, TLBI by IPA at L3, put_page, (v5.14: 4K D-CMO), store, get_page (4.2 steps 3-5).",
    run(ctx) {
      ctx.setup(() => setupMap(ctx, 0, SZ_4K, 0, PROT_RW));
      ctx.pgt.map(SCENARIO_IPA, SZ_4K, SCENARIO_PA + 0x10_0000, PROT_RW, ctx.mc);
    },
  },
  {
    name: "map-page-in-1g-block",
    description:
      "A 4K map inside a 1G block splits it: new L2 table, invalidate the block, TLBI by IPA at L1, put, link the L2 table, then a new L3 table and the page; the rest of the block is left unmapped (4.2 step 5).",
    run(ctx) {
      ctx.setup(() => setupMap(ctx, 0, SZ_1G, 0, PROT_RW));
      ctx.pgt.map(SCENARIO_IPA + SZ_2M + SZ_4K, SZ_4K, SCENARIO_PA + SZ_2M + SZ_4K, PROT_RW, ctx.mc);
    },
  },
  {
    name: "coalesce-1g",
    description:
      "A 1G map over an L2 table holding two L3 tables and four pages: invalidate the L1 entry, one TLBI of the whole VMID, a put per leaf, L3 tables freed; v5.12 frees the L2 table then stores the block (no CMO); v5.14 does one 1G D-CMO, stores the block, then frees the L2 table (4.3).",
    run(ctx) {
      ctx.setup(() => {
        setupMap(ctx, 0, SZ_4K, 0, PROT_RW);
        setupMap(ctx, SZ_4K, SZ_4K, SZ_4K, PROT_RW);
        setupMap(ctx, 3 * SZ_4K, SZ_4K, 3 * SZ_4K, PROT_RW);
        setupMap(ctx, 5 * SZ_2M, SZ_4K, 5 * SZ_2M, PROT_RW);
      });
      ctx.pgt.map(SCENARIO_IPA, SZ_1G, SCENARIO_PA, PROT_RW, ctx.mc);
    },
  },
  {
    name: "coalesce-2m",
    description:
      "A 2M map over an L3 table holding three pages: invalidate the L2 entry, TLBI whole VMID, a put per leaf; v5.12 frees the L3 table then stores the block; v5.14 does one 2M D-CMO, stores the block, then frees the L3 table (4.3).",
    run(ctx) {
      ctx.setup(() => {
        setupMap(ctx, 0, SZ_4K, 0, PROT_RW);
        setupMap(ctx, 2 * SZ_4K, SZ_4K, 2 * SZ_4K, PROT_RW);
        setupMap(ctx, 511 * SZ_4K, SZ_4K, 511 * SZ_4K, PROT_RW);
      });
      ctx.pgt.map(SCENARIO_IPA, SZ_2M, SCENARIO_PA, PROT_RW, ctx.mc);
    },
  },
  {
    name: "unmap-frees-tables",
    description:
      "Unmapping the only two pages of a subtree: per page invalidate, TLBI by IPA at L3, put, 4K D-CMO (no FWB); then the empty L3 and L2 tables are unlinked (TLBI by IPA at the table's level), put and freed (5.1).",
    run(ctx) {
      ctx.setup(() => {
        setupMap(ctx, 0, SZ_4K, 0, PROT_RW);
        setupMap(ctx, SZ_4K, SZ_4K, SZ_4K, PROT_RW);
      });
      ctx.pgt.unmap(SCENARIO_IPA, 2 * SZ_4K);
    },
  },
  {
    name: "unmap-partial-block",
    description:
      "Unmapping 4K inside a 2M block unmaps the whole block: invalidate, TLBI by IPA at L2, put, then a 2M D-CMO after the TLBI; the emptied L2 table is then freed (5.1).",
    run(ctx) {
      ctx.setup(() => setupMap(ctx, 0, SZ_2M, 0, PROT_RW));
      ctx.pgt.unmap(SCENARIO_IPA + 0x5000, SZ_4K);
    },
  },
  {
    name: "relax-perms-w",
    description:
      "relax_perms adding W to a RO page: the leaf is rewritten with W, then TLBI by IPA at L3; no CMO in either kernel (5.3).",
    run(ctx) {
      ctx.setup(() => setupMap(ctx, 0, SZ_4K, 0, PROT_R));
      ctx.pgt.relaxPerms(SCENARIO_IPA, PROT_W);
    },
  },
  {
    name: "relax-perms-x",
    description:
      "relax_perms adding X to a 2M block: v5.14 invalidates the I-cache over the leaf granule (2M) before clearing XN, v5.12 does no CMO; then TLBI by IPA at L2 (4.5 item 2, 5.3).",
    run(ctx) {
      ctx.setup(() => setupMap(ctx, 0, SZ_2M, 0, PROT_RW));
      ctx.pgt.relaxPerms(SCENARIO_IPA + 0x3000, PROT_X);
    },
  },
  {
    name: "relax-perms-missing",
    description:
      "relax_perms on an IPA with no valid leaf changes nothing, returns 0 and still TLBIs by IPA with level 0 (5.3).",
    run(ctx) {
      ctx.setup(() => setupMap(ctx, 0, SZ_4K, 0, PROT_R));
      ctx.pgt.relaxPerms(SCENARIO_IPA + SZ_4K, PROT_W);
    },
  },
  {
    name: "wrprotect",
    description:
      "wrprotect over a range clears W on every valid leaf (pages and blocks), skips RO leaves, with no TLBI and no CMO (5.2).",
    run(ctx) {
      ctx.setup(() => {
        setupMap(ctx, 0, SZ_4K, 0, PROT_RW);
        setupMap(ctx, SZ_4K, SZ_4K, SZ_4K, PROT_R);
        setupMap(ctx, 2 * SZ_4K, SZ_4K, 2 * SZ_4K, PROT_RW | PROT_X);
        setupMap(ctx, SZ_2M, SZ_2M, SZ_2M, PROT_RW);
      });
      ctx.pgt.wrprotect(SCENARIO_IPA, 2 * SZ_2M);
    },
  },
  {
    name: "access-flag",
    description:
      "mkold clears AF (no TLBI), is_young then reads 0, mkyoung sets AF again (no TLBI), is_young reads 1; no CMO in either kernel (5.4).",
    run(ctx) {
      ctx.setup(() => setupMap(ctx, 0, SZ_4K, 0, PROT_RW));
      const old1 = ctx.pgt.mkold(SCENARIO_IPA);
      ctx.note(`mkold old pte = ${hex(old1)}`);
      ctx.note(`is_young = ${ctx.pgt.isYoung(SCENARIO_IPA)}`);
      const old2 = ctx.pgt.mkyoung(SCENARIO_IPA);
      ctx.note(`mkyoung old pte = ${hex(old2)}`);
      ctx.note(`is_young = ${ctx.pgt.isYoung(SCENARIO_IPA)}`);
    },
  },
  {
    name: "flush",
    description:
      "flush without FWB cleans+invalidates to the PoC the whole granule of each valid cacheable leaf (4K page, 2M block), skips device leaves, no TLBI (5.6).",
    fwb: false,
    run(ctx) {
      ctx.setup(() => {
        setupMap(ctx, 0, SZ_4K, 0, PROT_RW);
        setupMap(ctx, SZ_4K, SZ_4K, 0x8000_0000, PROT_RW | PROT_DEVICE);
        setupMap(ctx, SZ_2M, SZ_2M, SZ_2M, PROT_RW);
      });
      ctx.pgt.flush(SCENARIO_IPA, 2 * SZ_2M);
    },
  },
  {
    name: "flush-with-fwb",
    description: "flush on a host with FEAT_S2FWB returns 0 at once: no walk, no CMO, no TLBI (5.6).",
    fwb: true,
    run(ctx) {
      ctx.setup(() => {
        setupMap(ctx, 0, SZ_4K, 0, PROT_RW);
        setupMap(ctx, SZ_2M, SZ_2M, SZ_2M, PROT_RW);
      });
      ctx.pgt.flush(SCENARIO_IPA, 2 * SZ_2M);
    },
  },
  {
    name: "map-no-memcache",
    description:
      "A 4K map needing tables with a NULL memcache (the change_pte path) returns -ENOMEM and changes nothing (4.2 walk_leaf step 3).",
    run(ctx) {
      ctx.pgt.map(SCENARIO_IPA, SZ_4K, SCENARIO_PA, PROT_RW, null);
    },
  },
  {
    name: "map-empty-memcache",
    description:
      "A 4K map needing tables with an empty memcache returns -ENOMEM and changes nothing; with one page the L2 table is linked before -ENOMEM (4.2 walk_leaf step 4).",
    run(ctx) {
      const empty = new MemoryCache(ctx.mem);
      ctx.pgt.map(SCENARIO_IPA, SZ_4K, SCENARIO_PA, PROT_RW, empty);
      // A cache that holds one page: enough for the L2 table, not for the L3 table.
      const one = new MemoryCache(ctx.mem, 1);
      ctx.setup(() => ok(one.topup(1) === 1 ? 0 : -1, "memcache top-up"));
      ctx.pgt.map(SCENARIO_IPA, SZ_4K, SCENARIO_PA, PROT_RW, one);
    },
  },
  {
    name: "destroy",
    description:
      "destroy puts every present entry, frees each table after its children and then the two L1 pages; no TLBI, no CMO (5.7).",
    run(ctx) {
      ctx.setup(() => {
        setupMap(ctx, 0, SZ_4K, 0, PROT_RW);
        setupMap(ctx, SZ_2M, SZ_2M, SZ_2M, PROT_RW);
        setupMap(ctx, SZ_1G, SZ_1G, SZ_1G, PROT_RW);
      });
      ctx.pgt.destroy();
    },
  },
];

/** The scenario called `name`; unknown names are an {@link S2simError} listing the valid ones. */
export function pgtableScenario(name: string): PgtableScenario {
  const s = PGTABLE_SCENARIOS.find((x) => x.name === name);
  if (s === undefined) {
    throw new S2simError(
      "unknown-scenario",
      `unknown scenario '${name}': valid scenarios are ${PGTABLE_SCENARIOS.map((x) => x.name).join(", ")}`,
    );
  }
  return s;
}

/**
 * Runs scenario `name` on `kernel` and returns the run: the trace and the final table state.
 * Throws {@link S2simError} for an unknown scenario or kernel version.
 */
export function executePgtableScenario(
  name: string,
  kernel: KernelVersion,
  opts: PgtableScenarioOptions = {},
): PgtableScenarioRun {
  const scenario = pgtableScenario(name);
  if (!KERNEL_VERSIONS.includes(kernel)) {
    throw new S2simError(
      "unknown-kernel",
      `unknown kernel '${String(kernel)}': use ${KERNEL_VERSIONS.join(" or ")}`,
    );
  }
  const cpu: CpuFeatures = {
    ...(opts.cpu ?? KUNPENG_920),
    fwb: scenario.fwb ?? opts.fwb ?? opts.cpu?.fwb ?? false,
  };
  const g = GRANULES[4096];
  const geo = stage2Geometry(g, SCENARIO_IPA_BITS);
  const mem = new PhysMem(g);
  const bus = new EventBus<PgtableEvent>(PGTABLE_EVENT_KINDS);
  const pgt = new Stage2Pgtable({ geometry: geo, kernel: pgtableKernel(kernel), cpu, mem, events: bus });
  const mc = new MemoryCache(mem);
  if (mc.topup(geo.cacheMinPages) < 0) throw new Error("scenario setup failed: memcache top-up");

  const lines: string[] = [];
  const events: PgtableEvent[] = [];
  let tracing = true;
  bus.subscribe((e) => {
    if (!tracing) return;
    events.push(e);
    lines.push(formatPgtableEvent(e));
  });
  const ctx: PgtableScenarioContext = {
    kernel,
    pgt,
    mem,
    mc,
    setup(body) {
      const was = tracing;
      tracing = false;
      try {
        body();
      } finally {
        tracing = was;
      }
    },
    note(text) {
      if (tracing) lines.push(`# ${text}`);
    },
  };
  scenario.run(ctx);
  return { scenario, lines, events, pgt, mem };
}

/**
 * Runs scenario `name` on `kernel` and returns its trace, one formatted event per line (see
 * formatPgtableEvent), with `# ` lines for values the operations returned. Setup is not traced.
 */
export function runPgtableScenario(
  name: string,
  kernel: KernelVersion,
  opts: PgtableScenarioOptions = {},
): string[] {
  return executePgtableScenario(name, kernel, opts).lines;
}
