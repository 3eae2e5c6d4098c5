import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SCHED, type Blocking, type LockId, type Step } from "../../src/common/steps.js";
import { NumberList } from "../../src/common/number-list.js";
import { W, WorkMeter } from "../../src/common/work.js";
import { Engine, type SimCode } from "../../src/sim/engine.js";
import { TaskHeap } from "../../src/sim/heap.js";

const costs = { lockAcquire: 10, lockHandoff: 100, hostLockHandoff: 40, mutexWakeup: 1000 };

/**
 * A CPU that works `before` ps, takes `lock`, notes `label` with the time its section starts,
 * runs `inside` and releases the lock.
 */
function* noteSection(
  e: Engine,
  meter: WorkMeter,
  lock: LockId,
  before: number,
  label: string,
  seen: Array<[string, number]>,
  inside = (): void => {},
): Blocking<void> {
  meter.charge(W["pgt-call"], before);
  yield { kind: "lock", lock };
  seen.push([label, e.timeNow()]);
  inside();
  yield { kind: "unlock", lock };
}

function meterWith(itemCost: number): WorkMeter {
  const m = new WorkMeter();
  m.cost[W["pgt-call"]] = itemCost;
  return m;
}

describe("sim engine", () => {
  it("heap pops by time, ties in arrival order", () => {
    const h = new TaskHeap(8);
    h.push(1, 50);
    h.push(2, 10);
    h.push(3, 50);
    h.push(4, 10);
    assert.deepEqual([h.pop(), h.pop(), h.pop(), h.pop()], [2, 4, 1, 3]);
  });

  it("charges segment work as virtual time and grants a spinlock in FIFO order with handoff", () => {
    const meter = meterWith(1);
    const lock: LockId = { name: "L", kind: "spinlock", domain: "kvm" };
    const order: Array<[number, number]> = [];
    const e = new Engine(meter, costs, 4);
    function* cpu(id: number, before: number, hold: number): Blocking<void> {
      meter.charge(W["pgt-call"], before);
      yield { kind: "lock", lock };
      order.push([id, e.timeNow()]);
      meter.charge(W["pgt-call"], hold);
      yield { kind: "unlock", lock };
    }
    e.spawn(cpu(0, 5, 1000), 0);
    e.spawn(cpu(1, 20, 1000), 0);
    e.spawn(cpu(2, 10, 1000), 0);
    const end = e.run();
    // CPU 0 asks first (t=5) and gets it after the acquire cost; 2 (t=10) then 1 (t=20) queue.
    assert.deepEqual(order, [
      [0, 15],
      [2, 15 + 1000 + 100],
      [1, 15 + 2 * (1000 + 100)],
    ]);
    assert.equal(end, 15 + 3 * 1000 + 2 * 100);
    const s = e.lockStats(lock);
    assert.equal(s.acquisitions, 3);
    assert.equal(s.contended, 2);
    // Waits: CPU 2 from 10 to 1015, CPU 1 from 20 to 2115 (handoffs excluded).
    assert.equal(s.waitPs, 1015 - 10 + 2115 - 20);
  });

  it("a lock handed over at no cost to a waiter numbered first runs its section before the releaser goes on", () => {
    const meter = meterWith(1);
    const lock: LockId = { name: "L", kind: "spinlock", domain: "kvm" };
    const e = new Engine(meter, { ...costs, lockAcquire: 0, lockHandoff: 0 }, 4);
    const seen: Array<[string, number]> = [];
    function* holder(): Blocking<void> {
      yield { kind: "lock", lock };
      meter.charge(W["pgt-call"], 100);
      yield { kind: "unlock", lock };
      seen.push(["releaser goes on", e.timeNow()]);
    }
    e.spawn(noteSection(e, meter, lock, 10, "waiter's section", seen), 0);
    e.spawn(holder(), 0);
    e.run();
    // Both at 100: the tie goes to the lower number, CPU 0.
    assert.deepEqual(seen, [
      ["waiter's section", 100],
      ["releaser goes on", 100],
    ]);
  });

  it("a section after a free lock runs at its time: what other CPUs do before it comes first", () => {
    const meter = meterWith(1);
    const lock: LockId = { name: "ptl", kind: "spinlock", domain: "host" };
    const e = new Engine(meter, costs, 4);
    let shared = "old";
    const seen: Array<[string, number]> = [];
    // Taken free at 100, after CPU 2 held it last: the section starts at 140 (host-lock-handoff).
    const taker = noteSection(e, meter, lock, 100, "section", seen, () => {
      shared = "new";
    });
    function* first(): Blocking<void> {
      yield { kind: "lock", lock };
      yield { kind: "unlock", lock };
    }
    function* reader(): Blocking<void> {
      meter.charge(W["pgt-call"], 120);
      yield SCHED;
      // At 120 the taker's section (from 140) has not run: the old value.
      seen.push([shared, e.timeNow()]);
    }
    e.spawn(taker, 0);
    e.spawn(reader(), 0);
    e.spawn(first(), 0);
    e.run();
    assert.deepEqual(seen, [
      ["old", 120],
      ["section", 140],
    ]);
  });

  it("a host spinlock is passed on, or taken free after another CPU, at host-lock-handoff; mmu_lock at lock-handoff", () => {
    const meter = meterWith(1);
    const host: LockId = { name: "ptl", kind: "spinlock", domain: "host" };
    const kvm: LockId = { name: "mmu_lock", kind: "spinlock", domain: "kvm" };
    const order: string[] = [];
    const e = new Engine(meter, costs, 5);
    function* cpu(id: number, before: number, lock: LockId): Blocking<void> {
      meter.charge(W["pgt-call"], before);
      yield { kind: "lock", lock };
      order.push(`${id}:${lock.name}@${e.timeNow()}`);
      meter.charge(W["pgt-call"], 1000);
      yield { kind: "unlock", lock };
    }
    e.spawn(cpu(0, 5, host), 0);
    e.spawn(cpu(1, 10, host), 0); // queues: handed over
    e.spawn(cpu(2, 5000, host), 0); // free, last held by CPU 1: taken at the host handoff cost
    e.spawn(cpu(3, 5, kvm), 0);
    e.spawn(cpu(4, 10, kvm), 0);
    e.run();
    assert.deepEqual(order.sort(), [
      "0:ptl@15",
      "1:ptl@1055",
      "2:ptl@5040",
      "3:mmu_lock@15",
      "4:mmu_lock@1115",
    ]);
    assert.equal(meter.count[W["host-lock-handoff"]], 2);
    assert.equal(meter.count[W["lock-handoff"]], 1);
    assert.equal(meter.count[W["lock-acquire"]], 2);
  });

  it("a mutex's sleeping waiter is woken at mutex-wakeup; taken free after another CPU it costs the line's move only", () => {
    const meter = meterWith(1);
    const page: LockId = { name: "page_lock", kind: "mutex", domain: "host" };
    const order: string[] = [];
    const e = new Engine(meter, costs, 3);
    function* cpu(id: number, before: number): Blocking<void> {
      meter.charge(W["pgt-call"], before);
      yield { kind: "lock", lock: page };
      order.push(`${id}@${e.timeNow()}`);
      meter.charge(W["pgt-call"], 1000);
      yield { kind: "unlock", lock: page };
    }
    e.spawn(cpu(0, 5), 0);
    e.spawn(cpu(1, 10), 0); // sleeps; woken at 0's release (1015) + 1000
    e.spawn(cpu(2, 5000), 0); // free, last held by CPU 1: host-lock-handoff, no wake-up
    e.run();
    assert.deepEqual(order, ["0@15", "1@2015", "2@5040"]);
    assert.equal(meter.count[W["mutex-wakeup"]], 1);
    assert.equal(meter.count[W["host-lock-handoff"]], 1);
    assert.equal(meter.count[W["lock-acquire"]], 1);
  });

  it("a transient lock's state is dropped when no one uses it; made again, it keeps its last holder", () => {
    const meter = meterWith(1);
    const family = { size: 4 };
    let current: LockId | null = null;
    let made = 0;
    // As the host's VMA does: one lock object while faults use it, a new one after.
    const take = (): LockId => {
      if (current === null) {
        current = {
          name: "page_lock",
          kind: "mutex",
          domain: "host",
          transient: { users: 0, family, slot: 2 },
        };
        made++;
      }
      current.transient!.users++;
      return current;
    };
    const order: string[] = [];
    const e = new Engine(meter, costs, 3);
    function* cpu(id: number, before: number): Blocking<void> {
      meter.charge(W["pgt-call"], before);
      yield SCHED; // the lock is looked up when the CPU gets here, not when it starts
      const lock = take();
      yield { kind: "lock", lock };
      order.push(`${id}@${e.timeNow()}`);
      meter.charge(W["pgt-call"], 1000);
      yield { kind: "unlock", lock };
      if (--lock.transient!.users === 0) current = null;
    }
    e.spawn(cpu(0, 5), 0);
    e.spawn(cpu(1, 10), 0); // sleeps on CPU 0's lock: the same object, woken at its release
    e.spawn(cpu(2, 5000), 0); // long after: a new object, free, its last holder CPU 1's
    e.run();
    assert.deepEqual(order, ["0@15", "1@2015", "2@5040"]);
    assert.equal(made, 2);
    assert.equal(meter.count[W["mutex-wakeup"]], 1);
    assert.equal(meter.count[W["host-lock-handoff"]], 1, "the remade lock remembers CPU 1 held it last");
    assert.equal(meter.count[W["lock-acquire"]], 1);
    // CPU 1's wait (from 10 to 1015) is still counted after its lock's state was dropped.
    assert.deepEqual(e.waitByKind(), { spinlock: 0, mutex: 1015 - 10 });
  });

  it("takeFree: a free lock taken and dropped outside the steps costs its handoff when another CPU held it last, and moves it", () => {
    const meter = meterWith(1);
    const host: LockId = { name: "ptl", kind: "spinlock", domain: "host" };
    const e = new Engine(meter, costs, 2);
    const items: number[] = [];
    function* cpu(before: number, takes: number): Blocking<void> {
      meter.charge(W["pgt-call"], before);
      yield SCHED;
      for (let k = 0; k < takes; k++) items.push(e.takeFree(host));
      yield { kind: "lock", lock: host };
      yield { kind: "unlock", lock: host };
    }
    e.spawn(cpu(5, 2), 0); // never held: free of charge, then its own
    e.spawn(cpu(1000, 1), 0); // last held by CPU 0: a handoff
    e.run();
    assert.deepEqual(items, [-1, -1, W["host-lock-handoff"]]);
    // CPU 0's step acquisition found itself last (lock-acquire); CPU 1's too, after its takeFree.
    assert.equal(meter.count[W["lock-acquire"]], 2);
    assert.equal(meter.count[W["host-lock-handoff"]], 0, "takeFree charges nothing itself");
  });

  it("periodicState lists the locks changed after `since`, and held or waited-for ones, by number; the rest are left out", () => {
    const meter = meterWith(1);
    const locks: LockId[] = [0, 1, 2].map((i) => ({ name: `ptl${i}`, kind: "spinlock", domain: "host" }));
    const e = new Engine(meter, costs, 2);
    const clocks: number[] = [];
    const states: number[][] = [];
    function* cpu(): Blocking<void> {
      for (const lock of locks) {
        yield { kind: "lock", lock };
        yield { kind: "unlock", lock };
        clocks.push(e.lockTime);
      }
      const out = new NumberList();
      e.periodicState(out, 0, e.timeNow(), () => 0, clocks[0]!, clocks[0]!);
      states.push(Array.from({ length: out.length }, (_, i) => out.get(i)));
    }
    e.spawn(cpu(), 0);
    e.run();
    // One task (5 numbers), then locks 1 and 2 (changed after the first lock's release), each as
    // its number, owner, last holder, hold start and queue length; then three more numbers.
    const s = states[0]!;
    assert.equal(s.length, 5 + 2 * 5 + 3);
    assert.deepEqual(s.slice(5, 15), [1, -1, 0, 0, 0, 2, -1, 0, 0, 0]);
  });

  it("periodCounters lists only the locks a period changed, in first-use order; fastForward counts skipped periods as seen", () => {
    const meter = meterWith(1);
    const a: LockId = { name: "A", kind: "spinlock", domain: "kvm" };
    const b: LockId = { name: "B", kind: "spinlock", domain: "kvm" };
    const c: LockId = { name: "C", kind: "spinlock", domain: "kvm" };
    const e = new Engine(meter, costs, 4);
    const periods: number[][] = [];
    const period = (): void => {
      const out = new NumberList();
      e.periodCounters(out);
      periods.push(out.toArray());
    };
    function* cpu(): Blocking<void> {
      // Locks first used in the order A, B, C; period 2 takes C then A.
      for (const l of [a, b, c]) {
        yield { kind: "lock", lock: l };
        meter.charge(W["pgt-call"], 7);
        yield { kind: "unlock", lock: l };
      }
      period();
      yield { kind: "lock", lock: c };
      meter.charge(W["pgt-call"], 3);
      yield { kind: "unlock", lock: c };
      yield { kind: "lock", lock: a };
      yield { kind: "unlock", lock: a };
      period();
      period();
    }
    e.spawn(cpu(), 0);
    e.run();
    // [steps, m, then per lock: index, acquisitions, contended, wait, hold].
    assert.deepEqual(periods[0], [6, 3, 0, 1, 0, 0, 7, 1, 1, 0, 0, 7, 2, 1, 0, 0, 7]);
    // A's hold of no time changes nothing but its acquisitions; listed in index order.
    assert.deepEqual(periods[1], [4, 2, 0, 1, 0, 0, 0, 2, 1, 0, 0, 3]);
    assert.deepEqual(periods[2], [0, 0]);
    const delta = new NumberList();
    for (const x of periods[1]!) delta.push(x);
    e.fastForward(0, 5, [delta]);
    assert.equal(e.lockStats(c).acquisitions, 2 + 5);
    assert.equal(e.lockStats(c).holdPs, 7 + 3 + 5 * 3);
    // A cycle of periods (here twice the same one) adds each of them `times` times.
    e.fastForward(0, 2, [delta, delta]);
    assert.equal(e.lockStats(c).acquisitions, 2 + 5 + 4);
    assert.equal(e.lockStats(c).holdPs, 7 + 3 + 5 * 3 + 4 * 3);
    const after = new NumberList();
    e.periodCounters(after);
    assert.deepEqual(after.toArray(), [0, 0]);
  });

  it("runs ahead past the store lock's queued critical sections only while they change nothing", () => {
    // A code that charges 5 ps (plus `work` on its second segment) per segment and yields `steps`.
    class Scripted implements SimCode {
      private i = 0;
      constructor(
        private readonly meter: WorkMeter,
        private readonly steps: readonly Step[],
        private readonly nothing: boolean,
        private readonly work = 0,
      ) {}
      resume(): Step | null {
        this.meter.charge(W["pgt-call"], this.i === 1 ? 5 + this.work : 5);
        return this.steps[this.i++] ?? null;
      }
      quietFor(): number {
        return 0;
      }
      hostQuietFor(): number {
        return 0;
      }
      changesNothingBeforeUnlock(): boolean {
        return this.nothing;
      }
    }
    const bounds = (owner: boolean, first: boolean, second: boolean): boolean[] => {
      const meter = meterWith(1);
      const lock: LockId = { name: "mmu_lock", kind: "spinlock", domain: "kvm" };
      const e = new Engine(meter, costs, 4);
      e.storeLock = lock;
      const lockStep: Step = { kind: "lock", lock };
      const unlock: Step = { kind: "unlock", lock };
      // The owner asks at 5, gets it at 15 (acquire), parks holding it until 520; two CPUs queue.
      e.spawn(new Scripted(meter, [lockStep, SCHED, unlock], owner, 500), 0);
      e.spawn(new Scripted(meter, [lockStep, unlock], first), 1);
      e.spawn(new Scripted(meter, [lockStep, unlock], second), 2);
      const seen: boolean[] = [];
      e.spawn(
        (function* (): Blocking<void> {
          for (const t of [519, 520, 619, 620, 719, 720]) seen.push(e.mayRunAheadAt(t));
          yield SCHED;
        })(),
        100,
      );
      e.run();
      return seen;
    };
    // The owner's section starts at 520, the waiters' no sooner than 620 and 720.
    assert.deepEqual(bounds(false, true, true), [true, false, false, false, false, false]);
    assert.deepEqual(bounds(true, false, true), [true, true, true, false, false, false]);
    assert.deepEqual(bounds(true, true, false), [true, true, true, true, true, false]);
    assert.deepEqual(bounds(true, true, true), [true, true, true, true, true, false]);
  });

  it("is deterministic and reports a lock held at the end", () => {
    const meter = meterWith(1);
    const lock: LockId = { name: "L", kind: "mutex", domain: "kvm" };
    const e = new Engine(meter, costs, 2);
    e.spawn(
      (function* (): Blocking<void> {
        yield { kind: "lock", lock };
      })(),
      0,
    );
    assert.throws(() => e.run(), /held/);
  });
});
