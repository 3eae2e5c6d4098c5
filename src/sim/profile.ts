/**
 * Cost profiles: data files (profiles/<name>.json) that price every work item the model reports,
 * plus the machine's TLB shape and the selftest's vCPU release, each with a unit and a source.
 * No parameter names a kernel version, a stage or a backing type.
 */
import { existsSync, readdirSync } from "node:fs";
import { basename, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { S2simError } from "../common/error.js";
import { controlCharacter, printable } from "../common/format.js";
import { jsonSyntaxError } from "../common/json-error.js";
import { readSmallFile, readSmallStdin, type SmallFile } from "../common/small-file.js";
import { WORK_COUNT, WORK_ITEMS } from "../common/work.js";
import type { EngineCosts } from "./engine.js";
import type { TlbShape } from "./mmu.js";

/** One parameter as the file states it. */
export interface ProfileParameter {
  readonly value: number;
  readonly unit: string;
  readonly source: string;
}

/** A loaded cost profile, in picoseconds. */
export interface CostProfile {
  readonly name: string;
  readonly machine: string;
  /** The parameters as written, for reports. */
  readonly parameters: Readonly<Record<string, ProfileParameter>>;
  /** Cost of one unit of each work item (ps), in WORK_ITEMS order. */
  readonly workCost: Float64Array;
  readonly engine: EngineCosts;
  readonly tlb: TlbShape;
  /** Time the test's main thread takes to release one vCPU (sem_post and wake-up), ps. */
  readonly vcpuRelease: number;
  /** Parameters changed from the file's values ({@link withOverrides}), in the order given. */
  readonly overrides: readonly ProfileOverride[];
}

/** A parameter set to another value than the profile file's (`--set name=value[unit]`). */
export interface ProfileOverride {
  readonly parameter: string;
  readonly value: number;
  readonly unit: string;
  /** The file's value and unit, for reports. */
  readonly was: { readonly value: number; readonly unit: string };
  /**
   * For a cost the engine adds to its integer clock (a lock's), the whole picoseconds it uses,
   * when the value given is not a whole number of them.
   */
  readonly rounded_ps?: number;
}

/** `name=value[unit]` as the command line gives it; the unit defaults to the profile's. */
export interface ProfileSetting {
  readonly parameter: string;
  readonly value: number;
  readonly unit: string | null;
}

/**
 * Parses one `--set` argument: `lock-handoff=800ns`, `zero-byte=10GB/s`, `tlb-entries=2048`. The
 * value is a decimal number (`.5`, `5.` and exponents too); a negative or non-finite one is an
 * error of its own.
 */
export function parseSetting(text: string): ProfileSetting {
  // Any name: one the profile lacks is withOverrides' "no parameter" error. Signs, infinities
  // and NaN are matched only to be refused by what is wrong with them.
  const m =
    /^\s*([^=\s]+)\s*=\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?|[+-]?(?:infinity|inf|nan))\s*([a-z/]*)\s*$/i.exec(
      text,
    );
  if (m === null) {
    throw new S2simError(
      "bad-setting",
      `--set "${printable(text)}" is not name=value[unit] (e.g. lock-handoff=800ns, zero-byte=10GB/s, tlb-entries=2048)`,
    );
  }
  const value = Number(m[2]);
  if (!Number.isFinite(value) || value < 0) {
    throw new S2simError("bad-setting", `--set "${printable(text)}": the value must be a finite number >= 0`);
  }
  // -0 is 0: it would print as 0 and is no other cost.
  return { parameter: m[1]!, value: value === 0 ? 0 : value, unit: m[3] === "" ? null : m[3]! };
}

/**
 * `profile` with `settings` applied: each replaces its parameter's value (and unit, if given),
 * validated as the file's own values are; the result lists them as {@link CostProfile.overrides}.
 * A parameter the profile does not have, or one set twice, is an error.
 */
export function withOverrides(profile: CostProfile, settings: readonly ProfileSetting[]): CostProfile {
  if (settings.length === 0) return profile;
  const parameters: Record<string, ProfileParameter> = { ...profile.parameters };
  const overrides: ProfileOverride[] = [...profile.overrides];
  for (const set of settings) {
    // Own properties only: `toString` or `__proto__` is no parameter.
    const was = Object.hasOwn(profile.parameters, set.parameter)
      ? profile.parameters[set.parameter]
      : undefined;
    if (was === undefined) {
      throw new S2simError(
        "bad-setting",
        `--set: profile '${profile.name}' has no parameter '${printable(set.parameter)}'; it has ${Object.keys(profile.parameters).join(", ")}`,
      );
    }
    if (overrides.some((o) => o.parameter === set.parameter)) {
      throw new S2simError("bad-setting", `--set: parameter '${set.parameter}' is set twice`);
    }
    const unit = set.unit ?? was.unit;
    if (set.unit !== null && !knownUnit(set.unit, set.parameter)) {
      throw new S2simError(
        "bad-setting",
        `--set ${set.parameter}: unit '${printable(set.unit)}' is not one s2sim knows; ${unitsText(set.parameter)} (as written: case matters)`,
      );
    }
    parameters[set.parameter] = { value: set.value, unit, source: "set on the command line (--set)" };
    overrides.push({
      parameter: set.parameter,
      value: set.value,
      unit,
      was: { value: was.value, unit: was.unit },
    });
  }
  const changed = parseProfile(
    { name: profile.name, machine: profile.machine, parameters },
    `${profile.name} with --set`,
  );
  // What the engine's clock takes (parseProfile rounded it), against the value as given in
  // picoseconds (a clock cost's unit is a time: parseProfile checked it).
  const told = overrides.map((o) => {
    const item = WORK_ITEMS.indexOf(o.parameter as (typeof WORK_ITEMS)[number]);
    const used =
      o.parameter === "vcpu-release"
        ? changed.vcpuRelease
        : item >= 0 && CLOCK_COSTS.has(WORK_ITEMS[item]!)
          ? changed.workCost[item]!
          : null;
    if (used === null) return o;
    const given = o.value * TIME_UNITS.get(o.unit)!;
    // Equal but for a unit conversion's rounding error (1.1 us is 1100000.0000000002 ps).
    return Math.abs(given - used) <= 1e-12 * Math.max(1, given) ? o : { ...o, rounded_ps: used };
  });
  return { ...changed, overrides: told };
}

/** Whether profiles `a` and `b` price everything alike (whatever units their files use). */
export function sameCosts(a: CostProfile, b: CostProfile): boolean {
  return (
    a.workCost.length === b.workCost.length &&
    a.workCost.every((c, i) => c === b.workCost[i]) &&
    a.vcpuRelease === b.vcpuRelease &&
    a.tlb.entries === b.tlb.entries &&
    a.tlb.ways === b.tlb.ways &&
    (Object.keys(a.engine) as Array<keyof EngineCosts>).every((k) => a.engine[k] === b.engine[k])
  );
}

// Maps, not object literals: a name from a file or the command line (`toString`, `__proto__`)
// must not find an Object.prototype property.

/** Parameters besides the work items, with the units each accepts. */
const EXTRA: ReadonlyMap<string, readonly string[]> = new Map([
  ["tlb-entries", ["entries"]],
  ["tlb-ways", ["ways"]],
  ["vcpu-release", ["ps", "ns", "us", "ms"]],
]);

/** Every parameter a profile has. */
const PARAMETERS: ReadonlySet<string> = new Set([...WORK_ITEMS, ...EXTRA.keys()]);

const TIME_UNITS: ReadonlyMap<string, number> = new Map([
  ["ps", 1],
  ["ns", 1e3],
  ["us", 1e6],
  ["ms", 1e9],
]);

/**
 * Bounds that keep a run's arithmetic exact and finite: one item's cost at most a second (a
 * byte's at most a microsecond, 1 MB/s), and a TLB no larger than 65,536 entries of at most 128
 * ways (a lookup searches a set way by way).
 */
const MAX_ITEM_PS = 1e12;
const MAX_BYTE_PS = 1e6;
const MAX_TLB_ENTRIES = 65536;
const MAX_TLB_WAYS = 128;

/** Directory holding the bundled profiles. */
const PROFILE_DIR = new URL("../../../profiles/", import.meta.url);

/** The largest profile file read: the bundled one is under 8 KiB; this stops a runaway input. */
const MAX_PROFILE_BYTES = 2 ** 20;

/** The bundled profiles' names, sorted. */
function bundledProfiles(): string[] {
  return readdirSync(PROFILE_DIR)
    .filter((f) => f.endsWith(".json"))
    .map((f) => f.slice(0, -".json".length))
    .sort();
}

/** Whether `--profile`'s `nameOrPath` names a file (with a "/", the platform's separator, or ending in .json). */
export function isProfilePath(nameOrPath: string): boolean {
  return nameOrPath.includes("/") || nameOrPath.includes(sep) || nameOrPath.endsWith(".json");
}

/**
 * Loads a profile by bundled name (e.g. "kunpeng920"), from a path (one with a "/", or the
 * platform's separator, or ending in .json: a regular file or a pipe), or from standard input
 * ("-" or "/dev/stdin": a file, a pipe or a socket), read once. `onWait`: called once if a pipe
 * (named by path, or on standard input) has a writer that sends nothing for a while
 * (readSmallFile).
 */
export function loadProfile(nameOrPath: string, onWait?: (received: number) => void): CostProfile {
  const shown = printable(nameOrPath);
  // Standard input is read as it is, not opened by path: a socket (a Node parent's pipe) has none.
  if (nameOrPath === "-" || nameOrPath === "/dev/stdin") {
    return profileFromBytes(readSmallStdin(MAX_PROFILE_BYTES, onWait), nameOrPath);
  }
  const isPath = isProfilePath(nameOrPath);
  const bundled = isPath ? [] : bundledProfiles();
  if (!isPath && !bundled.includes(nameOrPath)) {
    // A bare name is never read as a path, so say how to name a file that has it.
    const file = existsSync(nameOrPath) ? `; for the file '${shown}', give ./${shown}` : "";
    throw new S2simError(
      "bad-profile",
      `no bundled profile '${shown}' (bundled: ${bundled.join(", ")})${file}`,
    );
  }
  const path = isPath ? nameOrPath : fileURLToPath(new URL(`${nameOrPath}.json`, PROFILE_DIR));
  const read = readSmallFile(path, MAX_PROFILE_BYTES, onWait);
  // A path that is not there but names a bundled profile (kunpeng920.json, ./kunpeng920).
  const named = basename(nameOrPath).replace(/\.json$/, "");
  if ("why" in read && isPath && !existsSync(nameOrPath) && bundledProfiles().includes(named)) {
    throw new S2simError(
      "bad-profile",
      `cannot read profile '${shown}': ${read.why}; the bundled one is named without a path: --profile ${named}`,
    );
  }
  return profileFromBytes(read, nameOrPath);
}

/** The profile in `read`, the contents of `nameOrPath` (as given, for messages). */
function profileFromBytes(read: SmallFile, nameOrPath: string): CostProfile {
  const shown = printable(nameOrPath);
  if ("why" in read) throw new S2simError("bad-profile", `cannot read profile '${shown}': ${read.why}`);
  if (read.bytes.length === 0) {
    const pipe = read.pipe ? " (a pipe read to its end: nothing was written to it)" : "";
    throw new S2simError("bad-profile", `profile '${shown}' is empty${pipe}`);
  }
  let text: string;
  try {
    // The decoder drops a leading BOM (some editors write one) and refuses bytes that are not UTF-8.
    text = new TextDecoder("utf-8", { fatal: true }).decode(read.bytes);
  } catch {
    throw new S2simError("bad-profile", `profile '${shown}' is not UTF-8 text`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // JSON.parse's message quotes the file; say where instead.
    const e = jsonSyntaxError(text);
    const where = e === null ? "" : ` at line ${e.line}, column ${e.column}: ${e.what}`;
    throw new S2simError("bad-profile", `profile '${shown}' is not valid JSON${where}`);
  }
  // A name given twice is valid JSON, but which value was meant is anyone's guess.
  const twice = jsonSyntaxError(text, true);
  if (twice !== null) {
    throw new S2simError(
      "bad-profile",
      `profile '${shown}' is ambiguous at line ${twice.line}, column ${twice.column}: ${twice.what}`,
    );
  }
  return parseProfile(json, nameOrPath);
}

/** A profile file's fields, and each parameter's: no others are taken. */
const FIELDS = ["name", "machine", "parameters"];
/** Longest profile name and machine description: they head every run's output. */
const MAX_NAME_LENGTH = 64;
const MAX_MACHINE_LENGTH = 300;
const PARAMETER_FIELDS = ["value", "unit", "source"];

/**
 * Validates a parsed profile document: `name` and `machine` (strings), and `parameters`, each an
 * object of `value`, `unit` and `source`. Unknown fields and parameters, and strings holding
 * control characters (they are printed in headers), are errors.
 */
export function parseProfile(doc: unknown, where: string): CostProfile {
  const fail = (msg: string): never => {
    throw new S2simError("bad-profile", `profile '${printable(where)}': ${msg}`);
  };
  /** The field `key` of `o` (parameter `param`'s, if given) as a string with no control character. */
  const string = (o: Record<string, unknown>, key: string, param?: string): string => {
    const v = own(o, key);
    const of = param === undefined ? "" : `parameter '${param}' `;
    if (typeof v !== "string") return fail(`${of}needs a string '${key}'`);
    const c = controlCharacter(v);
    if (c !== null) fail(`${of}'${key}' has a control character (${c}), which a terminal would act on`);
    return v;
  };
  /** Refuses any field of `o` (parameter `param`, if given; else the document) not in `fields`. */
  const onlyFields = (o: Record<string, unknown>, fields: readonly string[], param?: string): void => {
    const extra = Object.keys(o).find((k) => !fields.includes(k));
    if (extra === undefined) return;
    const [of, has] = param === undefined ? ["", "a profile"] : [`parameter '${param}': `, "a parameter"];
    fail(`${of}unknown field '${printable(extra)}' (${has} has only ${fields.join(", ")})`);
  };
  if (!isObject(doc)) return fail("must be a JSON object");
  onlyFields(doc, FIELDS);
  const name = string(doc, "name");
  // Printed at the head of every run, so one short line: no empty name, no page of text.
  if (name.trim() === "") fail("needs a non-empty 'name'");
  if (name.length > MAX_NAME_LENGTH) fail(`'name' must be at most ${MAX_NAME_LENGTH} characters`);
  const machine = string(doc, "machine");
  if (machine.trim() === "") fail("needs a 'machine' describing the machine it prices");
  if (machine.length > MAX_MACHINE_LENGTH) fail(`'machine' must be at most ${MAX_MACHINE_LENGTH} characters`);
  const raw = own(doc, "parameters");
  if (!isObject(raw)) return fail("needs a 'parameters' object");
  const params = new Map<string, ProfileParameter>();
  for (const [key, p] of Object.entries(raw)) {
    if (!PARAMETERS.has(key)) fail(`unknown parameter '${printable(key)}'`);
    if (!isObject(p)) return fail(`parameter '${key}' must be an object with value, unit and source`);
    onlyFields(p, PARAMETER_FIELDS, key);
    const value = own(p, "value");
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      fail(`parameter '${key}' needs a finite, non-negative number 'value'`);
    }
    const unit = string(p, "unit", key);
    const source = typeof own(p, "source") === "string" ? string(p, "source", key) : "";
    if (source.trim() === "") fail(`parameter '${key}' needs a 'source' saying where its value comes from`);
    params.set(key, { value: value as number, unit, source });
  }
  const need = (key: string): ProfileParameter => params.get(key) ?? fail(`missing parameter '${key}'`);
  const workCost = new Float64Array(WORK_COUNT);
  WORK_ITEMS.forEach((item, i) => {
    const ps = toPicoseconds(need(item), item, fail);
    // The engine adds these to its integer clock as they are, not through a segment's rounded sum.
    workCost[i] = CLOCK_COSTS.has(item) ? Math.round(ps) : ps;
  });
  const countOf = (key: string): number => {
    const p = need(key);
    const units = EXTRA.get(key)!;
    if (!units.includes(p.unit)) fail(`parameter '${key}' must be in ${units.join(" or ")}`);
    if (!Number.isInteger(p.value) || p.value < 1) fail(`parameter '${key}' must be a positive integer`);
    return p.value;
  };
  const tlb = { entries: countOf("tlb-entries"), ways: countOf("tlb-ways") };
  if (tlb.entries > MAX_TLB_ENTRIES) fail(`tlb-entries must be at most ${MAX_TLB_ENTRIES}`);
  if (tlb.ways > MAX_TLB_WAYS) fail(`tlb-ways must be at most ${MAX_TLB_WAYS}`);
  if (tlb.entries % tlb.ways !== 0) fail("tlb-entries must be a multiple of tlb-ways");
  const sets = tlb.entries / tlb.ways;
  // The TLB indexes its sets by address bits.
  if ((sets & (sets - 1)) !== 0) fail(`tlb-entries / tlb-ways (${sets} sets) must be a power of two`);
  const at = (item: (typeof WORK_ITEMS)[number]): number => workCost[WORK_ITEMS.indexOf(item)]!;
  return {
    name,
    machine,
    parameters: Object.fromEntries(params),
    workCost,
    engine: {
      lockAcquire: at("lock-acquire"),
      lockHandoff: at("lock-handoff"),
      hostLockHandoff: at("host-lock-handoff"),
      mutexWakeup: at("mutex-wakeup"),
    },
    tlb,
    vcpuRelease: Math.round(toPicoseconds(need("vcpu-release"), "vcpu-release", fail)),
    overrides: [],
  };
}

/**
 * The work items whose costs the engine puts on its clock directly (lock acquisitions and
 * handoffs); with `vcpu-release`, rounded to whole picoseconds so that virtual time stays integral.
 */
const CLOCK_COSTS: ReadonlySet<(typeof WORK_ITEMS)[number]> = new Set<(typeof WORK_ITEMS)[number]>([
  "lock-acquire",
  "lock-handoff",
  "host-lock-handoff",
  "mutex-wakeup",
]);

/** A parameter's cost per unit in picoseconds (a time, or for byte items also a GB/s rate). */
function toPicoseconds(p: ProfileParameter, key: string, fail: (m: string) => never): number {
  const scale = TIME_UNITS.get(p.unit);
  const perByte = key.endsWith("-byte");
  const max = perByte ? MAX_BYTE_PS : MAX_ITEM_PS;
  if (scale !== undefined) {
    const ps = Math.round(p.value * scale * 1000) / 1000;
    if (ps > max) fail(`parameter '${key}' must be at most ${perByte ? "1 us per byte" : "1 s"}`);
    return ps;
  }
  if (p.unit === "GB/s" && perByte) {
    if (!(1000 / p.value <= max)) fail(`parameter '${key}' must be a rate of at least 0.001 GB/s`);
    return 1000 / p.value;
  }
  return fail(`parameter '${key}' has unit '${p.unit}'; ${unitsText(key)}`);
}

/**
 * Whether parameter `key` may be given in `unit`: those {@link EXTRA} lists for it, else a time,
 * or for a byte item also GB/s.
 */
function knownUnit(unit: string, key: string): boolean {
  const extra = EXTRA.get(key);
  if (extra !== undefined) return extra.includes(unit);
  return TIME_UNITS.has(unit) || (unit === "GB/s" && key.endsWith("-byte"));
}

/** The units parameter `key` takes, for errors. */
function unitsText(key: string): string {
  const extra = EXTRA.get(key);
  if (extra !== undefined && !extra.every((u) => TIME_UNITS.has(u))) return `use ${extra.join(" or ")}`;
  return `use ps, ns, us or ms${key.endsWith("-byte") ? " (per byte) or GB/s" : ""}`;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** `o[key]` if `o` has that property itself, not from Object.prototype; else undefined. */
function own(o: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}
