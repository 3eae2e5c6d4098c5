/**
 * A write to the huge zero page splits the PMD through __split_huge_pmd: notifier start, then the
 * split under the PMD lock only if the PMD still maps the huge zero page, then notifier end. Two
 * writers that both saw the huge zero PMD both call the notifiers, and the split happens once.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { GRANULES } from "../../src/arch/index.js";
import { EventBus } from "../../src/common/events.js";
import {
  type Blocking,
  HeldLocks,
  type LockId,
  runToCompletion,
  SCHED,
  type Step,
} from "../../src/common/steps.js";
import { W, WorkMeter } from "../../src/common/work.js";
import { backingSource } from "../../src/host/backing.js";
import { HOST_EVENT_KINDS, type HostEvent } from "../../src/host/events.js";
import { HostPhys } from "../../src/host/host-phys.js";
import { HPTE_PRESENT, HPTE_WRITE, HPTE_ZERO, HostMm } from "../../src/host/mm.js";
import type { MmuNotifier } from "../../src/host/notifier.js";
import { finish } from "./helpers.js";

const G = GRANULES[4096];
const HVA = 2 ** 40;
const M2 = 2 ** 21;

/** A notifier whose range calls take `lock` (as KVM's take mmu_lock) and are counted. */
function lockingNotifier(lock: LockId, calls: string[]): MmuNotifier {
  const locked = (op: string) =>
    function* (): Blocking<void> {
      yield { kind: "lock", lock };
      calls.push(op);
      yield { kind: "unlock", lock };
    };
  return {
    invalidateRangeStart: locked("start"),
    invalidateRangeEnd: locked("end"),
    changePte: locked("change_pte"),
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

/** Runs `gen` until it yields a lock step for `lock`; returns that step. */
function runUntilLock(gen: Blocking<unknown>, lock: LockId): Step {
  for (let r = gen.next(); ; r = gen.next()) {
    if (r.done === true) assert.fail(`finished without taking ${lock.name}`);
    if (r.value.kind === "lock" && r.value.lock === lock) return r.value;
  }
}

test("two writers on a huge-zero PMD both call the notifiers; the PMD is split once and the first copy stays", () => {
  const events = new EventBus<HostEvent>(HOST_EVENT_KINDS);
  const meter = new WorkMeter();
  const mm = new HostMm(G, new HostPhys(G, 2 ** 26, M2), events, M2, meter);
  const vma = mm.mmap(HVA, 2 * M2, backingSource("anonymous_thp", G));
  const mmuLock: LockId = { name: "mmu_lock", kind: "spinlock", domain: "kvm" };
  const calls: string[] = [];
  mm.registerNotifier(lockingNotifier(mmuLock, calls));
  const results: string[] = [];
  events.subscribe((e) => results.push(e.result), ["host-fault"]);

  runToCompletion(mm.gup(HVA, false)); // a reader maps the huge zero page
  assert.deepEqual(results, ["huge-zero"]);

  // Both writers see the huge zero PMD and stop in their split's invalidate_range_start.
  const a = mm.gup(HVA, true);
  const b = mm.gup(HVA, true);
  runUntilLock(a, mmuLock);
  runUntilLock(b, mmuLock);
  assert.equal(meter.count[W["pmd-split"]], 0, "the split runs after invalidate_range_start");

  // The first writer splits and copies page 0; the second then finds PTEs and the copy.
  const ra = finish(a);
  assert.ok(ra !== null && ra.writable && ra.pa !== mm.phys.zeroPage);
  const rb = finish(b);
  assert.deepEqual(rb, ra, "the second writer gets the first writer's copy");
  assert.equal(meter.count[W["pmd-split"]], 1);
  assert.deepEqual(results, ["huge-zero", "thp-split", "cow"]);
  assert.equal(vma.flags[0], HPTE_PRESENT | HPTE_WRITE);
  assert.equal(vma.pa[0], ra.pa);
  assert.equal(vma.flags[1], HPTE_PRESENT | HPTE_ZERO);
  // Each writer's split called start and end; the copy added its own start, change_pte, end.
  assert.equal(calls.filter((c) => c === "start").length, 3);
  assert.equal(calls.filter((c) => c === "end").length, 3);
  assert.equal(calls.filter((c) => c === "change_pte").length, 1);
});

/** Runs `gen`, granting its locks in `held`, until it yields `stop` (not granted); fails if it ends first. */
function runUntil(gen: Blocking<unknown>, held: HeldLocks, stop: (s: Step) => boolean): Step {
  for (let r = gen.next(); ; r = gen.next()) {
    if (r.done === true) assert.fail("finished before the expected step");
    const s = r.value;
    if (stop(s)) return s;
    if (s.kind === "lock") held.grant(s.lock, 0);
    if (s.kind === "unlock") held.release(s.lock);
  }
}

test("the split holds the PMD lock across its work, and the region reads as none meanwhile: a reader faults and waits for that lock", () => {
  const held = new HeldLocks();
  const meter = new WorkMeter();
  const events = new EventBus<HostEvent>(HOST_EVENT_KINDS);
  const mm = new HostMm(G, new HostPhys(G, 2 ** 26, M2), events, M2, meter, held);
  const vma = mm.mmap(HVA, 2 * M2, backingSource("anonymous_thp", G));
  const pmdl = vma.pmdLock(HVA);
  assert.equal(pmdl, vma.pmdLock(HVA + M2), "one PMD page maps 1 GiB");
  runToCompletion(mm.gup(HVA, false)); // the huge zero page

  // The writer's split: after its invalidate start, it takes the PMD lock and stops at its work.
  const w = mm.gup(HVA, true);
  runUntil(w, held, (s) => s.kind === "lock" && s.lock === pmdl.lock);
  held.grant(pmdl.lock, 0);
  assert.equal(w.next().value, SCHED, "the split's work is a scheduling point under the PMD lock");
  assert.equal(meter.count[W["pmd-split"]], 1);

  // Meanwhile a reader finds no PMD: fast and no-fault GUP fail, and its fault waits for the lock.
  assert.equal(mm.gupFast(HVA + 4096, false), false);
  assert.equal(mm.gupNoFault(HVA + 4096, false), false);
  const r = mm.gup(HVA + 4096, false);
  assert.deepEqual(r.next().value, pmdl.take);

  // The split ends: the reader, once it holds the lock, installs nothing and GUP finds the PTE.
  runUntil(w, held, (s) => s.kind === "unlock" && s.lock === pmdl.lock);
  held.release(pmdl.lock);
  finish(w);
  const got = finish(r);
  assert.deepEqual(got, { pa: mm.phys.zeroPage, writable: false });
  assert.equal(vma.flags[1], HPTE_PRESENT | HPTE_ZERO);
});

test("huge-zero and THP installs take the PMD lock; a writer that loses the install drops its THP", () => {
  const events = new EventBus<HostEvent>(HOST_EVENT_KINDS);
  const meter = new WorkMeter();
  const mm = new HostMm(G, new HostPhys(G, 2 ** 26, M2), events, M2, meter);
  const vma = mm.mmap(HVA, 2 * M2, backingSource("anonymous_thp", G));
  const pmdl = vma.pmdLock(HVA);
  const results: string[] = [];
  events.subscribe((e) => results.push(e.result), ["host-fault"]);

  // A writer clears a THP, then waits for the PMD lock; a reader installs the huge zero page first.
  const w = mm.gup(HVA, true);
  assert.deepEqual(w.next().value, pmdl.take);
  assert.equal(meter.count[W["zero-byte"]], M2);
  const r = mm.gup(HVA + 4096, false);
  assert.deepEqual(r.next().value, pmdl.take);
  assert.deepEqual(r.next().value, pmdl.drop);
  assert.deepEqual(finish(r), { pa: mm.phys.hugeZeroPage + 4096, writable: false });
  // The writer gets the lock, finds the PMD populated, and drops its THP after the unlock.
  assert.deepEqual(w.next().value, pmdl.drop);
  finish(w);
  assert.deepEqual(results.slice(0, 3), ["huge-zero", "raced", "thp-split"]);
});

test("slow GUP of a huge PMD waits for the PMD lock, not the PTE page's", () => {
  const held = new HeldLocks();
  const mm = new HostMm(
    G,
    new HostPhys(G, 2 ** 26, M2),
    new EventBus<HostEvent>(HOST_EVENT_KINDS),
    M2,
    undefined,
    held,
  );
  const vma = mm.mmap(HVA, 2 * M2, backingSource("anonymous_thp", G));
  runToCompletion(mm.gup(HVA, false)); // the huge zero page
  held.grant(vma.ptl(HVA).lock, 1);
  assert.equal(mm.gupNoFault(HVA, false), true, "a held PTE lock is not in the way of a huge PMD");
  held.release(vma.ptl(HVA).lock);
  held.grant(vma.pmdLock(HVA).lock, 1);
  assert.equal(mm.gupNoFault(HVA, false), false);
  assert.deepEqual(mm.gupSlow(HVA, false).next().value, vma.pmdLock(HVA).take);
});
