/**
 * `s2sim scenario`: runs one of the small checker scenarios (workloads/check-scenarios.ts) on the
 * simulated machine, optionally with an injected bug, and prints its steps and what the checkers
 * found.
 */
import { formatViolation } from "../check/violation.js";
import { S2simError } from "../common/error.js";
import { sizeName } from "../common/format.js";
import type { KernelVersion } from "../pgtable/kernel.js";
import { CHECK_SCENARIOS, checkScenario, runCheckScenario } from "../workloads/check-scenarios.js";
import {
  type CheckOption,
  checkInjection,
  checkListText,
  checksOption,
  injectListText,
  kernelsOption,
  namingKernel,
  violationJson,
} from "./check.js";
import { AnswerWithStatus } from "./exit-status.js";
import { columns, loadProfileOption, overridesText } from "./options.js";
import { injectedBugLine } from "./page-table-test.js";
import { cpuNotes, parseCpu } from "./cpu.js";
import { formatTime } from "../check/history.js";

/** The command's options as commander hands them over. */
export interface ScenarioOptions {
  /** A kernel, or "both" (v5.12, then v5.14). */
  kernel: KernelVersion | "both";
  inject?: string;
  check?: CheckOption;
  profile: string;
  /** `--set name=value`: profile parameters changed for the run. */
  set?: string[];
  /** `--fwb`: the same as `--cpu fwb`. */
  fwb?: boolean;
  /** `--cpu`: CPU features changed from the profile's machine. */
  cpu?: string;
  /** Print one JSON object instead of the text. */
  json?: boolean;
}

/**
 * Runs a scenario and renders the result. With `--check` the first violation stops it (a
 * CheckFailure); without, every checker runs, every violation is listed, and any makes the exit
 * status 1.
 * `name` is undefined when the command line has none (an error, unless a `list` is asked for).
 */
export function scenarioCommand(name: string | undefined, opts: ScenarioOptions): string {
  if (name === "list") {
    if (opts.json === true) {
      const scenarios = CHECK_SCENARIOS.map((s) => ({
        name: s.name,
        provokes: s.provokes,
        summary: s.summary,
      }));
      return JSON.stringify({ scenarios }, null, 2);
    }
    return [
      "scenarios (s2sim scenario NAME [--kernel v5.12|v5.14|both] [--inject BUG] [--check]):",
      ...columns(
        CHECK_SCENARIOS.map((s) => [s.name, `provokes ${s.provokes.join(", ")}`, s.summary]),
        [false, false, false],
      ),
    ].join("\n");
  }
  if (opts.inject === "list") return injectListText(opts.json);
  if (opts.check === "list") return checkListText(opts.json);
  if (name === undefined) throw missingName(opts.check);
  const s = checkScenario(name);
  const checks = checksOption(opts.check ?? true)!;
  const cpu = parseCpu(opts.cpu, opts.fwb);
  const kernels = kernelsOption(opts.kernel);
  checkInjection(opts.inject, kernels, cpu);
  const profile = loadProfileOption(opts.profile, opts.set);
  const failFast = opts.check !== undefined && opts.check !== false;
  const results = kernels.map((kernel) =>
    namingKernel(kernel, kernels.length > 1, () =>
      runCheckScenario(s, profile, {
        kernel,
        ...(opts.inject === undefined ? {} : { inject: opts.inject }),
        checks,
        mode: failFast ? "fail-fast" : "collect",
        ...(cpu.changes.length === 0 ? {} : { cpu: cpu.cpu }),
      }),
    ),
  );
  // Every checker runs without --check too, so a violation found fails the run as a checked one does.
  const violated = results.some((r) => r.violations.length > 0);
  if (opts.json === true) {
    const json = JSON.stringify(
      {
        scenario: s.name,
        summary: s.summary,
        backing: s.backing,
        vcpus: s.vcpus,
        mem_bytes: s.memBytes,
        profile: profile.name,
        profile_overrides: profile.overrides,
        inject: opts.inject ?? null,
        cpu_changes: cpu.changes,
        checkers: [...checks],
        runs: results.map((r, i) => ({
          kernel: kernels[i],
          steps: r.steps.map((st) => ({ what: st.what, end_ps: st.endPs })),
          found: r.found,
          violations: r.violations.map(violationJson),
          ...(opts.inject === undefined
            ? {}
            : { bug_departures: r.bugDepartures, teardown_departures: r.teardownDepartures }),
        })),
      },
      null,
      2,
    );
    if (violated) throw new AnswerWithStatus(json, 1);
    return json;
  }
  const changes = overridesText(profile);
  const blocks = results.map((result, i) => {
    const kernel = kernels[i]!;
    const out = [
      `scenario ${s.name} on kernel ${kernel}${opts.inject ? ` with injected bug ${opts.inject}` : ""}: ${s.summary}`,
      `${s.vcpus} vCPU(s), ${sizeName(s.memBytes)} ${s.backing}; profile ${profile.name}; checkers ${[...checks].join(", ")}`,
      ...(changes === null ? [] : [changes]),
      ...cpuNotes(cpu),
      ...columns(
        result.steps.map((st, i) => [`${i + 1}.`, st.what, `done at ${formatTime(st.endPs)}`]),
        [true, false, false],
      ),
      "",
    ];
    if (opts.inject !== undefined) {
      out.push(injectedBugLine(opts.inject, result.bugDepartures, result.teardownDepartures, "the steps"));
    }
    if (result.violations.length === 0) out.push("no violation");
    else out.push(...result.violations.slice(0, 5).map(formatViolation));
    if (result.found > 5) out.push(`... and ${result.found - 5} more`);
    return out.join("\n");
  });
  const text = blocks.join("\n\n");
  if (violated) throw new AnswerWithStatus(text, 1);
  return text;
}

/**
 * The error for a command line without a scenario name. `--check` takes an optional value, so in
 * `scenario --check split` commander reads the name as the checkers to run: say so.
 */
function missingName(check: CheckOption): S2simError {
  const names = CHECK_SCENARIOS.map((s) => s.name);
  // Repeated --check values are joined: the name may be any item of the list.
  const taken = typeof check === "string" ? check.split(",").find((c) => names.includes(c)) : undefined;
  if (taken !== undefined) {
    return new S2simError(
      "bad-scenario",
      `scenario: '${taken}' was read as --check's value; put the scenario name first: ` +
        `s2sim scenario ${taken} --check`,
    );
  }
  return new S2simError(
    "bad-scenario",
    `scenario: missing the scenario name; scenarios: ${names.join(", ")}`,
  );
}
