/**
 * Each checker rule on its own, including the ones no injectable bug breaks (refcount, a freed
 * table still reachable or read by a walk, I-cache coherence), and the option parsing.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KUNPENG_920 } from "../../src/arch/cpu.js";
import { Checkers } from "../../src/check/checkers.js";
import { parseChecks } from "../../src/check/rules.js";
import { S2simError } from "../../src/common/error.js";
import { runToCompletion } from "../../src/common/steps.js";
import { guestAccess } from "../../src/kvm/fault.js";
import { kvmKernel, withInjectedBug } from "../../src/kvm/kernel.js";
import { Vm } from "../../src/kvm/vm.js";
import { PROT_R, PROT_W } from "../../src/pgtable/prot.js";

const GPA = 2 ** 30;
const HVA = 0x4000_0000_0000;

/** A VM with one 2 MiB anonymous memslot at 1 GiB and every checker collecting. */
function checkedVm(kernel = kvmKernel("v5.14"), cpu = KUNPENG_920): { vm: Vm; checkers: Checkers } {
  const vm = new Vm({ kernel, cpu, vcpus: 1, hostBytes: 2 << 20 });
  vm.addMemory(1, GPA, 2 << 20, HVA, "anonymous");
  const checkers = new Checkers(vm, { checks: parseChecks("all"), mode: "collect" });
  return { vm, checkers };
}

/** The table page holding the leaf that maps `ipa`. */
function leafTablePage(vm: Vm, ipa: number): number {
  const leaf = vm.pgt.lookup(ipa);
  const page = vm.tableMem.pages.findIndex(
    (w, n) => vm.tableMem.refcount[n]! > 0 && w.some((x, i) => i % 2 === 0 && x === leaf.lo),
  );
  assert.ok(page >= 0);
  return page;
}

function touch(vm: Vm, ipa: number, how: "read" | "write" | "exec"): void {
  runToCompletion(
    guestAccess(vm, vm.vcpus[0]!, { ipa, write: how === "write", exec: how === "exec", s1ptw: false }),
  );
}

describe("checker rules", () => {
  it("correct faults (read, write, exec) break no rule", () => {
    const { vm, checkers } = checkedVm();
    touch(vm, GPA, "write");
    touch(vm, GPA + 4096, "read");
    touch(vm, GPA + 8192, "exec");
    assert.deepEqual(checkers.violations, []);
  });

  it("refcount: a table page whose count no longer matches its entries is reported after the next op", () => {
    const { vm, checkers } = checkedVm();
    touch(vm, GPA, "write");
    const leaf = vm.pgt.lookup(GPA);
    assert.equal(leaf.level, 3);
    // Find the L3 table page holding the leaf and corrupt its count.
    const page = vm.tableMem.pages.findIndex((w, n) => vm.tableMem.refcount[n]! > 0 && w[0] === leaf.lo);
    assert.ok(page >= 0);
    vm.tableMem.refcount[page]! += 1;
    vm.pgt.map(GPA + 4096, 4096, vm.hostPhys.zeroPage, PROT_R, vm.vcpus[0]!.memcache);
    assert.equal(checkers.violations.length, 1);
    assert.equal(checkers.violations[0]!.check, "refcount");
    assert.match(checkers.violations[0]!.what, /has refcount 4, expected 1 \+ 2 counted entries/);
    // The report names the range the page translates and shows its entries' stores.
    assert.equal(checkers.violations[0]!.ipa, GPA);
    assert.equal(checkers.violations[0]!.level, 3);
    assert.ok(checkers.violations[0]!.history.some((l) => / pte L3 /.test(l)));
  });

  it("table-free: freeing a table page that valid entries still reach is reported", () => {
    const { vm, checkers } = checkedVm();
    touch(vm, GPA, "write");
    const leaf = vm.pgt.lookup(GPA);
    const page = vm.tableMem.pages.findIndex((w, n) => vm.tableMem.refcount[n]! > 0 && w[0] === leaf.lo);
    vm.tableMem.refcount[page] = 1;
    vm.pgt.mmOps.putPage(page);
    const v = checkers.violations.find((x) => x.check === "table-free");
    assert.ok(v);
    assert.match(v.what, /freed while valid table entries still reach it/);
    assert.equal(v.ipa, GPA);
    assert.ok(v.history.some((l) => / page-free /.test(l)));
  });

  it("table-free: a walk that reads a page after it was freed is reported", () => {
    const { vm, checkers } = checkedVm();
    touch(vm, GPA, "write");
    const l3 = leafTablePage(vm, GPA);
    assert.equal(vm.pgt.unmap(GPA, 2 << 20), 0);
    assert.equal(vm.tableMem.refcount[l3], 0);
    assert.equal(checkers.found, 0);
    checkers.walkRead(0, l3, 3, 0);
    assert.equal(checkers.violations.length, 1);
    const v = checkers.violations[0]!;
    assert.match(v.what, /walk read L3 table page 0x[0-9a-f]+, freed at/);
    assert.equal(v.ipa, GPA);
    assert.ok(v.history.some((l) => / page-free /.test(l)));
  });

  it("table-free: on a FEAT_TTL CPU a level-hinted TLBI does not cover a table unlink", () => {
    for (const ttl of [false, true]) {
      const { vm, checkers } = checkedVm(kvmKernel("v5.14"), { ...KUNPENG_920, ttl });
      touch(vm, GPA, "write");
      // The kernel unlinks the emptied L3 and L2 tables with TLBIs hinted at their entries' levels.
      assert.equal(vm.pgt.unmap(GPA, 2 << 20), 0);
      if (!ttl) {
        assert.deepEqual(checkers.violations, []);
        continue;
      }
      const v = checkers.violations.find((x) => x.check === "table-free");
      assert.ok(v);
      assert.match(
        v.what,
        /its entry \(L2, IPA 0x40000000, 2M\), which was unlinked: the TLBI by IPA hinted L2/,
      );
      const b = checkers.violations.find((x) => x.check === "bbm");
      assert.ok(b);
      assert.match(
        b.what,
        /L2 entry .* \(TLBI by IPA hinted L2: with FEAT_TTL a hint names the level of a leaf/,
      );
    }
  });

  it("bbm: an entry still owed a TLBI when its operation returns is reported", () => {
    const { vm, checkers } = checkedVm(withInjectedBug(kvmKernel("v5.14"), "no-tlbi-after-break"));
    touch(vm, GPA, "write");
    touch(vm, GPA + 4096, "read");
    assert.equal(vm.pgt.unmap(GPA, 4096), 0);
    assert.equal(checkers.violations.length, 1);
    assert.equal(checkers.violations[0]!.check, "bbm");
    assert.match(
      checkers.violations[0]!.what,
      /^unmap returned leaving L3 entry 0x[0-9a-f]+\[0\] \(IPA 0x40000000, 4K\) with no TLBI since it was broken$/,
    );
  });

  it("bbm: a table page freed while an entry of it is owed a TLBI is reported", () => {
    const { vm, checkers } = checkedVm(withInjectedBug(kvmKernel("v5.12"), "no-tlbi-after-break"));
    touch(vm, GPA, "write");
    const l3 = leafTablePage(vm, GPA);
    assert.equal(vm.pgt.unmap(GPA, 2 << 20), 0);
    const v = checkers.violations.find((x) => x.check === "bbm");
    assert.ok(v, checkers.violations.map((x) => x.what).join("\n"));
    assert.equal(
      v.what,
      `table page 0x${vm.tableMem.pa(l3).toString(16)} was freed holding L3 entry [0] (IPA 0x40000000, 4K) ` +
        "with no TLBI since it was broken",
    );
  });

  it("bbm: a TLBI level hint counts only on a FEAT_TTL CPU, and there only for the entry's level or none", () => {
    for (const [ttl, hint, reported] of [
      [false, 3, false],
      [true, 3, true],
      [true, 2, false],
      [true, 0, false],
    ] as const) {
      const vm = new Vm({
        kernel: kvmKernel("v5.14"),
        cpu: { ...KUNPENG_920, ttl },
        vcpus: 1,
        hostBytes: 2 << 20,
      });
      const checkers = new Checkers(vm, { checks: parseChecks("bbm"), mode: "collect" });
      // Break a valid L2 block entry for [GPA, +2M) (entry 1 of a start-level page, as far as the
      // checker cares), TLBI by IPA inside it with the hint, and return.
      checkers.op("unmap");
      checkers.pte(vm.pgt.pgd, 1, 2, GPA, 0x401, 0, 0, 0);
      checkers.tlbiIpa(GPA + 4096, hint);
      checkers.opDone("unmap");
      const label = `ttl ${ttl}, hint ${hint}`;
      if (!reported) {
        assert.deepEqual(checkers.violations, [], label);
        continue;
      }
      assert.equal(checkers.violations.length, 1, label);
      assert.match(
        checkers.violations[0]!.what,
        /with no TLBI covering it since it was broken \(TLBI by IPA hinted L3, the entry is L2\)$/,
      );
    }
  });

  it("coherence: with FWB no D-cache clean is needed, but an executable page still needs its I-cache invalidation", () => {
    const cpu = { ...KUNPENG_920, fwb: true, dic: false };
    const good = checkedVm(kvmKernel("v5.14"), cpu);
    touch(good.vm, GPA, "exec");
    assert.deepEqual(good.checkers.violations, []);
    const bad = checkedVm(withInjectedBug(kvmKernel("v5.14"), "install-no-cmo"), cpu);
    touch(bad.vm, GPA + 4096, "write");
    assert.equal(bad.checkers.found, 0, "FWB: a skipped D-cache clean is harmless");
    touch(bad.vm, GPA, "exec");
    assert.equal(bad.checkers.violations.length, 1);
    assert.match(bad.checkers.violations[0]!.what, /becomes executable with no I-cache invalidation/);
  });

  it("coherence: a VPIPT I-cache under nVHE needs no per-page invalidation (its lines carry the VMID)", () => {
    for (const kernel of [kvmKernel("v5.12"), kvmKernel("v5.14")]) {
      const { vm, checkers } = checkedVm(kernel, { ...KUNPENG_920, icache: "vpipt", vhe: false });
      touch(vm, GPA, "exec");
      assert.equal(vm.pgt.lookup(GPA).level, 3);
      assert.deepEqual(checkers.violations, []);
    }
  });

  it("a relaxed permission on a present page is not a new mapping", () => {
    const { vm, checkers } = checkedVm(kvmKernel("v5.12"));
    touch(vm, GPA, "read");
    touch(vm, GPA, "write");
    vm.pgt.relaxPerms(GPA, PROT_R | PROT_W);
    assert.deepEqual(checkers.violations, []);
  });

  it("bad --check and --inject values are clear errors", () => {
    assert.throws(
      () => parseChecks("bbm,nope"),
      (e: unknown) => e instanceof S2simError && /unknown checker 'nope'/.test(e.message),
    );
    assert.equal(parseChecks("all").size, 6);
    assert.deepEqual([...parseChecks(" bbm , coherence ")], ["bbm", "coherence"]);
    // 'all' in a list is every checker; an empty value or name is an error, not a silent 'all'.
    assert.equal(parseChecks("all,bbm").size, 6);
    assert.equal(parseChecks("bbm,all").size, 6);
    for (const [spec, re] of [
      ["", /^--check needs checker names: all, or a comma list of bbm, /],
      [" , ", /^--check needs checker names/],
      ["bbm,", /^--check "bbm," has an empty checker name; --check takes all, or a comma list of /],
      ["bbm,nope", /^unknown checker 'nope'; --check takes all, or a comma list of bbm, tlb-conflict, /],
    ] as Array<[string, RegExp]>) {
      assert.throws(
        () => parseChecks(spec),
        (e: unknown) => e instanceof S2simError && re.test(e.message),
        JSON.stringify(spec),
      );
    }
    assert.throws(() => withInjectedBug(kvmKernel("v5.12"), "nope"), /unknown bug 'nope'/);
    assert.throws(
      () => withInjectedBug(kvmKernel("v5.12"), "install-no-cmo"),
      /changes code that only v5.14 has, not v5.12/,
    );
    assert.equal(withInjectedBug(kvmKernel("v5.12"), "no-break").pgtable.bug, "no-break");
    assert.equal(kvmKernel("v5.12").pgtable.bug, null);
  });
});
