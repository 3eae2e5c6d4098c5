/**
 * The discrete-event engine: CPUs run modelled code (generators yielding lock / unlock / sched
 * steps) in integer virtual time. Code between two steps runs atomically; its duration is the
 * work it charged to the shared {@link WorkMeter} while it ran. Steps are handled in global time
 * order (ties by arrival), so locks are granted in the order CPUs really reached them. Spinlocks
 * hand over in FIFO order (a queued spinlock); mutex waiters sleep and are woken.
 */
import type { Blocking, LockId, Step } from "../common/steps.js";
import { W, type WorkMeter } from "../common/work.js";
import { TaskHeap } from "./heap.js";

/** Engine costs that are not work of the modelled code (picoseconds). */
export interface EngineCosts {
  /** Taking a free lock. */
  readonly lockAcquire: number;
  /** From a spinlock's release to its next waiter running with it. */
  readonly lockHandoff: number;
  /** From a mutex's release to its next waiter running with it (a wake-up). */
  readonly mutexWakeup: number;
}

/** Lock statistics over a run (picoseconds). */
export interface LockStats {
  acquisitions: number;
  contended: number;
  waitPs: number;
  holdPs: number;
}

interface LockState {
  owner: number;
  since: number;
  readonly waiters: number[];
  readonly stats: LockStats;
}

const NONE = -1;

/**
 * Code a simulated CPU runs: each call runs it up to its next step (returned) or to its end
 * (null). A generator is one; the simulator's vCPUs are hand-written state machines.
 */
export interface SimCode {
  resume(): Step | null;
}

/** Runs a generator as {@link SimCode}. */
export class GeneratorCode implements SimCode {
  constructor(private readonly gen: Blocking<void>) {}

  resume(): Step | null {
    const r = this.gen.next();
    return r.done === true ? null : r.value;
  }
}

/** One CPU's code and where it stands. */
class Task {
  /** The step the code yielded and the engine has yet to handle, or null to resume the code. */
  pending: Step | null = null;
  /** When the task started waiting for a lock. */
  waitSince = 0;
  finished = false;
  finishedAt = 0;
  constructor(readonly code: SimCode) {}
}

/** Runs CPUs in virtual time. */
export class Engine {
  /** The current virtual time (ps). */
  now = 0;
  /** The task whose code is running, or -1. */
  current = NONE;
  /** Engine time when the running segment started, and the meter's total then. */
  private segStart = 0;
  private segAcc = 0;
  private readonly heap: TaskHeap;
  private readonly tasks: Task[] = [];
  private readonly locks = new Map<LockId, LockState>();
  /** Steps handled (a measure of simulation work). */
  steps = 0;

  constructor(
    private readonly meter: WorkMeter,
    private readonly costs: EngineCosts,
    capacity: number,
  ) {
    this.heap = new TaskHeap(capacity);
  }

  /** Virtual time of the running code at this point of its segment. */
  timeNow(): number {
    return this.segStart + (this.meter.acc - this.segAcc);
  }

  /**
   * Whether the running code is still the earliest thing in the simulation, so it may read state
   * other CPUs write; when false it must yield (sched) first.
   */
  inSync(): boolean {
    const t = this.timeNow();
    return this.heap.size === 0 || t < this.heap.peekTime();
  }

  /** Adds a CPU whose code starts at `at`; returns its task index. */
  spawn(code: SimCode | Blocking<void>, at: number): number {
    const id = this.tasks.length;
    this.tasks.push(new Task("resume" in code ? code : new GeneratorCode(code)));
    this.heap.push(id, at);
    return id;
  }

  /** Finish time of task `id`. */
  finishedAt(id: number): number {
    return this.tasks[id]!.finishedAt;
  }

  /** Statistics of one lock (zeros if never taken). */
  lockStats(lock: LockId): LockStats {
    return this.lockState(lock).stats;
  }

  /** Runs until every task has finished; returns the time the last one finished. */
  run(): number {
    const heap = this.heap;
    let last = this.now;
    while (heap.size > 0) {
      const t = heap.peekTime();
      const id = heap.pop();
      this.now = t;
      const end = this.advance(id);
      if (end > last) last = end;
    }
    for (const [lock, s] of this.locks) {
      if (s.owner !== NONE) throw new Error(`simulation ended with ${lock.name} held`);
    }
    return last;
  }

  /**
   * Runs task `id` from `this.now` for as long as it stays the earliest: handles its pending step,
   * resumes its code, and either continues or parks it in the heap or a lock queue.
   */
  private advance(id: number): number {
    const task = this.tasks[id]!;
    const heap = this.heap;
    const meter = this.meter;
    for (;;) {
      const step = task.pending;
      if (step !== null) {
        task.pending = null;
        this.steps++;
        if (step.kind === "lock") {
          if (!this.acquire(id, task, step.lock)) return this.now;
        } else if (step.kind === "unlock") {
          this.release(id, step.lock);
        }
      }
      // Resume the code for one segment.
      this.current = id;
      this.segStart = this.now;
      this.segAcc = meter.acc;
      const next = task.code.resume();
      const end = this.segStart + (meter.acc - this.segAcc);
      this.current = NONE;
      if (next === null) {
        task.finished = true;
        task.finishedAt = end;
        this.now = end;
        return end;
      }
      task.pending = next;
      if (heap.size > 0 && end >= heap.peekTime()) {
        heap.push(id, end);
        return end;
      }
      this.now = end;
    }
  }

  private lockState(lock: LockId): LockState {
    let s = this.locks.get(lock);
    if (s === undefined) {
      s = {
        owner: NONE,
        since: 0,
        waiters: [],
        stats: { acquisitions: 0, contended: 0, waitPs: 0, holdPs: 0 },
      };
      this.locks.set(lock, s);
    }
    return s;
  }

  /** Takes `lock` for task `id` now, or queues it; returns whether it holds the lock. */
  private acquire(id: number, task: Task, lock: LockId): boolean {
    const s = this.lockState(lock);
    if (s.owner === id) throw new Error(`deadlock: ${lock.name} taken twice by CPU ${id}`);
    if (s.owner === NONE) {
      const c = this.costs.lockAcquire;
      this.meter.count[W["lock-acquire"]]!++;
      this.meter.time[W["lock-acquire"]]! += c;
      this.now += c;
      s.owner = id;
      s.since = this.now;
      s.stats.acquisitions++;
      return true;
    }
    task.waitSince = this.now;
    s.waiters.push(id);
    s.stats.contended++;
    return false;
  }

  /** Releases `lock`; the first waiter gets it after the handoff latency. */
  private release(id: number, lock: LockId): void {
    const s = this.lockState(lock);
    if (s.owner !== id) throw new Error(`${lock.name} released by CPU ${id}, which does not hold it`);
    s.stats.holdPs += this.now - s.since;
    if (s.waiters.length === 0) {
      s.owner = NONE;
      return;
    }
    const next = s.waiters.shift()!;
    const item = lock.kind === "mutex" ? W["mutex-wakeup"] : W["lock-handoff"];
    const c = lock.kind === "mutex" ? this.costs.mutexWakeup : this.costs.lockHandoff;
    const at = this.now + c;
    this.meter.count[item]!++;
    this.meter.time[item]! += c;
    s.owner = next;
    s.since = at;
    s.stats.acquisitions++;
    const waiter = this.tasks[next]!;
    // Waiting time excludes the handoff itself, which is charged as work above.
    s.stats.waitPs += this.now - waiter.waitSince;
    this.heap.push(next, at);
  }

  /** Total time tasks spent waiting for locks (ps), by lock kind. */
  waitByKind(): { spinlock: number; mutex: number } {
    const out = { spinlock: 0, mutex: 0 };
    for (const [lock, s] of this.locks) out[lock.kind] += s.stats.waitPs;
    return out;
  }
}
