/** The native C baseline (bench/native/walk.c): compiled with gcc -O2 into a temp dir and run. */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BenchOptions, WalkFigures } from "./options.js";

/** What walk.c prints, plus where it came from. */
export interface NativeResult extends WalkFigures {
  readonly benchmark: "native";
  /** The map walk with a no-op clean-to-PoC hook per new leaf: v5.14's map without FWB. */
  readonly map_cmo_ns_per_page: number;
  readonly pages: number;
  readonly runs: number;
  readonly ipa_bits: number;
  readonly compiler: string;
}

/** The C source, found from dist/bench/ or bench/. */
function sourcePath(): string {
  const here = fileURLToPath(new URL(".", import.meta.url));
  return here.includes(`${join("dist", "bench")}`)
    ? join(here, "..", "..", "bench", "native", "walk.c")
    : join(here, "native", "walk.c");
}

/** A failure to build or run the baseline; main prints the message. */
export class NativeUnavailable extends Error {}

/** Compiles and runs the native baseline. */
export function benchNative(opts: BenchOptions): NativeResult {
  const probe = spawnSync("gcc", ["--version"], { encoding: "utf8" });
  if (probe.error !== undefined || probe.status !== 0) {
    throw new NativeUnavailable(
      "native baseline skipped: gcc not found (install gcc to build bench/native/walk.c)",
    );
  }
  const compiler = probe.stdout.split("\n")[0]!.trim();
  const dir = mkdtempSync(join(tmpdir(), "s2sim-native-"));
  try {
    const exe = join(dir, "walk");
    const cc = spawnSync("gcc", ["-O2", "-std=c11", "-Wall", "-Wextra", "-o", exe, sourcePath()], {
      encoding: "utf8",
    });
    if (cc.status !== 0) {
      throw new NativeUnavailable(`native baseline: gcc failed: ${cc.stderr.trim().split("\n")[0] ?? ""}`);
    }
    const run = spawnSync(exe, [String(opts.size), String(opts.runs)], {
      encoding: "utf8",
      maxBuffer: 1 << 20,
    });
    if (run.error !== undefined || run.status !== 0) {
      const why =
        run.error?.message ??
        (run.signal !== null ? `killed by ${run.signal}` : `exit status ${String(run.status)}`);
      const said = run.stderr.trim().split("\n")[0] ?? "";
      throw new NativeUnavailable(`native baseline: walk failed (${why})${said === "" ? "" : `: ${said}`}`);
    }
    return { ...parseWalkOutput(run.stdout), compiler };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The fields walk.c prints, each a finite number. */
const WALK_FIELDS = [
  "map_ns_per_page",
  "map_cmo_ns_per_page",
  "map_per_call_ns_per_page",
  "wrprotect_ns_per_page",
  "unmap_ns_per_page",
  "table_bytes_per_page",
  "table_pages",
  "size_bytes",
  "pages",
  "runs",
  "ipa_bits",
] as const;

/** walk.c's JSON line, checked: a {@link NativeUnavailable} names what is wrong with it. */
export function parseWalkOutput(text: string): Omit<NativeResult, "compiler"> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new NativeUnavailable(
      `native baseline: walk printed no JSON object: ${JSON.stringify(text.slice(0, 80))}`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new NativeUnavailable("native baseline: walk printed no JSON object");
  const o = value as Record<string, unknown>;
  if (o["benchmark"] !== "native")
    throw new NativeUnavailable('native baseline: walk\'s "benchmark" is not "native"');
  for (const f of WALK_FIELDS) {
    const v = o[f];
    if (typeof v !== "number" || !Number.isFinite(v))
      throw new NativeUnavailable(`native baseline: walk printed no number for "${f}"`);
  }
  return o as unknown as Omit<NativeResult, "compiler">;
}

/** The human-readable rendering of a {@link NativeResult}. */
export function formatNative(r: NativeResult): string {
  return (
    `native C baseline (${r.compiler}, -O2): ${(r.size_bytes / 2 ** 20).toFixed(0)} MiB = ${r.pages} pages, ` +
    `best of ${r.runs}\n` +
    `  map (one walk)           ${r.map_ns_per_page.toFixed(2)} ns/page\n` +
    `  map, CMO hook per leaf   ${r.map_cmo_ns_per_page.toFixed(2)} ns/page (v5.14's shape without FWB)\n` +
    `  map (one call per page)  ${r.map_per_call_ns_per_page.toFixed(2)} ns/page\n` +
    `  wrprotect                ${r.wrprotect_ns_per_page.toFixed(2)} ns/page\n` +
    `  unmap                    ${r.unmap_ns_per_page.toFixed(2)} ns/page\n` +
    `  table memory             ${r.table_bytes_per_page.toFixed(2)} bytes/page (${r.table_pages} table pages)\n`
  );
}
