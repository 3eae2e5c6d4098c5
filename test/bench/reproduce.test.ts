/** The benchmark harness: `npm run bench -- reproduce` (what it reports, not how fast) and its options. */
import assert from "node:assert/strict";
import { describe, it, test } from "node:test";
import { fileURLToPath } from "node:url";
import { NODE_FLAG } from "../../src/cli/node-flag.js";
import { runNode } from "../cli/run.js";
import { type ReproduceBenchResult, formatReproduce } from "../../bench/reproduce.js";
import { parseBenchSize } from "../../bench/options.js";

const BENCH = fileURLToPath(new URL("../../bench/main.js", import.meta.url));

describe("bench reproduce", () => {
  it(
    "times the six simulations and reports each one's steps, faults and accesses",
    { timeout: 120_000 },
    async () => {
      const r = await runNode(BENCH, [NODE_FLAG], ["reproduce", "--mem-scale", "1/1024", "--json"]);
      assert.equal(r.code, 0, r.stderr);
      const b = JSON.parse(r.stdout) as ReproduceBenchResult;
      assert.equal(b.benchmark, "reproduce");
      assert.equal(b.mem_scale, 1 / 1024);
      assert.equal(b.mem_scale_text, "1/1024");
      assert.equal(b.jobs.length, 6);
      assert.deepEqual(
        b.jobs.map((j) => `${j.src} ${j.kernel}`).sort(),
        ["anonymous", "anonymous_hugetlb_1gb", "anonymous_thp"].flatMap((s) => [`${s} v5.12`, `${s} v5.14`]),
      );
      for (const j of b.jobs) {
        assert.ok(j.engine_steps > 0 && j.faults > 0 && j.accesses > 0 && j.host_s > 0, JSON.stringify(j));
        // host_s is rounded to the millisecond, the rate is not.
        assert.ok(Math.abs(j.steps_per_s / (j.engine_steps / j.host_s) - 1) < 0.01, JSON.stringify(j));
      }
      assert.equal(
        b.engine_steps,
        b.jobs.reduce((a, j) => a + j.engine_steps, 0),
      );
      assert.ok(b.cpu_s > 0 && b.host_s > 0 && b.peak_rss_bytes > 0);
      assert.deepEqual([b.limit_s, b.goal_s], [150, 60]);
      // A scaled run gets no verdict; --mem-scale 1 is the published sizes and does.
      assert.match(formatReproduce(b), /scaled: the limit and goal are for the published sizes/);
      const full = formatReproduce({ ...b, mem_scale: 1, mem_scale_text: "1", host_s: 100 });
      assert.match(full, /limit 150 s: met; goal 60 s: not met/);
    },
  );

  it("rejects a bad --mem-scale with one line and exit status 2", async () => {
    const r = await runNode(BENCH, [NODE_FLAG], ["reproduce", "--mem-scale", "3"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^bench: memory scale "3" must be a number f with 0 < f <= 1[^\n]*\n$/);
  });
});

test("bench --size stops where the pgtable benchmark's region would leave the 40-bit IPA space", () => {
  assert.equal(parseBenchSize("1023G"), 1023 * 2 ** 30);
  assert.throws(() => parseBenchSize("1T"), /between 2M and 1023G/);
});
