import type { SimReport, SimStageReport } from "../src/workloads/page-table-sim.js";

/**
 * A stage report without the figures that only say how the simulator sped itself up (the
 * fast-forward's leaves, the access runs' accesses; with `steps`, the engine's steps too), which
 * runs that must agree on everything else may differ in.
 */
export function withoutSpeedFigures(s: SimStageReport, steps = false): SimStageReport {
  return {
    ...s,
    fast_forward_leaves: 0,
    hit_run_accesses: 0,
    flow_run_accesses: 0,
    ...(steps ? { engine_steps: 0 } : {}),
  };
}

/** A report as JSON without the speed figures (see {@link withoutSpeedFigures}). */
export function reportWithoutSpeedFigures(r: SimReport, steps = false): string {
  return JSON.stringify({ ...r, stages: r.stages.map((s) => withoutSpeedFigures(s, steps)) });
}
