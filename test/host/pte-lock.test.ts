/**
 * The host PTE page's lock (pte_offset_map_lock): a zero-page copy-on-write clears the PTE and
 * holds the lock across change_pte (set_pte_at_notify tells the notifiers before the store), and
 * slow GUP waits for the lock when another CPU holds it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { GRANULES } from "../../src/arch/index.js";
import { EventBus } from "../../src/common/events.js";
import {
  type Blocking,
  HeldLocks,
  LOCK_HELD,
  type LockId,
  type LockView,
  runToCompletion,
  type Step,
} from "../../src/common/steps.js";
import { W, WorkMeter } from "../../src/common/work.js";
import { backingSource } from "../../src/host/backing.js";
import { HOST_EVENT_KINDS, type HostEvent } from "../../src/host/events.js";
import { HostPhys } from "../../src/host/host-phys.js";
import { HPTE_PRESENT, HPTE_WRITE, HostMm } from "../../src/host/mm.js";
import type { MmuNotifier } from "../../src/host/notifier.js";

const G = GRANULES[4096];
const HVA = 2 ** 40;
const K4 = 4096;

function host(locks?: LockView, events = new EventBus<HostEvent>(HOST_EVENT_KINDS)): HostMm {
  const phys = new HostPhys(G, 2 ** 24, 2 ** 21);
  const mm = new HostMm(G, phys, events, 2 ** 21, undefined, locks);
  mm.mmap(HVA, 2 ** 21, backingSource("anonymous", G));
  return mm;
}

/** A notifier that notes the host PTE of `hva` when change_pte is called, and takes no lock. */
function recorder(mm: HostMm, hva: number, seen: number[]): MmuNotifier {
  const none = function* (): Blocking<void> {};
  return {
    invalidateRangeStart: none,
    invalidateRangeEnd: none,
    // eslint-disable-next-line require-yield
    *changePte() {
      const vma = mm.findVma(hva)!;
      seen.push(vma.flags[vma.index(hva)]!);
    },
    // eslint-disable-next-line require-yield
    *clearFlushYoung() {
      return false;
    },
    // eslint-disable-next-line require-yield
    *clearYoung() {
      return false;
    },
    // eslint-disable-next-line require-yield
    *testYoung() {
      return false;
    },
    *release() {},
  };
}

/** The steps `gen` yields until it finishes. */
function steps(gen: Blocking<unknown>): Step[] {
  const out: Step[] = [];
  for (let r = gen.next(); r.done !== true; r = gen.next()) out.push(r.value);
  return out;
}

test("a zero-page copy clears the PTE, tells change_pte, then stores the new PTE, all under the PTE lock", () => {
  const mm = host();
  const seen: number[] = [];
  mm.registerNotifier(recorder(mm, HVA, seen));
  runToCompletion(mm.gup(HVA, false)); // a read maps the zero page
  const s = steps(mm.gup(HVA, true));
  assert.deepEqual(seen, [0], "change_pte saw no PTE: the old one was cleared, the new one not yet stored");
  const vma = mm.findVma(HVA)!;
  assert.equal(vma.flags[vma.index(HVA)], HPTE_PRESENT | HPTE_WRITE);
  // Lock, check and unlock (do_wp_page); zeroing; lock, copy with change_pte, unlock (wp_page_copy).
  const ptl = vma.ptl(HVA).lock;
  const kinds = s.map((x) =>
    x.kind === "sched" ? "sched" : `${x.kind}:${x.lock === ptl ? "ptl" : x.lock.name}`,
  );
  assert.deepEqual(kinds, ["lock:ptl", "unlock:ptl", "sched", "lock:ptl", "unlock:ptl"]);
});

test("slow GUP waits for a PTE lock another CPU holds, and only then", () => {
  let busy = false;
  const mm = host({ takeFree: () => (busy ? LOCK_HELD : -1) });
  runToCompletion(mm.gup(HVA + K4, false)); // zero page: present, read-only
  assert.equal(mm.gupNoFault(HVA + K4, false), true);
  assert.deepEqual(steps(mm.gup(HVA + K4, false)), []);
  busy = true;
  assert.equal(mm.gupNoFault(HVA + K4, false), false);
  const ptl = mm.findVma(HVA)!.ptl(HVA + K4).lock;
  assert.deepEqual(steps(mm.gupSlow(HVA + K4, false)), [
    { kind: "lock", lock: ptl },
    { kind: "unlock", lock: ptl },
  ]);
});

test("PTE-page locks cover naturally aligned 2 MiB ranges, whatever the VMA's start", () => {
  const phys = new HostPhys(G, 2 ** 24, 2 ** 21);
  const mm = new HostMm(G, phys, new EventBus<HostEvent>(HOST_EVENT_KINDS), 2 ** 21);
  const start = HVA + 2 ** 21 - 2 * K4; // two pages below a 2 MiB boundary
  const vma = mm.mmap(start, 4 * K4, backingSource("anonymous", G));
  assert.equal(vma.ptl(start), vma.ptl(start + K4));
  assert.notEqual(vma.ptl(start + K4), vma.ptl(start + 2 * K4));
  assert.equal(vma.ptl(start + 2 * K4).lock.name, `ptl[0x${(HVA + 2 ** 21).toString(16)}]`);
});

test("with HeldLocks, a GUP during another task's copy waits for the PTE lock and allocates nothing", () => {
  const held = new HeldLocks();
  const events = new EventBus<HostEvent>(HOST_EVENT_KINDS);
  const mm = host(held, events);
  const mmuLock: LockId = { name: "mmu_lock", kind: "spinlock", domain: "kvm" };
  const seen: number[] = [];
  const n = recorder(mm, HVA, seen);
  mm.registerNotifier({
    ...n,
    *changePte(hva, pa) {
      yield { kind: "lock", lock: mmuLock };
      yield* n.changePte(hva, pa);
      yield { kind: "unlock", lock: mmuLock };
    },
  });
  runToCompletion(mm.gup(HVA, false)); // the zero page
  const allocs: number[] = [];
  events.subscribe((e) => allocs.push(e.pa), ["host-alloc"]);
  // Task A copies: run it, granting locks, until it waits for mmu_lock inside change_pte.
  const a = mm.gup(HVA, true);
  for (let r = a.next(); ; r = a.next()) {
    if (r.done === true) assert.fail("the copy ended without waiting for mmu_lock");
    if (r.value.kind === "lock" && r.value.lock === mmuLock) break;
    if (r.value.kind === "lock") held.grant(r.value.lock, 0);
    if (r.value.kind === "unlock") held.release(r.value.lock);
  }
  assert.equal(allocs.length, 1);
  // Task B writes the same page now: fast GUP finds no PTE, slow GUP must wait for the PTE lock.
  assert.equal(mm.gupNoFault(HVA, true), false);
  const b = mm.gup(HVA, true).next();
  assert.deepEqual(b.value, mm.findVma(HVA)!.ptl(HVA).take);
  assert.equal(allocs.length, 1);
});

test("follow_page of a free PTE lock costs what the lock view says (a handoff when another CPU held it last)", () => {
  const meter = new WorkMeter();
  const asked: LockId[] = [];
  const locks: LockView = {
    takeFree: (lock) => {
      asked.push(lock);
      return W["host-lock-handoff"];
    },
  };
  const mm = new HostMm(
    G,
    new HostPhys(G, 2 ** 24, 2 ** 21),
    new EventBus<HostEvent>(HOST_EVENT_KINDS),
    2 ** 21,
    meter,
    locks,
  );
  mm.mmap(HVA, 2 ** 21, backingSource("anonymous", G));
  runToCompletion(mm.gup(HVA, false)); // slow GUP: follow_page (none), the fault, follow_page again
  const ptl = mm.findVma(HVA)!.ptl(HVA).lock;
  assert.deepEqual(asked, [ptl, ptl]);
  assert.equal(meter.count[W["host-lock-handoff"]], 2);
  assert.equal(
    mm.gupNoFault(HVA, false),
    true,
    "the zero page, read-only: fast GUP fails, follow_page finds it",
  );
  assert.equal(meter.count[W["host-lock-handoff"]], 3);
  assert.equal(mm.gupFast(HVA, true), false);
  assert.equal(meter.count[W["host-lock-handoff"]], 3, "fast GUP takes no lock");
});
