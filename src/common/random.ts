/**
 * A small seeded pseudo-random generator (mulberry32), so that every random choice the model
 * makes is fixed by the run's seed: same seed, same sequence, on every machine.
 */
/** The largest seed: the generator's state is 32 bits, and each seed is a state of its own. */
export const MAX_SEED = 2 ** 32 - 1;

/** Whether `seed` is a seed {@link SeededRandom} takes (an integer from 0 to {@link MAX_SEED}). */
export function isSeed(seed: number): boolean {
  return Number.isInteger(seed) && seed >= 0 && seed <= MAX_SEED;
}

export class SeededRandom {
  private state: number;

  /** `seed`: its 32-bit state, an integer from 0 to {@link MAX_SEED}. */
  constructor(seed: number) {
    if (!isSeed(seed)) throw new RangeError(`seed ${seed} is not an integer from 0 to ${MAX_SEED}`);
    this.state = seed;
  }

  /** The next value, uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** A uniform integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** `items` shuffled (Fisher-Yates), as a new array. */
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.below(i + 1);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }
}
