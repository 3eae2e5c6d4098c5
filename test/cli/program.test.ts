/** The `s2sim` program itself: its version and its usage. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { s2sim } from "./run.js";

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
});
