/** Runs the built CLI (dist/src/cli/main.js) in a child process. */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The compiled executable, next to this compiled helper's tree (dist/test/cli -> dist/src/cli). */
export const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `s2sim ...args` and collects its exit status and output (stderr is not a TTY). */
export function s2sim(...args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
