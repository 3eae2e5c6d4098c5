/**
 * The selftest's guest loop per stage (spec 9.2, kvm_page_table_test.c guest_code): which offsets
 * of the test region each vCPU touches, and whether it writes.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { guestTables } from "../../src/workloads/guest-layout.js";
import { PageTableTest, type TestStage, testLayout } from "../../src/workloads/page-table-test.js";

const K4 = 4096;
const M2 = 2 ** 21;

/** The accesses of `stage` for vCPU `id`, as [offset, "w" | "r"]. */
function accesses(backing: string, bytes: number, stage: TestStage, id = 0): Array<[number, string]> {
  const t = new PageTableTest({ kernel: "v5.14", backing, memBytes: bytes, vcpus: 2 });
  const c = t.cursor(t.vm.vcpus[id]!, stage);
  const out: Array<[number, string]> = [];
  while (c.next()) out.push([c.ipa - t.slot.gpa, c.write ? "w" : "r"]);
  return out;
}

test("CREATE: the first bytes of each large page; even vCPUs write, odd ones read", () => {
  assert.deepEqual(accesses("anonymous_thp", 2 * M2, "KVM_CREATE_MAPPINGS", 0), [
    [0, "w"],
    [M2, "w"],
  ]);
  assert.deepEqual(accesses("anonymous", 2 * K4, "KVM_CREATE_MAPPINGS", 1), [
    [0, "r"],
    [K4, "r"],
  ]);
});

test("UPDATE, anonymous: every host page is written", () => {
  assert.deepEqual(accesses("anonymous", 3 * K4, "KVM_UPDATE_MAPPINGS", 1), [
    [0, "w"],
    [K4, "w"],
    [2 * K4, "w"],
  ]);
});

test("UPDATE, large pages: write the first host page, then read the upper half", () => {
  const a = accesses("anonymous_thp", 2 * M2, "KVM_UPDATE_MAPPINGS");
  assert.equal(a.length, 2 * 257);
  assert.deepEqual(a.slice(0, 3), [
    [0, "w"],
    [M2 / 2, "r"],
    [M2 / 2 + K4, "r"],
  ]);
  assert.deepEqual(a[256], [M2 - K4, "r"]);
  assert.deepEqual(a[257], [M2, "w"]);
});

test("UPDATE, shmem (L = P but not VM_MEM_SRC_ANONYMOUS): the large-page loop, a write every P/2", () => {
  assert.deepEqual(accesses("shmem", 4 * K4, "KVM_UPDATE_MAPPINGS"), [
    [0, "w"],
    [K4 / 2, "w"],
    [K4, "w"],
    [K4 + K4 / 2, "w"],
  ]);
});

test("ADJUST: every host page is read", () => {
  assert.deepEqual(accesses("shmem", 2 * K4, "KVM_ADJUST_MAPPINGS", 0), [
    [0, "r"],
    [K4, "r"],
  ]);
});

test("-p 0 is the default test GPA (the selftest takes 0 as not given); another -p is aligned down", () => {
  const layout = (gpa?: number): number =>
    testLayout({
      kernel: "v5.14",
      backing: "anonymous_thp",
      memBytes: 4 * M2,
      vcpus: 1,
      ...(gpa !== undefined ? { gpa } : {}),
    }).gpa;
  assert.equal(layout(0), layout());
  assert.equal(layout(), 2 ** 40 - 4 * M2 - M2);
  assert.equal(layout(2 ** 35 + K4), 2 ** 35);
});

test("KVM_BEFORE_MAPPINGS (untimed, before CREATE): every memcache topped up, memslot 0's first 2 MiB mapped at stage 2", () => {
  for (const vcpus of [1, 4, 400]) {
    const t = new PageTableTest({
      kernel: "v5.14",
      backing: "anonymous",
      memBytes: 4 * M2,
      vcpus,
      guestTables: true,
    });
    assert.ok(t.vm.vcpus.every((v) => v.memcache.count === 0));
    t.prepareStage("KVM_CREATE_MAPPINGS");
    // vCPU 0 took the tables of memslot 0's first 2 MiB from its memcache; the rest hold all 40,
    // but for a vCPU whose stack is the first in a 2 MiB further on (400 vCPUs: 76 five-page
    // stacks fit below the page tables at 0x180000, the others follow the first 16 tables).
    const counts = t.vm.vcpus.map((v) => v.memcache.count);
    assert.ok(counts[0]! < 40 && counts[0]! >= 38);
    const tookTables = counts.slice(1).filter((c) => c !== 40).length;
    assert.equal(tookTables, vcpus === 400 ? Math.ceil((0x190000 + 324 * 0x5000) / M2) - 1 : 0);
    // The region's first guest page-table page (GPA 0x190000, after the overflowing stacks) is in
    // a stage-2 last-level table that exists, so its S1PTW fault in CREATE is at level 3.
    const walked = new Float64Array(2);
    t.s1Tables(0, walked);
    assert.equal(walked[0], 0x190000 + (vcpus === 400 ? 324 * 0x5000 : 0));
    assert.equal(t.vm.pgt.lookup(walked[0]!).level, 3);
  }
});

// The guest's tables against a model of what virt_map does (48-bit VA, the region at GVA
// 0xc0000000): it maps the region page by page, allocating each table it finds missing, top down,
// from the next free page-table page; the walk of an offset reads the tables on its way down that
// the code's walks did not (the region shares the code's upper tables: the level-1 table with 4K
// pages, the level-2 table and its first 4 KiB with 64K). A stage-2 translation is of the 4 KiB
// holding the descriptor read. Every page read was allocated, and the pages read stay the same
// over each span.
test("the guest's table pages each region offset's walk reads, for 4K and 64K guest pages", () => {
  const base = 0x190000;
  const GVA = 0xc0000000;
  /** virt_map over `size` bytes: the tables it allocates, by the VA bits that index them. */
  const virtMap = (page: number, size: number): Map<string, number> => {
    const tables = new Map<string, number>();
    let next = base;
    const need = (key: string): void => {
      if (!tables.has(key)) {
        tables.set(key, next);
        next += page;
      }
    };
    // Tables are only made at the first page of their span: step by the smallest span.
    const step = page === 4096 ? 2 ** 21 : 2 ** 29;
    for (let off = 0; off < size; off += step) {
      const va = GVA + off;
      if (page === 4096) {
        need(`l2:${Math.floor(va / 2 ** 30)}`); // the level-1 entry's table
        need(`l3:${Math.floor(va / 2 ** 21)}`); // the level-2 entry's table
      } else need(`l3:${Math.floor(va / 2 ** 29)}`);
    }
    return tables;
  };
  const reference = (page: number, tables: Map<string, number>, off: number): number[] => {
    const va = GVA + off;
    if (page === 4096)
      return [tables.get(`l2:${Math.floor(va / 2 ** 30)}`)!, tables.get(`l3:${Math.floor(va / 2 ** 21)}`)!];
    const l3 = tables.get(`l3:${Math.floor(va / 2 ** 29)}`)!;
    const descriptor = (Math.floor(va / 65536) % 8192) * 8;
    return [l3 + Math.floor(descriptor / 4096) * 4096];
  };
  fc.assert(
    fc.property(
      fc.constantFrom(4096, 65536),
      fc.integer({ min: 1, max: 4096 }),
      fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
      (page, mib, at) => {
        const t = guestTables(page);
        const size = Math.ceil((mib * 2 ** 20) / page) * page;
        const tables = virtMap(page, size);
        assert.equal(t.pages(size), tables.size);
        const off = Math.floor((at * size) / 4096) * 4096;
        const out = new Float64Array(2);
        const n = t.walked(base, off, out);
        assert.deepEqual([...out.subarray(0, n)], reference(page, tables, off));
        for (const ipa of out.subarray(0, n)) assert.ok(ipa >= base && ipa < base + t.pages(size) * page);
        const start = new Float64Array(2);
        t.walked(base, Math.floor(off / t.span) * t.span, start);
        assert.deepEqual(start, out);
      },
    ),
    { numRuns: 300, seed: 20261207 },
  );
});
