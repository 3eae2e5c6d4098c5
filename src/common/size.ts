/**
 * Parsing of sizes as the selftests and the CLI accept them: `4096`, `4K`, `2M`, `1G`, `20G`, `1T`,
 * and in hex (`0x40000000`, `0x10M`), as the selftests' strtoull(..., 0) reads them.
 */
import { S2simError } from "./error.js";

const SCALE: Readonly<Record<string, number>> = {
  "": 1,
  B: 1,
  K: 2 ** 10,
  KB: 2 ** 10,
  M: 2 ** 20,
  MB: 2 ** 20,
  G: 2 ** 30,
  GB: 2 ** 30,
  T: 2 ** 40,
  TB: 2 ** 40,
};

/**
 * Parses a size; anything else (negative, fractional bytes, unknown unit, > 2^52) is a clear error,
 * and so is a decimal number with a leading zero, which the selftests would read as octal.
 */
export function parseSize(text: string, what = "size"): number {
  // Hex digits run on as far as they go (`0x1B` is 27 bytes), as strtoull reads them.
  const m = /^\s*(0x[0-9a-f]+|\d+)\s*([a-z]*)\s*$/i.exec(text);
  const scale = m ? SCALE[m[2]!.toUpperCase()] : undefined;
  if (!m || scale === undefined) {
    throw new S2simError(
      "bad-size",
      `${what} "${text}" is not a size (examples: 4096, 4K, 2M, 1G, 20G, 0x400000)`,
    );
  }
  rejectOctal(m[1]!, text, what);
  const value = Number(m[1]) * scale;
  if (!Number.isSafeInteger(value) || value > 2 ** 52) {
    throw new S2simError("bad-size", `${what} "${text}" is too large`);
  }
  return value;
}

/**
 * Refuses `digits` when it is decimal with a leading zero: the selftests' strtoull(..., 0) reads
 * `010` as octal 8, and taking it as 10 would run another size than the selftest for the same line.
 */
export function rejectOctal(digits: string, text: string, what: string): void {
  if (/^0\d/.test(digits)) {
    throw new S2simError(
      "bad-number",
      `${what} "${text.trim()}" has a leading zero, which C and the selftests read as octal; write it without the zero, or in hex (0x...)`,
    );
  }
}

/** Parses a non-negative integer option such as a vCPU count. */
export function parseCount(text: string, what: string, min = 0, max = 1 << 20): number {
  if (!/^\s*\d+\s*$/.test(text))
    throw new S2simError("bad-number", `${what} "${text}" is not a whole number`);
  const n = Number(text);
  if (n < min || n > max)
    throw new S2simError("bad-number", `${what} must be between ${min} and ${max}, got ${text.trim()}`);
  return n;
}
