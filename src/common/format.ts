/** Hexadecimal rendering of an address or size, e.g. `0x40000000`. */
export function hex(value: number | bigint): string {
  return "0x" + value.toString(16);
}

const UNITS: ReadonlyArray<[string, number]> = [
  ["T", 2 ** 40],
  ["G", 2 ** 30],
  ["M", 2 ** 20],
  ["K", 2 ** 10],
];

/** A size in bytes as the kernel and selftests write it: `4K`, `2M`, `1G`, or bytes. */
export function sizeName(bytes: number): string {
  for (const [unit, scale] of UNITS) {
    if (bytes >= scale && bytes % scale === 0) return `${bytes / scale}${unit}`;
  }
  return `${bytes}`;
}
