/** Growing the checkers' typed arrays (their per-page and per-entry state). */

/** The typed arrays the checkers keep their state in. */
export type StateArray = Float64Array | Int32Array | Int8Array | Uint8Array;

/**
 * `a` if it has at least `n` elements, else a copy of the same kind, zero-extended to `a`'s
 * length doubled until it has.
 */
export function grown<A extends StateArray>(a: A, n: number): A {
  if (a.length >= n) return a;
  let len = Math.max(a.length, 1);
  while (len < n) len *= 2;
  const next = new (a.constructor as new (length: number) => A)(len);
  next.set(a);
  return next;
}
