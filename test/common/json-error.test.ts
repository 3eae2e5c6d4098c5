import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { jsonSyntaxError } from "../../src/common/json-error.js";

/** Whether JSON.parse accepts `text`. */
function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

describe("jsonSyntaxError", () => {
  it("finds an error exactly when JSON.parse throws", () => {
    // Valid documents, and texts made of JSON's own pieces (mostly invalid ones).
    fc.assert(fc.property(fc.json(), (text) => jsonSyntaxError(text) === null));
    const piece = fc.constantFrom(
      ...'{}[],:"\\ \n\t-+.0123456789eEaftrunl\u0000\u001f\ufeff'.split(""),
      '"a"',
      "true",
      "null",
      "\\u00e9",
      "\\u12",
      "1e5",
      "-0.5",
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 24 }), (pieces) => {
        const text = pieces.join("");
        assert.equal(jsonSyntaxError(text) === null, parses(text), JSON.stringify(text));
      }),
      { numRuns: 20_000 },
    );
  });

  it("says where, by line and column, and what it found there without quoting the text", () => {
    const cases: Array<[string, number, number, string]> = [
      ['{\n  "a": 1\n  "b": 2}', 3, 3, "expected ',' or '}', found '\"'"],
      ['{"a":}', 1, 6, "expected a value, found '}'"],
      ["\ufeff{}", 1, 1, "expected a value, found U+FEFF"],
      ['"a\nb"', 1, 3, "control character U+000A in a string (write it as an escape)"],
    ];
    for (const [text, line, column, what] of cases) {
      assert.deepEqual(jsonSyntaxError(text), { line, column, what }, JSON.stringify(text));
    }
    assert.equal(jsonSyntaxError("[1,]")?.what, "expected a value, found ']'");
    assert.equal(jsonSyntaxError('{"a":1,}')?.what, "expected a property name in double quotes, found '}'");
    assert.equal(jsonSyntaxError("{} x")?.what, "expected the end of the text, found 'x'");
    assert.equal(jsonSyntaxError('{"a": "b')?.what, "string not closed before the end of the text");
    assert.equal(jsonSyntaxError("")?.what, "expected a value, found the end of the text");
  });

  it("takes any depth of nesting", () => {
    const deep = 1_000_000;
    assert.equal(jsonSyntaxError("[".repeat(deep) + "]".repeat(deep)), null);
    assert.deepEqual(jsonSyntaxError("[".repeat(deep)), {
      line: 1,
      column: deep + 1,
      what: "expected a value, found the end of the text",
    });
  });

  it("with duplicates, finds a property name given twice in one object, and only then", () => {
    // The same name in different objects, nested or side by side, is fine.
    assert.equal(jsonSyntaxError('{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}', true), null);
    const e = jsonSyntaxError('{"a": 1,\n "b": {"c": 2, "c": 3}}', true);
    assert.deepEqual(e, {
      line: 2,
      column: 16,
      what: 'property name "c" given twice in one object (JSON keeps only the last value)',
    });
    // Names are compared as JSON decodes them: "\u0061" is "a".
    assert.notEqual(jsonSyntaxError('{"a": 1, "\\u0061": 2}', true), null);
    // After a nested object closes, its names are forgotten and the outer object's come back.
    assert.notEqual(jsonSyntaxError('{"x": {"y": 1}, "x": 2}', true), null);
    assert.equal(jsonSyntaxError('{"x": {"y": 1}, "y": 2}', true), null);
    // Without the option duplicates are valid JSON, as JSON.parse has them.
    assert.equal(jsonSyntaxError('{"a": 1, "a": 2}'), null);
    // Any document JSON.stringify writes (it never repeats a name in an object) passes.
    fc.assert(fc.property(fc.json(), (text) => jsonSyntaxError(text, true) === null));
  });
});
