/** The memory budget a run is checked against, and the check's one-line errors. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { freemem, totalmem } from "node:os";
import { getHeapStatistics } from "node:v8";
import { checkMemory, memoryBudget } from "../../src/cli/memory.js";

const G = 2 ** 30;

describe("memory budget", () => {
  it("is --max-memory when given", () => {
    assert.deepEqual(memoryBudget("2G"), {
      bytes: 2 * G,
      source: "--max-memory allows",
      raise: ", or a larger --max-memory",
      raiseAlone: "allow more with --max-memory",
    });
    assert.throws(() => memoryBudget("0"), /must not be 0/);
    assert.throws(() => memoryBudget("lots"), /"lots" is not a size/);
  });

  it("on Linux, what can be had without swapping; elsewhere the machine's physical memory", () => {
    const linux = memoryBudget(undefined, "linux");
    assert.ok(linux.bytes > 0 && linux.bytes <= Math.max(freemem(), process.availableMemory()));
    assert.match(linux.source, /this machine has available|cgroup has left/);
    // macOS reports only free pages through Node: a busy machine would refuse everything.
    assert.deepEqual(memoryBudget(undefined, "darwin"), {
      bytes: totalmem(),
      source: "this machine has in all",
      raise: ", or set --max-memory if you know better",
      raiseAlone: "set --max-memory if you know better",
    });
    // A command without the option (the benchmarks) gives no advice it would refuse.
    assert.equal(memoryBudget(undefined, "darwin", null).raise, "");
    assert.equal(memoryBudget(undefined, "darwin", null).raiseAlone, "");
  });

  it("refuses a run over the budget, or over V8's heap limit, in one line", () => {
    const budget = memoryBudget("1G");
    checkMemory({ bytes: G / 2, heapBytes: G / 4 }, budget, "run", "smaller");
    assert.throws(
      () => checkMemory({ bytes: 2 * G, heapBytes: G / 4 }, budget, "run", "use less"),
      /^S2simError: run needs about 2 GiB of memory, more than the 1 GiB --max-memory allows: use less, or a larger --max-memory$/,
    );
    const measured = memoryBudget(undefined, "darwin");
    assert.throws(
      () => checkMemory({ bytes: measured.bytes * 2, heapBytes: G / 4 }, measured, "run", "use less"),
      /this machine has in all: use less, or set --max-memory if you know better$/,
    );
    const heap = getHeapStatistics().heap_size_limit;
    assert.throws(
      () => checkMemory({ bytes: G / 2, heapBytes: heap + G }, budget, "run", "use less"),
      /needs about [\d.]+ GiB of JavaScript heap, more than Node's limit of [\d.]+ GiB: use less, or raise the limit \(NODE_OPTIONS=--max-old-space-size=\d+\)$/,
    );
  });

  it("after a finding that nothing smaller fits, says how to allow more as a sentence of its own", () => {
    const none = { nothingSmaller: "even the least would need 1.5 GiB" };
    assert.throws(
      () => checkMemory({ bytes: 2 * G, heapBytes: G / 4 }, memoryBudget("1G"), "run", none),
      /allows: even the least would need 1\.5 GiB; allow more with --max-memory$/,
    );
    assert.throws(
      () =>
        checkMemory(
          { bytes: 2 * totalmem(), heapBytes: G / 4 },
          memoryBudget(undefined, "darwin", null),
          "run",
          none,
        ),
      /has in all: even the least would need 1\.5 GiB$/,
    );
    const heap = getHeapStatistics().heap_size_limit;
    assert.throws(
      () => checkMemory({ bytes: G / 2, heapBytes: heap + G }, memoryBudget("1G"), "run", none),
      /GiB: even the least would need 1\.5 GiB; raise the limit \(NODE_OPTIONS=--max-old-space-size=\d+\)$/,
    );
  });
});
