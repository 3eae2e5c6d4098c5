/** `--cpu`: the profile machine's CPU with some features changed. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { KUNPENG_920 } from "../../src/arch/cpu.js";
import { cpuNotes, cpuVmOptions, parseCpu } from "../../src/cli/cpu.js";
import { traceCommand } from "../../src/cli/trace.js";

test("--cpu changes the named features of the Kunpeng 920, listed in a fixed order", () => {
  const c = parseCpu(" TTL ,icache=vipt,fwb", undefined);
  assert.deepEqual(c.changes, ["fwb", "ttl", "icache=vipt"]);
  assert.deepEqual(c.cpu, { ...KUNPENG_920, fwb: true, ttl: true, icache: "vipt" });
  assert.deepEqual(cpuVmOptions(c), { vmOptions: { cpu: c.cpu } });
  assert.deepEqual(
    cpuNotes(c).map((n) => n.split(":")[0]),
    ["CPU changed, fwb", "CPU changed, ttl", "CPU changed, icache=vipt"],
  );
  assert.deepEqual(parseCpu("nvhe,dic", false).cpu, { ...KUNPENG_920, vhe: false, dic: true });
});

test("--fwb is --cpu fwb; what the Kunpeng 920 already has changes nothing", () => {
  assert.deepEqual(parseCpu(undefined, true), parseCpu("fwb", false));
  assert.deepEqual(parseCpu("fwb", true).changes, ["fwb"]);
  const none = parseCpu("icache=pipt", undefined);
  assert.deepEqual(none.changes, []);
  assert.equal(none.cpu, KUNPENG_920);
  assert.deepEqual(cpuVmOptions(none), {});
  assert.deepEqual(parseCpu(undefined, undefined), { cpu: KUNPENG_920, changes: [] });
});

test("--cpu refuses unknown features and two I-cache policies", () => {
  assert.throws(
    () => parseCpu("ttl,lpa2", false),
    /^S2simError: --cpu: unknown CPU feature 'lpa2'; known: fwb, ttl, dic, nvhe, icache=pipt, icache=vipt, icache=vpipt$/,
  );
  assert.throws(() => parseCpu("", false), /^S2simError: --cpu: an empty item in the list ''$/);
  assert.throws(() => parseCpu("ttl,,dic", false), /an empty item in the list 'ttl,,dic'/);
  assert.throws(() => parseCpu("icache=vipt,icache=vpipt", false), /one I-cache policy at most/);
});

test("trace --cpu: a VPIPT I-cache under nVHE is invalidated whole after the TLBI, not by line", () => {
  const plain = traceCommand("relax-perms-x", { kernel: "v5.14" });
  assert.match(plain, /^ {2}cmo ic-ivau pa=0x[0-9a-f]+ size=2M$/m);
  assert.doesNotMatch(plain, /ic-ialluis/);
  const vpipt = traceCommand("relax-perms-x", { kernel: "v5.14", cpu: "nvhe,icache=vpipt" });
  assert.match(vpipt, /^# CPU changed, icache=vpipt: a VPIPT I-cache/m);
  assert.doesNotMatch(vpipt, /ic-ivau/);
  assert.match(vpipt, /^ {2}tlbi vmid-ipa .*\n {2}cmo ic-ialluis/m);
  // DIC: no I-cache maintenance at all.
  assert.doesNotMatch(traceCommand("relax-perms-x", { kernel: "v5.14", cpu: "dic" }), /cmo ic-/);
  // A scenario that fixes FWB itself says nothing of --fwb when it has FWB; the one without FWB
  // refuses it, pointing to the one with it.
  assert.doesNotMatch(traceCommand("flush-with-fwb", { kernel: "v5.14", fwb: true }), /CPU changed/);
  for (const opts of [{ fwb: true }, { cpu: "ttl,fwb" }]) {
    assert.throws(
      () => traceCommand("flush", { kernel: "v5.14", ...opts }),
      /^S2simError: trace flush is the case without FEAT_S2FWB, so it takes no --fwb or --cpu fwb; 'trace flush-with-fwb' shows it with FWB$/,
    );
  }
  assert.match(traceCommand("flush", { kernel: "v5.14", cpu: "ttl" }), /cmo dc-civac/);
});
