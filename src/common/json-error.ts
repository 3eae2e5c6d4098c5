/**
 * Where a text stops being JSON, told in our own words: JSON.parse's messages quote the input
 * (control characters, line breaks and all) and, in Node 20, give no position for an unexpected
 * character.
 */
import { printable } from "./format.js";

/** The first syntax error of a JSON text: its line and column (from 1) and what is wrong there. */
export interface JsonSyntaxError {
  readonly line: number;
  readonly column: number;
  /** E.g. "expected ',' or '}', found ']'"; any character found is shown printable (U+0000). */
  readonly what: string;
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ESCAPES = '"\\/bfnrt';
const HEX4 = /[0-9a-fA-F]{4}/y;

/**
 * The first syntax error of `text` as RFC 8259 JSON, or null if it has none (then JSON.parse
 * accepts it). With `duplicates`, a property name an object already has is an error too: RFC 8259
 * leaves such objects' meaning open and JSON.parse silently keeps the last value. Iterative, so
 * deep nesting costs no stack.
 */
export function jsonSyntaxError(text: string, duplicates = false): JsonSyntaxError | null {
  let i = 0;
  const stack: string[] = []; // the closing bracket of each open array or object
  // With `duplicates`: the property names seen in each open object (null for an array).
  const names: Array<Set<string> | null> = [];
  const at = (what: string): JsonSyntaxError => {
    const before = text.slice(0, i);
    const lineStart = before.lastIndexOf("\n") + 1;
    return { line: before.split("\n").length, column: i - lineStart + 1, what };
  };
  const expected = (what: string): JsonSyntaxError => at(`expected ${what}, found ${found(text, i)}`);
  const space = (): void => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  /** Reads the string starting at i; null if it is one. */
  const string = (): JsonSyntaxError | null => {
    for (i++; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return null;
      }
      if (c < 0x20) return at(`control character ${found(text, i)} in a string (write it as an escape)`);
      if (c !== 0x5c) continue;
      i++;
      if (i >= text.length) break;
      if (text[i] === "u") {
        HEX4.lastIndex = i + 1;
        if (!HEX4.test(text)) return at("\\u needs four hexadecimal digits");
        i += 4;
      } else if (!ESCAPES.includes(text[i]!)) {
        return at(`unknown escape: \\ then ${found(text, i)}`);
      }
    }
    return at("string not closed before the end of the text");
  };
  /** Reads a property name and its colon. */
  const key = (): JsonSyntaxError | null => {
    space();
    if (text[i] !== '"') return expected("a property name in double quotes");
    const start = i;
    const bad = string();
    if (bad !== null) return bad;
    const seen = names.at(-1);
    if (duplicates && seen) {
      const name = JSON.parse(text.slice(start, i)) as string;
      if (seen.has(name)) {
        i = start;
        return at(
          `property name "${printable(name)}" given twice in one object (JSON keeps only the last value)`,
        );
      }
      seen.add(name);
    }
    space();
    if (text[i] !== ":") return expected("':' after a property name");
    i++;
    return null;
  };
  for (;;) {
    // A value.
    space();
    const c = text[i];
    if (c === "{" || c === "[") {
      i++;
      space();
      const close = c === "{" ? "}" : "]";
      if (text[i] === close) {
        i++;
      } else {
        stack.push(close);
        if (duplicates) names.push(c === "{" ? new Set() : null);
        if (c === "{") {
          const bad = key();
          if (bad !== null) return bad;
        }
        continue;
      }
    } else if (c === '"') {
      const bad = string();
      if (bad !== null) return bad;
    } else if (c === "t" || c === "f" || c === "n") {
      const word = c === "t" ? "true" : c === "f" ? "false" : "null";
      if (!text.startsWith(word, i)) return expected("a value");
      i += word.length;
    } else {
      NUMBER.lastIndex = i;
      if (!NUMBER.test(text)) return expected("a value");
      i = NUMBER.lastIndex;
    }
    // What may follow a value: a comma, a closing bracket, or the end.
    for (;;) {
      space();
      const close = stack.at(-1);
      if (close === undefined) return i === text.length ? null : expected("the end of the text");
      if (text[i] === ",") {
        i++;
        if (close === "}") {
          const bad = key();
          if (bad !== null) return bad;
        }
        break;
      }
      if (text[i] !== close) return expected(`',' or '${close}'`);
      i++;
      stack.pop();
      if (duplicates) names.pop();
    }
  }
}

/** The character at `i` for a message: `'x'` if printable ASCII, else `U+FEFF`; or the end. */
function found(text: string, i: number): string {
  if (i >= text.length) return "the end of the text";
  const code = text.codePointAt(i)!;
  return code > 0x20 && code < 0x7f
    ? `'${text[i]}'`
    : `U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
}
