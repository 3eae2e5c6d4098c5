#!/usr/bin/env node
/** The `s2sim` executable. */
import { main } from "./program.js";

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`s2sim: internal error: ${text}\n`);
    process.exit(70);
  },
);
