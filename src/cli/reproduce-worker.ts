/**
 * Worker thread of `s2sim reproduce`: runs one simulated selftest and posts back its progress and
 * its SimReport. Started by reproduce.ts with new URL("./reproduce-worker.js", import.meta.url).
 */
import { parentPort, workerData } from "node:worker_threads";
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
    };

function run(port: NonNullable<typeof parentPort>, job: WorkerJob): void {
  const post = (m: WorkerMessage): void => port.postMessage(m);
  try {
    let last = -1;
    const report = simulatePageTableTest(job.config, job.profile, (_stage, fraction) => {
      // The runner reports every 64Ki accesses; pass on changes of at least 0.1 %.
      if (fraction - last >= 0.001 || fraction >= 1) {
        last = fraction;
        post({ type: "progress", fraction });
      }
    });
    post({ type: "done", report });
  } catch (err) {
    if (err instanceof S2simError) {
      post({ type: "error", code: err.code, message: err.message, stack: null });
    } else {
      const e = err instanceof Error ? err : new Error(String(err));
      post({ type: "error", code: null, message: e.message, stack: e.stack ?? null });
    }
  }
}

if (parentPort) run(parentPort, workerData as WorkerJob);
