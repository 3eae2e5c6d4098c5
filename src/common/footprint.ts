/**
 * Memory footprints, estimated from a configuration before a run allocates anything, so that a
 * configuration too large for the machine is refused up front instead of failing mid-run. Each
 * layer states the footprint of its own structures next to them; the sizes of JavaScript objects
 * are those of 64-bit V8 without pointer compression (Node's build): an estimate on the high side,
 * not an accounting (docs/model.md, "Memory").
 */

/** Memory a structure holds. */
export interface Footprint {
  /** Every byte: JavaScript heap plus typed-array backing stores. */
  readonly bytes: number;
  /** The part on the JavaScript heap, which V8's heap limit bounds. */
  readonly heapBytes: number;
}

/** Heap bytes of a typed array's objects beyond its elements (JSTypedArray, JSArrayBuffer, store record). */
export const TYPED_ARRAY_OVERHEAD = 200;

/** A typed array of `length` elements of `bytesPerElement` bytes (elements off the heap). */
export function typedArrayFootprint(length: number, bytesPerElement: number): Footprint {
  return { bytes: length * bytesPerElement + TYPED_ARRAY_OVERHEAD, heapBytes: TYPED_ARRAY_OVERHEAD };
}

/** `count` heap objects of `bytesEach` bytes. */
export function heapFootprint(count: number, bytesEach: number): Footprint {
  const b = count * bytesEach;
  return { bytes: b, heapBytes: b };
}

/** The sum of `parts`. */
export function sumFootprints(...parts: readonly Footprint[]): Footprint {
  let bytes = 0;
  let heapBytes = 0;
  for (const p of parts) {
    bytes += p.bytes;
    heapBytes += p.heapBytes;
  }
  return { bytes, heapBytes };
}

/** `n` times `f`. */
export function scaleFootprint(f: Footprint, n: number): Footprint {
  return { bytes: f.bytes * n, heapBytes: f.heapBytes * n };
}
