/** Runs the built CLI (dist/src/cli/main.js) in a child process. */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { NODE_FLAG } from "../../src/cli/node-flag.js";

/** The compiled executable, next to this compiled helper's tree (dist/test/cli -> dist/src/cli). */
export const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A child still running after this long is killed: a hang fails its test instead of stalling CI. */
const CHILD_TIMEOUT_MS = 240_000;

/**
 * Runs `node ...nodeArgs script ...args` (with `env` as its whole environment, if given) and
 * collects its exit status and output.
 */
export function runNode(
  script: string,
  nodeArgs: readonly string[],
  args: readonly string[],
  env?: NodeJS.ProcessEnv,
): Promise<CliResult> {
  return runIn(undefined, process.execPath, [...nodeArgs, script, ...args], undefined, env);
}

/** {@link runNode} in directory `cwd` (default: this process's). */
function runNodeIn(
  cwd: string | undefined,
  script: string,
  nodeArgs: readonly string[],
  args: readonly string[],
): Promise<CliResult> {
  return runIn(cwd, process.execPath, [...nodeArgs, script, ...args]);
}

/**
 * Runs `file ...args` in `cwd` (with `env`, if given) and collects its exit status and output;
 * `input`, if given, is written to its standard input (Node's pipe: a socket), which is then closed.
 */
function runIn(
  cwd: string | undefined,
  file: string,
  args: readonly string[],
  input?: Buffer,
  env?: NodeJS.ProcessEnv,
): Promise<CliResult> {
  return new Promise((resolve) => {
    const options = { maxBuffer: 64 << 20, timeout: CHILD_TIMEOUT_MS, cwd, env };
    const child = execFile(file, args, options, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
      const killed =
        err?.killed === true ? `\n[killed after ${CHILD_TIMEOUT_MS} ms: ${file} ${args.join(" ")}]` : "";
      resolve({ code, stdout, stderr: stderr + killed });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Runs `node ...nodeArgs main.js ...args` (the CLI). */
export function runMain(nodeArgs: readonly string[], args: readonly string[]): Promise<CliResult> {
  return runNode(MAIN, nodeArgs, args);
}

/** Runs `s2sim ...args` with the V8 flag already given (one process; stderr is not a TTY). */
export function s2sim(...args: string[]): Promise<CliResult> {
  return runMain([NODE_FLAG], args);
}

/** How {@link s2simWith} runs the CLI. */
export interface RunOptions {
  readonly cwd?: string;
  /**
   * A file given to the CLI on its standard input through a pipe (`cat file | s2sim ...`): a
   * real pipe, as a shell makes (Node's own stdin pipes are sockets).
   */
  readonly pipeFrom?: string;
  /** Seconds the writer of `pipeFrom`'s pipe stays silent, before it writes the file (or the rest of it). */
  readonly pipeSilentS?: number;
  /** Bytes of the file written before the silence (default 0). */
  readonly pipeSilentAfter?: number;
  /** Bytes given on standard input through Node's own pipe, which is a socket. */
  readonly input?: Buffer;
}

/** {@link s2sim} with `options`. */
export function s2simWith(options: RunOptions, ...args: string[]): Promise<CliResult> {
  if (options.input !== undefined) {
    return runIn(options.cwd, process.execPath, [NODE_FLAG, MAIN, ...args], options.input);
  }
  if (options.pipeFrom === undefined) return runNodeIn(options.cwd, MAIN, [NODE_FLAG], args);
  const cli = [process.execPath, NODE_FLAG, MAIN, ...args];
  const n = options.pipeSilentAfter ?? 0;
  const writer =
    options.pipeSilentS === undefined
      ? 'cat "$0"'
      : `head -c ${n} "$0"; sleep ${options.pipeSilentS}; tail -c +${n + 1} "$0"`;
  return runIn(options.cwd, "sh", ["-c", `(${writer}) | "$@"`, options.pipeFrom, ...cli]);
}

/** Runs the shell script `script` with `args` as its $1... (for redirections a test needs). */
export function sh(script: string, ...args: string[]): Promise<CliResult> {
  return runIn(undefined, "sh", ["-c", script, "sh", ...args]);
}

/** The command line that runs the CLI, for {@link sh}: node, the V8 flag, main.js. */
export const S2SIM_ARGV: readonly string[] = [process.execPath, NODE_FLAG, MAIN];
