/** `s2sim geometry`: the stage-2 shape for a granule and IPA size, as text and JSON. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { s2sim } from "./run.js";

describe("s2sim geometry", () => {
  it("prints the selftest's default shape: 4K, 40 bits, two concatenated level-1 pages", async () => {
    const r = await s2sim("geometry");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^granule 4K, IPA 40 bits$/m);
    assert.match(r.stdout, /levels 3, start level 1, 2 concatenated start-level page\(s\)/);
    assert.match(r.stdout, /leaves: L1 1G, L2 2M, L3 4K/);
  });

  it("lists leaves only at the levels the tables have (none above the start level)", async () => {
    const r = await s2sim("geometry", "--ipa", "33", "--json");
    assert.equal(r.code, 0, r.stderr);
    const g = JSON.parse(r.stdout) as { start_level: number; pgd_pages: number; leaf_levels: unknown[] };
    assert.equal(g.start_level, 2);
    assert.equal(g.pgd_pages, 8);
    assert.deepEqual(g.leaf_levels, [
      { level: 2, size: "2M" },
      { level: 3, size: "4K" },
    ]);
  });

  for (const [args, re] of [
    [["--granule", "8K"], /granule/],
    [["--ipa", "52"], /IPA size 52 bits is not supported with 4K pages/],
    [["--ipa", "x"], /IPA size "x"/],
    // One message, with the range the granule allows, on either side of it.
    [["--ipa", "65"], /^s2sim: IPA size 65 bits is not supported with 4K pages: use 32\.\.48$/m],
    [["--ipa", "20"], /^s2sim: IPA size 20 bits is not supported with 4K pages: use 32\.\.48$/m],
    [["-g", "64K", "-i", "99"], /^s2sim: IPA size 99 bits is not supported with 64K pages: use 32\.\.52$/m],
    [
      ["--ipa", "100000000000000000000000"],
      /^s2sim: IPA size 100000000000000000000000 bits is not supported/m,
    ],
    // Digits a double cannot hold are quoted as given, not rounded (99...9 would print as 1e20).
    [
      ["--ipa", "99999999999999999999"],
      /^s2sim: IPA size 99999999999999999999 bits is not supported with 4K pages: use 32\.\.48$/m,
    ],
  ] as Array<[string[], RegExp]>) {
    it(`rejects ${args.join(" ")} with one line and exit status 2`, async () => {
      const r = await s2sim("geometry", ...args);
      assert.equal(r.code, 2);
      assert.equal(r.stdout, "");
      assert.match(r.stderr, /^s2sim: [^\n]+\n$/);
      assert.match(r.stderr, re);
    });
  }
});
