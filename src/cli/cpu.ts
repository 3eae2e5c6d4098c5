/**
 * `--cpu` (and its shorthand `--fwb`): the profile's machine, the Kunpeng 920, with some of the CPU
 * features the stage-2 code consults changed. The profile prices work; the features decide which
 * work the kernels do (and what the checkers allow), so a changed CPU runs on the same costs.
 */
import { type CpuFeatures, type IcachePolicy, KUNPENG_920 } from "../arch/cpu.js";
import { S2simError } from "../common/error.js";
import { printable } from "../common/format.js";
import { injectedBugInfo } from "../pgtable/bugs.js";

/** One feature `--cpu` may change: its name on the command line, what it does, and a note for people. */
interface CpuChange {
  readonly name: string;
  readonly apply: (cpu: CpuFeatures) => CpuFeatures;
  readonly note: string;
}

const ICACHE_POLICIES: readonly IcachePolicy[] = ["pipt", "vipt", "vpipt"];

/** The changes `--cpu` knows, in the order they are listed and applied. */
const CPU_CHANGES: readonly CpuChange[] = [
  {
    name: "fwb",
    apply: (c) => ({ ...c, fwb: true }),
    note:
      "with FEAT_S2FWB, stage 2 forces write-back memory, so KVM's D-cache clean+invalidate calls " +
      "do nothing",
  },
  {
    name: "ttl",
    apply: (c) => ({ ...c, ttl: true }),
    note:
      "with FEAT_TTL, a TLBI by IPA's level hint names the only leaf level it removes, and a hinted " +
      "one leaves the walk caches' entries of a table",
  },
  {
    name: "dic",
    apply: (c) => ({ ...c, dic: true }),
    note:
      "with CTR_EL0.DIC, no I-cache invalidation is needed for D/I coherence: KVM maps normal " +
      "memory executable from the start",
  },
  {
    name: "nvhe",
    apply: (c) => ({ ...c, vhe: false }),
    note:
      "KVM in nVHE mode (the host kernel at EL1), which decides a VPIPT I-cache's maintenance; " +
      "exits and entries keep the profile's costs, which are those of VHE",
  },
  ...ICACHE_POLICIES.map((p): CpuChange => ({
    name: `icache=${p}`,
    apply: (c) => ({ ...c, icache: p }),
    note: `a ${p.toUpperCase()} I-cache (CTR_EL0.L1Ip)${p === "vipt" ? ", treated as aliasing" : ""}`,
  })),
];

/** The CPU a run uses, and the changes from the profile's machine that made it (in list order). */
export interface CpuChoice {
  readonly cpu: CpuFeatures;
  /** Canonical names of the features changed ("fwb", "ttl", "icache=vipt"...); empty: the Kunpeng 920. */
  readonly changes: readonly string[];
}

/**
 * Parses `--cpu` (a comma-separated list of changes, e.g. `ttl,icache=vipt`; the lists of several
 * `--cpu` joined by commas) with `--fwb` (the same as `fwb` in the list). Unknown names, empty
 * items and two I-cache policies are S2simErrors.
 */
export function parseCpu(list: string | undefined, fwb: boolean | undefined): CpuChoice {
  const asked = new Set<string>(fwb === true ? ["fwb"] : []);
  for (const item of list === undefined ? [] : list.split(",")) {
    const name = item.trim().toLowerCase();
    if (name === "")
      throw new S2simError("bad-cpu", `--cpu: an empty item in the list '${printable(list!)}'`);
    if (!CPU_CHANGES.some((c) => c.name === name)) {
      throw new S2simError(
        "bad-cpu",
        `--cpu: unknown CPU feature '${printable(item.trim())}'; known: ${CPU_CHANGES.map((c) => c.name).join(", ")}`,
      );
    }
    asked.add(name);
  }
  const icache = [...asked].filter((n) => n.startsWith("icache="));
  if (icache.length > 1) {
    throw new S2simError("bad-cpu", `--cpu: one I-cache policy at most, not ${icache.join(" and ")}`);
  }
  let cpu = KUNPENG_920;
  const changes: string[] = [];
  for (const c of CPU_CHANGES) {
    if (!asked.has(c.name)) continue;
    const next = c.apply(cpu);
    // What the Kunpeng 920 already has (its PIPT I-cache) changes nothing, and is not listed.
    if (sameCpu(next, cpu)) continue;
    cpu = next;
    changes.push(c.name);
  }
  return { cpu, changes };
}

function sameCpu(a: CpuFeatures, b: CpuFeatures): boolean {
  return (Object.keys(a) as Array<keyof CpuFeatures>).every((k) => a[k] === b[k]);
}

/** The VM options of a CPU choice (none for the profile's own machine). */
export function cpuVmOptions(choice: CpuChoice): { vmOptions?: { cpu: CpuFeatures } } {
  return choice.changes.length === 0 ? {} : { vmOptions: { cpu: choice.cpu } };
}

/** What the choice changes, a line per feature for the output's header (none when nothing is). */
export function cpuNotes(choice: CpuChoice): string[] {
  return choice.changes.map(
    (name) => `CPU changed, ${name}: ${CPU_CHANGES.find((c) => c.name === name)!.note}`,
  );
}

/**
 * Refuses an injected bug that only leaves out D-cache maintenance on a CPU with FEAT_S2FWB, where
 * that maintenance is a no-op: the run could not tell the bug from the kernel. (Its I-cache part
 * matters only to code the guest executes, and neither the selftest nor the scenarios execute
 * anything from guest memory: without DIC nothing is mapped executable, with it none is owed.)
 */
export function refuseCmoBugWithFwb(inject: string | undefined, choice: CpuChoice): void {
  if (inject === undefined || !choice.cpu.fwb || injectedBugInfo(inject)?.cmo !== true) return;
  throw new S2simError(
    "bad-inject",
    `bug '${inject}' leaves out a leaf's CMOs: with FEAT_S2FWB (fwb) the D-cache clean is a no-op and ` +
      `the guest executes nothing here, so on this CPU it changes nothing`,
  );
}

/** The `--cpu` values, for help texts. */
export const CPU_CHANGE_NAMES: readonly string[] = CPU_CHANGES.map((c) => c.name);
