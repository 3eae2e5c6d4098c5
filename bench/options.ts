import { parseSize } from "../src/common/size.js";
import { backingNames } from "../src/host/backing.js";
import { parseMemScale } from "../src/cli/options.js";
/** Command-line parsing for the benchmarks: a few options, every mistake a one-line error. */

/** What `npm run bench -- <suite> [options]` asked for. */
export interface BenchOptions {
  readonly suite: "pgtable" | "native" | "all" | "check" | "reproduce";
  /** Bytes to map, a multiple of 2 MiB. */
  readonly size: number;
  readonly kernel: "v5.12" | "v5.14";
  readonly runs: number;
  /** Whether --runs was given (suites pick their own default otherwise). */
  readonly runsGiven: boolean;
  readonly json: boolean;
  /** The selftest's backing source (`check` only). */
  readonly backing: string;
  /** reproduce's --mem-scale as given, or null (`reproduce` only; none: the published sizes). */
  readonly memScale: string | null;
}

/** A mistake on the command line; main prints its message and exits with code 2. */
export class UsageError extends Error {}

/** `-h` or `--help`: main prints the usage on standard output and exits with code 0. */
export class HelpRequest extends Error {}

export const USAGE =
  "usage: npm run bench -- [pgtable|native|all|check|reproduce] [--json] [--size <bytes|2M|1G|20G>] " +
  "[--kernel v5.12|v5.14] [--runs N] [--backing anonymous|anonymous_thp|...] [--mem-scale <f>]";

const TWO_MIB = 2 ** 21;
/** Largest size accepted: the table model's default 8 GiB pool holds the tables of ~8 TiB. */
/** The pgtable benchmark's region starts at 1 GiB of a 40-bit IPA space. */
const MAX_SIZE = 2 ** 40 - 2 ** 30;

/** Parses `4096`, `2M`, `1G`, `20G` with the CLI's size parser, then checks the bench's limits. */
export function parseBenchSize(text: string): number {
  let bytes: number;
  try {
    bytes = parseSize(text, "size");
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (bytes <= 0 || bytes > MAX_SIZE) {
    throw new UsageError(
      `bad size "${text}": must be between 2M and 1023G (the region starts at 1 GiB of a 40-bit IPA space)`,
    );
  }
  if (bytes % TWO_MIB !== 0) throw new UsageError(`bad size "${text}": must be a multiple of 2M`);
  return bytes;
}

/** Figures both the model and the native benchmark report. */
export interface WalkFigures {
  readonly map_ns_per_page: number;
  readonly map_per_call_ns_per_page: number;
  readonly wrprotect_ns_per_page: number;
  readonly unmap_ns_per_page: number;
  readonly table_bytes_per_page: number;
  readonly table_pages: number;
  readonly size_bytes: number;
}

/** Parses argv (without node and the script). */
export function parseBenchArgs(argv: readonly string[]): BenchOptions {
  let suite: BenchOptions["suite"] = "pgtable";
  let size = 2 ** 30;
  let kernel: BenchOptions["kernel"] = "v5.14";
  let runs = 7;
  let json = false;
  let runsGiven = false;
  let sawSuite = false;
  let backing = "anonymous";
  let memScale: string | null = null;
  /** Options given that only some suites take. */
  const given = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf("=");
    const name = arg.startsWith("--") && eq > 0 ? arg.slice(0, eq) : arg;
    const inline = arg.startsWith("--") && eq > 0 ? arg.slice(eq + 1) : undefined;
    const value = (): string => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`option ${name} needs a value`);
      return v;
    };
    switch (name) {
      case "pgtable":
      case "native":
      case "all":
      case "check":
      case "reproduce":
        if (sawSuite) throw new UsageError(`more than one benchmark given ("${arg}")`);
        suite = name;
        sawSuite = true;
        break;
      case "--json":
        if (inline !== undefined) throw new UsageError("option --json takes no value");
        json = true;
        break;
      case "--size":
        given.add(name);
        size = parseBenchSize(value());
        break;
      case "--kernel": {
        given.add(name);
        const v = value();
        if (v !== "v5.12" && v !== "v5.14") throw new UsageError(`bad kernel "${v}": use v5.12 or v5.14`);
        kernel = v;
        break;
      }
      case "--runs": {
        const v = value();
        if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 1000) {
          throw new UsageError(`bad run count "${v}": use a whole number from 1 to 1000`);
        }
        runs = Number(v);
        runsGiven = true;
        break;
      }
      case "--backing": {
        given.add(name);
        const v = value();
        if (!backingNames().includes(v)) {
          throw new UsageError(`bad backing "${v}": use one of ${backingNames().join(", ")}`);
        }
        backing = v;
        break;
      }
      case "--mem-scale":
        given.add(name);
        try {
          memScale = value();
          parseMemScale(memScale);
        } catch (err) {
          throw new UsageError(err instanceof Error ? err.message : String(err));
        }
        break;
      case "-h":
      case "--help":
        throw new HelpRequest(USAGE);
      default:
        throw new UsageError(
          arg.startsWith("-")
            ? `unknown option "${name}"`
            : `unknown benchmark "${arg}": use pgtable, native, all, check or reproduce`,
        );
    }
  }
  // Options a suite would ignore are mistakes: say so rather than run something else.
  const takes: Record<BenchOptions["suite"], readonly string[]> = {
    pgtable: ["--size", "--kernel"],
    native: ["--size"],
    all: ["--size", "--kernel"],
    check: ["--size", "--kernel", "--backing"],
    reproduce: ["--mem-scale"],
  };
  for (const option of given) {
    if (!takes[suite].includes(option))
      throw new UsageError(`option ${option} does not apply to bench ${suite}`);
  }
  return { suite, size, kernel, runs, runsGiven, json, backing, memScale };
}
