/**
 * Scheduling points of modelled kernel code. Code that may sleep or take a lock another CPU can
 * hold is written as a generator yielding these steps; a driver (the simulator, or a test's fixed
 * interleaving) decides when each step completes. Between two steps the code runs atomically.
 */

/** A lock the modelled code takes: identity is the object itself (FIFO spinlock or mutex). */
export interface LockId {
  readonly name: string;
  /** A spinlock's waiters spin; a mutex's waiters sleep and must be woken. */
  readonly kind: "spinlock" | "mutex";
}

/** One scheduling point. */
export type Step =
  /** Acquire `lock`; the code continues once it holds it. */
  | { readonly kind: "lock"; readonly lock: LockId }
  /** Release `lock`. */
  | { readonly kind: "unlock"; readonly lock: LockId }
  /** A point where other CPUs may run (e.g. between zeroing a page and installing it). */
  | { readonly kind: "sched" };

/** Modelled code that may block: returns T when the driver has run it to completion. */
export type Blocking<T> = Generator<Step, T, void>;

/** The shared scheduling-point step (immutable, so one object serves every yield). */
export const SCHED: Step = { kind: "sched" };

/**
 * Runs blocking code to completion on its own: every lock must be free when requested (there is
 * no other CPU). For library use and single-threaded tests.
 */
export function runToCompletion<T>(gen: Blocking<T>): T {
  const held = new Set<LockId>();
  for (;;) {
    const r = gen.next();
    if (r.done) {
      if (held.size > 0) throw new Error(`code finished holding ${[...held].map((l) => l.name).join(", ")}`);
      return r.value;
    }
    const step = r.value;
    switch (step.kind) {
      case "lock":
        if (held.has(step.lock)) throw new Error(`deadlock: ${step.lock.name} taken twice`);
        held.add(step.lock);
        break;
      case "unlock":
        if (!held.delete(step.lock)) throw new Error(`${step.lock.name} released but not held`);
        break;
      case "sched":
        break;
    }
  }
}

/**
 * The locks some task of an {@link interleave} holds, for code that must know whether taking one
 * now would wait without taking it (a lockless check, such as the host's slow GUP).
 */
export class HeldLocks {
  private readonly held = new Set<LockId>();

  /** Whether some task holds `lock`. */
  isHeld(lock: LockId): boolean {
    return this.held.has(lock);
  }

  /** Records that `lock` was granted. */
  add(lock: LockId): void {
    this.held.add(lock);
  }

  /** Records that `lock` was released. */
  remove(lock: LockId): void {
    this.held.delete(lock);
  }
}

/** How {@link interleave} orders tasks. */
export type InterleavePolicy =
  /** Each task runs to completion before the next starts. */
  | "sequential"
  /** Tasks take turns one step at a time, in the given order. */
  | "round-robin";

/**
 * Runs several blocking tasks on separate CPUs with FIFO locks, for fixed interleavings in tests
 * and examples. A task waiting for a held lock waits its turn in the lock's queue. `held` is kept
 * up to date with the locks granted. Returns the results in task order.
 */
export function interleave<T>(
  tasks: Array<Blocking<T>>,
  policy: InterleavePolicy,
  held: HeldLocks = new HeldLocks(),
): T[] {
  if (policy === "sequential") return tasks.map((t) => runToCompletion(t));
  const results = new Array<T>(tasks.length);
  const done = new Array<boolean>(tasks.length).fill(false);
  const owner = new Map<LockId, number>();
  const queues = new Map<LockId, number[]>();
  const waiting = new Array<LockId | null>(tasks.length).fill(null);
  let remaining = tasks.length;
  while (remaining > 0) {
    let progressed = false;
    for (let i = 0; i < tasks.length; i++) {
      if (done[i]) continue;
      const want = waiting[i];
      if (want !== null) {
        if (owner.has(want) || queues.get(want)?.[0] !== i) continue;
        queues.get(want)!.shift();
        owner.set(want, i);
        held.add(want);
        waiting[i] = null;
      }
      progressed = true;
      const r = tasks[i]!.next();
      if (r.done) {
        results[i] = r.value;
        done[i] = true;
        remaining--;
        continue;
      }
      const step = r.value;
      switch (step.kind) {
        case "lock": {
          const q = queues.get(step.lock) ?? [];
          q.push(i);
          queues.set(step.lock, q);
          waiting[i] = step.lock;
          break;
        }
        case "unlock":
          if (owner.get(step.lock) !== i)
            throw new Error(`${step.lock.name} released by a CPU that does not hold it`);
          owner.delete(step.lock);
          held.remove(step.lock);
          break;
        case "sched":
          break;
      }
    }
    if (!progressed) throw new Error("deadlock: every remaining task waits for a lock");
  }
  return results;
}
