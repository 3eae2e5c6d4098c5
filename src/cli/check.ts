/** The `--check` and `--inject` options: parsing and their `list` texts. */
import { BUG_CAUGHT_BY, CHECKS, type CheckName, parseChecks, ruleOf } from "../check/rules.js";
import { CheckFailure, type Violation } from "../check/violation.js";
import { kvmKernel, withInjectedBug } from "../kvm/kernel.js";
import { INJECTED_BUGS } from "../pgtable/bugs.js";
import { KERNEL_VERSIONS, type KernelVersion } from "../pgtable/kernel.js";
import { type CpuChoice, refuseCmoBugWithFwb } from "./cpu.js";
import { AnswerWithStatus } from "./exit-status.js";
import { columns } from "./options.js";

/** `--check` as commander hands it over: absent, `true` (given without a value) or a list. */
export type CheckOption = string | boolean | undefined;

/** The checkers to run, or null for none. */
export function checksOption(opt: CheckOption): ReadonlySet<CheckName> | null {
  if (opt === undefined || opt === false) return null;
  return parseChecks(opt === true ? "all" : opt);
}

/** `--check list`: the checkers and their rules (with `json`, as `{"checkers": [...]}`). */
export function checkListText(json = false): string {
  if (json) return JSON.stringify({ checkers: CHECKS.map((c) => ({ name: c.name, rule: c.rule })) }, null, 2);
  return [
    "checkers (--check NAME[,NAME...], or --check / --check all for every one):",
    ...columns(
      CHECKS.map((c) => [c.name, c.rule]),
      [false, false],
    ),
  ].join("\n");
}

/**
 * `--inject list`: the injectable bugs, the kernels they apply to and the checker that catches
 * them (with `json`, as `{"injectable_bugs": [...]}`).
 */
export function injectListText(json = false): string {
  if (json) {
    const bugs = INJECTED_BUGS.map((b) => ({
      name: b.name,
      kernels: b.kernels,
      caught_by: BUG_CAUGHT_BY[b.name],
      summary: b.summary,
    }));
    return JSON.stringify({ injectable_bugs: bugs }, null, 2);
  }
  return [
    "injectable bugs (--inject NAME; add --check to catch them):",
    ...columns(
      [
        ["name", "kernels", "caught by", "what the buggy kernel does"],
        ...INJECTED_BUGS.map((b) => [b.name, b.kernels.join(","), BUG_CAUGHT_BY[b.name], b.summary]),
      ],
      [false, false, false, false],
    ),
  ].join("\n");
}

/**
 * Runs a command that prints JSON when `json` is set: a checked run's violation then becomes its
 * answer on stdout, `{"check_failed": {...}}` with exit status 1, where a script reads it (the
 * text output keeps the report on stderr).
 */
export function withJsonCheckFailure(json: boolean | undefined, command: () => string): string {
  try {
    return command();
  } catch (err) {
    return jsonCheckFailure(json, err);
  }
}

/** {@link withJsonCheckFailure} for a command that answers later. */
export async function withJsonCheckFailureAsync(
  json: boolean | undefined,
  command: () => Promise<string>,
): Promise<string> {
  try {
    return await command();
  } catch (err) {
    return jsonCheckFailure(json, err);
  }
}

/** Throws `err` again: with `json`, a checker's violation as its JSON answer (exit status 1). */
function jsonCheckFailure(json: boolean | undefined, err: unknown): never {
  if (json === true && err instanceof CheckFailure) {
    throw new AnswerWithStatus(JSON.stringify({ check_failed: violationJson(err.violation) }, null, 2), 1);
  }
  throw err;
}

/** A violation as JSON: `vcpu` -1 is host code, `time_ps` null an untimed one; history lines unpadded. */
export function violationJson(v: Violation): Record<string, unknown> {
  return {
    check: v.check,
    rule: ruleOf(v.check),
    what: v.what,
    vcpu: v.vcpu,
    time_ps: Number.isNaN(v.timePs) ? null : v.timePs,
    ipa: v.ipa,
    level: v.level,
    history: v.history.map((line) => line.trimStart()),
    ...(v.kernel === undefined ? {} : { kernel: v.kernel }),
    ...(v.guestMode === undefined ? {} : { guest_mode: v.guestMode }),
    ...(v.setting === undefined ? {} : { setting: v.setting }),
  };
}

/**
 * Runs `run`; a CheckFailure it throws names `kernel` when `named` (a command running several
 * kernels says which one broke the rule).
 */
export function namingKernel<T>(kernel: string, named: boolean, run: () => T): T {
  return naming(named ? { kernel } : {}, run);
}

/**
 * Runs `run`; a CheckFailure it throws names guest mode `mode` when `named` (page-table-test
 * running several modes says which one broke the rule).
 */
export function namingGuestMode<T>(mode: number, named: boolean, run: () => T): T {
  return naming(named ? { guestMode: mode } : {}, run);
}

/** Runs `run`; a CheckFailure it throws is thrown again with `names` added to its violation. */
function naming<T>(names: Pick<Violation, "kernel" | "guestMode">, run: () => T): T {
  try {
    return run();
  } catch (err) {
    if (Object.keys(names).length > 0 && err instanceof CheckFailure) {
      throw new CheckFailure({ ...err.violation, ...names });
    }
    throw err;
  }
}

/** The kernels `--kernel` names: one, or both ("both": v5.12, then v5.14). */
export function kernelsOption(kernel: KernelVersion | "both"): readonly KernelVersion[] {
  return kernel === "both" ? KERNEL_VERSIONS : [kernel];
}

/**
 * Refuses `--inject`, before anything runs, unless the bug exists in every kernel asked for and
 * changes something on this CPU (S2simErrors).
 */
export function checkInjection(
  inject: string | undefined,
  kernels: readonly KernelVersion[],
  cpu: CpuChoice,
): void {
  if (inject === undefined) return;
  for (const k of kernels) withInjectedBug(kvmKernel(k), inject);
  refuseCmoBugWithFwb(inject, cpu);
}
