/** `s2sim trace`: the event trace of a named page-table scenario. */
import { S2simError } from "../common/error.js";
import { KERNEL_VERSIONS, type KernelVersion } from "../pgtable/kernel.js";
import { PGTABLE_SCENARIOS, pgtableScenario, runPgtableScenario } from "../workloads/pgtable-scenarios.js";
import { cpuNotes, parseCpu } from "./cpu.js";

/** Renders `s2sim trace <scenario>` (or the list of scenarios for `list`). */
export function traceCommand(
  name: string,
  opts: { kernel: KernelVersion | "both"; fwb?: boolean; cpu?: string },
): string {
  if (name === "list") {
    const width = Math.max(...PGTABLE_SCENARIOS.map((s) => s.name.length));
    return PGTABLE_SCENARIOS.map((s) => `${s.name.padEnd(width)}  ${s.description}`).join("\n");
  }
  const scenario = pgtableScenario(name);
  const cpu = parseCpu(opts.cpu, opts.fwb);
  const kernels = opts.kernel === "both" ? KERNEL_VERSIONS : [opts.kernel];
  // A scenario that fixes FWB itself runs with its own (its description says which); asking for
  // the other is refused rather than left out without a word.
  const otherFwb = scenario.fwb === false && cpu.changes.includes("fwb");
  if (otherFwb) {
    const withFwb = PGTABLE_SCENARIOS.find((s) => s.name === `${name}-with-fwb`);
    throw new S2simError(
      "bad-cpu",
      `trace ${name} is the case without FEAT_S2FWB, so it takes no --fwb or --cpu fwb` +
        (withFwb !== undefined ? `; 'trace ${withFwb.name}' shows it with FWB` : ""),
    );
  }
  const notes = cpuNotes({
    cpu: cpu.cpu,
    changes: cpu.changes.filter((c) => scenario.fwb === undefined || c !== "fwb"),
  });
  const out: string[] = [`# ${scenario.name}: ${scenario.description}`, ...notes.map((n) => `# ${n}`)];
  for (const k of kernels) {
    out.push(`\n== ${k} ==`);
    out.push(...runPgtableScenario(name, k, { cpu: cpu.cpu }));
  }
  return out.join("\n");
}
