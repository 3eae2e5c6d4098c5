/**
 * Refusing runs too large for the machine before they allocate anything: a run's estimated
 * footprint against the memory available (or `--max-memory`) and V8's heap limit.
 */
import { freemem, totalmem } from "node:os";
import { getHeapStatistics } from "node:v8";
import { S2simError } from "../common/error.js";
import type { Footprint } from "../common/footprint.js";
import { parseSize } from "../common/size.js";
import { humanBytes } from "./options.js";

/** Memory a run may use, and where that figure comes from (for the error message). */
export interface MemoryBudget {
  readonly bytes: number;
  readonly source: string;
  /** How to allow a run more, appended to a refusal's advice ("": the command has no way). */
  readonly raise: string;
}

/**
 * `--max-memory` parsed, or else the memory available now (`option`: the command's name for that
 * option, or null when it has none). On Linux that is what the kernel
 * estimates can be allocated without swapping (MemAvailable), or, in a cgroup with a limit, what is
 * left of it if that is less (process.availableMemory). Elsewhere Node reports only free pages (on
 * macOS a few hundred MiB of a busy machine whose inactive and cached pages could be had), so the
 * budget is the machine's physical memory.
 */
export function memoryBudget(
  maxMemory: string | undefined,
  platform: NodeJS.Platform = process.platform,
  option: string | null = "--max-memory",
): MemoryBudget {
  if (maxMemory !== undefined) {
    const bytes = parseSize(maxMemory, "memory limit (--max-memory)");
    if (bytes === 0) throw new S2simError("bad-size", "memory limit (--max-memory) must not be 0");
    return { bytes, source: "--max-memory allows", raise: ", or a larger --max-memory" };
  }
  const raise = option === null ? "" : `, or set ${option} if you know better`;
  if (platform !== "linux") return { bytes: totalmem(), source: "this machine has in all", raise };
  const free = freemem();
  const available = process.availableMemory();
  if (available < free) return { bytes: available, source: "this process's cgroup has left", raise };
  return { bytes: free, source: "this machine has available", raise };
}

/** V8's limit on this process's JavaScript heap, in bytes. */
export function heapLimit(): number {
  return getHeapStatistics().heap_size_limit;
}

/**
 * Why `need` does not fit in `budget` or in V8's heap limit, as one line (`what` names the run and
 * `advice` says how to make it smaller, worked out only for a run that does not fit), or null when
 * it fits.
 */
export function memoryProblem(
  need: Footprint,
  budget: MemoryBudget,
  what: string,
  advice: string | (() => string),
): string | null {
  const limit = heapLimit();
  if (need.bytes <= budget.bytes && need.heapBytes <= limit) return null;
  const smaller = typeof advice === "string" ? advice : advice();
  if (need.bytes > budget.bytes) {
    return (
      `${what} needs about ${humanBytes(need.bytes)} of memory, more than the ${humanBytes(budget.bytes)} ` +
      `${budget.source}: ${smaller}${budget.raise}`
    );
  }
  const mib = Math.ceil((need.heapBytes * 1.25) / 2 ** 20);
  return (
    `${what} needs about ${humanBytes(need.heapBytes)} of JavaScript heap, more than Node's limit of ` +
    `${humanBytes(limit)}: ${smaller}, or raise the limit (NODE_OPTIONS=--max-old-space-size=${mib})`
  );
}

/** Throws {@link memoryProblem} as a one-line {@link S2simError} ("too-large") if there is one. */
export function checkMemory(need: Footprint, budget: MemoryBudget, what: string, smaller: string): void {
  const problem = memoryProblem(need, budget, what, smaller);
  if (problem !== null) throw new S2simError("too-large", problem);
}
