/** The `--check` and `--inject` options: parsing and their `list` texts. */
import { BUG_CAUGHT_BY, CHECKS, type CheckName, parseChecks } from "../check/rules.js";
import { INJECTED_BUGS } from "../pgtable/bugs.js";
import { columns } from "./options.js";

/** `--check` as commander hands it over: absent, `true` (given without a value) or a list. */
export type CheckOption = string | boolean | undefined;

/** The checkers to run, or null for none. */
export function checksOption(opt: CheckOption): ReadonlySet<CheckName> | null {
  if (opt === undefined || opt === false) return null;
  return parseChecks(opt === true ? "all" : opt);
}

/** `--check list`: the checkers and their rules. */
export function checkListText(): string {
  return [
    "checkers (--check NAME[,NAME...], or --check / --check all for every one):",
    ...columns(
      CHECKS.map((c) => [c.name, c.rule]),
      [false, false],
    ),
  ].join("\n");
}

/** `--inject list`: the injectable bugs, the kernels they apply to and the checker that catches them. */
export function injectListText(): string {
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
