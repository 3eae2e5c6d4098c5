/**
 * A binary min-heap of task ids keyed by (time, arrival order), on typed arrays: ties in virtual
 * time go to whoever arrived first, which keeps runs deterministic.
 */
export class TaskHeap {
  private readonly time: Float64Array;
  private readonly seq: Float64Array;
  private readonly id: Int32Array;
  private nextSeq = 0;
  /** Entries in the heap. */
  size = 0;

  constructor(capacity: number) {
    this.time = new Float64Array(capacity);
    this.seq = new Float64Array(capacity);
    this.id = new Int32Array(capacity);
  }

  /** Time of the earliest entry (the heap must not be empty). */
  peekTime(): number {
    return this.time[0]!;
  }

  /** Adds task `id` at `time`. */
  push(id: number, time: number): void {
    if (this.size === this.id.length) throw new Error("task heap full");
    const seq = this.nextSeq++;
    let i = this.size++;
    const T = this.time;
    const S = this.seq;
    const I = this.id;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pt = T[p]!;
      if (pt < time || (pt === time && S[p]! < seq)) break;
      T[i] = pt;
      S[i] = S[p]!;
      I[i] = I[p]!;
      i = p;
    }
    T[i] = time;
    S[i] = seq;
    I[i] = id;
  }

  /** Removes and returns the earliest task id. */
  pop(): number {
    const T = this.time;
    const S = this.seq;
    const I = this.id;
    const top = I[0]!;
    const n = --this.size;
    if (n === 0) return top;
    const time = T[n]!;
    const seq = S[n]!;
    const id = I[n]!;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let c = l;
      if (r < n && (T[r]! < T[l]! || (T[r] === T[l] && S[r]! < S[l]!))) c = r;
      const ct = T[c]!;
      if (time < ct || (time === ct && seq < S[c]!)) break;
      T[i] = ct;
      S[i] = S[c]!;
      I[i] = I[c]!;
      i = c;
    }
    T[i] = time;
    S[i] = seq;
    I[i] = id;
    return top;
  }
}
