/**
 * The discrete-event engine: CPUs run modelled code (generators yielding lock / unlock / sched
 * steps) in integer virtual time. Code between two steps runs atomically; its duration is the
 * work it charged to the shared {@link WorkMeter} while it ran, rounded to whole picoseconds (the
 * meter sums in one fixed order, so the same run gives the same total; the engine resets it at the
 * start of each segment). Steps are handled in global time order (ties to the lower CPU number),
 * so locks are granted in the order CPUs really reached them, and a section runs only once it is
 * the earliest thing left (after a handoff, or a free lock's acquisition cost). Spinlocks hand
 * over in FIFO order (a queued spinlock); mutex waiters sleep and are woken.
 *
 * Lookahead: code may say how long after it resumes it certainly changes nothing another CPU's TLB
 * hits and hardware walks depend on (see {@link SimCode.quietFor}). The running CPU may go on with
 * guest accesses that read only its own TLB and the stage-2 tables until the earliest time another
 * could issue a TLBI or store a descriptor ({@link Engine.mayRunAhead}), instead of yielding at
 * every guest access. Host lookahead is the
 * same for host memory state ({@link SimCode.hostQuietFor}, {@link Engine.mayReadHostAhead}): a
 * fault handler may sample the notifier sequence and GUP before CPUs that cannot change either.
 */
import {
  type Footprint,
  heapFootprint,
  scaleFootprint,
  sumFootprints,
  typedArrayFootprint,
} from "../common/footprint.js";
import { type Blocking, LOCK_HELD, type LockId, type Step } from "../common/steps.js";
import type { NumberList } from "../common/number-list.js";
import { W, type WorkMeter } from "../common/work.js";
import { TaskHeap, TaskQueue } from "./heap.js";

/** Engine costs that are not work of the modelled code (picoseconds). */
export interface EngineCosts {
  /** Taking a free lock. */
  readonly lockAcquire: number;
  /** From KVM's spinlock's release to its next waiter running with it. */
  readonly lockHandoff: number;
  /** The same for a spinlock of the host mm (a PTE page's lock, a hugetlb fault mutex). */
  readonly hostLockHandoff: number;
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
  /** The task that held the lock last (NONE: never held). */
  lastOwner: number;
  since: number;
  readonly waiters: TaskQueue;
  readonly stats: LockStats;
  /** Its number, in the order the locks were first used; -1 for a transient lock (LockId.transient). */
  readonly index: number;
  /**
   * The work item, and its cost, of passing it to a waiting CPU: `mutex-wakeup` for a mutex (its
   * waiter sleeps), else `lock-handoff` or `host-lock-handoff` (by its domain).
   */
  readonly handoffItem: number;
  readonly handoffCost: number;
  /**
   * The same for taking it free after another CPU held it: its line moves, nobody is woken, so
   * `lock-handoff` or `host-lock-handoff` by its domain, for a mutex too.
   */
  readonly remoteItem: number;
  readonly remoteCost: number;
  /** Whether its statistics may have changed since the last {@link Engine.periodCounters}. */
  touched: boolean;
  /** Its statistics as that call reported them (plus the periods skipped since). */
  readonly seen: LockStats;
  /** The lock clock at its last change of owner, last holder or queue (Engine.lockTime). */
  changed: number;
  /** Whether it is in Engine.recentLocks. */
  recent: boolean;
}

const NONE = -1;

/**
 * Heap bytes of the engine's state for one lock (LockState, its statistics twice, its wait queue's
 * objects, its map entry and list slots), besides the queue's elements.
 */
const LOCK_STATE_HEAP_BYTES = 240;

/**
 * Heap bytes per transient-lock slot for the dropped states that outlive a young collection and
 * wait in the old generation for a full one (shmem at 4 and 16 GiB grew 11.8 MiB per GiB of
 * resident memory, against 10.3 counted without this).
 */
const TRANSIENT_CHURN_HEAP_BYTES = 2;

/**
 * The footprint of the engine's state for `locks` locks, in an engine of `tasks` tasks (a
 * simulation's vCPUs and its main thread): each lock's wait queue has room for every task; and a
 * last holder per slot of transient locks (`transientSlots`, whose states it keeps only while used).
 */
export function engineLocksFootprint(locks: number, tasks: number, transientSlots = 0): Footprint {
  return sumFootprints(
    typedArrayFootprint(transientSlots, 4),
    heapFootprint(transientSlots, TRANSIENT_CHURN_HEAP_BYTES),
    heapFootprint(locks, LOCK_STATE_HEAP_BYTES),
    // V8 keeps a typed array of up to 64 bytes on the heap, inside its object.
    4 * tasks <= 64 ? heapFootprint(locks, 4 * tasks) : scaleFootprint(typedArrayFootprint(tasks, 4), locks),
  );
}

/** Adds `times` x the given changes to lock statistics `s`. */
function addStats(
  s: LockStats,
  times: number,
  acquisitions: number,
  contended: number,
  waitPs: number,
  holdPs: number,
): void {
  s.acquisitions += times * acquisitions;
  s.contended += times * contended;
  s.waitPs += times * waitPs;
  s.holdPs += times * holdPs;
}

/**
 * For one kind of shared state, which parked tasks may change it as soon as they resume (loud)
 * and the shortest quiet time any other has reported, so that the running task can tell whether
 * nobody can change that state before a given time.
 */
class QuietTracker {
  /** Loud tasks in the heap. */
  private loud = 0;
  /** Bumped whenever a task joins or leaves those, so their earliest time can be cached. */
  private version = 0;
  private cachedVersion = -1;
  private cachedTime = 0;
  /** The shortest quiet time any parked task has reported (ps). */
  private minQuiet = Infinity;

  constructor(
    /** This tracker's bit in Task.loudBits. */
    private readonly bit: number,
    private readonly heap: TaskHeap,
    private readonly tasks: readonly Task[],
  ) {}

  /** `task` went into the heap, quiet for `quiet` ps after it resumes (0: loud). */
  parked(task: Task, quiet: number): void {
    if (quiet > 0) {
      if (quiet < this.minQuiet) this.minQuiet = quiet;
    } else {
      task.loudBits |= this.bit;
      this.loud++;
      this.version++;
    }
  }

  /** `task` left the heap to run. */
  unparked(task: Task): void {
    if ((task.loudBits & this.bit) !== 0) {
      task.loudBits &= ~this.bit;
      this.loud--;
      this.version++;
    }
  }

  /** The time {@link quietUntilAfter} holds before: it is t < quietBefore(). */
  quietBefore(): number {
    const q = this.heap.peekTime() + this.minQuiet;
    return this.loud === 0 ? q : Math.min(q, this.earliestLoud());
  }

  /** Whether no task in the heap can change the state at or before `t`. */
  quietUntilAfter(t: number): boolean {
    if (t >= this.heap.peekTime() + this.minQuiet) return false;
    return this.loud === 0 || t < this.earliestLoud();
  }

  /** The shortest quiet time reported so far. */
  get shortest(): number {
    return this.minQuiet;
  }

  /** Drops the cached earliest loud time (the heap's times moved). */
  forget(): void {
    this.cachedVersion = -1;
  }

  /** The earliest time of a loud task in the heap (there is one). */
  private earliestLoud(): number {
    if (this.cachedVersion !== this.version) {
      // A scan of the heap's entries, done only when the loud ones changed since the last.
      const heap = this.heap;
      let min = Infinity;
      for (let i = 0; i < heap.size; i++) {
        const t = heap.timeAt(i);
        if (t < min && (this.tasks[heap.idAt(i)]!.loudBits & this.bit) !== 0) min = t;
      }
      this.cachedVersion = this.version;
      this.cachedTime = min;
    }
    return this.cachedTime;
  }
}

// Module-private copies: V8 folds these into the code, while an imported binding is re-read.
const W_LOCK_ACQUIRE = W["lock-acquire"];
const W_LOCK_HANDOFF = W["lock-handoff"];
const W_HOST_LOCK_HANDOFF = W["host-lock-handoff"];
const W_MUTEX_WAKEUP = W["mutex-wakeup"];

/**
 * Code a simulated CPU runs: each call runs it up to its next step (returned) or to its end
 * (null). A generator is one; the simulator's vCPUs are hand-written state machines.
 */
export interface SimCode {
  resume(): Step | null;
  /**
   * When parked now: for how long (ps) after it next resumes this code certainly issues no TLBI
   * and stores no stage-2 descriptor (nor anything else a TLB hit or a hardware walk of another
   * CPU reads); 0 if it may at once. Since a segment runs
   * whole, the segment it resumes with must also reach its next step before issuing any.
   */
  quietFor(): number;
  /**
   * When parked now: for how long (ps) after it next resumes this code certainly changes no host
   * memory state (host page tables and their locks, host pages, the MMU-notifier sequence and
   * count, the table-page pool); 0 if it may at once. As for {@link quietFor}, the segment it
   * resumes with must also reach its next step before changing any.
   */
  hostQuietFor(): number;
  /**
   * Optional, for the lookahead: parked holding or waiting for the engine's store lock
   * ({@link Engine.storeLock}) with its critical section still to run (or run), whether that
   * section certainly stores no stage-2 descriptor and issues no TLBI, provided no other CPU does
   * either before it. Absent: it may.
   */
  changesNothingBeforeUnlock?(): boolean;
}

/** Runs a generator as {@link SimCode}. */
export class GeneratorCode implements SimCode {
  constructor(private readonly gen: Blocking<void>) {}

  resume(): Step | null {
    const r = this.gen.next();
    return r.done === true ? null : r.value;
  }

  /** A generator may do anything when it resumes. */
  quietFor(): number {
    return 0;
  }

  hostQuietFor(): number {
    return 0;
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
  /** Bits of the {@link QuietTracker}s that count this task as loud while it is in the heap. */
  loudBits = 0;
  /** Waiting for a lock with a host-quiet time of 0 (counted in Engine.hostLoudWaiters). */
  hostLoudWaiting = false;
  constructor(readonly code: SimCode) {}
}

/** Runs CPUs in virtual time. */
export class Engine {
  /** The current virtual time (ps). */
  now = 0;
  /** The task whose code is running, or -1. */
  current = NONE;
  /** Engine time when the running segment started (the meter's total was reset to 0 then). */
  private segStart = 0;
  private readonly heap: TaskHeap;
  private readonly tasks: Task[] = [];
  private readonly locks = new Map<LockId, LockState>();
  /** The lock looked up last and its state (the fault path takes one lock over and over). */
  private lastLock: LockId | null = null;
  private lastState: LockState | null = null;
  private readonly capacity: number;
  /** Steps handled (a measure of simulation work). */
  steps = 0;
  /** Where the last {@link advance} left its task: its finish, park or lock-wait time. */
  private advanceEnd = 0;
  /** Parked tasks that may issue a TLBI at once (SimCode.quietFor). */
  private readonly tlbiQuiet: QuietTracker;
  /** Parked tasks that may change host memory state at once (SimCode.hostQuietFor). */
  private readonly hostQuiet: QuietTracker;
  /** Tasks waiting for a lock that may change host state as soon as they get it. */
  private hostLoudWaiters = 0;
  /**
   * The lock every stage-2 descriptor store and TLBI is made under (kvm->mmu_lock), when the
   * simulated code guarantees that: then {@link mayRunAhead} may also look past the CPUs queued
   * for it whose critical sections change nothing (SimCode.changesNothingBeforeUnlock).
   */
  storeLock: LockId | null = null;
  /**
   * {@link lockBound} as of {@link steps} = boundSteps with task boundCurrent running: a task
   * parks or runs only at a step, or (first started) with another task running.
   */
  private boundSteps = -1;
  private boundCurrent = NONE;
  private boundTime = 0;
  /** Set by the running code to have {@link onBoundary} called when its segment ends. */
  boundary = false;
  /**
   * Called (when {@link boundary} was set) with the task whose segment just ended and the time
   * it ended; returns how much later it moved the whole simulation (the fast-forward), else 0.
   */
  onBoundary: ((id: number, end: number) => number) | null = null;

  constructor(
    private readonly meter: WorkMeter,
    private readonly costs: EngineCosts,
    capacity: number,
    private readonly lookahead = true,
  ) {
    this.heap = new TaskHeap(capacity);
    this.capacity = capacity;
    this.tlbiQuiet = new QuietTracker(1, this.heap, this.tasks);
    this.hostQuiet = new QuietTracker(2, this.heap, this.tasks);
    // The meter derives each item's time from its cost; lock items are priced by the engine.
    meter.cost[W_LOCK_ACQUIRE] = costs.lockAcquire;
    meter.cost[W_LOCK_HANDOFF] = costs.lockHandoff;
    meter.cost[W_HOST_LOCK_HANDOFF] = costs.hostLockHandoff;
    meter.cost[W_MUTEX_WAKEUP] = costs.mutexWakeup;
  }

  /** Virtual time of the running code at this point of its segment. */
  timeNow(): number {
    return this.segStart + Math.round(this.meter.acc);
  }

  /**
   * A time nothing still to happen in the simulation can precede: the running code's time, or
   * the earliest in the heap's. A task that waits for a lock or sleeps resumes only after its
   * owner releases it, at the owner's time or later; a task's time never goes back.
   */
  earliestToCome(): number {
    const running = this.current >= 0 ? this.timeNow() : Infinity;
    return this.heap.size > 0 ? Math.min(running, this.heap.peekTime()) : running;
  }

  /**
   * Whether the running code is still the earliest thing in the simulation, so it may read state
   * other CPUs write; when false it must yield (sched) first.
   */
  inSync(): boolean {
    return this.inSyncAt(this.timeNow());
  }

  /**
   * Whether the running code, not in sync, may still read its own TLB and walk the stage-2 tables
   * now: no other CPU can issue a TLBI or store a descriptor before it. A task in the heap can issue one from its time if it is loud, else from its
   * time plus its quiet time; a task waiting for a lock resumes only after the lock's owner, which
   * is one of those (quiet code and running code that calls this hold no lock). Other CPUs' reads
   * meanwhile do not matter: TLB hits change nothing they read.
   */
  mayRunAhead(): boolean {
    return this.mayRunAheadAt(this.timeNow());
  }

  /**
   * {@link inSync} as of time `t` instead of now: whether the running code would still be the
   * earliest once its time reaches `t` (at or after {@link timeNow}, with nothing else run).
   */
  inSyncAt(t: number): boolean {
    return this.heap.size === 0 || this.heap.before(this.current, t);
  }

  /**
   * {@link inSyncAt} and {@link mayRunAheadAt} as thresholds, for code that checks many times in
   * a row with nothing else run in between: sets {@link syncBefore} and {@link aheadBefore} so
   * that for a whole number of picoseconds `t` (at or after {@link timeNow}), inSyncAt(t) is
   * t < syncBefore and mayRunAheadAt(t) is t < aheadBefore.
   */
  runLimits(): void {
    const heap = this.heap;
    if (heap.size === 0) {
      this.syncBefore = Infinity;
    } else {
      // Ties go to the lower task number.
      this.syncBefore = heap.peekTime() + (this.current < heap.idAt(0) ? 1 : 0);
    }
    this.aheadBefore = this.aheadLimit();
  }

  /**
   * The time the running code may read its TLB and walk ahead of other CPUs before (see
   * {@link mayRunAhead}): the later of the bound by the parked tasks' quiet times and the bound by
   * the store lock's queue ({@link lockBound}), each of which holds on its own.
   */
  private aheadLimit(): number {
    if (!this.lookahead) return -Infinity;
    const quiet = this.tlbiQuiet.quietBefore();
    return this.storeLock === null ? quiet : Math.max(quiet, this.lockBound());
  }

  /** Set by {@link runLimits}. */
  syncBefore = 0;
  aheadBefore = 0;

  /** {@link mayRunAhead} as of time `t` instead of now (see {@link inSyncAt}). */
  mayRunAheadAt(t: number): boolean {
    return t < this.aheadLimit();
  }

  /**
   * A time before which no CPU can store a descriptor or issue a TLBI, from the store lock's
   * queue: all of them happen in its critical sections, which run one at a time in FIFO order,
   * each starting at least a handoff after the one before, the owner's no sooner than its time in
   * the heap. If the owner's section and those of the first j waiters change nothing, the next
   * waiter's cannot start before j + 1 handoffs after the owner's time; when every queued one
   * changes nothing, any other section (a CPU not queued yet, or one of these coming back) starts
   * behind them all, so no sooner than the last one's earliest start. -Infinity when this says
   * nothing (a free lock, an owner not in the heap). Computed once per engine step and running
   * task: meanwhile no task moves.
   */
  private lockBound(): number {
    if (this.boundSteps !== this.steps || this.boundCurrent !== this.current) {
      this.boundSteps = this.steps;
      this.boundCurrent = this.current;
      this.boundTime = this.computeLockBound();
    }
    return this.boundTime;
  }

  private computeLockBound(): number {
    const lock = this.storeLock!;
    const s = this.locks.get(lock);
    if (s === undefined || s.owner === NONE || s.owner === this.current) return -Infinity;
    const heap = this.heap;
    let owned = Number.NaN;
    for (let i = 0; i < heap.size; i++) {
      if (heap.idAt(i) === s.owner) {
        owned = heap.timeAt(i);
        break;
      }
    }
    if (Number.isNaN(owned)) return -Infinity;
    if (this.tasks[s.owner]!.code.changesNothingBeforeUnlock?.() !== true) return owned;
    const handoff = s.handoffCost;
    const n = s.waiters.size;
    for (let j = 0; j < n; j++) {
      const code = this.tasks[s.waiters.at(j)]!.code;
      if (code.changesNothingBeforeUnlock?.() !== true) return owned + (j + 1) * handoff;
    }
    return owned + n * handoff;
  }

  /**
   * Whether the running code, not in sync, may still read and change host memory state now (as
   * user_mem_abort does from its notifier-sequence sample through GUP): no other CPU can change
   * that state at or before this time. A task in the heap can change it from its time if it is
   * host-loud, else from its time plus its host-quiet time; a task waiting for a lock resumes
   * only after the lock's owner, so only host-loud waiters need a bound of their own, and while
   * there is one this answers false.
   */
  mayReadHostAhead(): boolean {
    if (!this.lookahead || this.hostLoudWaiters > 0) return false;
    return this.hostQuiet.quietUntilAfter(this.timeNow());
  }

  /**
   * Ends the running code's segment at this point and starts the next at once: its time so far
   * is rounded as it would be had the code yielded here (lookahead stands in for such a yield).
   */
  endSegmentHere(): void {
    this.segStart += Math.round(this.meter.acc);
    this.meter.acc = 0;
  }

  /** Adds a CPU whose code starts at `at`; returns its task index. */
  spawn(code: SimCode | Blocking<void>, at: number): number {
    const id = this.tasks.length;
    const task = new Task("resume" in code ? code : new GeneratorCode(code));
    this.tasks.push(task);
    this.heap.push(id, at);
    this.parked(task);
    return id;
  }

  /** Finish time of task `id`. */
  finishedAt(id: number): number {
    return this.tasks[id]!.finishedAt;
  }

  /**
   * The running task takes and drops `lock` at once if it is free (outside the steps:
   * follow_page's round trip); it becomes the lock's last holder. Returns LOCK_HELD when a task
   * holds it, the item of taking it free after another CPU when one held it last (the line
   * moves), else -1.
   */
  takeFree(lock: LockId): number {
    // A transient lock's state is dropped only at a release, which a take-and-drop here skips.
    if (lock.transient !== undefined) throw new Error(`takeFree of transient lock ${lock.name}`);
    // Not lockState: its one-lock cache is for mmu_lock, between whose uses these come.
    const s = this.locks.get(lock) ?? this.lockState(lock);
    if (s.owner !== NONE) return LOCK_HELD;
    const id = this.current;
    if (s.lastOwner === id) return -1;
    const item = s.lastOwner !== NONE ? s.remoteItem : -1;
    s.lastOwner = id;
    this.lockChanged(s);
    return item;
  }

  /** Statistics of one lock (zeros if never taken). */
  lockStats(lock: LockId): LockStats {
    return this.lockState(lock).stats;
  }

  /** Runs until every task has finished; returns the time the last one finished. */
  run(): number {
    const heap = this.heap;
    let last = this.now;
    let id = NONE;
    for (;;) {
      if (id === NONE) {
        if (heap.size === 0) break;
        const t = heap.peekTime();
        id = heap.pop();
        this.now = t;
        this.unparked(this.tasks[id]!);
      }
      id = this.advance(id);
      if (this.advanceEnd > last) last = this.advanceEnd;
    }
    for (const [lock, s] of this.locks) {
      if (s.owner !== NONE) throw new Error(`simulation ended with ${lock.name} held`);
    }
    return last;
  }

  /**
   * Runs task `id` from `this.now` for as long as it stays the earliest: handles its pending step,
   * resumes its code, and either continues or parks it in the heap or a lock queue. Returns the
   * next task to run when it parked the task in the heap (taken from the heap, with `this.now`
   * set to its time), or -1 when the caller should take the next one.
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
          if (!this.acquire(id, task, step.lock)) {
            this.advanceEnd = this.now;
            return NONE;
          }
        } else if (step.kind === "unlock") this.release(id, step.lock);
        // Taken free, after its cost, the section starts then, so what other CPUs do before that
        // time runs first (they find the lock held); and a lock handed at no cost to a waiter
        // numbered before this task makes the waiter the earliest.
        if (step.kind !== "sched" && heap.size > 0 && !heap.before(id, this.now)) {
          this.advanceEnd = this.now;
          this.parked(task);
          const other = heap.exchange(id, this.now);
          this.now = heap.exchangedTime;
          this.unparked(this.tasks[other]!);
          return other;
        }
      }
      // Resume the code for one segment.
      this.current = id;
      this.segStart = this.now;
      meter.acc = 0;
      const next = task.code.resume();
      let end = this.segStart + Math.round(meter.acc);
      this.current = NONE;
      if (next === null) {
        this.boundary = false;
        task.finished = true;
        task.finishedAt = end;
        this.now = end;
        this.advanceEnd = end;
        return NONE;
      }
      task.pending = next;
      if (this.boundary) end += this.atBoundary(id, end);
      if (heap.size > 0 && !heap.before(id, end)) {
        // Park the task and take the earliest one in a single heap pass.
        this.advanceEnd = end;
        this.parked(task);
        const other = heap.exchange(id, end);
        this.now = heap.exchangedTime;
        this.unparked(this.tasks[other]!);
        return other;
      }
      this.now = end;
    }
  }

  /**
   * Calls {@link onBoundary} for the segment task `id` just ended at `end` (its pending step set,
   * the task neither parked nor queued); returns the time it moved every task by.
   */
  private atBoundary(id: number, end: number): number {
    this.boundary = false;
    return this.onBoundary === null ? 0 : this.onBoundary(id, end);
  }

  /**
   * The engine's state relative to task `cur` ending a segment at `t0` (see {@link onBoundary}):
   * where each task is and when, its pending step, the locks' owners, last holders and queues.
   * Appended to `out` as numbers; `stepCode` numbers a step. `since` is the {@link lockTime} at
   * the oldest boundary this state may be compared with (locks unchanged since then and free are
   * left out), `keepSince` the lowest `since` any later call will pass.
   */
  periodicState(
    out: NumberList,
    cur: number,
    t0: number,
    stepCode: (s: Step | null) => number,
    since: number,
    keepSince: number,
  ): void {
    const heap = this.heap;
    const tasks = this.tasks;
    if (this.heapTimes.length !== tasks.length) this.heapTimes = new Float64Array(tasks.length);
    const at = this.heapTimes.fill(NaN);
    for (let i = 0; i < heap.size; i++) at[heap.idAt(i)] = heap.timeAt(i) - t0;
    for (let i = 0; i < tasks.length; i++) {
      const task = tasks[i]!;
      const where = i === cur ? 0 : task.finished ? 1 : Number.isNaN(at[i]!) ? 3 : 2;
      out.push(where);
      out.push(where === 2 ? at[i]! : where === 3 ? task.waitSince - t0 : 0);
      out.push(stepCode(task.pending));
      out.push(task.loudBits);
      out.push(task.hostLoudWaiting ? 1 : 0);
    }
    // The locks: those changed after `since`, or held, or waited for, with their numbers. Any
    // other lock is free and as it was when the lock clock read `since`, at a boundary this state
    // is compared with; states that list different locks differ.
    const recent = this.recentLocks;
    let n = 0;
    for (let i = 0; i < recent.length; i++) {
      const s = recent[i]!;
      if (s.changed > keepSince || s.owner !== NONE || s.waiters.size > 0) recent[n++] = s;
      else s.recent = false;
    }
    recent.length = n;
    for (let i = 1; i < n; i++) {
      const t = recent[i]!;
      let j = i - 1;
      for (; j >= 0 && recent[j]!.index > t.index; j--) recent[j + 1] = recent[j]!;
      recent[j + 1] = t;
    }
    for (const s of recent) {
      if (s.changed <= since && s.owner === NONE && s.waiters.size === 0) continue;
      out.push(s.index);
      out.push(s.owner);
      out.push(s.lastOwner);
      out.push(s.owner === NONE ? 0 : s.since - t0);
      out.push(s.waiters.size);
      for (let k = 0; k < s.waiters.size; k++) out.push(s.waiters.at(k));
    }
    out.push(this.hostLoudWaiters);
    out.push(this.tlbiQuiet.shortest);
    out.push(this.hostQuiet.shortest);
  }

  /**
   * The lock clock: counts changes of the locks' owners, last holders and queues. The fast-forward
   * reads it at each boundary it keeps, for {@link periodicState}'s `since` and `keepSince`.
   */
  get lockTime(): number {
    return this.lockClock;
  }

  private lockClock = 0;
  /**
   * The locks changed after the earliest lock clock a snapshot still to come may list from (the
   * fast-forward's `keepSince`), and every lock held or waited for: what {@link periodicState}
   * lists. Other locks (the host's page-table locks of
   * regions the run has left: thousands) are left out of every snapshot.
   */
  private readonly recentLocks: LockState[] = [];

  private lockChanged(s: LockState): void {
    s.changed = ++this.lockClock;
    if (!s.recent && s.index >= 0) {
      s.recent = true;
      this.recentLocks.push(s);
    }
  }

  /** Scratch of {@link periodicState}: each task's time in the heap. */
  private heapTimes = new Float64Array(0);

  /**
   * What the simulated work added to the engine's counters since the last call (the fast-forward's
   * periods), appended to `out`: the steps, the number m of locks whose statistics changed, then
   * for each of those, in the order the locks were first used, its number and what its
   * acquisitions, contended acquisitions, wait and hold time grew by. Only the locks that changed
   * are listed, so a period costs what it touched however many locks the run has used (the
   * host's page-table locks: one per 2 MiB of 4 KiB pages).
   */
  periodCounters(out: NumberList): void {
    out.push(this.steps - this.stepsSeen);
    this.stepsSeen = this.steps;
    const touched = this.touched;
    // Few locks change in a period: an insertion sort puts them in order.
    for (let i = 1; i < touched.length; i++) {
      const t = touched[i]!;
      let j = i - 1;
      for (; j >= 0 && touched[j]!.index > t.index; j--) touched[j + 1] = touched[j]!;
      touched[j + 1] = t;
    }
    const at = out.length;
    out.push(0);
    let m = 0;
    for (const s of touched) {
      const { stats, seen } = s;
      const acquisitions = stats.acquisitions - seen.acquisitions;
      const contended = stats.contended - seen.contended;
      const waitPs = stats.waitPs - seen.waitPs;
      const holdPs = stats.holdPs - seen.holdPs;
      s.touched = false;
      // A release after no hold time changes nothing: listed, it would differ from a period that
      // did not touch the lock at all.
      if (acquisitions === 0 && contended === 0 && waitPs === 0 && holdPs === 0) continue;
      out.push(s.index);
      out.push(acquisitions);
      out.push(contended);
      out.push(waitPs);
      out.push(holdPs);
      addStats(seen, 1, acquisitions, contended, waitPs, holdPs);
      m++;
    }
    out.set(at, m);
    touched.length = 0;
  }

  /**
   * Moves every task but the running one (its time is the caller's) `dt` later and adds `times`
   * x each of `deltas` to the counters (each as {@link periodCounters} lays them out), as `times`
   * more cycles of those periods would have (they count as seen: the next periodCounters leaves
   * them out).
   */
  fastForward(dt: number, times: number, deltas: readonly NumberList[]): void {
    this.heap.shiftTimes(dt);
    for (const task of this.tasks) if (!task.finished) task.waitSince += dt;
    // Held locks are all among the recent ones (periodicState never drops them).
    for (const s of this.recentLocks) if (s.owner !== NONE) s.since += dt;
    for (const delta of deltas) this.addPeriods(times, delta);
    this.tlbiQuiet.forget();
    this.hostQuiet.forget();
  }

  /** Adds `times` x `delta` (one period's {@link periodCounters}) to the counters. */
  private addPeriods(times: number, delta: NumberList): void {
    this.steps += times * delta.get(0);
    this.stepsSeen += times * delta.get(0);
    const m = delta.get(1);
    for (let j = 0; j < m; j++) {
      const o = 2 + 5 * j;
      const s = this.lockList[delta.get(o)]!;
      const acquisitions = delta.get(o + 1);
      const contended = delta.get(o + 2);
      const waitPs = delta.get(o + 3);
      const holdPs = delta.get(o + 4);
      addStats(s.stats, times, acquisitions, contended, waitPs, holdPs);
      addStats(s.seen, times, acquisitions, contended, waitPs, holdPs);
    }
  }

  /** Steps as of the last {@link periodCounters}. */
  private stepsSeen = 0;
  /** The locks in the order they were first used (LockState.index). */
  private readonly lockList: LockState[] = [];
  /** The locks whose statistics changed since the last {@link periodCounters}. */
  private readonly touched: LockState[] = [];

  /** Notes that lock `s`'s statistics are about to change. */
  private touch(s: LockState): void {
    if (!s.touched && s.index >= 0) {
      s.touched = true;
      this.touched.push(s);
    }
  }

  /** Notes that `task` was put in the heap, with its code's quiet times. */
  private parked(task: Task): void {
    this.tlbiQuiet.parked(task, task.code.quietFor());
    this.hostQuiet.parked(task, task.code.hostQuietFor());
  }

  /** Notes that `task` was taken from the heap to run. */
  private unparked(task: Task): void {
    if (task.loudBits !== 0) {
      this.tlbiQuiet.unparked(task);
      this.hostQuiet.unparked(task);
    }
  }

  private lockState(lock: LockId): LockState {
    if (lock === this.lastLock) return this.lastState!;
    let s = this.locks.get(lock);
    if (s === undefined) {
      const remote = lock.domain === "host" ? W_HOST_LOCK_HANDOFF : W_LOCK_HANDOFF;
      const item = lock.kind === "mutex" ? W_MUTEX_WAKEUP : remote;
      const transient = lock.transient;
      s = {
        owner: NONE,
        // A transient lock made again (its state dropped while no fault used it): its last holder.
        lastOwner: transient === undefined ? NONE : this.lastOwnersOf(transient.family)[transient.slot]!,
        since: 0,
        waiters: new TaskQueue(this.capacity),
        stats: { acquisitions: 0, contended: 0, waitPs: 0, holdPs: 0 },
        // Transient locks stay out of the fast-forward's lists (-1): only a vCPU inside the host's
        // fault path, which no snapshot can read, holds or waits for one.
        index: transient === undefined ? this.lockList.length : -1,
        handoffItem: item,
        handoffCost: this.meter.cost[item]!,
        remoteItem: remote,
        remoteCost: this.meter.cost[remote]!,
        touched: false,
        changed: 0,
        recent: false,
        seen: { acquisitions: 0, contended: 0, waitPs: 0, holdPs: 0 },
      };
      this.locks.set(lock, s);
      if (transient === undefined) this.lockList.push(s);
    }
    this.lastLock = lock;
    this.lastState = s;
    return s;
  }

  /** Per family of transient locks, each slot's last holder while its state is dropped. */
  private readonly lastOwners = new Map<object, Int32Array>();
  /** Wait time of the dropped transient locks' states, by kind (waitByKind). */
  private readonly droppedWait = { spinlock: 0, mutex: 0 };

  private lastOwnersOf(family: { readonly size: number }): Int32Array {
    let a = this.lastOwners.get(family);
    if (a === undefined) {
      a = new Int32Array(family.size).fill(NONE);
      this.lastOwners.set(family, a);
    }
    return a;
  }

  /**
   * At its release, drops a transient lock's state if nobody waits and no fault but the releaser
   * (still counted) uses it: its last holder is all a later state needs (what a taker pays depends
   * on it); its wait time goes to waitByKind's totals.
   */
  private dropIfIdle(lock: LockId, s: LockState): void {
    const transient = lock.transient;
    if (transient === undefined || transient.users > 1 || s.owner !== NONE || s.waiters.size > 0) return;
    this.lastOwnersOf(transient.family)[transient.slot] = s.lastOwner;
    this.droppedWait[lock.kind] += s.stats.waitPs;
    this.locks.delete(lock);
    if (this.lastLock === lock) {
      this.lastLock = null;
      this.lastState = null;
    }
  }

  /** Takes `lock` for task `id` now, or queues it; returns whether it holds the lock. */
  private acquire(id: number, task: Task, lock: LockId): boolean {
    const s = this.lockState(lock);
    if (s.owner === id) throw new Error(`deadlock: ${lock.name} taken twice by CPU ${id}`);
    this.touch(s);
    if (s.owner === NONE) {
      // A free lock last held by another CPU: its line, and the state its holder wrote, are
      // remote, as on a handoff; lock-acquire prices a lock whose line this CPU already owns.
      const remote = s.lastOwner !== NONE && s.lastOwner !== id;
      const c = remote ? s.remoteCost : this.costs.lockAcquire;
      this.meter.count[remote ? s.remoteItem : W_LOCK_ACQUIRE]!++;
      this.now += c;
      s.owner = id;
      s.lastOwner = id;
      this.lockChanged(s);
      s.since = this.now;
      s.stats.acquisitions++;
      return true;
    }
    task.waitSince = this.now;
    if (task.code.hostQuietFor() === 0) {
      task.hostLoudWaiting = true;
      this.hostLoudWaiters++;
    }
    s.waiters.push(id);
    this.lockChanged(s);
    s.stats.contended++;
    return false;
  }

  /** Releases `lock`; the first waiter gets it after the handoff latency. */
  private release(id: number, lock: LockId): void {
    const s = this.lockState(lock);
    if (s.owner !== id) throw new Error(`${lock.name} released by CPU ${id}, which does not hold it`);
    this.touch(s);
    s.stats.holdPs += this.now - s.since;
    this.lockChanged(s);
    if (s.waiters.size === 0) {
      s.owner = NONE;
      this.dropIfIdle(lock, s);
      return;
    }
    const next = s.waiters.shift();
    s.lastOwner = next;
    const at = this.now + s.handoffCost;
    this.meter.count[s.handoffItem]!++;
    s.owner = next;
    s.since = at;
    s.stats.acquisitions++;
    const waiter = this.tasks[next]!;
    if (waiter.hostLoudWaiting) {
      waiter.hostLoudWaiting = false;
      this.hostLoudWaiters--;
    }
    // Waiting time excludes the handoff itself, which is charged as work above.
    s.stats.waitPs += this.now - waiter.waitSince;
    this.heap.push(next, at);
    this.parked(waiter);
  }

  /** Total time tasks spent waiting for locks (ps), by lock kind. */
  waitByKind(): { spinlock: number; mutex: number } {
    const out = { ...this.droppedWait };
    for (const [lock, s] of this.locks) out[lock.kind] += s.stats.waitPs;
    return out;
  }
}
