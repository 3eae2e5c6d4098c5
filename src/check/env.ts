/** What every checker is given: the VM, the clock, the report channel and the decoded PTE change. */
import type { Granule } from "../arch/granule.js";
import type { Vm } from "../kvm/vm.js";
import type { Focus } from "./history.js";
import type { CheckName } from "./rules.js";

/** A descriptor store, decoded once for all checkers (one mutable instance, reused). */
export interface PteChange {
  /** Table page number and entry index, and key = page * ptrsPerTable + index. */
  page: number;
  index: number;
  key: number;
  level: number;
  /** IPA range the entry maps: [ipa, ipa + size). */
  ipa: number;
  size: number;
  oldLo: number;
  oldHi: number;
  newLo: number;
  newHi: number;
}

/** The checkers' view of the world. */
export interface CheckEnv {
  readonly vm: Vm;
  readonly granule: Granule;
  readonly ptrsPerTable: number;
  /** Bytes an entry of each level maps. */
  readonly levelSize: readonly number[];
  /** The running vCPU (-1: host code between timed runs). */
  cpu(): number;
  /** Machine time now (ps, on the time line of all runs; NaN between timed runs). */
  now(): number;
  /** Machine time of engine time `t` of the current run. */
  global(t: number): number;
  /** Reports a violation about the entry or range in `focus` (throws in fail-fast mode). */
  report(
    check: CheckName,
    what: string,
    ipa: number,
    level: number,
    focus: Focus,
    cpu?: number,
    timePs?: number,
  ): void;
}

/** Whether `lo` is a valid table descriptor at `level`. */
export function isTableDesc(lo: number, level: number): boolean {
  return level < 3 && (lo & 3) === 3;
}

/** Whether `lo` is a valid leaf (block or page) descriptor at `level`. */
export function isLeafDesc(lo: number, level: number): boolean {
  return (lo & 1) !== 0 && (level === 3 ? (lo & 2) !== 0 : (lo & 2) === 0);
}

/**
 * Whether a TLBI by IPA with level hint `hint` removes a cached leaf of `level` that contains its
 * address: without FEAT_TTL the hint is ignored; with it, 0 means no hint and any other value
 * names the only leaf level removed.
 */
export function hintCoversLeaf(ttl: boolean, hint: number, level: number): boolean {
  return !ttl || hint === 0 || hint === level;
}

/**
 * Whether a TLBI by IPA with level hint `hint` removes the walk-cache entries of a table
 * descriptor over its address: FEAT_TTL hints describe leaf entries only, so with FEAT_TTL only
 * an unhinted one does (the rule of Linux 36e008323926, which v5.12 and v5.14 predate).
 */
export function hintCoversTable(ttl: boolean, hint: number): boolean {
  return !ttl || hint === 0;
}
