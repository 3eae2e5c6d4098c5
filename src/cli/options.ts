/** Option parsing and number formatting shared by the simulating commands (page-table-test, reproduce). */
import { granuleOf } from "../arch/granule.js";
import { S2simError } from "../common/error.js";
import { hex, printable, sizeName } from "../common/format.js";
import { isSeed, MAX_SEED } from "../common/random.js";
import { rejectOctal } from "../common/size.js";
import { PIPE_SILENT_MS } from "../common/small-file.js";
import { backingSource } from "../host/backing.js";
import { vmIpaBits } from "../kvm/vm.js";
import type { KernelVersion } from "../pgtable/kernel.js";
import { type CostProfile, loadProfile, parseSetting, withOverrides } from "../sim/profile.js";
import {
  DEFAULT_GUEST_MODE,
  type GuestMode,
  MODELLED_HINT,
  modelledGuestMode,
  noSuchGuestMode,
} from "../workloads/guest-modes.js";
import type { ReleaseOrder } from "../workloads/release-order.js";

/** The model's host (and guest) page size. */
export const HOST_PAGE = 4096;

/** The profile used when --profile is not given. */
export const DEFAULT_PROFILE = "kunpeng920";

/** The kernel versions --kernel accepts. */
export const KERNEL_CHOICES: readonly KernelVersion[] = ["v5.12", "v5.14"];

/**
 * Reads `-m` (the selftest's -m may be repeated, each naming a mode to run; a mode named twice runs
 * once): the modes to run in the order the selftest runs them (by number), mode 4 (the cover
 * letter's) when none is given. The selftest reads the ID in base 10 (strtoul), so leading zeros
 * and a plus sign name the same mode.
 */
export function parseModes(texts: readonly string[] | undefined): readonly GuestMode[] {
  const ids = [...new Set((texts ?? []).map(modeId))].sort((a, b) => a - b);
  const modes = ids.map(modelledGuestMode);
  return modes.length > 0 ? modes : [DEFAULT_GUEST_MODE];
}

/** The number one -m names; what strtoul would cut short is named, not guessed at. */
function modeId(text: string): number {
  if (!/^[ \t]*\+?\d+[ \t]*$/.test(text)) {
    throw new S2simError(
      "bad-mode",
      `guest mode "${text}" is not a mode ID (a whole number); ${MODELLED_HINT}`,
    );
  }
  const digits = text.trim().replace(/^\+/, "");
  const id = Number(digits);
  // Quoted as written where a double would round it (past 2^53).
  if (!Number.isSafeInteger(id)) throw noSuchGuestMode(digits);
  return id;
}

/** The backing page size of `-s <src>` on the model's 4K host; unknown names are S2simErrors. */
export function backingPageSize(src: string): number {
  return backingSource(src, granuleOf(HOST_PAGE)).pageSize;
}

/**
 * Parses `-p`: a guest physical address, hex (`0x...`) or decimal, inside an `ipaBits`-bit IPA
 * space (by default the selftest VM's).
 */
export function parseGpa(text: string, ipaBits = vmIpaBits(undefined)): number {
  const t = text.trim();
  // Read as a BigInt so that an address past 2^53 is named as what it is: outside the IPA space.
  const value = /^(0x[0-9a-f]+|\d+)$/i.test(t) ? BigInt(t) : null;
  if (value === null) {
    throw new S2simError("bad-gpa", `test GPA "${text}" is not a hex (0x...) or decimal address`);
  }
  rejectOctal(t, text, "test GPA");
  const limit = 2n ** BigInt(ipaBits);
  if (value >= limit) {
    const shown = /^0x/i.test(t) ? hex(value) : `${t} (${hex(value)})`;
    throw new S2simError(
      "outside-ipa",
      `test GPA ${shown} is beyond the ${ipaBits}-bit IPA space (${sizeName(2 ** ipaBits)}: GPAs up to ${hex(limit - 1n)})`,
    );
  }
  return Number(value);
}

/**
 * Parses `--seed`: an integer from 0 to 2^32 - 1, the generator's state (so that no two seeds
 * give the same run).
 */
export function parseSeed(text: string): number {
  const t = text.trim();
  if (!/^[-+]?\d+$/.test(t)) throw new S2simError("bad-seed", `seed "${text}" is not an integer`);
  const value = Number(t);
  if (!isSeed(value)) {
    throw new S2simError(
      "bad-seed",
      `seed "${text}" is out of range: use an integer from 0 to ${MAX_SEED} (the generator's 32-bit state)`,
    );
  }
  return value;
}

/** Parses `--mem-scale`: a decimal (`0.001`) or a fraction (`1/1024`), 0 < f <= 1. */
export function parseMemScale(text: string): number {
  const t = text.trim();
  const frac = /^(\d+(?:\.\d+)?)\s*\/\s*(\d+(?:\.\d+)?)$/.exec(t);
  const value = frac
    ? Number(frac[1]) / Number(frac[2])
    : /^(\d+(\.\d*)?|\.\d+)(e-?\d+)?$/i.test(t)
      ? Number(t)
      : NaN;
  if (!Number.isFinite(value) || value <= 0 || value > 1) {
    throw new S2simError(
      "bad-scale",
      `memory scale "${text}" must be a number f with 0 < f <= 1 (e.g. 0.01 or 1/1024)`,
    );
  }
  return value;
}

/**
 * Loads `--profile` (bundled name or .json path) with the `--set` changes applied; failures are
 * S2simErrors.
 */
export function loadProfileOption(nameOrPath: string | undefined, sets: readonly string[] = []): CostProfile {
  const name = nameOrPath ?? DEFAULT_PROFILE;
  // A pipe whose writer sends nothing is waited for (as cat would); say so rather than seem hung.
  const onWait = (received: number): void => {
    const sent =
      received === 0 ? "nothing yet" : `${received} bytes, then nothing for ${PIPE_SILENT_MS / 1000} s`;
    process.stderr.write(`s2sim: waiting for profile '${printable(name)}': its writer has sent ${sent}\n`);
  };
  return withOverrides(loadProfile(name, onWait), sets.map(parseSetting));
}

/** The `--set` changes of `profile` for people, or null if none. */
export function overridesText(profile: CostProfile): string | null {
  if (profile.overrides.length === 0) return null;
  const each = profile.overrides.map(
    (o) =>
      `${o.parameter} ${o.value} ${o.unit} (` +
      (o.rounded_ps === undefined ? "" : `the engine's clock takes ${o.rounded_ps} ps; `) +
      `the profile's: ${o.was.value} ${o.was.unit})`,
  );
  return `changed with --set: ${each.join(", ")}`;
}

/** A byte count for people: `4 KiB`, `1.88 GiB`, `0 B`. */
export function humanBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${bytes} B`;
  const digits = v >= 100 || Number.isInteger(v) ? 0 : v >= 10 ? 1 : 2;
  return `${v.toFixed(digits)} ${units[i]}`;
}

/** Seconds as the selftest prints a timespec: `104.350000000s`. */
export function timespec(seconds: number): string {
  const ns = Math.round(seconds * 1e9);
  const s = Math.floor(ns / 1e9);
  return `${s}.${String(ns - s * 1e9).padStart(9, "0")}s`;
}

/** A fraction as an unsigned percentage with one decimal (`99.0 %`), or `-` for NaN. */
export function share(fraction: number): string {
  return Number.isNaN(fraction) ? "-" : `${(100 * fraction).toFixed(1)} %`;
}

/** A whole number with thousands separators (stable across locales). */
export function count(n: number): string {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** Renders rows as aligned columns; `right[i]` right-aligns column i. */
export function columns(rows: readonly string[][], right: readonly boolean[], indent = "  "): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map(
    (r) =>
      indent +
      r
        .map((c, i) => (right[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
        .join("  ")
        .trimEnd(),
  );
}

/** A signed number with `digits` decimals; never `-0.00`. */
export function signed(x: number, digits: number): string {
  if (!Number.isFinite(x)) return "n/a";
  const t = Math.abs(x).toFixed(digits);
  return `${x < 0 && Number(t) !== 0 ? "-" : "+"}${t}`;
}

/** A signed percentage: `+13.35 %`. */
export function pct(x: number, digits = 2): string {
  return Number.isFinite(x) ? `${signed(x * 100, digits)} %` : "n/a";
}

/** Seconds with four significant digits, never in exponent form. */
export function seconds(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return "0";
  if (Math.abs(x) >= 1000) return x.toFixed(0);
  const digits = Math.max(0, 3 - Math.floor(Math.log10(Math.abs(x))));
  return x.toFixed(Math.min(digits, 9));
}

/** How the text outputs name a release order. */
export function releaseOrderText(order: ReleaseOrder): string {
  switch (order) {
    case "fifo":
      return "the selftest's order (by id, then by when each finished the stage before)";
    case "id":
      return "id order in every stage";
    case "reverse":
      return "reverse id order in every stage";
    case "random":
      return "a random order per stage (from the seed)";
  }
}
