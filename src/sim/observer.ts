/**
 * What the simulated MMU tells an observer (the architectural checkers) as it translates: TLB hits,
 * TLB fills and the table pages hardware walks read, each with the vCPU and the virtual time.
 * With no observer the MMU pays one null test per event.
 */
export interface MmuObserver {
  /** vCPU `cpu`'s TLB hit a live entry for `ipa`; the TLB's hit fields describe the entry. */
  tlbHit(cpu: number, ipa: number, now: number): void;
  /** A walk by `cpu` is about to cache a `level` leaf for [blockBase, +size) -> paBase. */
  tlbFill(cpu: number, blockBase: number, level: number, paBase: number, perms: number, now: number): void;
  /** A hardware walk by `cpu` read table page `page` (a start-level page or one a table entry named). */
  walkRead(cpu: number, page: number, level: number, now: number): void;
}
