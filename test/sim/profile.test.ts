/** Profile parameters changed from the command line (`--set name=value[unit]`). */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { W } from "../../src/common/work.js";
import { repoRoot } from "../repo-root.js";
import { loadProfile, parseProfile, parseSetting, withOverrides } from "../../src/sim/profile.js";

const base = loadProfile("kunpeng920");

describe("profile --set", () => {
  it("parses name=value with or without a unit", () => {
    assert.deepEqual(parseSetting("lock-handoff=800ns"), {
      parameter: "lock-handoff",
      value: 800,
      unit: "ns",
    });
    assert.deepEqual(parseSetting(" zero-byte = 10GB/s "), {
      parameter: "zero-byte",
      value: 10,
      unit: "GB/s",
    });
    assert.deepEqual(parseSetting("tlb-entries=2048"), { parameter: "tlb-entries", value: 2048, unit: null });
    assert.deepEqual(parseSetting("exit=1.5e0us"), { parameter: "exit", value: 1.5, unit: "us" });
    for (const bad of [
      "lock-handoff",
      "=5ns",
      "lock-handoff=",
      "lock-handoff=x",
      "exit=0x10",
      "exit=1.2.3",
    ]) {
      assert.throws(() => parseSetting(bad), /is not name=value\[unit\]/, bad);
    }
  });

  it("takes any decimal form of a number, and says what is wrong with a negative or non-finite one", () => {
    const value = (text: string): number => parseSetting(text).value;
    assert.equal(value("exit=.5us"), 0.5);
    assert.equal(value("exit=5."), 5);
    assert.equal(value("exit=+5ns"), 5);
    assert.equal(value("exit=2.5E+2ns"), 250);
    assert.ok(Object.is(value("exit=-0"), 0));
    assert.equal(parseSetting("exit=.5us").unit, "us");
    for (const bad of ["lock-handoff=-1", "lock-handoff=-1ns", "lock-handoff=NaN", "lock-handoff=Infinity"]) {
      assert.throws(
        () => parseSetting(bad),
        new RegExp(`^S2simError: --set "${bad}": the value must be a finite number >= 0$`),
        bad,
      );
    }
    for (const bad of ["exit=-inf", "exit=1e999ns", "exit=-.5us"]) {
      assert.throws(() => parseSetting(bad), /the value must be a finite number >= 0$/, bad);
    }
  });

  it("replaces a parameter's value (in the profile's unit by default) and lists what it changed", () => {
    const p = withOverrides(base, [parseSetting("lock-handoff=800"), parseSetting("zero-byte=10GB/s")]);
    assert.equal(p.engine.lockHandoff, 800_000);
    assert.equal(p.workCost[W["lock-handoff"]], 800_000);
    assert.equal(p.workCost[W["zero-byte"]], 100);
    assert.equal(p.parameters["lock-handoff"]!.unit, "ns");
    assert.match(p.parameters["lock-handoff"]!.source, /--set/);
    assert.deepEqual(
      p.overrides.map((o) => [o.parameter, o.value, o.unit, o.was.value, o.was.unit]),
      [
        ["lock-handoff", 800, "ns", 1100, "ns"],
        ["zero-byte", 10, "GB/s", 19.5, "GB/s"],
      ],
    );
    // Everything else is the file's.
    assert.equal(p.workCost[W["dc-civac-line"]], base.workCost[W["dc-civac-line"]]);
    assert.deepEqual(p.tlb, base.tlb);
    assert.equal(withOverrides(base, []), base);
    assert.deepEqual(base.overrides, []);
  });

  it("rounds the costs the engine puts on its clock to whole picoseconds (virtual time stays integral)", () => {
    const p = withOverrides(
      base,
      ["lock-handoff=1104.285ps", "host-lock-handoff=92.601ps", "lock-acquire=64.5ps", "mutex-wakeup=0.4ps"]
        .concat(["vcpu-release=2735.245ps", "exit=544.25ps"])
        .map(parseSetting),
    );
    assert.deepEqual(
      [p.engine.lockHandoff, p.engine.hostLockHandoff, p.engine.lockAcquire, p.engine.mutexWakeup],
      [1104, 93, 65, 0],
    );
    assert.equal(p.workCost[W["lock-handoff"]], 1104);
    assert.equal(p.vcpuRelease, 2735);
    // A cost charged through a segment's total (rounded there) keeps its fraction.
    assert.equal(p.workCost[W["exit"]], 544.25);
    // The overrides say what the clock takes where it is not what was given (for the header),
    // and not for a value whole but for a unit conversion's rounding (1.1 us).
    assert.deepEqual(
      p.overrides.map((o) => [o.parameter, o.rounded_ps]),
      [
        ["lock-handoff", 1104],
        ["host-lock-handoff", 93],
        ["lock-acquire", 65],
        ["mutex-wakeup", 0],
        ["vcpu-release", 2735],
        ["exit", undefined],
      ],
    );
    const whole = withOverrides(base, ["lock-handoff=1.1us", "lock-acquire=1e-9ns"].map(parseSetting));
    assert.deepEqual(
      whole.overrides.map((o) => o.rounded_ps),
      [undefined, 0],
    );
  });

  it("names what the engine's clock takes, whatever the value and unit (a property)", () => {
    const units: Array<[string, number]> = [
      ["ps", 1],
      ["ns", 1e3],
      ["us", 1e6],
      ["ms", 1e9],
    ];
    fc.assert(
      fc.property(
        fc.constantFrom("lock-handoff", "host-lock-handoff", "lock-acquire", "mutex-wakeup", "vcpu-release"),
        fc.constantFrom(...units),
        fc.oneof(
          fc.double({ min: 0, max: 1e6, noNaN: true }),
          fc.integer({ min: 0, max: 10_000 }).map((n) => n + 0.4995),
          fc.integer({ min: 0, max: 10_000 }).map((n) => n + 0.5),
        ),
        (param, [unit, scale], ps) => {
          const value = ps / scale;
          const p = withOverrides(base, [parseSetting(`${param}=${value}${unit}`)]);
          const used = param === "vcpu-release" ? p.vcpuRelease : p.workCost[W[param as "lock-handoff"]]!;
          const o = p.overrides[0]!;
          // The note, when there is one, is what runs; without one, what was given runs.
          if (o.rounded_ps !== undefined) assert.equal(o.rounded_ps, used);
          else assert.ok(Math.abs(value * scale - used) <= 1e-12 * Math.max(1, used), `${value}${unit}`);
        },
      ),
      { numRuns: 400, seed: 20261207 },
    );
  });

  it("refuses unknown parameters, a parameter set twice and values the file could not hold", () => {
    assert.throws(
      () => withOverrides(base, [parseSetting("nope=1ns")]),
      /has no parameter 'nope'; it has guest-access/,
    );
    assert.throws(
      () => withOverrides(base, [parseSetting("exit=1us"), parseSetting("exit=2us")]),
      /'exit' is set twice/,
    );
    assert.throws(() => withOverrides(base, [parseSetting("exit=1furlong")]), /unit 'furlong'/);
    assert.throws(() => withOverrides(base, [parseSetting("tlb-entries=1001")]), /multiple of tlb-ways/);
    assert.throws(
      () => withOverrides(base, [parseSetting("tlb-entries=1000")]),
      /\(250 sets\) must be a power of two/,
    );
    assert.throws(() => withOverrides(base, [parseSetting("zero-byte=0GB/s")]), /at least 0.001 GB\/s/);
  });

  it("refuses values that would overflow a run's arithmetic or make a TLB search unbounded", () => {
    const set = (text: string): unknown => withOverrides(base, [parseSetting(text)]);
    assert.throws(() => set("zero-byte=1e-300GB/s"), /at least 0.001 GB\/s/);
    assert.throws(() => set("zero-byte=2us"), /at most 1 us per byte/);
    assert.throws(() => set("exit=1e308ns"), /'exit' must be at most 1 s/);
    assert.throws(() => set("tlb-entries=131072"), /tlb-entries must be at most 65536/);
    assert.throws(() => set("tlb-ways=256"), /tlb-ways must be at most 128/);
    // The bounds themselves are fine.
    assert.equal(withOverrides(base, [parseSetting("exit=1000ms")]).workCost[W.exit], 1e12);
    assert.equal(withOverrides(base, [parseSetting("zero-byte=0.001GB/s")]).workCost[W["zero-byte"]], 1e6);
  });

  it("knows no parameter or unit by the name of an Object.prototype property", () => {
    const text = readFileSync(join(repoRoot(), "profiles", "kunpeng920.json"), "utf8");
    const exit = JSON.stringify(base.parameters["exit"]);
    for (const name of ["hasOwnProperty", "toString", "constructor", "valueOf", "__proto__"]) {
      assert.throws(
        () => withOverrides(base, [parseSetting(`${name}=1ns`)]),
        new RegExp(`has no parameter '${name}'; it has guest-access`),
        name,
      );
      // JSON.parse makes "__proto__" an own property, as a file's reader sees it.
      const doc: unknown = JSON.parse(text.replace('"parameters": {', `"parameters": {"${name}": ${exit},`));
      assert.throws(() => parseProfile(doc, "t"), new RegExp(`unknown parameter '${name}'`), name);
    }
    // A unit of that name was NaN picoseconds.
    for (const unit of ["toString", "constructor"]) {
      assert.throws(
        () => withOverrides(base, [parseSetting(`exit=1${unit}`)]),
        new RegExp(`unit '${unit}' is not one s2sim knows`),
      );
      const doc = JSON.parse(text) as { parameters: Record<string, { unit: string }> };
      doc.parameters["exit"]!.unit = unit;
      assert.throws(() => parseProfile(doc, "t"), new RegExp(`has unit '${unit}'`));
    }
  });
});

describe("profile files", () => {
  const text = readFileSync(join(repoRoot(), "profiles", "kunpeng920.json"), "utf8");
  /** The bundled profile's document with `change` made to it. */
  const changed = (change: (doc: Doc) => void): Doc => {
    const doc = JSON.parse(text) as Doc;
    change(doc);
    return doc;
  };
  type Doc = Record<string, unknown> & { parameters: Record<string, Record<string, unknown>> };

  it("refuses control characters in its strings: they would reach the output's header", () => {
    const cases: Array<[(doc: Doc) => void, RegExp]> = [
      [(d) => (d["name"] = "k\nfake line"), /profile 't': 'name' has a control character \(U\+000A\)/],
      [(d) => (d["machine"] = "\u001b[2J"), /profile 't': 'machine' has a control character \(U\+001B\)/],
      [
        (d) => (d.parameters["exit"]!["unit"] = "ns\r"),
        /parameter 'exit' 'unit' has a control character \(U\+000D\)/,
      ],
      [
        (d) => (d.parameters["gup"]!["source"] = "x\u0085"),
        /parameter 'gup' 'source' has a control character \(U\+0085\)/,
      ],
      // A right-to-left override would show the header's text reordered.
      [(d) => (d["name"] = "k\u202efake"), /profile 't': 'name' has a control character \(U\+202E\)/],
    ];
    for (const [change, re] of cases) assert.throws(() => parseProfile(changed(change), "t"), re);
    // Other characters are fine.
    assert.equal(
      parseProfile(
        changed((d) => (d["machine"] = "Kunpeng 920 — ±5 µs")),
        "t",
      ).machine,
      "Kunpeng 920 — ±5 µs",
    );
  });

  it("refuses an empty name or machine, and a name longer than a header's line", () => {
    const cases: Array<[(doc: Doc) => void, RegExp]> = [
      [(d) => (d["name"] = ""), /profile 't': needs a non-empty 'name'/],
      [(d) => (d["name"] = "   "), /profile 't': needs a non-empty 'name'/],
      [(d) => (d["name"] = "k".repeat(65)), /profile 't': 'name' must be at most 64 characters/],
      [(d) => (d["machine"] = " "), /profile 't': needs a 'machine' describing the machine it prices/],
      [(d) => (d["machine"] = "m".repeat(301)), /profile 't': 'machine' must be at most 300 characters/],
    ];
    for (const [change, re] of cases) assert.throws(() => parseProfile(changed(change), "t"), re);
    assert.equal(
      parseProfile(
        changed((d) => (d["name"] = "k".repeat(64))),
        "t",
      ).name.length,
      64,
    );
  });

  it("refuses fields it does not know, as it refuses unknown parameters", () => {
    assert.throws(
      () =>
        parseProfile(
          changed((d) => (d["comment"] = "x")),
          "t",
        ),
      /^S2simError: profile 't': unknown field 'comment' \(a profile has only name, machine, parameters\)$/,
    );
    assert.throws(
      () =>
        parseProfile(
          changed((d) => (d.parameters["exit"]!["note"] = "x")),
          "t",
        ),
      /^S2simError: profile 't': parameter 'exit': unknown field 'note' \(a parameter has only value, unit, source\)$/,
    );
  });
});
