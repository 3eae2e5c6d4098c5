/** The native baseline's harness: what it accepts from walk.c, and `bench all` without a compiler. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { NODE_FLAG } from "../../src/cli/node-flag.js";
import { runNode } from "../cli/run.js";
import { NativeUnavailable, parseWalkOutput } from "../../bench/native.js";
import { HelpRequest, parseBenchArgs, USAGE, UsageError } from "../../bench/options.js";

const BENCH = fileURLToPath(new URL("../../bench/main.js", import.meta.url));

/** Runs the bench harness with `args` (and `env` as its whole environment, if given). */
const runBench = (args: readonly string[], env?: NodeJS.ProcessEnv) => runNode(BENCH, [NODE_FLAG], args, env);

/** A line as walk.c prints it. */
const GOOD =
  '{"benchmark":"native","map_ns_per_page":3.10,"map_cmo_ns_per_page":3.50,"map_per_call_ns_per_page":20.00,' +
  '"wrprotect_ns_per_page":2.00,"unmap_ns_per_page":4.00,"table_bytes_per_page":8.02,"table_pages":514,' +
  '"size_bytes":1073741824,"pages":262144,"runs":7,"ipa_bits":40}\n';

describe("bench native", () => {
  it("takes walk.c's JSON line and refuses anything else with a message naming what is wrong", () => {
    assert.equal(parseWalkOutput(GOOD).map_ns_per_page, 3.1);
    const refuses = (text: string, why: RegExp): void => {
      assert.throws(
        () => parseWalkOutput(text),
        (e: unknown) => e instanceof NativeUnavailable && why.test(e.message),
      );
    };
    refuses("", /walk printed no JSON object: ""/);
    refuses("Segmentation fault", /walk printed no JSON object/);
    refuses("[1,2]", /walk printed no JSON object$/);
    refuses(GOOD.replace('"native"', '"other"'), /"benchmark" is not "native"/);
    refuses(
      GOOD.replace('"unmap_ns_per_page":4.00', '"unmap_ns_per_page":"4"'),
      /no number for "unmap_ns_per_page"/,
    );
    refuses(GOOD.replace(',"ipa_bits":40', ""), /no number for "ipa_bits"/);
  });

  it("`all` without gcc prints the model's half in all's shape, names the missing half, and exits 1", async () => {
    // No PATH: gcc cannot be found (node is run by its absolute path).
    const r = await runBench(["all", "--size", "2M", "--runs", "1", "--json"], { PATH: "" });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^bench: native baseline skipped: gcc not found/m);
    const o = JSON.parse(r.stdout) as {
      benchmark: string;
      pgtable: { benchmark: string; gc_between_rounds: boolean };
      native: null;
      native_unavailable: string;
    };
    assert.equal(o.benchmark, "all");
    assert.equal(o.pgtable.benchmark, "pgtable");
    // Run without --expose-gc, and it says so.
    assert.equal(o.pgtable.gc_between_rounds, false);
    assert.equal(o.native, null);
    assert.match(o.native_unavailable, /gcc not found/);
  });

  it("--help is an answer (usage on stdout, exit 0), not a usage error", async () => {
    assert.throws(() => parseBenchArgs(["--help"]), HelpRequest);
    assert.throws(() => parseBenchArgs(["-h"]), HelpRequest);
    assert.throws(() => parseBenchArgs(["--bogus"]), UsageError);
    const r = await runBench(["--help"]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, USAGE + "\n");
  });
});
