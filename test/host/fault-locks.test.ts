/**
 * The page-table locks of host faults that find the entry already there: handle_pte_fault and
 * huge_pmd_set_accessed take the PTE or PMD lock to look again even when there is nothing to
 * change, and hugetlb faults and follow_hugetlb_page take huge_pte_lock (the PMD page's split lock
 * for PMD-sized pages, else the mm's page_table_lock).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { GRANULES } from "../../src/arch/index.js";
import { EventBus } from "../../src/common/events.js";
import { type Blocking, LOCK_HELD, type LockId, runToCompletion, type Step } from "../../src/common/steps.js";
import { W, WorkMeter } from "../../src/common/work.js";
import { backingSource } from "../../src/host/backing.js";
import { HOST_EVENT_KINDS, type HostEvent } from "../../src/host/events.js";
import { HostPhys } from "../../src/host/host-phys.js";
import { HostMm, type Vma } from "../../src/host/mm.js";

const G = GRANULES[4096];
const HVA = 2 ** 40;
const M2 = 2 ** 21;
const G1 = 2 ** 30;

/** The steps `gen` yields until it finishes, as "lock:name", "unlock:name" or "sched". */
function steps(gen: Blocking<unknown>): string[] {
  const out: string[] = [];
  for (let r = gen.next(); r.done !== true; r = gen.next()) out.push(name(r.value));
  return out;
}

function name(s: Step): string {
  return s.kind === "lock" || s.kind === "unlock" ? `${s.kind}:${s.lock.name}` : s.kind;
}

function host(
  src: string,
  size: number,
  held: (lock: LockId) => boolean = () => false,
): { mm: HostMm; vma: Vma; meter: WorkMeter } {
  const meter = new WorkMeter();
  const phys = new HostPhys(G, 2 ** 32, M2);
  const locks = { takeFree: (lock: LockId) => (held(lock) ? LOCK_HELD : -1) };
  const mm = new HostMm(G, phys, new EventBus<HostEvent>(HOST_EVENT_KINDS), M2, meter, locks);
  const vma = mm.mmap(HVA, size, backingSource(src, G));
  return { mm, vma, meter };
}

test("a fault on an anonymous PTE that already allows the access takes and drops the PTE lock", () => {
  const { mm, vma } = host("anonymous", M2);
  runToCompletion(mm.gup(HVA, true)); // a write: present and writable
  const ptl = vma.ptl(HVA).lock.name;
  assert.deepEqual(steps(mm.handleMmFault(vma, HVA, true)), [`lock:${ptl}`, `unlock:${ptl}`]);
  assert.deepEqual(steps(mm.handleMmFault(vma, HVA, false)), [`lock:${ptl}`, `unlock:${ptl}`]);
});

test("a read fault on a huge zero PMD (huge_pmd_set_accessed) takes and drops the PMD lock", () => {
  const { mm, vma } = host("anonymous_thp", M2);
  runToCompletion(mm.gup(HVA, false)); // maps the huge zero page
  const pmdl = vma.pmdLock(HVA).lock.name;
  assert.deepEqual(steps(mm.handleMmFault(vma, HVA, false)), [`lock:${pmdl}`, `unlock:${pmdl}`]);
});

test("1 GiB hugetlb faults install and reuse under the mm's page_table_lock, inside the fault mutex", () => {
  const { mm, vma, meter } = host("anonymous_hugetlb_1gb", G1);
  const mutex = vma.hugetlbMutex(HVA).name;
  assert.deepEqual(steps(mm.handleMmFault(vma, HVA, false)), [
    `lock:${mutex}`,
    "sched", // allocation and clearing of the page
    "lock:page_table_lock",
    "unlock:page_table_lock",
    `unlock:${mutex}`,
  ]);
  const tlbis = meter.count[W["host-tlbi"]]!;
  assert.deepEqual(steps(mm.handleMmFault(vma, HVA, true)), [
    `lock:${mutex}`,
    "lock:page_table_lock",
    "unlock:page_table_lock",
    `unlock:${mutex}`,
  ]);
  assert.equal(meter.count[W["host-tlbi"]], tlbis + 1, "the reuse flushes the host's stale read-only entry");
  assert.equal(mm.gupNoFault(HVA, true), true);
});

test("follow_hugetlb_page reads under huge_pte_lock: the PMD page's lock for 2 MiB pages, page_table_lock for 1 GiB", () => {
  let busy = "";
  const held = (lock: LockId) => lock.name === busy;
  const m2 = host("anonymous_hugetlb_2mb", 2 * M2, held);
  runToCompletion(m2.mm.gup(HVA, false)); // read-only
  const pmdl = m2.vma.pmdLock(HVA).lock.name;
  assert.equal(pmdl, `pmd_lock[0x${HVA.toString(16)}]`);
  busy = pmdl;
  assert.equal(m2.mm.gupNoFault(HVA, false), false, "the PMD lock is held: slow GUP must wait");
  assert.deepEqual(steps(m2.mm.gupSlow(HVA, false)), [`lock:${pmdl}`, `unlock:${pmdl}`]);

  const g1 = host("anonymous_hugetlb_1gb", G1, held);
  runToCompletion(g1.mm.gup(HVA, false));
  busy = "page_table_lock";
  assert.equal(g1.mm.gupNoFault(HVA, false), false);
  busy = "";
  assert.equal(g1.mm.gupNoFault(HVA, false), true);
});
