#!/usr/bin/env node
/** The `s2sim` executable. */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { NODE_FLAG } from "./node-flag.js";

const args = process.argv.slice(2);
if (process.execArgv.includes(NODE_FLAG)) {
  const { main } = await import("./program.js");
  // The status is set and the process left to end on its own, which also flushes piped stdout.
  main(args).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
      process.stderr.write(`s2sim: internal error: ${text}\n`);
      process.exitCode = 70;
    },
  );
} else {
  // The child shares the terminal; signals sent to this process alone (a `timeout`, a kill by a
  // parent) are passed on, and its own end, by a status or a signal, becomes this process's.
  // The handlers go in before the child exists: a signal handled in JavaScript runs on the event
  // loop, so none can come between the spawn and the assignment.
  let child: ChildProcess | null = null;
  const forward = (signal: NodeJS.Signals): void => {
    child?.kill(signal);
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const signal of signals) process.on(signal, forward);
  const self = fileURLToPath(import.meta.url);
  child = spawn(process.execPath, [...process.execArgv, NODE_FLAG, self, ...args], { stdio: "inherit" });
  child.on("error", (err) => {
    for (const sig of signals) process.off(sig, forward);
    process.stderr.write(`s2sim: cannot start ${process.execPath}: ${err.message}\n`);
    process.exitCode = 70;
  });
  child.on("exit", (code, signal) => {
    for (const sig of signals) process.off(sig, forward);
    if (signal !== null) process.kill(process.pid, signal);
    else process.exitCode = code ?? 70;
  });
}
