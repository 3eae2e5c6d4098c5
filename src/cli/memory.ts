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
  /** The same as a sentence of its own, after a finding that nothing smaller fits ("": none). */
  readonly raiseAlone: string;
}

/**
 * What a refusal says would make a run fit: an action ("use a smaller -b"), to which the budget's
 * {@link MemoryBudget.raise} is added, or, when no smaller run fits, that finding.
 */
export type Advice = string | { readonly nothingSmaller: string };

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
    return {
      bytes,
      source: "--max-memory allows",
      raise: ", or a larger --max-memory",
      raiseAlone: "allow more with --max-memory",
    };
  }
  const raise = option === null ? "" : `, or set ${option} if you know better`;
  const raiseAlone = option === null ? "" : `set ${option} if you know better`;
  if (platform !== "linux")
    return { bytes: totalmem(), source: "this machine has in all", raise, raiseAlone };
  const free = freemem();
  const available = process.availableMemory();
  if (available < free)
    return { bytes: available, source: "this process's cgroup has left", raise, raiseAlone };
  return { bytes: free, source: "this machine has available", raise, raiseAlone };
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
  advice: Advice | (() => Advice),
): string | null {
  const limit = heapLimit();
  if (need.bytes <= budget.bytes && need.heapBytes <= limit) return null;
  const smaller = typeof advice === "function" ? advice() : advice;
  // An action takes the way to allow more as an alternative; a finding as a sentence of its own.
  const then = (action: string, alone: string): string => {
    if (typeof smaller === "string") return `${smaller}${action}`;
    return alone === "" ? smaller.nothingSmaller : `${smaller.nothingSmaller}; ${alone}`;
  };
  if (need.bytes > budget.bytes) {
    return (
      `${what} needs about ${humanBytes(need.bytes)} of memory, more than the ${humanBytes(budget.bytes)} ` +
      `${budget.source}: ${then(budget.raise, budget.raiseAlone)}`
    );
  }
  const mib = Math.ceil((need.heapBytes * 1.25) / 2 ** 20);
  const heap = `raise the limit (NODE_OPTIONS=--max-old-space-size=${mib})`;
  return (
    `${what} needs about ${humanBytes(need.heapBytes)} of JavaScript heap, more than Node's limit of ` +
    `${humanBytes(limit)}: ${then(`, or ${heap}`, heap)}`
  );
}

/** Throws {@link memoryProblem} as a one-line {@link S2simError} ("too-large") if there is one. */
export function checkMemory(need: Footprint, budget: MemoryBudget, what: string, smaller: Advice): void {
  const problem = memoryProblem(need, budget, what, smaller);
  if (problem !== null) throw new S2simError("too-large", problem);
}
