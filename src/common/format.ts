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

/**
 * Whether `code` (a UTF-16 unit) is a control character (C0, DEL or C1: a terminal acts on these)
 * or an invisible format character that reorders or hides text: the bidirectional marks, embeddings,
 * overrides and isolates, zero-width characters, line and paragraph separators, and the BOM.
 */
function isControl(code: number): boolean {
  return (
    code < 0x20 ||
    (code >= 0x7f && code < 0xa0) ||
    code === 0x061c ||
    (code >= 0x200b && code <= 0x200f) ||
    (code >= 0x2028 && code <= 0x202e) ||
    (code >= 0x2060 && code <= 0x2069) ||
    code === 0xfeff
  );
}

/** The first control character of `text`, as `U+000A`, or null if it has none. */
export function controlCharacter(text: string): string | null {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (isControl(code)) return `U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
  }
  return null;
}

/** `text` with its control characters written as `\u000a`, for quoting input in a one-line message. */
export function printable(text: string): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    out += isControl(code) ? `\\u${code.toString(16).padStart(4, "0")}` : text[i];
  }
  return out;
}
