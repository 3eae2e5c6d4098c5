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

/** At most this many simulations at once (worker threads). */
export const MAX_WORKERS = 6;

/**
 * How many simulations may run at once, at most `max`: the most whose largest estimated peaks
 * (`needs`, bytes) fit in `budget` bytes together; at least one (whether that one fits is the
 * caller's memory check).
 */
export function workersThatFit(needs: readonly number[], budget: number, max: number): number {
  const largest = [...needs].sort((a, b) => b - a);
  let n = Math.max(1, Math.min(max, largest.length));
  const together = (k: number): number => largest.slice(0, k).reduce((a, b) => a + b, 0);
  while (n > 1 && together(n) > budget) n--;
  return n;
}

/**
 * Runs every job on its own worker thread, at most `workers` at a time, started in the order of
 * `order` (a permutation of the job indexes: the longest first, so the last to start ends about
 * when the others do); the results come back in job order. If jobs fail, the failure reported is
 * that of the first failing job in job order, whatever finished first, so that how many run at
 * once changes only the host time: once job i fails, the jobs after it stop, those before it run
 * on. A checker's violation comes back as a CheckFailure named by its job's `names`, bad input as
 * an S2simError and anything else as an Error, both prefixed by the job's name when there are
 * several jobs.
 */
export function runPool(
  jobs: readonly PoolJob[],
  order: readonly number[],
  workers: number,
  hooks: PoolHooks = {},
): Promise<PoolResult[]> {
  if (
    order.length !== jobs.length ||
    new Set(order).size !== jobs.length ||
    order.some((i) => !(i in jobs))
  ) {
    throw new Error(`runPool: order ${order.join(",")} is not a permutation of ${jobs.length} jobs`);
  }
  const total = jobs.reduce((a, j) => a + j.weight, 0);
  const fractions = jobs.map(() => 0);
  const results: Array<PoolResult | undefined> = jobs.map(() => undefined);
  const queue = [...order];
  const running = new Map<number, Worker>();
  let done = 0;
  // The first failing job in job order so far, and its error.
  let failedAt = Infinity;
  let failure: Error | null = null;
  let settled = false;
  const progress = (): void =>
    hooks.onProgress?.(
      total > 0 ? jobs.reduce((a, j, i) => a + j.weight * fractions[i]!, 0) / total : 0,
      done,
    );
  const named = (i: number, message: string): string =>
    jobs.length > 1 ? `${jobs[i]!.name}: ${message}` : message;

  return new Promise((resolve, reject) => {
    if (jobs.length === 0) {
      resolve([]);
      return;
    }
    // Ends the pool once nothing before the first failure is left to run.
    const settle = (): void => {
      if (settled) return;
      const pendingBefore = queue.some((k) => k < failedAt) || [...running.keys()].some((k) => k < failedAt);
      if (failure !== null && !pendingBefore) {
        settled = true;
        for (const w of running.values()) void w.terminate();
        running.clear();
        reject(failure);
      } else if (failure === null && done === jobs.length) {
        settled = true;
        resolve(results as PoolResult[]);
      }
    };
    const fail = (i: number, err: Error): void => {
      if (i >= failedAt) return;
      failedAt = i;
      failure = err;
      // The jobs after it cannot change what is reported.
      for (const [k, w] of running) {
        if (k > i) {
          void w.terminate();
          running.delete(k);
        }
      }
      for (let q = queue.length - 1; q >= 0; q--) if (queue[q]! > i) queue.splice(q, 1);
    };
    const startNext = (): void => {
      if (settled) return;
      const i = queue.shift();
      if (i === undefined) return;
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
      running.set(i, worker);
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
          case "error": {
            finished = true;
            if (m.violation !== null) {
              fail(i, new CheckFailure({ ...m.violation, ...jobs[i]!.names }));
            } else if (m.code !== null) {
              fail(i, new S2simError(m.code, named(i, m.message)));
            } else {
              // The worker's stack under a first line that names the simulation.
              const err = new Error(`simulation of ${jobs[i]!.name} failed: ${m.message}`);
              const frames = m.stack?.split("\n").slice(1).join("\n");
              if (frames) err.stack = `Error: ${err.message}\n${frames}`;
              fail(i, err);
            }
            break;
          }
        }
      });
      worker.on("error", (err) => fail(i, err));
      worker.on("exit", (code) => {
        // Terminated after a failure before it: that one is reported.
        if (!running.has(i)) {
          settle();
          return;
        }
        running.delete(i);
        if (!finished) fail(i, new Error(`the worker simulating ${jobs[i]!.name} exited with code ${code}`));
        startNext();
        settle();
      });
    };
    progress();
    for (let k = 0; k < workers; k++) startNext();
  });
}
