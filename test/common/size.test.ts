/** Sizes and numbers as the selftests' command lines give them. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseGpa, parseMode } from "../../src/cli/options.js";
import { parseSize } from "../../src/common/size.js";

test("a size may be decimal or hex with a unit, as strtoull(..., 0) and the selftest's scale read it", () => {
  assert.equal(parseSize("4096"), 4096);
  assert.equal(parseSize("64M"), 64 * 2 ** 20);
  assert.equal(parseSize(" 1g "), 2 ** 30);
  assert.equal(parseSize("0x40000000"), 2 ** 30);
  assert.equal(parseSize("0x10M"), 16 * 2 ** 20);
  // Hex digits run on: B is one of them.
  assert.equal(parseSize("0x1B"), 27);
  assert.equal(parseSize("0"), 0);
  assert.throws(() => parseSize("0x"), /"0x" is not a size/);
  assert.throws(() => parseSize("1.5G"), /is not a size/);
});

test("a decimal number with a leading zero is refused: the selftest would read it as octal", () => {
  assert.throws(
    () => parseSize("010M", "test memory size (-b)"),
    /test memory size \(-b\) "010M" has a leading zero, which the selftest reads as octal; write it without the zero, or in hex/,
  );
  assert.throws(() => parseGpa("0100000000"), /test GPA "0100000000" has a leading zero/);
  assert.equal(parseGpa("0x100000000"), 2 ** 32);
  assert.equal(parseGpa("0"), 0);
});

test("-m is read in base 10, as the selftest's strtoul(..., 10) does: 04 is mode 4", () => {
  for (const text of ["4", "04", "+4", " 004 "]) assert.equal(parseMode([text]).id, 4, text);
  for (const text of ["3", "40", "007"]) {
    assert.throws(() => parseMode([text]), /is not supported: only -m 4/, text);
  }
  // What strtoul would cut short is named, not read as 4.
  for (const text of ["4.0", "0x4", "4abc", ""]) {
    assert.throws(() => parseMode([text]), /is not a mode ID \(a whole number\): only -m 4/, text);
  }
  // Repeated, as the selftest allows: each is checked; none given is mode 4, the default.
  assert.equal(parseMode(["4", "04"]).id, 4);
  assert.equal(parseMode(undefined).id, 4);
  assert.throws(() => parseMode(["4", "5"]), /guest mode "5" is not supported/);
});
