/**
 * Rules a review found the checkers applying too loosely: the stale-TLB checker on a block entry
 * (a hit that agrees with the tables at one address must not count for the rest of the block),
 * and the table-free checker on the descendants of a cut table (a TLBI by IPA removes the cached
 * walk of that address only, whichever of a cut-off table and its descendants is freed first), and
 * the break-before-make checker on an entry remade with the value
 * it was broken from (nothing is owed then).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  ATTR_LO_AF,
  ATTR_LO_MEMATTR_SHIFT,
  ATTR_LO_S2AP_R,
  ATTR_LO_S2AP_W,
  MEMATTR_DEVICE_NGNRE,
  MEMATTR_NORMAL,
  PTE_TYPE,
  PTE_VALID,
} from "../../src/arch/descriptor.js";
import { GRANULES, levelSize } from "../../src/arch/granule.js";
import { BbmChecker } from "../../src/check/bbm.js";
import { Checkers } from "../../src/check/checkers.js";
import type { CheckEnv, PteChange } from "../../src/check/env.js";
import { parseChecks } from "../../src/check/rules.js";
import { hex } from "../../src/common/format.js";
import type { Violation } from "../../src/check/violation.js";
import { runToCompletion } from "../../src/common/steps.js";
import { guestAccess } from "../../src/kvm/fault.js";
import { Vm } from "../../src/kvm/vm.js";
import { KERNEL_VERSIONS } from "../../src/pgtable/kernel.js";
import { loadProfile } from "../../src/sim/profile.js";
import { simulatePageTableTest } from "../../src/workloads/page-table-sim.js";
import { type CheckScenario, runCheckScenario, SCENARIO_GPA } from "../../src/workloads/check-scenarios.js";

const profile = loadProfile("kunpeng920");
const r = (page: number): { page: number; write: boolean } => ({ page, write: false });
const w = (page: number): { page: number; write: boolean } => ({ page, write: true });

// The "split" scenario, but vCPU 1 first reads page 0 (which the split maps again) and only then
// page 2 (which it does not).
const SPLIT_THEN_ELSEWHERE: CheckScenario = {
  name: "split-then-elsewhere",
  summary: "a block split with its TLBI left out, then hit where the tables agree and where they do not",
  backing: "anonymous_hugetlb",
  vcpus: 2,
  memBytes: 2 ** 21,
  provokes: ["no-tlbi-after-break"],
  steps: [
    { kind: "run", what: "vCPU 0 writes page 0 (2M block)", vcpus: [[w(0)], []] },
    { kind: "dirty-log", on: true },
    { kind: "run", what: "vCPU 1 reads page 1 (caches the RO block)", vcpus: [[], [r(1)]] },
    { kind: "run", what: "vCPU 0 writes page 0 (split to 4K)", vcpus: [[w(0)], []] },
    { kind: "run", what: "vCPU 1 reads page 0, then page 2", vcpus: [[], [r(0), r(2)]] },
  ],
};

for (const kernel of KERNEL_VERSIONS) {
  test(`stale-tlb: a block entry verified at one address is still judged at another (${kernel})`, () => {
    const checks = parseChecks("stale-tlb");
    const clean = runCheckScenario(SPLIT_THEN_ELSEWHERE, profile, { kernel, checks, mode: "collect" });
    assert.deepEqual(clean.violations, []);
    const bad = runCheckScenario(SPLIT_THEN_ELSEWHERE, profile, {
      kernel,
      inject: "no-tlbi-after-break",
      checks,
      mode: "collect",
    });
    const stale = bad.violations.filter((v) => v.check === "stale-tlb");
    assert.ok(stale.length > 0, "the read of page 2 through the stale block is reported");
    assert.ok(stale.some((v) => v.ipa === 2 ** 30 + 2 * 4096));
  });
}

for (const kernel of KERNEL_VERSIONS) {
  test(`table-free: a coalesce's TLBI by IPA does not cover the way to the other tables it frees (${kernel})`, () => {
    const run = (inject?: "coalesce-tlbi-ipa") =>
      simulatePageTableTest(
        {
          kernel,
          backing: "anonymous_hugetlb_1gb",
          memBytes: 2 ** 30,
          vcpus: 2,
          ...(inject ? { inject } : {}),
        },
        profile,
        undefined,
        3,
        { checks: parseChecks("table-free"), mode: "collect" },
      ).check!.violations;
    assert.deepEqual(run(), []);
    const found = run("coalesce-tlbi-ipa");
    assert.ok(found.length > 0, "the freed L3 tables of the coalesced GiB are reported");
    assert.match(found[0]!.what, /removes the cached walk of that address only, not the way to this page/);
  });
}

// A kernel that cuts a GiB's L1 entry, issues one TLBI by IPA outside the L3 table's range and
// frees the L2 and L3 tables: the L3 table is reported whichever of the two it frees first.
for (const order of ["the L3 table first", "the L2 table first"] as const) {
  test(`table-free: a table freed after its cut-off parent still needs a TLBI in its own range (${order})`, () => {
    const GPA = 2 ** 30;
    const vm = new Vm({ kernel: "v5.14", vcpus: 1, hostBytes: 8 << 20 });
    vm.addMemory(1, GPA, 8 << 20, 0x4000_0000_0000, "anonymous");
    const checkers = new Checkers(vm, { checks: parseChecks("table-free"), mode: "collect" });
    runToCompletion(guestAccess(vm, vm.vcpus[0]!, { ipa: GPA, write: true, exec: false, s1ptw: false }));
    const mem = vm.tableMem;
    const level = vm.geo.startLevel;
    // The start-level entry for the GiB, the L2 table it links and the L3 table below.
    const top = vm.pgt.pgd;
    const idx = GPA / levelSize(vm.geo.granule, level);
    const [lo, hi] = [mem.pages[top]![2 * idx]!, mem.pages[top]![2 * idx + 1]!];
    const l2 = mem.pageOfPte(lo, hi);
    const l3 = mem.pageOfPte(mem.pages[l2]![0]!, mem.pages[l2]![1]!);
    // The leaf goes properly (store, TLBI at its address), then the GiB's entry is cut with a TLBI
    // by IPA 4 MiB in: inside the L2 table's range, outside the L3 table's.
    checkers.op("unmap");
    const [llo, lhi] = [mem.pages[l3]![0]!, mem.pages[l3]![1]!];
    mem.pages[l3]!.fill(0, 0, 2);
    checkers.pte(l3, 0, 3, GPA, llo, lhi, 0, 0);
    checkers.tlbiIpa(GPA, 0);
    mem.pages[top]!.fill(0, 2 * idx, 2 * idx + 2);
    checkers.pte(top, idx, level, GPA, lo, hi, 0, 0);
    checkers.tlbiIpa(GPA + (4 << 20), 0);
    const free = (page: number): void => {
      mem.refcount[page] = 1;
      vm.pgt.mmOps.putPage(page);
    };
    if (order === "the L3 table first") [l3, l2].forEach(free);
    else [l2, l3].forEach(free);
    checkers.opDone("unmap");
    const found = checkers.violations.filter((v) => v.check === "table-free");
    assert.equal(found.length, 1);
    assert.match(found[0]!.what, new RegExp(`table page ${hex(mem.pa(l3))} was freed before a TLBI covered`));
    assert.match(found[0]!.what, /not the way to this page \(IPA 0x40000000-0x401fffff\)/);
    checkers.detach();
  });
}

/** A 4K page descriptor: valid page, Normal memory, permissions `perms`, AF, output address `oa`. */
const page = (oa: number, perms: number): number =>
  oa | PTE_VALID | PTE_TYPE | (MEMATTR_NORMAL << ATTR_LO_MEMATTR_SHIFT) | perms | ATTR_LO_AF | 0;
const rw = ATTR_LO_S2AP_R | ATTR_LO_S2AP_W;

/**
 * A break-before-make checker on its own (CPU with FEAT_TTL or not), fed one level-3 entry's stores
 * by hand: `breakAndMake` is one map operation that breaks the entry from `from`, issues a TLBI by
 * IPA at `tlbi` with level hint `hint` (none if `tlbi` is undefined) and makes it `to`.
 */
function lonelyBbm(ttl: boolean): {
  reports: string[];
  bbm: BbmChecker;
  change: (oldLo: number, newLo: number) => PteChange;
  breakAndMake: (from: number, to: number, tlbi?: number, hint?: number) => void;
} {
  const reports: string[] = [];
  const granule = GRANULES[4096];
  // Table page 2 (level 3) holds two valid leaves, at indexes 0 and 1; a table entry links to it.
  const leaves = new Uint32Array(1024);
  leaves[0] = page(0x8000_0000, rw);
  leaves[2] = page(0x8000_1000, rw);
  const tableMem = {
    pa: (p: number) => 0x4000_0000 + p * 4096,
    pages: [undefined, undefined, leaves],
    pageOfPte: () => 2,
  };
  const env = {
    vm: { cpu: { ttl }, tableMem },
    granule,
    ptrsPerTable: 512,
    levelSize: [0, 1, 2, 3].map((l) => levelSize(granule, l)),
    report: (_check: string, what: string) => reports.push(what),
  } as unknown as CheckEnv;
  const bbm = new BbmChecker(env);
  const change = (oldLo: number, newLo: number): PteChange => ({
    page: 1,
    index: 5,
    key: 512 + 5,
    level: 3,
    ipa: 0x1000_5000,
    size: 4096,
    oldLo,
    oldHi: 0,
    newLo,
    newHi: 0,
  });
  const breakAndMake = (from: number, to: number, tlbi?: number, hint = 3): void => {
    bbm.op("map");
    bbm.pte(change(from, 0));
    if (tlbi !== undefined) bbm.tlbiIpa(tlbi, hint);
    bbm.pte(change(0, to));
    bbm.opDone("map");
  };
  return { reports, bbm, change, breakAndMake };
}

test("bbm: an entry made valid again with the value it was broken from owes nothing; another value owes its TLBI", () => {
  const { reports, bbm, change, breakAndMake } = lonelyBbm(false);
  const remadeWithoutTlbi = (pa: string): RegExp =>
    new RegExp(`was made valid again \\(leaf -> ${pa} .*\\) with no TLBI since it was broken`);
  // Broken, then remade with the same output address and attributes (fewer permissions: an
  // in-place change), with no TLBI between: nothing owed, nothing reported.
  breakAndMake(page(0x8000_0000, rw), page(0x8000_0000, ATTR_LO_S2AP_R));
  assert.deepEqual(reports, []);
  // Broken, then remade to another page with no TLBI between: reported.
  breakAndMake(page(0x8000_0000, rw), page(0x8000_1000, rw));
  assert.equal(reports.length, 1);
  assert.match(reports[0]!, remadeWithoutTlbi("0x80001000"));
  // A TLBI by IPA for the next page only (outside the entry's range) leaves it owed: reported.
  breakAndMake(page(0x8000_0000, rw), page(0x8000_2000, rw), 0x1000_6000);
  assert.equal(reports.length, 2);
  assert.match(reports[1]!, remadeWithoutTlbi("0x80002000"));
  // A valid leaf's memory type changed in place (Normal to Device), with no break: reported.
  const device =
    (page(0x8000_0000, rw) & ~(0xf << ATTR_LO_MEMATTR_SHIFT)) |
    (MEMATTR_DEVICE_NGNRE << ATTR_LO_MEMATTR_SHIFT);
  bbm.op("map");
  bbm.pte(change(page(0x8000_0000, rw), device));
  bbm.opDone("map");
  assert.equal(reports.length, 3);
  assert.match(reports[2]!, /without a break/);
});

test("bbm: with FEAT_TTL a TLBI by IPA removes a broken leaf only if its hint is 0 or the leaf's level", () => {
  const [from, to, at] = [page(0x8000_0000, rw), page(0x8000_1000, rw), 0x1000_5000];
  const ttl = lonelyBbm(true);
  ttl.breakAndMake(from, to, at, 3);
  ttl.breakAndMake(from, to, at, 0);
  assert.deepEqual(ttl.reports, []);
  // Hinted level 2 (a 2M block's level): the L3 entry is left in the TLB.
  ttl.breakAndMake(from, to, at, 2);
  assert.equal(ttl.reports.length, 1);
  assert.match(
    ttl.reports[0]!,
    /was made valid again \(leaf -> 0x80001000 .*\) with no TLBI covering it since it was broken \(TLBI by IPA hinted L2, the entry is L3\)/,
  );
  // Without FEAT_TTL the hint is ignored: the same TLBI removes the entry.
  const plain = lonelyBbm(false);
  plain.breakAndMake(from, to, at, 2);
  assert.deepEqual(plain.reports, []);
});

test("bbm: with FEAT_TTL the leaves below a broken table entry are covered only by TLBIs hinted 0 or 3", () => {
  // A level-2 table entry over IPA 0x1000_0000 (2M), linking the level-3 table with two leaves.
  const tableEntry = (0x4000_2000 | 3) >>> 0;
  const unlink = (ttl: boolean, secondHint: number): string[] => {
    const { reports, bbm } = lonelyBbm(ttl);
    const base = { page: 1, index: 128, key: 512 + 128, level: 2, ipa: 0x1000_0000, size: 2 ** 21 };
    bbm.op("unmap");
    bbm.pte({ ...base, oldLo: tableEntry, oldHi: 0, newLo: 0, newHi: 0 });
    // Unhinted at the first leaf: the table entry and that leaf.
    bbm.tlbiIpa(0x1000_0000, 0);
    bbm.tlbiIpa(0x1000_1000, secondHint);
    bbm.opDone("unmap");
    return reports;
  };
  assert.deepEqual(unlink(true, 3), []);
  assert.deepEqual(unlink(false, 2), []);
  const reports = unlink(true, 2);
  assert.equal(reports.length, 1);
  assert.match(
    reports[0]!,
    /^unmap returned leaving L2 entry .* \(IPA 0x10000000, 2M\) with 1 valid leaves of the table it held \(first: L3 IPA 0x10001000, 4K\) not covered by any TLBI since it was broken/,
  );
});

/**
 * Where the stage-2 tables hold the leaf for `ipa` (or, with `stop`, the entry at that level on the
 * way): its table page, index and level.
 */
function leafSlot(vm: Vm, ipa: number, stop = 3): { table: number; index: number; level: number } {
  const pgt = vm.pgt;
  const mask = pgt.granule.ptrsPerTable - 1;
  let level = pgt.geo.startLevel;
  let table = pgt.pgd + Math.floor(ipa * pgt.sizes.inv[level]!);
  for (;;) {
    const index = Math.floor(ipa * pgt.sizes.inv[level + 1]!) & mask;
    const words = pgt.mem.pages[table]!;
    if (level === stop || (words[2 * index]! & 3) !== 3) return { table, index, level };
    table = pgt.follow(words[2 * index]!, words[2 * index + 1]!);
    level++;
  }
}

// A cached page whose leaf a kernel changes with no TLBI after (a store no kernel path makes, so
// no injectable bug does it), then hit: the hit is stale. With the TLBI, nothing is reported.
const STALE_CHANGES = [
  ["write-protected", 3, (lo: number) => lo & ~ATTR_LO_S2AP_W, /but the tables grant only R-?-?,/],
  ["remapped to the next page", 3, (lo: number) => lo + 0x1000, /but the tables map it to PA 0x[0-9a-f]+,/],
  // The level-1 entry linking the page's tables cleared: a store far above the cached leaf.
  ["cut off at level 1", 1, () => 0, /but the tables no longer map it,/],
] as const;
for (const [what, at, change, report] of STALE_CHANGES) {
  for (const tlbi of [false, true]) {
    test(`stale-tlb: a cached page ${what} ${tlbi ? "and invalidated" : "with no TLBI"}, then written`, () => {
      const ipa = SCENARIO_GPA;
      const s: CheckScenario = {
        name: "stale-after-store",
        summary: "a page written, its leaf changed behind the vCPU's back, then written again",
        backing: "anonymous",
        vcpus: 1,
        memBytes: 4 * 4096,
        provokes: [],
        steps: [
          { kind: "run", what: "vCPU 0 writes page 0 (caches it RW)", vcpus: [[w(0)]] },
          {
            kind: "host",
            what: `page 0's leaf ${what}`,
            run: (vm) => {
              const { table, index, level } = leafSlot(vm, ipa, at);
              const words = vm.pgt.mem.pages[table]!;
              const hi = at === 3 ? words[2 * index + 1]! : 0;
              vm.pgt.writePte(table, index, change(words[2 * index]!) >>> 0, hi, ipa, level);
              if (tlbi) vm.pgt.tlbFlushVmidIpa(ipa, level);
            },
          },
          { kind: "run", what: "vCPU 0 writes page 0 again", vcpus: [[w(0)]] },
        ],
      };
      const found = runCheckScenario(s, profile, {
        kernel: "v5.14",
        checks: parseChecks("stale-tlb"),
        mode: "collect",
      }).violations;
      if (tlbi) assert.deepEqual(found, []);
      else {
        assert.equal(found.length >= 1, true, "not reported");
        assert.equal(found[0]!.check, "stale-tlb");
        assert.match(found[0]!.what, report);
      }
    });
  }
}

test("tlb-conflict: a cached read-only page remapped writable to another page with no TLBI, then written", () => {
  const ipa = SCENARIO_GPA;
  const run = (tlbi: boolean): readonly Violation[] =>
    runCheckScenario(
      {
        name: "conflict-after-remap",
        summary: "a page read, its leaf remapped RW elsewhere behind the vCPU's back, then written",
        backing: "anonymous",
        vcpus: 1,
        memBytes: 4 * 4096,
        provokes: [],
        steps: [
          { kind: "run", what: "vCPU 0 reads page 0 (caches the zero page RO)", vcpus: [[r(0)]] },
          {
            kind: "host",
            what: "page 0's leaf remapped RW to the next page",
            run: (vm) => {
              const { table, index, level } = leafSlot(vm, ipa);
              const words = vm.pgt.mem.pages[table]!;
              const lo = (words[2 * index]! + 0x1000) | ATTR_LO_S2AP_W;
              vm.pgt.writePte(table, index, lo >>> 0, words[2 * index + 1]!, ipa, level);
              if (tlbi) vm.pgt.tlbFlushVmidIpa(ipa, level);
            },
          },
          // The RO entry hits without the permission: the walk finds the new leaf and caches it.
          { kind: "run", what: "vCPU 0 writes page 0", vcpus: [[w(0)]] },
        ],
      },
      profile,
      { kernel: "v5.14", checks: parseChecks("tlb-conflict"), mode: "collect" },
    ).violations;
  assert.deepEqual(run(true), []);
  const found = run(false);
  assert.equal(found.length, 1);
  assert.equal(found[0]!.check, "tlb-conflict");
  assert.match(
    found[0]!.what,
    /caches L3 4K IPA 0x40000000 -> PA 0x[0-9a-f]+ while it still holds L3 4K IPA 0x40000000/,
  );
});

// The "split" scenario, but vCPU 1 then writes page 0: its cached RO block hits without the write
// permission, and the walk caches the new 4K RW page inside the block it still holds.
const SPLIT_THEN_WRITE: CheckScenario = {
  ...SPLIT_THEN_ELSEWHERE,
  name: "split-then-write",
  summary: "a block split with its TLBI left out, then written through the split by the vCPU caching it",
  steps: [
    ...SPLIT_THEN_ELSEWHERE.steps.slice(0, 4),
    { kind: "run", what: "vCPU 1 writes page 0", vcpus: [[], [w(0)]] },
  ],
};

for (const kernel of KERNEL_VERSIONS) {
  test(`tlb-conflict: a 4K fill inside a block entry still cached (${kernel})`, () => {
    const checks = parseChecks("tlb-conflict");
    const run = (inject?: string) =>
      runCheckScenario(SPLIT_THEN_WRITE, profile, {
        kernel,
        checks,
        mode: "collect",
        ...(inject === undefined ? {} : { inject }),
      }).violations;
    assert.deepEqual(run(), []);
    // Both vCPUs: vCPU 0's own RO block stayed cached through its split too.
    const found = run("no-tlbi-after-break").map((v) => v.what);
    assert.deepEqual(
      found.map((what) =>
        what.replace(
          /^vCPU (\d) caches L3 4K IPA 0x40000000 -> PA 0x[0-9a-f]+ while it still holds L2 2M IPA 0x40000000 -> PA 0x[0-9a-f]+$/,
          "$1",
        ),
      ),
      ["0", "1"],
    );
  });
}

// The refcount invariant is checked on every table page an operation stores to, not only on those
// whose count it changes: a page left with a wrong count (here by a step outside any kvm_pgtable
// operation, where nothing checks) is reported by the next operation that touches it, even one
// whose stores change no count (dirty logging's write-protect).
for (const kernel of KERNEL_VERSIONS) {
  for (const corrupt of [false, true]) {
    test(`refcount: a write-protect after a table page's count ${corrupt ? "went wrong" : "stayed right"} (${kernel})`, () => {
      const found = runCheckScenario(
        {
          name: "refcount-then-wrprotect",
          summary: "a page written, its level-3 table's refcount raised by one, then dirty logging on",
          backing: "anonymous",
          vcpus: 1,
          memBytes: 4 * 4096,
          provokes: [],
          steps: [
            { kind: "run", what: "vCPU 0 writes page 0", vcpus: [[w(0)]] },
            {
              kind: "host",
              what: "page 0's level-3 table gains a reference nothing holds",
              run: (vm) => {
                if (corrupt) vm.tableMem.refcount[leafSlot(vm, SCENARIO_GPA).table]! += 1;
              },
            },
            { kind: "dirty-log", on: true },
          ],
        },
        profile,
        { kernel, checks: parseChecks("refcount"), mode: "collect" },
      ).violations;
      if (!corrupt) assert.deepEqual(found, []);
      else {
        // Then kvm_vm_free's unmap, the next operation to store to that page, reports it again.
        assert.equal(found.length, 2);
        assert.equal(found[1]!.check, "refcount");
        assert.match(
          found[1]!.what,
          /^in kvm_vm_free, after the steps: after unmap, table page 0x[0-9a-f]+ has refcount/,
        );
        assert.equal(found[0]!.check, "refcount");
        const m =
          /^after wrprotect, table page 0x[0-9a-f]+ has refcount (\d+), expected 1 \+ (\d+) counted entries$/.exec(
            found[0]!.what,
          );
        assert.ok(m !== null, found[0]!.what);
        // The one reference nothing holds.
        assert.equal(Number(m[1]), 1 + Number(m[2]) + 1);
      }
    });
  }
}

// Coherence is judged per host page: a clean covering all of a page but its last line leaves the
// page unclean, and a leaf installed over it without its CMO (install-no-cmo) is reported; the
// whole page cleaned, it is not. (HostPhys's unit test states the marks; this states the checker.)
for (const partial of [true, false]) {
  test(`coherence: a page cleaned ${partial ? "all but its last line" : "whole"} by the host, then mapped without the CMO`, () => {
    const found = runCheckScenario(
      {
        name: "host-cleaned-page",
        summary: "the VMM writes page 0 and cleans it to the PoC itself, then a vCPU reads it",
        backing: "anonymous",
        vcpus: 1,
        memBytes: 4 * 4096,
        provokes: [],
        steps: [
          {
            kind: "host",
            what: `the VMM writes page 0, then cleans ${partial ? "all but its last line" : "it"}`,
            run: (vm) => {
              const hva = vm.memslots.slots.find((s) => s.id === 1)!.hvaOf(SCENARIO_GPA);
              vm.host.populate(hva, 4096);
              assert.ok(vm.host.gupNoFault(hva, false, false));
              vm.hostPhys.cleanToPoc(vm.host.gupPa, partial ? 4096 - 64 : 4096);
            },
          },
          { kind: "run", what: "vCPU 0 reads page 0", vcpus: [[r(0)]] },
        ],
      },
      profile,
      { kernel: "v5.14", inject: "install-no-cmo", checks: parseChecks("coherence"), mode: "collect" },
    ).violations;
    if (!partial) assert.deepEqual(found, []);
    else {
      assert.equal(found.length, 1);
      assert.match(
        found[0]!.what,
        /^L3 leaf IPA 0x40000000 -> PA 0x[0-9a-f]+ \(4K\) becomes guest-visible while host page 0x[0-9a-f]+ holds host writes not cleaned to the PoC$/,
      );
    }
  });
}
