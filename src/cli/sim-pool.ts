/**
 * Simulations on worker threads, several at once: reproduce's six (or more with --sweep), and a
 * page-table-test --sweep's runs. Each simulation is deterministic, so how many run at once and in
 * which order change only the host time.
 */
import { Worker } from "node:worker_threads";
import { CheckFailure, type Violation } from "../check/violation.js";
import { S2simError } from "../common/error.js";
import type { SimReport } from "../workloads/page-table-sim.js";
import type { WorkerJob, WorkerMessage } from "./sim-worker.js";

/** One simulation of a pool. */
export interface PoolJob extends WorkerJob {
  /** What errors call it ("-m 4 -s anonymous_thp -b 20G -v 40 on v5.12"). */
  readonly name: string;
  /** What a checker's violation in it is named by, as far as the command runs several. */
  readonly names?: Pick<Violation, "kernel" | "guestMode" | "setting">;
  /** Its share of the whole work, for the progress (e.g. its guest accesses). */
  readonly weight: number;
}

/** A simulation's report, and the host seconds from its worker's start to it. */
export interface PoolResult {
  readonly report: SimReport;
  readonly host_s: number;
}

/** What {@link runPool} tells its caller while it runs. */
export interface PoolHooks {
  /** The share of the work done (by weight) and the simulations finished. */
  readonly onProgress?: (overall: number, done: number) => void;
  /** Simulation `i` finished with `result` (called in the order they finish). */
  readonly onDone?: (i: number, result: PoolResult) => void;
}

/**
 * Runs every job on its own worker thread, at most `workers` at a time, started in the order of
 * `order` (job indexes: the longest first, so the last to start ends about when the others do);
 * the results come back in job order. The first failure stops the others and rejects: a checker's
 * violation as a CheckFailure, bad input as an S2simError, anything else as an Error naming the job.
 */
export function runPool(
  jobs: readonly PoolJob[],
  order: readonly number[],
  workers: number,
  hooks: PoolHooks = {},
): Promise<PoolResult[]> {
  const total = jobs.reduce((a, j) => a + j.weight, 0);
  const fractions = jobs.map(() => 0);
  const results: Array<PoolResult | undefined> = jobs.map(() => undefined);
  const queue = [...order];
  const running = new Set<Worker>();
  let done = 0;
  let failed = false;
  const progress = (): void =>
    hooks.onProgress?.(
      total > 0 ? jobs.reduce((a, j, i) => a + j.weight * fractions[i]!, 0) / total : 0,
      done,
    );

  return new Promise((resolve, reject) => {
    if (jobs.length === 0) {
      resolve([]);
      return;
    }
    const fail = (err: Error): void => {
      if (failed) return;
      failed = true;
      for (const w of running) void w.terminate();
      running.clear();
      reject(err);
    };
    const startNext = (): void => {
      const i = queue.shift();
      if (i === undefined || failed) return;
      // Only what the worker needs crosses to it.
      const { config, profile, stageCount, checks } = jobs[i]!;
      const job: WorkerJob = {
        config,
        profile,
        ...(stageCount === undefined ? {} : { stageCount }),
        ...(checks === undefined ? {} : { checks }),
      };
      const begun = performance.now();
      const worker = new Worker(new URL("./sim-worker.js", import.meta.url), { workerData: job });
      running.add(worker);
      let finished = false;
      worker.on("message", (m: WorkerMessage) => {
        switch (m.type) {
          case "progress":
            fractions[i] = m.fraction;
            progress();
            break;
          case "done": {
            finished = true;
            const result = { report: m.report, host_s: (performance.now() - begun) / 1000 };
            results[i] = result;
            fractions[i] = 1;
            done++;
            hooks.onDone?.(i, result);
            progress();
            break;
          }
          case "error":
            finished = true;
            fail(
              m.violation !== null
                ? new CheckFailure({ ...m.violation, ...jobs[i]!.names })
                : m.code !== null
                  ? new S2simError(m.code, m.message)
                  : Object.assign(new Error(`simulation of ${jobs[i]!.name} failed: ${m.message}`), {
                      stack: m.stack ?? undefined,
                    }),
            );
            break;
        }
      });
      worker.on("error", (err) => fail(err));
      worker.on("exit", (code) => {
        running.delete(worker);
        if (failed) return;
        if (!finished) {
          fail(new Error(`the worker simulating ${jobs[i]!.name} exited with code ${code}`));
          return;
        }
        if (done === jobs.length) resolve(results as PoolResult[]);
        else startNext();
      });
    };
    progress();
    for (let k = 0; k < workers; k++) startNext();
  });
}
