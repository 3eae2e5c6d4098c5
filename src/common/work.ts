/**
 * Work the modelled code performs, counted where it happens. Every layer reports its own items
 * (a hardware walk level, a PTE write, a DC CIVAC line, a page zeroed...) to one {@link WorkMeter};
 * the simulator gives each item a cost from its profile and so turns executed work into virtual
 * time. Without a simulator the meter only counts, which costs a typed-array add.
 */

/** The items, in catalogue order; a profile prices each one. */
export const WORK_ITEMS = [
  // guest and machine
  "guest-access",
  "s1-walk",
  "s2-walk-level",
  "exit",
  // KVM
  "abort",
  "memcache-page",
  "mark-dirty",
  "notifier-handler",
  // host memory
  "gup",
  "host-fault",
  "page-alloc",
  "zero-byte",
  "pmd-split",
  // kvm_pgtable
  "pgt-call",
  "pgt-visit",
  "pte-write",
  "table-refcount",
  "table-free",
  // TLB and cache maintenance
  "tlbi-ipa",
  "tlbi-vmid",
  "dc-civac-line",
  "ic-ivau-line",
  "ic-iallu",
  // locks
  "lock-acquire",
  "lock-handoff",
  "mutex-wakeup",
] as const;

/** The name of one work item. */
export type WorkItem = (typeof WORK_ITEMS)[number];

/** Index of each item (a small integer, for typed arrays). */
export const W = Object.fromEntries(WORK_ITEMS.map((n, i) => [n, i])) as { readonly [K in WorkItem]: number };

/** Number of items. */
export const WORK_COUNT = WORK_ITEMS.length;

/** Counts work and, with costs set, the virtual time it takes. */
export class WorkMeter {
  /** Units of each item performed. */
  readonly count = new Float64Array(WORK_COUNT);
  /** Time charged to each item (profile units: picoseconds). */
  readonly time = new Float64Array(WORK_COUNT);
  /** Cost of one unit of each item; all zero unless a simulator prices them. */
  readonly cost = new Float64Array(WORK_COUNT);
  /** Total time charged so far (the simulator reads differences of this). */
  acc = 0;

  /** Records `n` units of `item` (time in whole picoseconds, so virtual time stays integral). */
  charge(item: number, n: number): void {
    const c = Math.round(this.cost[item]! * n);
    this.count[item]! += n;
    this.time[item]! += c;
    this.acc += c;
  }
}
