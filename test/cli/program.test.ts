/** The `s2sim` program itself: its version and its usage. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { describe, it } from "node:test";
import { NODE_FLAG } from "../../src/cli/node-flag.js";
import { MAIN, s2sim } from "./run.js";

const PACKAGE = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

describe("s2sim", () => {
  it("prints its package's version with --version or -V", async () => {
    for (const flag of ["--version", "-V"]) {
      const r = await s2sim(flag);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${PACKAGE.version}\n`);
    }
  });

  it("lists its commands when given none, with exit status 2", async () => {
    const r = await s2sim();
    assert.equal(r.code, 2);
    for (const command of ["geometry", "trace", "page-table-test", "scenario", "reproduce"]) {
      assert.match(r.stderr + r.stdout, new RegExp(`^ {2}${command} `, "m"));
    }
  });

  it("puts commander's suggestion on the error's one line, for options and commands", async () => {
    for (const [args, line] of [
      [["page-table-test", "--profil", "x"], "unknown option '--profil' (did you mean --profile?)"],
      [["scenari", "list"], "unknown command 'scenari' (did you mean scenario?)"],
      // Nothing close: the commands, as `help bogus` names them.
      [
        ["bogus"],
        "unknown command 'bogus' (commands: geometry, trace, page-table-test, scenario, reproduce, help)",
      ],
    ] as Array<[string[], string]>) {
      const r = await s2sim(...args);
      assert.equal(r.code, 2, args.join(" "));
      assert.equal(r.stdout, "");
      assert.equal(r.stderr, `s2sim: ${line}\n`);
    }
  });

  it("help NAME describes a command, and an unknown NAME is one error line", async () => {
    const scenario = await s2sim("help", "scenario");
    assert.equal(scenario.code, 0, scenario.stderr);
    assert.match(scenario.stdout, /^Usage: s2sim scenario /);
    const all = await s2sim("help");
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, /^ {2}help \[options\] \[command\] +display help for command$/m);
    const bogus = await s2sim("help", "bogus");
    assert.equal(bogus.code, 2);
    assert.equal(bogus.stdout, "");
    assert.equal(
      bogus.stderr,
      "s2sim: unknown command 'bogus' (commands: geometry, trace, page-table-test, scenario, reproduce, help)\n",
    );
    // A typo gets the closest name, as `s2sim reprodce` does from commander.
    const typo = await s2sim("help", "reprodce");
    assert.equal(typo.code, 2);
    assert.equal(typo.stderr, "s2sim: unknown command 'reprodce' (did you mean reproduce?)\n");
    // help's own --help, as every command has one.
    const own = await s2sim("help", "--help");
    assert.equal(own.code, 0, own.stderr);
    assert.match(own.stdout, /^Usage: s2sim help /);
  });

  it("ends quietly, with status 0, when the reader of its output goes away (s2sim ... | head -1)", async () => {
    const child = spawn(
      process.execPath,
      [NODE_FLAG, MAIN, "page-table-test", "-b", "64M", "-v", "2", "--trace", "1000000"],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    // The first chunk read, the pipe is closed, as `head -1` does.
    child.stdout.once("data", () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    assert.equal(code, 0, stderr);
    assert.equal(stderr, "");
  });
});
