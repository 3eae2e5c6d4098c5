/**
 * Benchmarks: `npm run bench -- [pgtable|native|all|check|reproduce] [--json] [--size 1G] [--kernel v5.14] [--runs 7]`
 * (`check` also takes `--backing anonymous_thp` etc.; `reproduce` takes `--mem-scale f`).
 * With --json, stdout carries exactly one JSON object (use `npm run --silent` to drop npm's banner).
 */
import { cpus } from "node:os";
import { S2simError } from "../src/common/error.js";
import { benchCheck, formatCheck } from "./check.js";
import { benchNative, formatNative, NativeUnavailable, type NativeResult } from "./native.js";
import { HelpRequest, parseBenchArgs, UsageError, type BenchOptions } from "./options.js";
import { benchPgtable, formatPgtable, type PgtableResult } from "./pgtable.js";
import { benchReproduce, formatReproduce } from "./reproduce.js";

function ratio(model: number, native: number): number {
  return Math.round((model / native) * 100) / 100;
}

async function run(opts: BenchOptions): Promise<void> {
  if (opts.suite === "reproduce") {
    // The whole reproduce takes minutes: one run unless told.
    const r = await benchReproduce({ runs: opts.runsGiven ? opts.runs : 1, memScale: opts.memScale });
    process.stdout.write(opts.json ? JSON.stringify(r) + "\n" : formatReproduce(r));
    return;
  }
  if (opts.suite === "check") {
    // The whole selftest twice per run: keep the default run count small.
    const r = benchCheck({ ...opts, runs: opts.runsGiven ? opts.runs : 1 });
    process.stdout.write(opts.json ? JSON.stringify(r) + "\n" : formatCheck(r));
    return;
  }
  const info = cpus();
  const cpuModel = info[0]?.model.trim() ?? "unknown";
  let pgtable: PgtableResult | undefined;
  let native: NativeResult | undefined;
  /** Why `all` has no native half (it then exits 1 after printing the model's half). */
  let nativeMissing: string | undefined;
  if (opts.suite === "pgtable" || opts.suite === "all") pgtable = benchPgtable(opts, cpuModel, info.length);
  if (opts.suite === "native" || opts.suite === "all") {
    try {
      native = benchNative(opts);
    } catch (e) {
      if (!(e instanceof NativeUnavailable)) throw e;
      if (opts.suite === "native") throw e;
      nativeMissing = e.message;
      process.stderr.write(`bench: ${e.message}\n`);
      process.exitCode = 1;
    }
  }
  if (opts.json) {
    if (nativeMissing !== undefined) {
      // The shape `all` promises, with the half that could not run named.
      process.stdout.write(
        JSON.stringify({ benchmark: "all", pgtable, native: null, native_unavailable: nativeMissing }) + "\n",
      );
    } else if (pgtable !== undefined && native !== undefined) {
      const out = {
        benchmark: "all",
        pgtable,
        native,
        ratio: {
          map: ratio(pgtable.map_ns_per_page, native.map_ns_per_page),
          // v5.14's map issues a CMO callback per leaf: against the baseline's walk that does too.
          map_vs_map_cmo: ratio(pgtable.map_ns_per_page, native.map_cmo_ns_per_page),
          map_per_call: ratio(pgtable.map_per_call_ns_per_page, native.map_per_call_ns_per_page),
          wrprotect: ratio(pgtable.wrprotect_ns_per_page, native.wrprotect_ns_per_page),
          unmap: ratio(pgtable.unmap_ns_per_page, native.unmap_ns_per_page),
        },
      };
      process.stdout.write(JSON.stringify(out) + "\n");
    } else {
      process.stdout.write(JSON.stringify(pgtable ?? native) + "\n");
    }
    return;
  }
  if (pgtable !== undefined) process.stdout.write(formatPgtable(pgtable));
  if (native !== undefined) process.stdout.write(formatNative(native));
  if (pgtable !== undefined && native !== undefined) {
    process.stdout.write(
      `model / native: map ${ratio(pgtable.map_ns_per_page, native.map_ns_per_page)}x ` +
        `(${ratio(pgtable.map_ns_per_page, native.map_cmo_ns_per_page)}x the map with a CMO hook), ` +
        `map per call ${ratio(pgtable.map_per_call_ns_per_page, native.map_per_call_ns_per_page)}x, ` +
        `wrprotect ${ratio(pgtable.wrprotect_ns_per_page, native.wrprotect_ns_per_page)}x, ` +
        `unmap ${ratio(pgtable.unmap_ns_per_page, native.unmap_ns_per_page)}x\n`,
    );
  }
}

try {
  await run(parseBenchArgs(process.argv.slice(2)));
} catch (e) {
  if (e instanceof HelpRequest) {
    process.stdout.write(`${e.message}\n`);
  } else if (e instanceof UsageError || e instanceof NativeUnavailable || e instanceof S2simError) {
    // S2simError: what the simulator refuses (e.g. a reproduce too large for the memory available).
    process.stderr.write(`bench: ${e.message}\n`);
    process.exitCode = e instanceof NativeUnavailable ? 1 : 2;
  } else {
    throw e;
  }
}
