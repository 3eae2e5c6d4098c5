/**
 * The architectural checkers s2sim runs (`--check`), the rule each one enforces, and which checker
 * is expected to catch each injectable bug.
 */
import { S2simError } from "../common/error.js";
import type { InjectedBug } from "../pgtable/bugs.js";

/** The checkers. */
export type CheckName = "bbm" | "tlb-conflict" | "stale-tlb" | "table-free" | "refcount" | "coherence";

/** A checker and the rule it enforces. */
export interface CheckInfo {
  readonly name: CheckName;
  readonly rule: string;
}

/** Every checker, in report order. */
export const CHECKS: readonly CheckInfo[] = [
  {
    name: "bbm",
    rule:
      "break-before-make: a valid entry goes valid -> invalid -> TLBI -> valid, the TLBI inside the " +
      "operation that broke it; two valid values may differ only in permissions, XN, AF, DBM and " +
      "software bits, never in output address, table/block, memory type, shareability or contiguity",
  },
  {
    name: "tlb-conflict",
    rule: "a TLB never holds two live entries that overlap with different sizes or output addresses",
  },
  {
    name: "stale-tlb",
    rule:
      "a TLB hit agrees with the tables: once an entry changes, the TLBI that removes its cached " +
      "copies is issued before any CPU can hit them",
  },
  {
    name: "table-free",
    rule:
      "a table page is freed only once no table entry reaches it and a TLBI covering the way to it " +
      "(its own range) has followed the store that unlinked it; no walk reads a freed table page",
  },
  {
    name: "refcount",
    rule: "after every page-table operation each table page's refcount is 1 + its counted entries",
  },
  {
    name: "coherence",
    rule:
      "without FWB, memory becomes guest-visible through a Normal leaf only when the host's writes to " +
      "it are cleaned to the PoC, and executable only when the I-cache was invalidated after them",
  },
];

/** The checker expected to catch each injected bug first. */
export const BUG_CAUGHT_BY: Readonly<Record<InjectedBug, CheckName>> = {
  "no-tlbi-after-break": "bbm",
  "no-break": "bbm",
  "coalesce-tlbi-ipa": "bbm",
  "coalesce-no-cmo": "coherence",
  "install-no-cmo": "coherence",
  "free-before-tlbi": "table-free",
};

/** The rule of checker `name`. */
export function ruleOf(name: CheckName): string {
  return CHECKS.find((c) => c.name === name)!.rule;
}

/**
 * Parses a `--check` value: a comma-separated list of checker names, in which `all` stands for
 * every checker (`all,bbm` is all of them). An empty value or name is an error, not "all": a
 * script that meant to name checkers would otherwise run every one without a word.
 */
export function parseChecks(spec: string): ReadonlySet<CheckName> {
  const names = CHECKS.map((c) => c.name);
  const choices = `all, or a comma list of ${names.join(", ")}`;
  const parts = spec.split(",").map((p) => p.trim());
  if (parts.every((p) => p === "")) {
    throw new S2simError("bad-check", `--check needs checker names: ${choices}`);
  }
  const out = new Set<CheckName>();
  for (const name of parts) {
    if (name === "all") {
      for (const n of names) out.add(n);
      continue;
    }
    const info = CHECKS.find((c) => c.name === name);
    if (info === undefined) {
      const what =
        name === ""
          ? `--check "${spec}" has an empty checker name`
          : name === "list"
            ? "--check list names the checkers only on its own"
            : `unknown checker '${name}'`;
      throw new S2simError("bad-check", `${what}; --check takes ${choices}`);
    }
    out.add(info.name);
  }
  return out;
}
