/**
 * The checkers' cost: kvm_page_table_test (all three stages, anonymous memory unless told) run on the
 * simulated machine without checkers and then with every checker on, host seconds for each.
 */
import { parseChecks } from "../src/check/rules.js";
import { checkMemory, memoryBudget } from "../src/cli/memory.js";
import { sizeName } from "../src/common/format.js";
import { loadProfile } from "../src/sim/profile.js";
import { pageTableTestFootprint } from "../src/workloads/memory-estimate.js";
import { simulatePageTableTest } from "../src/workloads/page-table-sim.js";

/** What `bench check` reports. */
export interface CheckBenchResult {
  readonly benchmark: "check";
  readonly kernel: "v5.12" | "v5.14";
  readonly backing: string;
  readonly mem_bytes: number;
  readonly vcpus: number;
  /** Host seconds for the whole selftest, checkers off and all on (best of `runs`). */
  readonly plain_host_s: number;
  readonly checked_host_s: number;
  /** checked / plain. */
  readonly overhead: number;
  readonly violations: number;
}

/** Runs the selftest `runs` times each way. */
export function benchCheck(opts: {
  size: number;
  kernel: "v5.12" | "v5.14";
  runs: number;
  vcpus?: number;
  backing?: string;
}): CheckBenchResult {
  const profile = loadProfile("kunpeng920");
  const config = {
    kernel: opts.kernel,
    backing: opts.backing ?? "anonymous",
    memBytes: opts.size,
    vcpus: opts.vcpus ?? 8,
  };
  // Refused before anything is allocated if it cannot fit, as s2sim refuses a run.
  checkMemory(
    pageTableTestFootprint(config, profile),
    memoryBudget(undefined, process.platform, null),
    `the check benchmark at --size ${sizeName(config.memBytes)}`,
    "use a smaller --size",
  );
  const all = { checks: parseChecks("all"), mode: "collect" as const };
  // Both ways once at the smallest size first, so that neither is timed with a cold JIT.
  const warm = { ...config, memBytes: 2 ** 21 };
  simulatePageTableTest(warm, profile);
  simulatePageTableTest(warm, profile, undefined, 3, all);
  let plain = Infinity;
  let checked = Infinity;
  let violations = 0;
  for (let i = 0; i < opts.runs; i++) {
    let t = performance.now();
    simulatePageTableTest(config, profile);
    plain = Math.min(plain, (performance.now() - t) / 1000);
    t = performance.now();
    const r = simulatePageTableTest(config, profile, undefined, 3, all);
    checked = Math.min(checked, (performance.now() - t) / 1000);
    violations = r.check?.found ?? 0;
  }
  return {
    benchmark: "check",
    kernel: config.kernel,
    backing: config.backing,
    mem_bytes: config.memBytes,
    vcpus: config.vcpus,
    plain_host_s: round3(plain),
    checked_host_s: round3(checked),
    overhead: round3(checked / plain),
    violations,
  };
}

/** The text form. */
export function formatCheck(r: CheckBenchResult): string {
  return (
    `checkers: kvm_page_table_test ${r.backing} ${sizeName(r.mem_bytes)} x ${r.vcpus} vCPUs, ${r.kernel}: ` +
    `${r.plain_host_s} s without checkers, ${r.checked_host_s} s with all on (x${r.overhead}), ` +
    `${r.violations} violations\n`
  );
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
