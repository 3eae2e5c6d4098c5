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
  /**
   * Whose lock it is, which prices passing a spinlock to another CPU: KVM's `mmu_lock`
   * (`lock-handoff`: its holders' fault-path state moves with it) or one of the host mm's
   * page-table and fault locks (`host-lock-handoff`).
   */
  readonly domain: "kvm" | "host";
  /**
   * Set for a lock made per page for the faults racing on that page (shmem's page lock): a
   * driver may drop its state while no fault uses it, keeping only its last holder (per family
   * and slot), so a file of millions of pages does not keep millions of lock states.
   */
  readonly transient?: TransientLock;
}

/** The bookkeeping of a {@link LockId.transient} lock, kept by the code that makes it. */
export interface TransientLock {
  /**
   * Faults that hold the lock (until after their release step), wait for it, or have it in hand
   * to take: at a release, 1 means no one but the releaser will use it.
   */
  users: number;
  /** The locks of one kind over one range (a VMA's page locks): `size` slots. */
  readonly family: { readonly size: number };
  /** This lock's slot in its family (the page's index). */
  readonly slot: number;
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
 * What code that reads a lock without waiting for it as a step may ask (follow_page's round trip
 * of a free page-table lock): the simulator's engine, or a fixed interleaving's {@link HeldLocks}.
 */
export interface LockView {
  /**
   * {@link LOCK_HELD} when some CPU holds `lock` now (the caller must wait for it as a step);
   * otherwise takes and drops it at once for the running CPU, which becomes its last holder, and
   * returns the work item that costs (the move of its line when another CPU held it last), or -1 when it
   * costs nothing beyond the caller's own work.
   */
  takeFree(lock: LockId): number;
}

/** {@link LockView.takeFree}'s answer for a lock another CPU holds. */
export const LOCK_HELD = -2;

/** Every lock free, at no cost: exact for single-threaded use. */
export const FREE_LOCKS: LockView = { takeFree: () => -1 };

/**
 * Which task of an {@link interleave} holds each lock, also for code that must know whether taking
 * one now would wait without taking it (a lockless check, such as the host's slow GUP).
 */
export class HeldLocks implements LockView {
  private readonly owners = new Map<LockId, number>();

  /** Whether some task holds `lock`. */
  isHeld(lock: LockId): boolean {
    return this.owners.has(lock);
  }

  /** The task holding `lock`, or undefined. */
  ownerOf(lock: LockId): number | undefined {
    return this.owners.get(lock);
  }

  /** Whether `lock` is held; a fixed interleaving prices nothing. */
  takeFree(lock: LockId): number {
    return this.owners.has(lock) ? LOCK_HELD : -1;
  }

  /** Records that `lock` was granted to `task`. */
  grant(lock: LockId, task: number): void {
    this.owners.set(lock, task);
  }

  /** Records that `lock` was released. */
  release(lock: LockId): void {
    this.owners.delete(lock);
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
 * and examples. A task waiting for a held lock waits its turn in the lock's queue. `held` records
 * who holds each lock (pass the VM's to let its host see them). Returns the results in task order.
 */
export function interleave<T>(
  tasks: Array<Blocking<T>>,
  policy: InterleavePolicy,
  held: HeldLocks = new HeldLocks(),
): T[] {
  if (policy === "sequential") return tasks.map((t) => runToCompletion(t));
  const results = new Array<T>(tasks.length);
  const done = new Array<boolean>(tasks.length).fill(false);
  const queues = new Map<LockId, number[]>();
  const waiting = new Array<LockId | null>(tasks.length).fill(null);
  let remaining = tasks.length;
  while (remaining > 0) {
    let progressed = false;
    for (let i = 0; i < tasks.length; i++) {
      if (done[i]) continue;
      const want = waiting[i];
      if (want !== null) {
        if (held.isHeld(want) || queues.get(want)?.[0] !== i) continue;
        queues.get(want)!.shift();
        held.grant(want, i);
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
          if (held.ownerOf(step.lock) !== i)
            throw new Error(`${step.lock.name} released by a CPU that does not hold it`);
          held.release(step.lock);
          break;
        case "sched":
          break;
      }
    }
    if (!progressed) throw new Error("deadlock: every remaining task waits for a lock");
  }
  return results;
}
