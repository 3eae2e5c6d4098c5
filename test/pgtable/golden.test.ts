/**
 * Golden traces of the pgtable scenarios: test/golden/pgtable/<scenario>.<kernel>.txt. Run with
 * UPDATE_GOLDEN=1 to rewrite the files instead of comparing; then review every changed line
 * against the spec before keeping it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { KERNEL_VERSIONS } from "../../src/pgtable/kernel.js";
import { PGTABLE_SCENARIOS, runPgtableScenario } from "../../src/workloads/pgtable-scenarios.js";
import { repoRoot } from "../repo-root.js";

const GOLDEN_DIR = join(repoRoot(), "test", "golden", "pgtable");
const UPDATE = process.env["UPDATE_GOLDEN"] === "1";

/**
 * Cases where the model is known to deviate from the spec: the golden file holds the spec's
 * behaviour and the case is marked todo. Key: `<scenario>.<kernel>`.
 */
const KNOWN_MODEL_BUGS: Readonly<Record<string, string>> = {};

if (UPDATE) mkdirSync(GOLDEN_DIR, { recursive: true });

for (const scenario of PGTABLE_SCENARIOS) {
  for (const kernel of KERNEL_VERSIONS) {
    const key = `${scenario.name}.${kernel}`;
    const bug = KNOWN_MODEL_BUGS[key];
    const opts = bug !== undefined ? { todo: `model bug: ${bug}` } : {};
    test(`golden trace ${key}`, opts, () => {
      const file = join(GOLDEN_DIR, `${key}.txt`);
      const actual = runPgtableScenario(scenario.name, kernel).join("\n") + "\n";
      if (UPDATE && bug === undefined) {
        writeFileSync(file, actual);
        return;
      }
      assert.ok(existsSync(file), `missing ${file}: run the tests with UPDATE_GOLDEN=1`);
      assert.equal(actual, readFileSync(file, "utf8"));
    });
  }
}

test("no stale golden files", { skip: UPDATE }, () => {
  const expected = new Set(
    PGTABLE_SCENARIOS.flatMap((s) => KERNEL_VERSIONS.map((k) => `${s.name}.${k}.txt`)),
  );
  const stale = readdirSync(GOLDEN_DIR).filter((f) => !expected.has(f));
  assert.deepEqual(stale, []);
});
