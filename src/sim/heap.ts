/**
 * A binary min-heap of task ids keyed by (time, id), on typed arrays: ties in virtual time go to
 * the lower task id. The order depends only on virtual times, never on the order in which the
 * engine happened to park the tasks, so a task may run ahead of others (see Engine.mayRunAhead)
 * without changing what happens.
 */
export class TaskHeap {
  private readonly time: Float64Array;
  private readonly id: Int32Array;
  /** Entries in the heap. */
  size = 0;
  /** Time of the entry the last {@link exchange} removed. */
  exchangedTime = 0;

  constructor(capacity: number) {
    this.time = new Float64Array(capacity);
    this.id = new Int32Array(capacity);
  }

  /** Time of the earliest entry (the heap must not be empty). */
  peekTime(): number {
    return this.time[0]!;
  }

  /** Time of the entry at position `i` (0 <= i < size; positions are in no particular order). */
  timeAt(i: number): number {
    return this.time[i]!;
  }

  /** Task id of the entry at position `i` (0 <= i < size). */
  idAt(i: number): number {
    return this.id[i]!;
  }

  /** Whether task `id` at `time` comes before the earliest entry (the heap must not be empty). */
  before(id: number, time: number): boolean {
    const t = this.time[0]!;
    return time < t || (time === t && id < this.id[0]!);
  }

  /** Adds task `id` at `time`. */
  push(id: number, time: number): void {
    if (this.size === this.id.length) throw new Error("task heap full");
    let i = this.size++;
    const T = this.time;
    const I = this.id;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pt = T[p]!;
      if (pt < time || (pt === time && I[p]! < id)) break;
      T[i] = pt;
      I[i] = I[p]!;
      i = p;
    }
    T[i] = time;
    I[i] = id;
  }

  /** Moves every entry `dt` later (integral times: the order, so the heap, stays as it is). */
  shiftTimes(dt: number): void {
    for (let i = 0; i < this.size; i++) this.time[i]! += dt;
  }

  /** Removes and returns the earliest task id. */
  pop(): number {
    const top = this.id[0]!;
    const n = --this.size;
    if (n > 0) this.siftDown(n, this.time[n]!, this.id[n]!);
    return top;
  }

  /**
   * Adds task `id` at `time` and removes the earliest entry, which must come before it (the heap
   * is not empty and its earliest time is at most `time`): a push and a pop in one pass. Returns
   * the removed id; its time is then in {@link exchangedTime}.
   */
  exchange(id: number, time: number): number {
    const top = this.id[0]!;
    this.exchangedTime = this.time[0]!;
    this.siftDown(this.size, time, id);
    return top;
  }

  /** Fills the hole at the root with (time, id), in a heap of `n` entries. */
  private siftDown(n: number, time: number, id: number): void {
    const T = this.time;
    const I = this.id;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let c = l;
      if (r < n && (T[r]! < T[l]! || (T[r] === T[l] && I[r]! < I[l]!))) c = r;
      const ct = T[c]!;
      if (time < ct || (time === ct && id < I[c]!)) break;
      T[i] = ct;
      I[i] = I[c]!;
      i = c;
    }
    T[i] = time;
    I[i] = id;
  }
}

/** A FIFO of task ids on a ring buffer (a lock's waiters: at most one entry per task). */
export class TaskQueue {
  private readonly ids: Int32Array;
  private head = 0;
  /** Entries in the queue. */
  size = 0;

  constructor(capacity: number) {
    this.ids = new Int32Array(capacity);
  }

  /** Appends task `id`. */
  push(id: number): void {
    const ids = this.ids;
    if (this.size === ids.length) throw new Error("task queue full");
    let i = this.head + this.size++;
    if (i >= ids.length) i -= ids.length;
    ids[i] = id;
  }

  /** The task id `k` places from the front (0 <= k < size). */
  at(k: number): number {
    let i = this.head + k;
    if (i >= this.ids.length) i -= this.ids.length;
    return this.ids[i]!;
  }

  /** Removes and returns the first task id (the queue must not be empty). */
  shift(): number {
    const id = this.ids[this.head]!;
    if (++this.head === this.ids.length) this.head = 0;
    this.size--;
    return id;
  }
}
