/** `s2sim trace`: the event trace of a named page-table scenario. */
import { KERNEL_VERSIONS, type KernelVersion } from "../pgtable/kernel.js";
import { PGTABLE_SCENARIOS, pgtableScenario, runPgtableScenario } from "../workloads/pgtable-scenarios.js";

/** Renders `s2sim trace <scenario>` (or the list of scenarios for `list`). */
export function traceCommand(name: string, opts: { kernel: KernelVersion | "both"; fwb?: boolean }): string {
  if (name === "list") {
    const width = Math.max(...PGTABLE_SCENARIOS.map((s) => s.name.length));
    return PGTABLE_SCENARIOS.map((s) => `${s.name.padEnd(width)}  ${s.description}`).join("\n");
  }
  const scenario = pgtableScenario(name);
  const kernels = opts.kernel === "both" ? KERNEL_VERSIONS : [opts.kernel];
  const out: string[] = [`# ${scenario.name}: ${scenario.description}`];
  for (const k of kernels) {
    out.push(`\n== ${k} ==`);
    out.push(...runPgtableScenario(name, k, { fwb: opts.fwb ?? false }));
  }
  return out.join("\n");
}
