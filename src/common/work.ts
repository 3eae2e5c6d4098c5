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
  "entry",
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
  "host-tlbi",
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
  "host-lock-handoff",
  "mutex-wakeup",
] as const;

/** The name of one work item. */
export type WorkItem = (typeof WORK_ITEMS)[number];

/** Index of each item (a small integer, for typed arrays). */
export const W = Object.fromEntries(WORK_ITEMS.map((n, i) => [n, i])) as { readonly [K in WorkItem]: number };

/** Number of items. */
export const WORK_COUNT = WORK_ITEMS.length;

/**
 * Counts work and, with costs set, the virtual time it takes. A charge is one typed-array add and
 * one float add: the time of each item is derived (count × cost, so costs must be set before the
 * first charge and not changed), and the running total is exact (unrounded); the simulator's
 * engine rounds it to whole picoseconds where it turns a segment's work into virtual time.
 */
export class WorkMeter {
  /** Units of each item performed. */
  readonly count = new Float64Array(WORK_COUNT);
  /** Cost of one unit of each item; all zero unless a simulator prices them. */
  readonly cost = new Float64Array(WORK_COUNT);
  /**
   * Time charged since the engine last reset it to 0 at the start of a code segment (profile
   * units: picoseconds; exact, not rounded). Outside a simulation it is the total so far.
   */
  acc = 0;

  /** Records `n` units of `item`. */
  charge(item: number, n: number): void {
    this.count[item]! += n;
    this.acc += this.cost[item]! * n;
  }

  /** Time charged to each item so far (count × cost, in whole picoseconds; a fresh array). */
  get time(): Float64Array {
    const t = new Float64Array(WORK_COUNT);
    for (let i = 0; i < WORK_COUNT; i++) t[i] = Math.round(this.count[i]! * this.cost[i]!);
    return t;
  }
}
