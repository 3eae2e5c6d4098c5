/** The seeded generator: deterministic, uniform enough, and its shuffle a permutation. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SeededRandom } from "../../src/common/random.js";

test("same seed, same sequence; another seed, another", () => {
  const draw = (seed: number): number[] => {
    const r = new SeededRandom(seed);
    return Array.from({ length: 5 }, () => r.next());
  };
  assert.deepEqual(draw(42), draw(42));
  assert.notDeepEqual(draw(42), draw(43));
  for (const x of draw(2 ** 32 - 1)) assert.ok(x >= 0 && x < 1);
});

test("a seed is a 32-bit state: no other number is taken, so no two seeds fold onto one", () => {
  for (const bad of [-1, 2 ** 32, 1.5, Number.NaN]) {
    assert.throws(() => new SeededRandom(bad), RangeError, String(bad));
  }
});

test("below(n) covers [0, n) and shuffle returns a permutation", () => {
  const r = new SeededRandom(1);
  const counts = new Array<number>(4).fill(0);
  for (let i = 0; i < 4000; i++) counts[r.below(4)]!++;
  for (const c of counts) assert.ok(c > 800 && c < 1200, `counts ${counts.join(",")}`);
  const items = [0, 1, 2, 3, 4, 5, 6, 7];
  const s = r.shuffle(items);
  assert.deepEqual(
    [...s].sort((a, b) => a - b),
    items,
  );
  assert.deepEqual(items, [0, 1, 2, 3, 4, 5, 6, 7], "the input is left alone");
});
