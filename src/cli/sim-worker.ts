/**
 * Worker thread of the simulation pool (sim-pool.ts): runs one simulated selftest and posts back
 * its progress and its SimReport, or its error (a checker's violation as data, thrown again by
 * the pool). Started with new URL("./sim-worker.js", import.meta.url).
 */
import { parentPort, workerData } from "node:worker_threads";
import type { CheckName } from "../check/rules.js";
import { CheckFailure, type Violation } from "../check/violation.js";
import { S2simError } from "../common/error.js";
import type { CostProfile } from "../sim/profile.js";
import type { PageTableTestConfig } from "../workloads/page-table-test.js";
import { type SimReport, simulatePageTableTest } from "../workloads/page-table-sim.js";

/** What the main thread hands a worker. */
export interface WorkerJob {
  readonly config: PageTableTestConfig;
  /**
   * The profile the main thread loaded, validated, with the `--set` changes applied: a worker
   * never reads it again (a pipe can be read once), and a structured clone keeps every number.
   */
  readonly profile: CostProfile;
  /** The first this many timed stages (default: all). */
  readonly stageCount?: number;
  /** Checkers to run, stopping at the first violation (default: none). */
  readonly checks?: ReadonlySet<CheckName>;
}

/** What a worker posts back. */
export type WorkerMessage =
  | { readonly type: "progress"; readonly fraction: number }
  | { readonly type: "done"; readonly report: SimReport }
  | {
      readonly type: "error";
      /** Set for S2simErrors (bad input), which the CLI reports in one line. */
      readonly code: string | null;
      readonly message: string;
      readonly stack: string | null;
      /** A checker's violation, which the main thread throws again as a CheckFailure. */
      readonly violation: Violation | null;
    };

function run(port: NonNullable<typeof parentPort>, job: WorkerJob): void {
  const post = (m: WorkerMessage): void => port.postMessage(m);
  try {
    let last = -1;
    const report = simulatePageTableTest(
      job.config,
      job.profile,
      (_stage, fraction) => {
        // The runner reports every 64Ki accesses; pass on changes of at least 0.1 %.
        if (fraction - last >= 0.001 || fraction >= 1) {
          last = fraction;
          post({ type: "progress", fraction });
        }
      },
      job.stageCount,
      job.checks === undefined ? undefined : { checks: job.checks, mode: "fail-fast" },
    );
    post({ type: "done", report });
  } catch (err) {
    if (err instanceof S2simError) {
      const violation = err instanceof CheckFailure ? err.violation : null;
      post({ type: "error", code: err.code, message: err.message, stack: null, violation });
    } else {
      const e = err instanceof Error ? err : new Error(String(err));
      post({ type: "error", code: null, message: e.message, stack: e.stack ?? null, violation: null });
    }
  }
}

if (parentPort) run(parentPort, workerData as WorkerJob);
