/**
 * A digest of many numbers, for tests that compare two runs' internal state without keeping it
 * (32-bit FNV-1a over each number's IEEE-754 bytes).
 */

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

/** Accumulates numbers into a digest. */
export class Digest {
  private h = 0x811c9dc5;
  private n = 0;

  /** Adds `v` (every bit of it: -0, NaN payloads and all). */
  add(v: number): void {
    f64[0] = v;
    this.h = Math.imul(this.h ^ u32[0]!, 0x01000193);
    this.h = Math.imul(this.h ^ u32[1]!, 0x01000193);
    this.n++;
  }

  /** Adds each of `values`. */
  addAll(values: ArrayLike<number>): void {
    for (let i = 0; i < values.length; i++) this.add(values[i]!);
  }

  /** The digest so far: how many numbers, and their hash. */
  toString(): string {
    return `${this.n}:${(this.h >>> 0).toString(16).padStart(8, "0")}`;
  }
}
