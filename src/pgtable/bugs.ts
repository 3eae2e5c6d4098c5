/**
 * Bugs a kernel profile can be built with (`--inject`), for checker tests and for teaching. Each
 * is one named departure from the spec's rules at one place in the pgtable code; a kernel profile
 * carries at most one. With none, the code is the kernel's.
 */
import type { KernelVersion } from "./kernel.js";

/** The injectable bugs. */
export type InjectedBug =
  | "no-tlbi-after-break"
  | "no-break"
  | "coalesce-tlbi-ipa"
  | "coalesce-no-cmo"
  | "install-no-cmo"
  | "free-before-tlbi";

/** What an injected bug changes and which kernels it can be injected into. */
export interface InjectedBugInfo {
  readonly name: InjectedBug;
  /** One line: what the buggy kernel does differently. */
  readonly summary: string;
  /** Kernels whose code has the place the bug changes. */
  readonly kernels: readonly KernelVersion[];
  /**
   * Whether it leaves out a leaf's CMOs: with FEAT_S2FWB the D-cache clean is a no-op anyway, and
   * the I-cache invalidation concerns executable leaves only.
   */
  readonly cmo?: boolean;
}

/** The catalogue, in `--inject list` order. */
export const INJECTED_BUGS: readonly InjectedBugInfo[] = [
  {
    name: "no-tlbi-after-break",
    summary: "stage2_put_pte breaks a valid entry but issues no TLBI by IPA",
    kernels: ["v5.12", "v5.14"],
  },
  {
    name: "no-break",
    summary:
      "a valid entry is replaced by a different valid one in a single store, TLBI after: a leaf by " +
      "another in try_leaf, a block by a table when splitting",
    kernels: ["v5.12", "v5.14"],
  },
  {
    name: "coalesce-tlbi-ipa",
    summary:
      "coalescing a table into a block invalidates by IPA at the table's level instead of the whole VMID " +
      '(the bug fixed in v5.10 by "KVM: arm64: Fix handling of merging tables into a block entry")',
    kernels: ["v5.12", "v5.14"],
  },
  {
    name: "coalesce-no-cmo",
    summary:
      "the map walker installs a coalesced block without its CMOs, the D-cache clean (and the I-cache invalidation of an executable block): the RFC variant the series dropped",
    kernels: ["v5.14"],
    cmo: true,
  },
  {
    name: "install-no-cmo",
    summary: "the vCPU that installs a new leaf skips the CMOs the map walker owes for it",
    kernels: ["v5.14"],
    cmo: true,
  },
  {
    name: "free-before-tlbi",
    summary:
      "coalescing frees the detached table pages before the whole-VMID TLBI (issued just before the block is " +
      "installed)",
    kernels: ["v5.12", "v5.14"],
  },
];

/** The catalogue entry of `name`, or undefined. */
export function injectedBugInfo(name: string): InjectedBugInfo | undefined {
  return INJECTED_BUGS.find((b) => b.name === name);
}
