/** The npm package holds what the installed `s2sim` reads at run time. */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdirSync } from "node:fs";
import { it } from "node:test";
import { promisify } from "node:util";
import { repoRoot } from "../repo-root.js";

it("packs the CLI, its bundled profiles and package.json (read for --version)", async () => {
  // Run from the repository, whose dist/ the test run has just built.
  const { stdout } = await promisify(execFile)("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
    cwd: repoRoot(),
  });
  const [pack] = JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>;
  const files = new Set(pack!.files.map((f) => f.path));
  const profiles = readdirSync(`${repoRoot()}/profiles`).map((f) => `profiles/${f}`);
  for (const need of ["package.json", "dist/src/cli/main.js", "dist/src/cli/sim-worker.js", ...profiles]) {
    assert.ok(files.has(need), `the package lacks ${need}`);
  }
});
