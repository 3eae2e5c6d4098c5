/**
 * The checkers' cost: kvm_page_table_test (all three stages, anonymous memory unless told) run on the
 * simulated machine without checkers and then with every checker on, host seconds for each.
 */
import { parseChecks } from "../src/check/rules.js";
import { loadProfile } from "../src/sim/profile.js";
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
  let plain = Infinity;
  let checked = Infinity;
  let violations = 0;
  for (let i = 0; i < opts.runs; i++) {
    let t = performance.now();
    simulatePageTableTest(config, profile);
    plain = Math.min(plain, (performance.now() - t) / 1000);
    t = performance.now();
    const r = simulatePageTableTest(config, profile, undefined, 3, {
      checks: parseChecks("all"),
      mode: "collect",
    });
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
    `checkers: kvm_page_table_test ${r.backing} ${r.mem_bytes / 2 ** 30} GiB x ${r.vcpus} vCPUs, ${r.kernel}: ` +
    `${r.plain_host_s} s without checkers, ${r.checked_host_s} s with all on (x${r.overhead}), ` +
    `${r.violations} violations\n`
  );
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
