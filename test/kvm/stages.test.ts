/** Per-backing, per-stage fault-path behaviour of the selftest (spec 6.3 table, 9.3, 9.5). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  G1,
  K4,
  KERNELS,
  M2,
  ORDERS,
  type Order,
  dBytes,
  leaf,
  leaves,
  makeTest,
  runStage,
} from "./helpers.js";

const C = "KVM_CREATE_MAPPINGS";
const U = "KVM_UPDATE_MAPPINGS";
const A = "KVM_ADJUST_MAPPINGS";
const rep = (n: number, size: number): number[] => new Array<number>(n).fill(size);

for (const kernel of KERNELS) {
  const pre = kernel === "v5.12";
  describe(`${kernel} anonymous (4 pages)`, () => {
    const cases: Array<[number, Order]> = [
      [1, "writer-first"],
      ...ORDERS.map((o): [number, Order] => [2, o]),
    ];
    for (const [n, order] of cases) {
      it(`${n} vCPU(s), ${order}`, () => {
        const t = makeTest(kernel, "anonymous", 4 * K4, n);
        const c = runStage(t, C, order);
        assert.ok(c.dcmo.every((s) => s === K4));
        if (order === "writer-first") {
          assert.deepEqual(c.faults, { "translation-L1": 1, "translation-L3": 3 });
          assert.equal(c.maps, 4);
          assert.deepEqual(c.dcmo, rep(4, K4));
          assert.deepEqual(c.hostFaults, { alloc: 4 });
          assert.deepEqual(c.notifier, {});
        } else if (order === "reader-first") {
          // Reader maps the zero page RO; each writer CoW: unmap (TLBI + 4K clean), change_pte, retry, Pm -> relax.
          assert.deepEqual(c.faults, { "translation-L1": 1, "translation-L3": 3, "permission-L3": 8 });
          assert.equal(c.retries, 4);
          assert.equal(c.relaxes, 4);
          assert.deepEqual(c.tlbi, { "ipa-L3": 8 });
          assert.deepEqual(c.hostFaults, { "zero-page": 4, cow: 4 });
          assert.deepEqual(c.notifier, { invalidate_range_start: 4, change_pte: 4, invalidate_range_end: 4 });
          assert.deepEqual(c.handler, { unmap: 4, set_spte: 4 });
          // 4 zero-page maps + 4 unmap cleans + 4 change_pte (v5.12 always, v5.14 because it installs).
          assert.equal(c.dcmo.length, 12);
        }
        for (let p = 0; p < 4; p++)
          assert.deepEqual(leaf(t.vm, t.slot.gpa + p * K4), { level: 3, perm: "rw", xn: true });
        assert.deepEqual(leaves(t.vm), [0, 0, 0, 4]);

        const u = runStage(t, U, order);
        const k = order === "round-robin" ? 2 : 1;
        assert.deepEqual(u.faults, { "permission-L3": 4 * k });
        assert.equal(u.relaxes, 4 * k);
        assert.equal(u.maps, 0);
        assert.deepEqual(u.tlbi, { "ipa-L3": 4 * k });
        assert.deepEqual(u.dcmo, []);

        const a = runStage(t, A, order);
        assert.deepEqual(a.faults, {});
        assert.deepEqual(a.dcmo, []);
        assert.deepEqual(leaves(t.vm), [0, 0, 0, 4]);
      });
    }
  });

  describe(`${kernel} shmem (4 pages)`, () => {
    it("1 vCPU: alloc, map RW, relax in UPDATE (first half only), nothing in ADJUST", () => {
      const t = makeTest(kernel, "shmem", 4 * K4, 1);
      const c = runStage(t, C);
      assert.deepEqual(c.faults, { "translation-L1": 1, "translation-L3": 3 });
      assert.deepEqual(c.dcmo, rep(4, K4));
      // Not VM_MEM_SRC_ANONYMOUS, so the selftest's large-page loop with L = P: a write, a step
      // of L/2 and no reads, four times: offsets 0, 2K, 4K, 6K, so pages 0 and 1, each twice.
      const u = runStage(t, U);
      assert.deepEqual(u.faults, { "permission-L3": 2 });
      assert.deepEqual(u.tlbi, { "ipa-L3": 2 });
      assert.deepEqual(u.dcmo, []);
      assert.deepEqual(runStage(t, A).faults, {});
    });
    // shmem does not ask for write notification (no page_mkwrite, no writeback-capable backing
    // device, no soft-dirty on arm64), so a read fault maps the page-cache page writable and GUP's
    // second FOLL_WRITE attempt succeeds: the reader maps RW and the writer never faults (docs/model.md).
    it("2 vCPUs reader-first: the read fault maps the shared page writable, so RW at once", () => {
      const t = makeTest(kernel, "shmem", 4 * K4, 2);
      const c = runStage(t, C, "reader-first");
      assert.deepEqual(c.faults, { "translation-L1": 1, "translation-L3": 3 });
      assert.equal(c.relaxes, 0);
      assert.deepEqual(leaves(t.vm), [0, 0, 0, 4]);
    });
    it("2 vCPUs round-robin: k translation faulters per page", () => {
      const t = makeTest(kernel, "shmem", 4 * K4, 2);
      const c = runStage(t, C, "round-robin");
      assert.equal(c.eagain, 4);
      assert.deepEqual(c.dcmo, rep(pre ? 8 : 4, K4));
      assert.deepEqual(leaves(t.vm), [0, 0, 0, 4]);
    });
  });

  describe(`${kernel} anonymous_hugetlb_2mb (1 page)`, () => {
    const cases: Array<[number, Order]> = [
      [1, "writer-first"],
      ...ORDERS.map((o): [number, Order] => [2, o]),
    ];
    for (const [n, order] of cases) {
      it(`${n} vCPU(s), ${order}`, () => {
        const t = makeTest(kernel, "anonymous_hugetlb_2mb", M2, n);
        const g = t.slot.gpa;
        const k = order === "round-robin" ? 2 : 1;
        const c = runStage(t, C, order);
        if (order === "reader-first") {
          // RO block, then the writer's Pm at L2: hugetlb CoW reuse, relax, TLBI IPA L2, no CMO.
          assert.deepEqual(c.faults, { "translation-L1": 1, "permission-L2": 1 });
          assert.equal(c.relaxes, 1);
          assert.deepEqual(c.tlbi, { "ipa-L2": 1 });
          assert.deepEqual(c.hostFaults, { "hugetlb-alloc": 1, "hugetlb-reuse": 1 });
          assert.deepEqual(c.dcmo, [M2]);
        } else {
          assert.deepEqual(c.faults, { "translation-L1": k });
          assert.equal(c.eagain, k - 1);
          assert.deepEqual(c.dcmo, rep(pre ? k : 1, M2));
        }
        assert.deepEqual(c.notifier, {});
        assert.deepEqual(leaf(t.vm, g), { level: 2, perm: "rw", xn: true });
        assert.deepEqual(leaves(t.vm), [0, 0, 1, 0]);

        // UPDATE: Pm at L2 on page 0 -> map 4K -> split (TLBI IPA L2); then 256 RO 4K reads.
        const u = runStage(t, U, order);
        assert.deepEqual(u.faults, { "permission-L2": k, "translation-L3": 256 * k });
        assert.equal(u.maps, 257 * k);
        assert.equal(u.eagain, 257 * (k - 1));
        assert.deepEqual(u.tlbi, { "ipa-L2": 1 });
        assert.deepEqual(u.dcmo, rep(pre ? 256 * k : 257, K4));
        assert.deepEqual(leaf(t.vm, g), { level: 3, perm: "rw", xn: true });
        assert.equal(leaf(t.vm, g + K4).perm, "none");
        assert.deepEqual(leaf(t.vm, g + M2 / 2), { level: 3, perm: "ro", xn: true });
        assert.deepEqual(leaves(t.vm), [0, 0, 0, 257]);

        // ADJUST: page 1 -> coalesce with one VMID TLBI; block-size clean per faulter (v5.12) vs once.
        const a = runStage(t, A, order);
        assert.deepEqual(a.faults, { "translation-L3": k });
        assert.equal(a.maps, k);
        assert.equal(a.eagain, k - 1);
        assert.deepEqual(a.tlbi, { vmid: 1 });
        assert.deepEqual(a.dcmo, rep(pre ? k : 1, M2));
        assert.deepEqual(leaf(t.vm, g + K4), { level: 2, perm: "rw", xn: true });
        assert.deepEqual(leaves(t.vm), [0, 0, 1, 0]);
      });
    }
  });

  describe(`${kernel} anonymous_thp (1 x 2M)`, () => {
    it("1 vCPU (real THP): 2M block, split in UPDATE, coalesce in ADJUST", () => {
      const t = makeTest(kernel, "anonymous_thp", M2, 1);
      const c = runStage(t, C);
      assert.deepEqual(c.hostFaults, { "thp-alloc": 1 });
      assert.deepEqual(c.dcmo, [M2]);
      assert.deepEqual(leaf(t.vm, t.slot.gpa), { level: 2, perm: "rw", xn: true });
      const u = runStage(t, U);
      assert.deepEqual(u.faults, { "permission-L2": 1, "translation-L3": 256 });
      assert.deepEqual(u.tlbi, { "ipa-L2": 1 });
      assert.deepEqual(u.dcmo, rep(pre ? 256 : 257, K4));
      const a = runStage(t, A);
      assert.deepEqual(a.faults, { "translation-L3": 1 });
      assert.deepEqual(a.tlbi, { vmid: 1 });
      assert.deepEqual(a.dcmo, [M2]);
      assert.deepEqual(leaves(t.vm), [0, 0, 1, 0]);
    });
    // Round-robin without time: the reader's fault also steps aside before it takes the PMD lock,
    // so the writer, which stepped aside first (to zero its THP), installs first.
    it("2 vCPUs round-robin: the writer's THP goes in first; the reader finds it (no huge zero page)", () => {
      const t = makeTest(kernel, "anonymous_thp", M2, 2);
      const c = runStage(t, C, "round-robin");
      assert.deepEqual(c.hostFaults, { "thp-alloc": 1 });
      assert.equal(c.maps, 2);
      assert.equal(c.eagain, 1);
      assert.deepEqual(c.dcmo, rep(pre ? 2 : 1, M2));
      assert.deepEqual(leaf(t.vm, t.slot.gpa), { level: 2, perm: "rw", xn: true });
    });
    {
      const order = "reader-first";
      it(`2 vCPUs ${order}: huge zero page path`, () => {
        const t = makeTest(kernel, "anonymous_thp", M2, 2);
        const g = t.slot.gpa;
        const k = 1;
        const c = runStage(t, C, order);
        assert.equal(c.hostFaults["huge-zero"], 1);
        assert.equal(c.hostFaults["thp-split"], 1);
        assert.equal(c.hostFaults["cow"], 1);
        // The PMD split invalidates 2M: stage-2 unmap of the RO block (TLBI IPA L2, 2M clean).
        assert.equal(c.tlbi["ipa-L2"], k);
        assert.equal(c.handler["unmap"], 2);
        assert.ok(c.retries >= 1);
        if (order === "reader-first") {
          // v5.12: 2M map, 2M unmap clean, 4K change_pte (unconditional), 4K map; v5.14 drops change_pte's.
          assert.deepEqual(c.dcmo, pre ? [M2, M2, K4, K4] : [M2, M2, K4]);
        }
        assert.deepEqual(leaf(t.vm, g), { level: 3, perm: "rw", xn: true });
        assert.deepEqual(leaves(t.vm), [0, 0, 0, 1]);
        const u = runStage(t, U, order);
        assert.deepEqual(u.faults, { "permission-L3": k, "translation-L3": 256 * k });
        assert.equal(u.relaxes, k);
        assert.deepEqual(u.tlbi, { "ipa-L3": k });
        assert.deepEqual(u.dcmo, rep(pre ? 256 * k : 256, K4));
        const a = runStage(t, A, order);
        assert.deepEqual(a.faults, { "translation-L3": 255 * k });
        assert.equal(a.eagain, 255 * (k - 1));
        assert.deepEqual(a.tlbi, {});
        assert.deepEqual(a.dcmo, rep(pre ? 255 * k : 255, K4));
        assert.deepEqual(leaves(t.vm), [0, 0, 0, 512]);
      });
    }
  });

  describe(`${kernel} anonymous_hugetlb_1gb (1 page, 1 vCPU)`, () => {
    it("1G block, L1 split in UPDATE, coalesce in ADJUST", () => {
      const t = makeTest(kernel, "anonymous_hugetlb_1gb", G1, 1);
      const g = t.slot.gpa;
      const c = runStage(t, C);
      assert.deepEqual(c.faults, { "translation-L1": 1 });
      assert.deepEqual(c.dcmo, [G1]);
      assert.deepEqual(leaves(t.vm), [0, 1, 0, 0]);
      const u = runStage(t, U);
      assert.deepEqual(u.faults, { "permission-L1": 1, "translation-L2": 256, "translation-L3": 256 * 511 });
      assert.equal(u.maps, 1 + 131072);
      assert.deepEqual(u.tlbi, { "ipa-L1": 1 });
      assert.equal(u.dcmo.length, pre ? 131072 : 131073);
      assert.equal(dBytes(u), (pre ? 131072 : 131073) * K4);
      assert.deepEqual(leaf(t.vm, g), { level: 3, perm: "rw", xn: true });
      assert.deepEqual(leaves(t.vm), [0, 0, 0, 131073]);
      const a = runStage(t, A);
      assert.deepEqual(a.faults, { "translation-L3": 1 });
      assert.deepEqual(a.tlbi, { vmid: 1 });
      assert.deepEqual(a.dcmo, [G1]);
      assert.deepEqual(leaves(t.vm), [0, 1, 0, 0]);
    });
  });
}

// kvm_vm_free at the selftest's end: each memslot deleted (its range unmapped under mmu_lock,
// leaf by leaf with a TLBI and, without FWB, a clean), then the notifier's release destroys what is
// left of the stage-2 tables and the vCPUs' memcaches go back: no table page stays allocated.
for (const kernel of KERNELS) {
  it(`${kernel}: kvm_vm_free unmaps each memslot, destroys the tables and frees every table page`, () => {
    const t = makeTest(kernel, "anonymous_hugetlb", 2 * M2, 2);
    runStage(t, C);
    runStage(t, U);
    assert.ok(t.vm.tableMem.allocated > 0);
    // What the unmap will clean: every leaf's whole granule (the Kunpeng 920 has no FWB).
    const mapped = leaves(t.vm).reduce((a, n, level) => a + n * [0, G1, M2, K4][level]!, 0);
    assert.ok(mapped > 0);
    const ops: string[] = [];
    let cleaned = 0;
    let tlbis = 0;
    const off = t.vm.events.subscribe(
      (e) => {
        if (e.kind === "op") ops.push(e.op);
        else if (e.kind === "cmo") cleaned += e.size;
        else if (e.kind === "tlbi") tlbis++;
      },
      ["op", "cmo", "tlbi"],
    );
    t.free();
    off();
    // One memslot (no memslot 0 here), inside one start-level chunk: one unmap, then the destroy.
    assert.deepEqual(ops, ["unmap", "destroy"]);
    assert.equal(cleaned, mapped);
    assert.ok(tlbis > 0);
    assert.equal(t.vm.memslots.slots.length, 0);
    assert.equal(t.vm.tableMem.allocated, 0);
    assert.ok(t.vm.vcpus.every((v) => v.memcache.count === 0));
  });
}
