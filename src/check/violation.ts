/** A broken architectural rule, as the checkers report it, and the error a checked run fails with. */
import { S2simError } from "../common/error.js";
import { hex } from "../common/format.js";
import { formatCpu, formatTime } from "./history.js";
import { type CheckName, ruleOf } from "./rules.js";

/** One violation. */
export interface Violation {
  readonly check: CheckName;
  /** What happened, specifically. */
  readonly what: string;
  /** The vCPU whose code or access broke the rule (-1: host code between timed runs). */
  readonly vcpu: number;
  /** Virtual time in picoseconds (NaN: untimed). */
  readonly timePs: number;
  readonly ipa: number;
  readonly level: number;
  /** The recent events of the entry or page concerned, oldest first. */
  readonly history: readonly string[];
  /** The kernel whose run broke the rule, when a command runs more than one. */
  readonly kernel?: string;
  /** The selftest's guest mode of that run, when a command runs more than one. */
  readonly guestMode?: number;
  /** The profile parameter's value of that run ("host-fault 500 ns"), when a command sweeps one. */
  readonly setting?: string;
}

/**
 * " (kernel v5.14, guest mode 3, host-fault 500 ns)": the run that broke the rule, as far as the
 * command ran several, and "untimed" for code outside the timed stages.
 */
function runNamed(v: Violation): string {
  const parts = [
    ...(v.kernel === undefined ? [] : [`kernel ${v.kernel}`]),
    ...(v.guestMode === undefined ? [] : [`guest mode ${v.guestMode}`]),
    ...(v.setting === undefined ? [] : [v.setting]),
    ...(Number.isNaN(v.timePs) ? ["untimed"] : []),
  ];
  return parts.length === 0 ? "" : ` (${parts.join(", ")})`;
}

/** The multi-line report of a violation. */
export function formatViolation(v: Violation): string {
  const lines = [
    `${v.check} violation${runNamed(v)}${Number.isNaN(v.timePs) ? "" : ` at ${formatTime(v.timePs)}`} on ${formatCpu(v.vcpu)}: ${v.what}`,
    `  rule: ${ruleOf(v.check)}`,
    `  where: IPA ${hex(v.ipa)}, level ${v.level}`,
    `  history (most recent last):`,
    ...(v.history.length > 0 ? v.history.map((l) => `    ${l}`) : ["    (none recorded)"]),
  ];
  return lines.join("\n");
}

/** Thrown by a checked run at its first violation. */
export class CheckFailure extends S2simError {
  constructor(readonly violation: Violation) {
    super("check-failed", formatViolation(violation));
  }
}
