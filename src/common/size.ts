/** Parsing of sizes as the selftests and the CLI accept them: `4096`, `4K`, `2M`, `1G`, `20G`, `1T`. */
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

/** Parses a size; anything else (negative, fractional bytes, unknown unit, > 2^52) is a clear error. */
export function parseSize(text: string, what = "size"): number {
  const m = /^\s*(\d+)\s*([a-zA-Z]*)\s*$/.exec(text);
  const scale = m ? SCALE[m[2]!.toUpperCase()] : undefined;
  if (!m || scale === undefined) {
    throw new S2simError("bad-size", `${what} "${text}" is not a size (examples: 4096, 4K, 2M, 1G, 20G)`);
  }
  const value = Number(m[1]) * scale;
  if (!Number.isSafeInteger(value) || value > 2 ** 52) {
    throw new S2simError("bad-size", `${what} "${text}" is too large`);
  }
  return value;
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
