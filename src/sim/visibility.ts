/**
 * When stage-2 descriptor stores become visible to other CPUs' table walks. The engine runs a
 * code segment at its start time, but a store made after t of work in that segment is only
 * visible from start + t: until then other vCPUs' hardware walks must read the old value. Stores
 * are recorded here with the time they land; walks read through this overlay.
 */
import type { PteObserver } from "../pgtable/stage2.js";
import type { NumberList } from "../common/number-list.js";

/** Pending (not yet visible) descriptor stores. */
export class PteVisibility implements PteObserver {
  private key = new Float64Array(64);
  private oldLo = new Uint32Array(64);
  private oldHi = new Uint32Array(64);
  private at = new Float64Array(64);
  private head = 0;
  private tail = 0;
  /** Value found by the last {@link read}, and the time it stops being the visible one. */
  lo = 0;
  hi = 0;
  until = Infinity;

  /**
   * @param clock the time of the running code (engine.timeNow), or NaN when no simulated CPU is
   *   running (set-up between stages: stores are visible at once).
   */
  constructor(
    private readonly ptrsPerTable: number,
    private readonly clock: () => number,
  ) {}

  pteWritten(table: number, index: number, oldLo: number, oldHi: number, newLo = 0): void {
    const t = this.clock();
    if (Number.isNaN(t)) return;
    if (this.tail === this.key.length) this.grow();
    const i = this.tail++;
    this.key[i] = table * this.ptrsPerTable + index;
    this.oldLo[i] = oldLo;
    this.oldHi[i] = oldHi;
    this.at[i] = t;
    if (oldLo === 0 && oldHi === 0) {
      if (this.onFirstStore !== null) this.onFirstStore();
    } else if ((oldLo & 1) !== 0 && (newLo & 1) !== 0 && this.onValidStore !== null) this.onValidStore();
  }

  /** Whether a store in flight is into an entry of table page `table`. */
  touches(table: number): boolean {
    const lo = table * this.ptrsPerTable;
    const hi = lo + this.ptrsPerTable;
    for (let i = this.head; i < this.tail; i++) {
      const k = this.key[i]!;
      if (k >= lo && k < hi) return true;
    }
    return false;
  }

  /**
   * Whether every store in flight is into an entry that was invalid: such a store only lets walks
   * that would have faulted there go on, so it cannot make a translation fail.
   */
  onlyIntoInvalid(): boolean {
    for (let i = this.head; i < this.tail; i++) if ((this.oldLo[i]! & 1) !== 0) return false;
    return true;
  }

  /** Called at a store into an entry that held zero (a new entry), when set. */
  onFirstStore: (() => void) | null = null;
  /** Called at a store of a valid value into a valid entry (a permission change...), when set. */
  onValidStore: (() => void) | null = null;

  /**
   * The stores in flight, relative to entry `index` of `table` and time `t0`, appended to `out`,
   * each store's old value as `old` appends it (given the entry's offset from `index`); false
   * (with nothing useful appended) if one is to another table.
   */
  periodicState(
    out: NumberList,
    table: number,
    index: number,
    t0: number,
    old: (d: number, lo: number, hi: number) => void,
  ): boolean {
    const base = table * this.ptrsPerTable + index;
    out.push(this.tail - this.head);
    for (let i = this.head; i < this.tail; i++) {
      const d = this.key[i]! - base;
      if (d < -index || d >= this.ptrsPerTable - index) return false;
      out.push(d);
      old(d, this.oldLo[i]!, this.oldHi[i]!);
      out.push(this.at[i]! - t0);
    }
    return true;
  }

  /**
   * Moves every store in flight `entries` entries on (within its table) and `dt` later; `old`
   * gives the old value each has there, from its entry's offset from entry `index` of `table`
   * (before the move) and its old value now.
   */
  fastForward(
    entries: number,
    dt: number,
    table: number,
    index: number,
    old: (d: number, lo: number, hi: number) => readonly [number, number],
  ): void {
    const base = table * this.ptrsPerTable + index;
    for (let i = this.head; i < this.tail; i++) {
      const [lo, hi] = old(this.key[i]! - base, this.oldLo[i]!, this.oldHi[i]!);
      this.oldLo[i] = lo;
      this.oldHi[i] = hi;
      this.key[i]! += entries;
      this.at[i]! += dt;
    }
  }

  /** Forgets stores visible by `now` (time never goes back, and stores land in time order). */
  settle(now: number): void {
    while (this.head < this.tail && this.at[this.head]! <= now) this.head++;
    if (this.head === this.tail) this.head = this.tail = 0;
  }

  /** Whether any store is still in flight. */
  get pending(): boolean {
    return this.head < this.tail;
  }

  /** Discards everything (between runs: all stores have landed). */
  clear(): void {
    this.head = this.tail = 0;
  }

  /**
   * The value of entry `index` of `table` as a walk at `now` sees it (after {@link settle}), given
   * its current memory words; sets lo, hi and until.
   */
  read(table: number, index: number, memLo: number, memHi: number): void {
    // After settle every store left is still in flight.
    this.readAt(table, index, memLo, memHi, -Infinity);
  }

  /**
   * {@link read} for a walk at `now` that runs ahead of other CPUs, so without {@link settle}
   * (a CPU still to run may walk at an earlier time): stores visible by `now` are skipped, not
   * forgotten. The first store to the entry still in flight at `now` holds the value it sees.
   */
  readAt(table: number, index: number, memLo: number, memHi: number, now: number): void {
    const k = table * this.ptrsPerTable + index;
    for (let i = this.head; i < this.tail; i++) {
      if (this.key[i] === k && this.at[i]! > now) {
        this.lo = this.oldLo[i]!;
        this.hi = this.oldHi[i]!;
        this.until = this.at[i]!;
        return;
      }
    }
    this.lo = memLo;
    this.hi = memHi;
    this.until = Infinity;
  }

  private grow(): void {
    // Compact first; double only if still full.
    const live = this.tail - this.head;
    const cap = live * 2 > this.key.length ? this.key.length * 2 : this.key.length;
    const move = <T extends Float64Array | Uint32Array>(a: T, b: T): T => {
      b.set(a.subarray(this.head, this.tail));
      return b;
    };
    this.key = move(this.key, new Float64Array(cap));
    this.oldLo = move(this.oldLo, new Uint32Array(cap));
    this.oldHi = move(this.oldHi, new Uint32Array(cap));
    this.at = move(this.at, new Float64Array(cap));
    this.head = 0;
    this.tail = live;
  }
}
