/** Sizes and numbers as the selftests' command lines give them. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseGpa, parseModes } from "../../src/cli/options.js";
import { parseSize } from "../../src/common/size.js";

/** The one mode `-m` texts name. */
const parseMode = (texts: readonly string[] | undefined): { id: number } => {
  const modes = parseModes(texts);
  assert.equal(modes.length, 1);
  return modes[0]!;
};

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
    /test memory size \(-b\) "010M" has a leading zero, which C and the selftests read as octal; write it without the zero, or in hex/,
  );
  assert.throws(() => parseGpa("0100000000"), /test GPA "0100000000" has a leading zero/);
  assert.equal(parseGpa("0x100000000"), 2 ** 32);
  assert.equal(parseGpa("0"), 0);
});

test("-m is read in base 10, as the selftest's strtoul(..., 10) does: 04 is mode 4", () => {
  for (const text of ["4", "04", "+4", " 004 "]) assert.equal(parseMode([text]).id, 4, text);
  for (const id of [2, 3, 5]) assert.equal(parseMode([`0${id}`]).id, id);
  // Each mode the model does not run says why, and which it runs.
  const modelled =
    /; modelled: -m 2 \(PA-bits:48, VA-bits:48, 4K pages\), -m 3 \(PA-bits:48, VA-bits:48, 64K pages\), -m 4 \(PA-bits:40, VA-bits:48, 4K pages\), -m 5 \(PA-bits:40, VA-bits:48, 64K pages\)$/;
  for (const [text, why] of [
    ["0", /guest mode 0 \(PA-bits:52, VA-bits:48, 4K pages\) is not modelled: it needs a 52-bit IPA/],
    ["1", /guest mode 1 .* is not modelled: it needs a 52-bit IPA/],
    ["6", /guest mode 6 .* is not modelled: it is an x86 mode/],
    ["007", /guest mode 7 .* is not modelled: it is an s390x mode/],
    ["40", /guest mode 40 does not exist \(the selftests number theirs 0 to 8\)/],
    // Quoted as written, not as a double rounds it.
    [
      "+9007199254740993",
      /guest mode 9007199254740993 does not exist \(the selftests number theirs 0 to 8\)/,
    ],
  ] as Array<[string, RegExp]>) {
    assert.throws(() => parseMode([text]), why, text);
    assert.throws(() => parseMode([text]), modelled, text);
  }
  // What strtoul would cut short is named, not read as 4.
  for (const text of ["4.0", "0x4", "4abc", ""]) {
    assert.throws(() => parseMode([text]), /is not a mode ID \(a whole number\); modelled: /, text);
  }
  // Repeated, as the selftest allows: each is checked, a mode named twice runs once, none given is
  // mode 4 (the default); several run in the selftest's order (by number), not the order given.
  assert.equal(parseMode(["4", "04"]).id, 4);
  assert.equal(parseMode(undefined).id, 4);
  assert.throws(() => parseModes(["4", "6"]), /guest mode 6 .* is not modelled/);
  assert.deepEqual(
    parseModes(["5", "2", "4", "05"]).map((m) => m.id),
    [2, 4, 5],
  );
});
