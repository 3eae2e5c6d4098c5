/**
 * A list of numbers that is cleared and filled again many times (the simulator's fast-forward
 * builds one per snapshot, thousands of numbers long). It keeps its storage when cleared, so once
 * it has grown, refilling it allocates nothing; a JavaScript array emptied by `length = 0` gives
 * its storage back and grows again from nothing on the next pushes.
 */
export class NumberList {
  private data: Float64Array;
  private size = 0;

  constructor(capacity = 64) {
    this.data = new Float64Array(Math.max(1, capacity));
  }

  /** How many numbers it holds. */
  get length(): number {
    return this.size;
  }

  /** Empties it (keeping its storage). */
  clear(): void {
    this.size = 0;
  }

  /** Appends `x`. */
  push(x: number): void {
    if (this.size === this.data.length) this.grow();
    this.data[this.size++] = x;
  }

  /** Appends the numbers of `other`. */
  append(other: NumberList): void {
    const n = this.size + other.size;
    while (this.data.length < n) this.grow();
    this.data.set(other.data.subarray(0, other.size), this.size);
    this.size = n;
  }

  /** The number at index `i` (0 <= i < length). */
  get(i: number): number {
    return this.data[i]!;
  }

  /** Sets the number at index `i` (0 <= i < length). */
  set(i: number, x: number): void {
    this.data[i] = x;
  }

  /**
   * Whether `other` holds the same numbers in the same order. NaN equals nothing, not even NaN,
   * as with `===`.
   */
  equals(other: NumberList): boolean {
    const n = this.size;
    if (other.size !== n) return false;
    const a = this.data;
    const b = other.data;
    for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  /** A copy of its numbers as an array. */
  toArray(): number[] {
    return Array.from(this.data.subarray(0, this.size));
  }

  private grow(): void {
    const next = new Float64Array(2 * this.data.length);
    next.set(this.data);
    this.data = next;
  }
}
