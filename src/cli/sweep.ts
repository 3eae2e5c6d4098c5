/**
 * `page-table-test --sweep name=v1,v2,...`: the same runs once per value of one profile parameter,
 * side by side: how much each stage's simulated time, and what the fault path did, moves with
 * that cost (a sensitivity run, as docs/calibration.md's sweeps).
 */
import { S2simError } from "../common/error.js";
import { printable } from "../common/format.js";
import {
  type CostProfile,
  type ProfileSetting,
  parseSetting,
  sameCosts,
  withOverrides,
} from "../sim/profile.js";
import type { SimReport, SimStageReport } from "../workloads/page-table-sim.js";
import { columns, count, humanBytes, pct, seconds } from "./options.js";

/** The most values one sweep runs (each value is a whole run of every mode and kernel). */
export const MAX_SWEEP_VALUES = 32;

/** One value of a sweep: the profile with it, and how it reads. */
export interface SweepPoint {
  /** "500 ns": the value as a number and its unit (the profile's when none was given). */
  readonly label: string;
  /** Whether it is the profile's own value (in any unit: every cost the same). */
  readonly isProfileValue: boolean;
  readonly profile: CostProfile;
}

/** A parsed `--sweep`. */
export interface Sweep {
  readonly parameter: string;
  /** The profile's own value of it, e.g. "1000 ns". */
  readonly profileValue: string;
  /** Whether `--set` changed other parameters for every run. */
  readonly otherChanges: boolean;
  readonly points: readonly SweepPoint[];
}

/**
 * `profile` with `parameter` set to `value` (one of a `--sweep`'s values, as `--set` takes it); an
 * error names the sweep and the value, not `--set` (whose syntax and checks it shares).
 */
function withValue(profile: CostProfile, parameter: string, value: string): CostProfile {
  const shown = `--sweep ${printable(parameter)}: the value "${printable(value.trim())}"`;
  let setting: ProfileSetting;
  try {
    setting = parseSetting(`${parameter}=${value}`);
  } catch (err) {
    if (!(err instanceof S2simError)) throw err;
    const must = /: the value (must be .*)$/.exec(err.message);
    throw new S2simError(
      "bad-sweep",
      `${shown} ${must !== null ? must[1]! : "is not a number with an optional unit (e.g. 500ns, 1us, 2us)"}`,
    );
  }
  try {
    return withOverrides(profile, [setting]);
  } catch (err) {
    if (!(err instanceof S2simError)) throw err;
    // A parameter the profile lacks is the sweep's error, whatever the value.
    if (err.message.startsWith("--set: "))
      throw new S2simError("bad-sweep", `--sweep${err.message.slice(5)}`);
    // Else what is wrong with this value: past `--set name: ` or the changed profile's name.
    const what = err.message.replace(/^--set [^:]*: /, "").replace(/^profile '[^']*': /, "");
    throw new S2simError("bad-sweep", `${shown}: ${what}`);
  }
}

/**
 * Parses `--sweep name=v1,v2,...` against `profile` (already changed by any `--set`): each value
 * as `--set` takes it (a unit of its own, or the profile's), at most {@link MAX_SWEEP_VALUES}, none
 * twice, and not a parameter `--set` also changes.
 */
export function parseSweep(text: string, profile: CostProfile): Sweep {
  const eq = text.indexOf("=");
  const parameter = eq < 0 ? "" : text.slice(0, eq).trim();
  const values = eq < 0 ? [] : text.slice(eq + 1).split(",");
  if (parameter === "" || values.every((v) => v.trim() === "")) {
    throw new S2simError(
      "bad-sweep",
      `--sweep "${printable(text)}" is not name=value,value,... (e.g. host-fault=500ns,1us,2us)`,
    );
  }
  if (values.length > MAX_SWEEP_VALUES) {
    throw new S2simError("bad-sweep", `--sweep ${printable(parameter)}: at most ${MAX_SWEEP_VALUES} values`);
  }
  if (profile.overrides.some((o) => o.parameter === parameter)) {
    throw new S2simError(
      "bad-sweep",
      `--sweep ${printable(parameter)}: --set changes it too; give one of them`,
    );
  }
  const was = Object.hasOwn(profile.parameters, parameter) ? profile.parameters[parameter] : undefined;
  const points = values.map((value): SweepPoint => {
    if (value.trim() === "") {
      throw new S2simError("bad-sweep", `--sweep "${printable(text)}" has an empty value`);
    }
    const changed = withValue(profile, parameter, value);
    const o = changed.overrides[changed.overrides.length - 1]!;
    return { label: `${o.value} ${o.unit}`, isProfileValue: sameCosts(changed, profile), profile: changed };
  });
  // The same cost twice, in any units (1us and 1000ns), is one run made twice.
  points.forEach((p, i) => {
    const same = points.findIndex((q) => sameCosts(q.profile, p.profile));
    if (same < i) {
      const what =
        points[same]!.label === p.label ? "is given twice" : `costs the same as ${points[same]!.label}`;
      throw new S2simError("bad-sweep", `--sweep ${printable(parameter)}: the value ${p.label} ${what}`);
    }
  });
  // `was` exists: withOverrides refused a parameter the profile lacks.
  return {
    parameter,
    profileValue: `${was!.value} ${was!.unit}`,
    otherChanges: profile.overrides.length > 0,
    points,
  };
}

/** The sweep as a command's JSON says it: `{"parameter", "profile_value", "values"}`. */
export function sweepJson(sweep: Sweep): Record<string, unknown> {
  return {
    parameter: sweep.parameter,
    profile_value: sweep.profileValue,
    values: sweep.points.map((p) => p.label),
  };
}

/** A value as the tables name it: "500 ns", or "1000 ns (profile)" for the profile's own. */
export function valueCell(point: SweepPoint): string {
  return point.label + (point.isProfileValue ? " (profile)" : "");
}

/** The runs of one value of a sweep: per guest mode, the reports of its kernels. */
export interface SweepResult {
  readonly point: SweepPoint;
  readonly byMode: ReadonlyArray<{
    readonly mode: { readonly id: number };
    readonly reports: readonly SimReport[];
  }>;
}

/** A stage's guest aborts (every kind and level, S1PTW faults included). */
function aborts(stage: SimStageReport): number {
  return Object.values(stage.faults).reduce((a, n) => a + n, 0);
}

/**
 * The sweep's tables: per value (with the guest mode when several run), kernel and stage, the
 * simulated time and what moved it; with two kernels, each stage's gain per value.
 */
export function sweepText(sweep: Sweep, results: readonly SweepResult[], heading: readonly string[]): string {
  const modes = results[0]!.byMode.length > 1;

  const rows: string[][] = [];
  for (const r of results) {
    for (const { mode, reports } of r.byMode) {
      for (const report of reports) {
        for (const stage of report.stages) {
          rows.push([
            valueCell(r.point),
            ...(modes ? [String(mode.id)] : []),
            report.kernel,
            stage.name,
            seconds(stage.simulated_s),
            count(aborts(stage)),
            count(stage.retries),
            count(stage.maps),
            count(stage.eagain),
            count(stage.relaxes),
            humanBytes(stage.cmo_bytes.dcache),
          ]);
        }
      }
    }
  }
  const head = [
    sweep.parameter,
    ...(modes ? ["mode"] : []),
    "kernel",
    "stage",
    "simulated s",
    "aborts",
    "retries",
    "maps",
    "-EAGAIN",
    "relaxes",
    "D-cache cleaned",
  ];
  const out = [
    ...heading,
    `${sweep.parameter} swept over ${sweep.points.map((p) => p.label).join(", ")} (the profile's: ${sweep.profileValue}); every other cost as the profile${sweep.otherChanges ? " with the --set changes above" : ""}`,
    "Execution times below are model predictions for the profile's machine, not measurements;",
    "retries are faults that failed mmu_notifier_retry.",
    "",
    ...columns(
      [head, ...rows],
      head.map((_, i) => i >= (modes ? 4 : 3)),
    ),
  ];
  const pairs = results[0]!.byMode[0]!.reports.length === 2;
  if (pairs) {
    const [kb, ka] = results[0]!.byMode[0]!.reports.map((r) => r.kernel);
    const gains: string[][] = [];
    for (const r of results) {
      for (const { mode, reports } of r.byMode) {
        const [before, after] = reports as [SimReport, SimReport];
        before.stages.forEach((b, i) => {
          const a = after.stages[i]!;
          gains.push([
            valueCell(r.point),
            ...(modes ? [String(mode.id)] : []),
            b.name,
            seconds(b.simulated_s),
            seconds(a.simulated_s),
            pct((b.simulated_s - a.simulated_s) / b.simulated_s),
          ]);
        });
      }
    }
    const gainHead = [sweep.parameter, ...(modes ? ["mode"] : []), "stage", `${kb} s`, `${ka} s`, "gain"];
    out.push(
      "",
      `${kb} (before) against ${ka} (after); gain = (before - after) / before:`,
      ...columns(
        [gainHead, ...gains],
        gainHead.map((_, i) => i >= (modes ? 3 : 2)),
      ),
    );
  }
  return out.join("\n");
}
