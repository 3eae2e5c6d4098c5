import { test } from "node:test";
import assert from "node:assert/strict";
import { S2simError } from "../../src/common/error.js";
import type { PgtableEvent } from "../../src/pgtable/events.js";
import { censusTables } from "../../src/pgtable/invariants.js";
import { KERNEL_VERSIONS, type KernelVersion } from "../../src/pgtable/kernel.js";
import {
  executePgtableScenario,
  PGTABLE_SCENARIOS,
  runPgtableScenario,
} from "../../src/workloads/pgtable-scenarios.js";

const SZ_4K = 0x1000;
const SZ_2M = 0x20_0000;
const SZ_1G = 0x4000_0000;

type Ev<K extends PgtableEvent["kind"]> = Extract<PgtableEvent, { kind: K }>;

function run(name: string, kernel: KernelVersion, fwb?: boolean): PgtableEvent[] {
  return executePgtableScenario(name, kernel, fwb === undefined ? {} : { fwb }).events;
}

function ofKind<K extends PgtableEvent["kind"]>(events: PgtableEvent[], kind: K): Ev<K>[] {
  return events.filter((e): e is Ev<K> => e.kind === kind);
}

function indexWhere(events: PgtableEvent[], pred: (e: PgtableEvent) => boolean): number {
  const i = events.findIndex(pred);
  assert.notEqual(i, -1, "expected event not found");
  return i;
}

function rets(events: PgtableEvent[]): number[] {
  return ofKind(events, "op-done").map((e) => e.ret);
}

const isValidStore = (e: PgtableEvent): boolean => e.kind === "pte" && (e.new & 1n) === 1n;

test("scenario catalogue: kebab-case unique names, one-line descriptions citing the spec", () => {
  const names = PGTABLE_SCENARIOS.map((s) => s.name);
  assert.equal(new Set(names).size, names.length);
  for (const s of PGTABLE_SCENARIOS) {
    assert.match(s.name, /^[a-z0-9]+(-[a-z0-9]+)*$/);
    assert.doesNotMatch(s.description, /\n/);
    assert.match(s.description, /\(\d+\.\d+/, `${s.name} cites a spec section`);
  }
});

test("unknown scenario or kernel is an S2simError listing the valid choices", () => {
  assert.throws(
    () => runPgtableScenario("no-such-scenario", "v5.14"),
    (e: unknown) =>
      e instanceof S2simError &&
      e.code === "unknown-scenario" &&
      e.message.includes("no-such-scenario") &&
      PGTABLE_SCENARIOS.every((s) => e.message.includes(s.name)),
  );
  assert.throws(
    () => runPgtableScenario("map-page", "v5.13" as KernelVersion),
    (e: unknown) => e instanceof S2simError && e.code === "unknown-kernel",
  );
});

for (const kernel of KERNEL_VERSIONS) {
  test(`every scenario leaves sound refcounts (${kernel})`, () => {
    for (const s of PGTABLE_SCENARIOS) {
      const r = executePgtableScenario(s.name, kernel);
      assert.deepEqual(censusTables(r.pgt).violations, [], s.name);
      assert.equal(r.lines.length >= r.events.length, true);
    }
  });
}

test("map-page: v5.12 no CMO; v5.14 one 4K D-CMO just before the page store; no TLBI", () => {
  const pre = run("map-page", "v5.12");
  assert.equal(ofKind(pre, "cmo").length, 0);
  assert.equal(ofKind(pre, "tlbi").length, 0);
  assert.equal(ofKind(pre, "table-alloc").length, 2);
  const post = run("map-page", "v5.14");
  const cmos = ofKind(post, "cmo");
  assert.deepEqual(cmos, [{ kind: "cmo", op: "dc-civac", pa: 0x20_0000_0000, size: SZ_4K }]);
  const cmoAt = post.indexOf(cmos[0]!);
  const store = post[cmoAt + 1]!;
  assert.equal(store.kind === "pte" && store.level === 3, true);
  assert.equal(ofKind(post, "tlbi").length, 0);
  // With FWB the D-CMO is skipped (clean_dcache_guest_page returns early).
  assert.equal(ofKind(run("map-page", "v5.14", true), "cmo").length, 0);
});

test("map-block-1g/2m: v5.14 D-CMO of the block size, no table for 1G", () => {
  const g = run("map-block-1g", "v5.14");
  assert.deepEqual(
    ofKind(g, "cmo").map((e) => e.size),
    [SZ_1G],
  );
  assert.equal(ofKind(g, "table-alloc").length, 0);
  assert.deepEqual(
    ofKind(run("map-block-2m", "v5.14"), "cmo").map((e) => e.size),
    [SZ_2M],
  );
  assert.equal(ofKind(run("map-block-1g", "v5.12"), "cmo").length, 0);
});

for (const kernel of KERNEL_VERSIONS) {
  test(`identical and permission-only re-maps: -EAGAIN, nothing written (${kernel})`, () => {
    for (const name of ["map-same", "map-perms-only"]) {
      const ev = run(name, kernel);
      assert.equal(rets(ev).length > 0, true);
      assert.equal(
        rets(ev).every((r) => r === -11),
        true,
        name,
      );
      assert.equal(ofKind(ev, "pte").length + ofKind(ev, "tlbi").length + ofKind(ev, "cmo").length, 0);
    }
    const lines = runPgtableScenario("map-perms-only", kernel);
    assert.ok(lines.some((l) => l.includes("W=1 (still RW)")));
    assert.ok(lines.some((l) => l.includes("W=0 (still RO)")));
  });

  test(`different leaf: invalidate, TLBI at L3, put, store, get (${kernel})`, () => {
    const ev = run("map-different-leaf", kernel).filter((e) => e.kind !== "op" && e.kind !== "op-done");
    const kinds = ev.map((e) => e.kind);
    const expected =
      kernel === "v5.12"
        ? ["pte", "tlbi", "refcount", "pte", "refcount"]
        : ["pte", "tlbi", "refcount", "cmo", "pte", "refcount"];
    assert.deepEqual(kinds, expected);
    const [inval, tlbi] = ev as [Ev<"pte">, Ev<"tlbi">];
    assert.equal(inval.new & 1n, 0n);
    assert.deepEqual(tlbi, { kind: "tlbi", scope: "vmid-ipa", ipa: 0xff_8000_0000, level: 3 });
  });

  test(`4K map in a 1G block: two new tables, TLBI by IPA at L1 (${kernel})`, () => {
    const ev = run("map-page-in-1g-block", kernel);
    assert.deepEqual(
      ofKind(ev, "table-alloc").map((e) => e.level),
      [2, 3],
    );
    const tlbis = ofKind(ev, "tlbi");
    assert.equal(tlbis.length, 1);
    assert.equal(tlbis[0]!.scope === "vmid-ipa" && tlbis[0]!.level === 1, true);
  });
}

function checkCoalesce(name: string, kernel: KernelVersion, blockSize: number, frees: number): void {
  const ev = run(name, kernel);
  const tlbis = ofKind(ev, "tlbi");
  assert.deepEqual(tlbis, [{ kind: "tlbi", scope: "vmid" }], "one whole-VMID TLBI, nothing by IPA");
  const ptes = ofKind(ev, "pte");
  assert.equal(ptes.length, 2, "invalidate the table entry, later store the block");
  const [inval, block] = ptes as [Ev<"pte">, Ev<"pte">];
  assert.equal(inval.new & 1n, 0n);
  // The direct child is the table the anchor entry pointed to.
  const childPa = Number(inval.old & 0xffff_ffff_f000n);
  const freeChild = indexWhere(ev, (e) => e.kind === "page-free" && e.pa === childPa);
  const store = ev.indexOf(block);
  assert.ok(ev.indexOf(inval) < ev.indexOf(tlbis[0]!), "invalidate before the TLBI");
  assert.equal(ofKind(ev, "page-free").length, frees);
  const cmos = ofKind(ev, "cmo");
  if (kernel === "v5.12") {
    assert.equal(cmos.length, 0, "v5.12: no CMO in the pgtable code");
    assert.ok(freeChild < store, "v5.12 frees the direct child before storing the block");
  } else {
    assert.deepEqual(
      cmos.map((e) => [e.op, e.size]),
      [["dc-civac", blockSize]],
    );
    assert.equal(ev.indexOf(cmos[0]!), store - 1, "the block CMO immediately precedes the store");
    assert.ok(store < freeChild, "v5.14 stores the block before freeing the direct child");
  }
}

for (const kernel of KERNEL_VERSIONS) {
  test(`coalesce to a 1G block (${kernel})`, () => checkCoalesce("coalesce-1g", kernel, SZ_1G, 3));
  test(`coalesce to a 2M block (${kernel})`, () => checkCoalesce("coalesce-2m", kernel, SZ_2M, 1));

  test(`unmap frees empty tables, TLBI at the table's level (${kernel})`, () => {
    const ev = run("unmap-frees-tables", kernel);
    assert.deepEqual(
      ofKind(ev, "tlbi").map((e) => (e.scope === "vmid-ipa" ? e.level : -1)),
      [3, 3, 2, 1],
    );
    assert.equal(ofKind(ev, "page-free").length, 2);
    assert.equal(ofKind(ev, "cmo").length, 2);
  });

  test(`unmap of part of a 2M block: whole block, D-CMO 2M after the TLBI (${kernel})`, () => {
    const ev = run("unmap-partial-block", kernel);
    const tlbi = indexWhere(ev, (e) => e.kind === "tlbi" && e.scope === "vmid-ipa" && e.level === 2);
    const cmo = indexWhere(ev, (e) => e.kind === "cmo" && e.size === SZ_2M && e.pa === 0x20_0000_0000);
    assert.ok(tlbi < cmo);
    assert.equal(ofKind(ev, "cmo").length, 1);
  });

  test(`relax_perms (${kernel})`, () => {
    const w = run("relax-perms-w", kernel);
    assert.equal(ofKind(w, "cmo").length, 0);
    assert.deepEqual(ofKind(w, "tlbi"), [{ kind: "tlbi", scope: "vmid-ipa", ipa: 0xff_8000_0000, level: 3 }]);

    const x = run("relax-perms-x", kernel);
    const store = indexWhere(x, isValidStore);
    const tlbi = indexWhere(x, (e) => e.kind === "tlbi" && e.scope === "vmid-ipa" && e.level === 2);
    assert.ok(store < tlbi, "TLBI after the write");
    const cmos = ofKind(x, "cmo");
    if (kernel === "v5.12") {
      assert.equal(cmos.length, 0);
    } else {
      assert.deepEqual(
        cmos.map((e) => [e.op, e.size]),
        [["ic-ivau", SZ_2M]],
      );
      assert.ok(x.indexOf(cmos[0]!) < store, "I-CMO before the write");
    }

    const missing = run("relax-perms-missing", kernel);
    assert.equal(ofKind(missing, "pte").length, 0);
    assert.deepEqual(rets(missing), [0]);
    assert.deepEqual(
      ofKind(missing, "tlbi").map((e) => (e.scope === "vmid-ipa" ? e.level : -1)),
      [0],
    );
  });

  test(`wrprotect and access flag: no TLBI, no CMO (${kernel})`, () => {
    const wp = run("wrprotect", kernel);
    assert.equal(ofKind(wp, "tlbi").length + ofKind(wp, "cmo").length, 0);
    const ptes = ofKind(wp, "pte");
    assert.equal(ptes.length, 3, "the RO page is left alone");
    for (const p of ptes) assert.equal(p.new, p.old & ~0x80n);

    const af = run("access-flag", kernel);
    assert.equal(ofKind(af, "tlbi").length + ofKind(af, "cmo").length, 0);
    const notes = runPgtableScenario("access-flag", kernel).filter((l) => l.startsWith("# is_young"));
    assert.deepEqual(notes, ["# is_young = false", "# is_young = true"]);
  });

  test(`flush with and without FWB (${kernel})`, () => {
    assert.deepEqual(
      ofKind(run("flush", kernel), "cmo").map((e) => e.size),
      [SZ_4K, SZ_2M],
    );
    assert.equal(ofKind(run("flush", kernel, true), "cmo").length, 2, "the scenario pins FWB off");
    const fwb = run("flush-with-fwb", kernel);
    assert.equal(ofKind(fwb, "cmo").length + ofKind(fwb, "tlbi").length, 0);
  });

  test(`-ENOMEM without memcache pages (${kernel})`, () => {
    const none = run("map-no-memcache", kernel);
    assert.deepEqual(rets(none), [-12]);
    assert.equal(ofKind(none, "pte").length, 0);
    const empty = run("map-empty-memcache", kernel);
    assert.deepEqual(rets(empty), [-12, -12]);
    assert.equal(ofKind(empty, "pte").length, 1, "only the L2 table from the one-page cache");
  });

  test(`destroy frees every table page, no TLBI, no CMO (${kernel})`, () => {
    const r = executePgtableScenario("destroy", kernel);
    assert.equal(ofKind(r.events, "tlbi").length + ofKind(r.events, "cmo").length, 0);
    assert.equal(ofKind(r.events, "page-free").length, 4, "L3, L2 and the two L1 pages");
    assert.equal(r.pgt.pgd, -1);
  });
}

test("a negative or out-of-space address is -ERANGE, as a wrapped u64 would be", async () => {
  const { executePgtableScenario } = await import("../../src/workloads/pgtable-scenarios.js");
  const { ERANGE } = await import("../../src/common/errno.js");
  const { pgt } = executePgtableScenario("map-page", "v5.14");
  assert.equal(pgt.unmap(-4096, 4096), ERANGE);
  // Within a page below 0: aligning down would give page 0; a wrapped u64 is still out of range.
  assert.equal(pgt.unmap(-1, 4096), ERANGE);
  assert.equal(pgt.wrprotect(-4095, 8192), ERANGE);
  assert.equal(pgt.wrprotect(2 ** 40, 4096), ERANGE);
  assert.equal(pgt.unmap(2 ** 40 - 4096, 4096), 0);
});
