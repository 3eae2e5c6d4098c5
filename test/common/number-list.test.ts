import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { NumberList } from "../../src/common/number-list.js";

describe("NumberList", () => {
  it("holds what was pushed since the last clear, growing past its first capacity", () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.double(), { maxLength: 40 }), { maxLength: 5 }), (fills) => {
        const list = new NumberList(2);
        for (const values of fills) {
          list.clear();
          for (const x of values) list.push(x);
          assert.equal(list.length, values.length);
          assert.deepEqual(list.toArray(), values);
          for (let i = 0; i < values.length; i++) assert.ok(Object.is(list.get(i), values[i]));
        }
      }),
    );
  });

  it("equals compares as === does, element by element: NaN equals nothing", () => {
    const of = (xs: number[]): NumberList => {
      const l = new NumberList(1);
      for (const x of xs) l.push(x);
      return l;
    };
    assert.ok(of([1, 2, -0]).equals(of([1, 2, 0])));
    assert.ok(!of([1, 2]).equals(of([1, 2, 3])));
    assert.ok(!of([1, 3]).equals(of([1, 2])));
    assert.ok(!of([Number.NaN]).equals(of([Number.NaN])));
    const l = of([5, 6, 7]);
    l.clear();
    l.push(5);
    assert.ok(l.equals(of([5])), "numbers left from before a clear are not compared");
    l.set(0, 9);
    assert.equal(l.get(0), 9);
    // append: the other list's numbers after its own, growing past its capacity.
    const tail = of([1, 2, 3, 4, 5]);
    l.append(tail);
    l.append(of([]));
    assert.deepEqual(l.toArray(), [9, 1, 2, 3, 4, 5]);
  });
});
