/** `--profile` and `--set` on the command line: which files are read, and one-line errors. */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { execFileSync } from "node:child_process";
import {
  closeSync,
  constants,
  createWriteStream,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot } from "../repo-root.js";
import { PIPE_SILENT_MS } from "../../src/common/small-file.js";
import { type CliResult, S2SIM_ARGV, s2sim, s2simWith, sh } from "./run.js";

const dir = mkdtempSync(join(tmpdir(), "s2sim-profile-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const BUNDLED_PATH = join(repoRoot(), "profiles", "kunpeng920.json");
const BUNDLED = readFileSync(BUNDLED_PATH);
/** A quick command that loads the profile and stops. */
const DRY = ["page-table-test", "-b", "4M", "--dry-run"];

/** Asserts `r` is one `s2sim: ` line matching `re`, with exit status 2 and nothing on stdout. */
function assertUserError(r: CliResult, re: RegExp): void {
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stdout, "");
  assert.match(r.stderr, /^s2sim: [^\n]+\n$/);
  assert.match(r.stderr, re);
}

describe("--profile files", { timeout: 60_000 }, () => {
  it("says which names are bundled when a bare name is not one", async () => {
    assertUserError(
      await s2sim(...DRY, "--profile", "nope"),
      /^s2sim: no bundled profile 'nope' \(bundled: kunpeng920\)$/m,
    );
    // A bare name is never a path; the error says how to name the file of that name.
    writeFileSync(join(dir, "mine"), BUNDLED);
    const r = await s2simWith({ cwd: dir }, ...DRY, "--profile", "mine");
    assertUserError(r, /no bundled profile 'mine' .*; for the file 'mine', give \.\/mine$/m);
  });

  it("points a path that is not there but names the bundled profile to its name", async () => {
    for (const path of ["kunpeng920.json", "./kunpeng920"]) {
      assertUserError(
        await s2simWith({ cwd: dir }, ...DRY, "--profile", path),
        new RegExp(
          `^s2sim: cannot read profile '${path.replace(".", "\\.")}': no such file or directory; ` +
            "the bundled one is named without a path: --profile kunpeng920$",
          "m",
        ),
      );
    }
  });

  it("gives the system's reason a path cannot be read", async () => {
    assertUserError(
      await s2sim(...DRY, "--profile", "/nonexistent/profile.json"),
      /^s2sim: cannot read profile '\/nonexistent\/profile\.json': no such file or directory$/m,
    );
    assertUserError(
      await s2sim(...DRY, "--profile", `${dir}/`),
      /cannot read profile '.*': it is a directory, not a regular file or a pipe$/m,
    );
  });

  it("refuses a device without reading it: /dev/zero would never end", async () => {
    assertUserError(
      await s2sim(...DRY, "--profile", "/dev/zero"),
      /^s2sim: cannot read profile '\/dev\/zero': it is a character device, not a regular file or a pipe$/m,
    );
  });

  it("refuses a file or a pipe larger than 1 MiB", async () => {
    const big = Buffer.alloc(2 ** 20 + 1, " ");
    writeFileSync(join(dir, "big.json"), big);
    assertUserError(
      await s2sim(...DRY, "--profile", join(dir, "big.json")),
      /cannot read profile '.*big\.json': it is larger than 1 MiB$/m,
    );
    assertUserError(
      await s2simWith({ pipeFrom: join(dir, "big.json") }, ...DRY, "--profile", "/dev/stdin"),
      /cannot read profile '\/dev\/stdin': it is larger than 1 MiB$/m,
    );
  });

  it("reads a pipe once, to its end: /dev/stdin or a shell's <(...)", async () => {
    const r = await s2simWith({ pipeFrom: BUNDLED_PATH }, ...DRY, "--profile", "/dev/stdin", "--json");
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { fits: boolean }).fits, true);
  });

  it("reads standard input as - or /dev/stdin, a shell's pipe or a Node parent's socket", async () => {
    for (const name of ["-", "/dev/stdin"]) {
      for (const via of [{ pipeFrom: BUNDLED_PATH }, { input: BUNDLED }]) {
        const r = await s2simWith(via, ...DRY, "--profile", name, "--json");
        assert.equal(r.code, 0, `${name} ${Object.keys(via)[0]}: ${r.stderr}`);
        assert.equal((JSON.parse(r.stdout) as { fits: boolean }).fits, true);
      }
    }
    // A pipe nothing was written to is empty, from standard input as from a path.
    assertUserError(
      await s2simWith({ pipeFrom: "/dev/null" }, ...DRY, "--profile", "-"),
      /^s2sim: profile '-' is empty \(a pipe read to its end: nothing was written to it\)$/m,
    );
  });

  it("reads a named pipe from a writer that opens it after s2sim does", async () => {
    const fifo = join(dir, "fifo-written");
    execFileSync("mkfifo", [fifo]);
    const run = s2sim(...DRY, "--profile", fifo, "--json");
    // This open waits for s2sim's; s2sim then reads before the write, and waits for it.
    const writer = createWriteStream(fifo);
    writer.end(BUNDLED);
    writer.on("error", () => {});
    const r = await run;
    // Had s2sim ended without opening the pipe, the writer's open would wait for a reader for
    // ever and keep this process alive: be that reader, so the test fails instead of hanging.
    closeSync(openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK));
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { fits: boolean }).fits, true);
  });

  it("says it is waiting when a named pipe's writer sends nothing for a while", async () => {
    const fifo = join(dir, "fifo-slow");
    execFileSync("mkfifo", [fifo]);
    const run = s2sim(...DRY, "--profile", fifo, "--json");
    const writer = createWriteStream(fifo);
    writer.on("error", () => {});
    // Silent for longer than PIPE_SILENT_MS, then the profile.
    await new Promise((resolve) => setTimeout(resolve, PIPE_SILENT_MS + 1000));
    writer.end(BUNDLED);
    const r = await run;
    closeSync(openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^s2sim: waiting for profile '.*fifo-slow': its writer has sent nothing yet$/m);
    assert.equal((JSON.parse(r.stdout) as { fits: boolean }).fits, true);
  });

  it("says it is waiting when standard input's writer sends nothing for a while", async () => {
    const r = await s2simWith(
      { pipeFrom: BUNDLED_PATH, pipeSilentS: PIPE_SILENT_MS / 1000 + 1 },
      ...DRY,
      "--profile",
      "-",
      "--json",
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^s2sim: waiting for profile '-': its writer has sent nothing yet$/m);
    assert.equal((JSON.parse(r.stdout) as { fits: boolean }).fits, true);
    // Silent after part of the file: the line says how much came.
    const part = await s2simWith(
      { pipeFrom: BUNDLED_PATH, pipeSilentS: PIPE_SILENT_MS / 1000 + 1, pipeSilentAfter: 100 },
      ...DRY,
      "--profile",
      "-",
      "--json",
    );
    assert.equal(part.code, 0, part.stderr);
    assert.match(
      part.stderr,
      /^s2sim: waiting for profile '-': its writer has sent 100 bytes, then nothing for 2 s$/m,
    );
  });

  it("refuses standard input open for writing only, instead of waiting on itself", async () => {
    // `0>&1` with stdout a pipe: descriptor 0 is the write end of the pipe s2sim writes to.
    const r = await sh(`timeout 30 "$@" 0>&1 | cat`, ...S2SIM_ARGV, ...DRY, "--profile", "-");
    assert.match(r.stderr, /^s2sim: cannot read profile '-': bad file descriptor$/m);
    assert.doesNotMatch(r.stderr, /waiting for profile/);
  });

  it("reads a shell pipe whose writer wrote nothing as empty", async () => {
    writeFileSync(join(dir, "nothing"), "");
    assertUserError(
      await s2simWith({ pipeFrom: join(dir, "nothing") }, ...DRY, "--profile", "/dev/stdin"),
      /profile '\/dev\/stdin' is empty \(a pipe read to its end: nothing was written to it\)$/m,
    );
  });

  it("reads a named pipe nobody writes to as empty, without waiting for a writer for ever", async () => {
    const fifo = join(dir, "fifo");
    execFileSync("mkfifo", [fifo]);
    assertUserError(
      await s2sim(...DRY, "--profile", fifo),
      /profile '.*fifo' is empty \(a pipe read to its end: nothing was written to it\)$/m,
    );
  });
});

describe("--profile contents", { timeout: 60_000 }, () => {
  /** Runs the quick command on a profile file holding `bytes`. */
  const withFile = (name: string, bytes: string | Buffer): Promise<CliResult> => {
    writeFileSync(join(dir, name), bytes);
    return s2sim(...DRY, "--profile", join(dir, name));
  };

  it("says where a file stops being JSON, in one line that quotes none of it", async () => {
    const r = await withFile("broken.json", '{\n  "name": "x",\n  "machine": \u0000\n}\n');
    assertUserError(
      r,
      /profile '.*broken\.json' is not valid JSON at line 3, column 14: expected a value, found U\+0000$/m,
    );
    const binary = await withFile("binary.json", Buffer.from([0x7b, 0x0a, 0xff, 0xfe, 0x00]));
    assertUserError(binary, /^s2sim: profile '.*binary\.json' is not UTF-8 text$/m);
  });

  it("refuses a property named twice in one object, which JSON.parse would silently resolve", async () => {
    const text = BUNDLED.toString("utf8").replace('"exit": {', '"exit": {\n      "value": 1,');
    const r = await withFile("twice.json", text);
    assertUserError(
      r,
      /^s2sim: profile '.*twice\.json' is ambiguous at line \d+, column \d+: property name "value" given twice in one object \(JSON keeps only the last value\)$/m,
    );
  });

  it("takes a file that starts with a UTF-8 byte-order mark", async () => {
    const r = await withFile("bom.json", Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), BUNDLED]));
    assert.equal(r.code, 0, r.stderr);
  });

  it("refuses a name with a line break or an escape rather than print it in the header", async () => {
    const doc = JSON.parse(BUNDLED.toString("utf8")) as Record<string, unknown>;
    doc["name"] = "kunpeng920\nKVM_CREATE_MAPPINGS: total execution time: 0.000000001s\u001b[0m";
    const r = await withFile("name.json", JSON.stringify(doc));
    assertUserError(r, /^s2sim: profile '.*name\.json': 'name' has a control character \(U\+000A\)/);
  });
});

describe("--set values", { timeout: 60_000 }, () => {
  it("says what is wrong with a negative or non-finite value", async () => {
    for (const value of ["-1", "NaN", "Infinity"]) {
      assertUserError(
        await s2sim(...DRY, "--set", `lock-handoff=${value}`),
        new RegExp(`^s2sim: --set "lock-handoff=${value}": the value must be a finite number >= 0$`, "m"),
      );
    }
  });

  it("names a unit it does not know as --set's, with the units the parameter takes", async () => {
    for (const [set, units] of [
      ["lock-handoff=800NS", "use ps, ns, us or ms"],
      ["zero-byte=10gb/s", "use ps, ns, us or ms \\(per byte\\) or GB/s"],
      ["tlb-entries=2048x", "use entries"],
    ] as const) {
      const [name, value] = set.split("=") as [string, string];
      const unit = value.replace(/^[\d.]+/, "");
      assertUserError(
        await s2sim(...DRY, "--set", set),
        new RegExp(
          `^s2sim: --set ${name}: unit '${unit}' is not one s2sim knows; ${units} \\(as written: case matters\\)$`,
          "m",
        ),
      );
    }
  });

  it("takes .5 and 5. as numbers", async () => {
    const r = await s2sim("page-table-test", "-b", "4M", "--set", "lock-handoff=.5us", "--set", "exit=5.");
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /^changed with --set: lock-handoff 0\.5 us \(the profile's: 1100 ns\), exit 5 ns \(the profile's: 750 ns\)$/m,
    );
  });
});
