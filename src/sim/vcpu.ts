/**
 * A simulated vCPU: runs its guest program's accesses and, on a stage-2 abort, the exit and the
 * KVM fault handler, as a state machine the engine resumes step by step. The handler is the fault
 * path's own phases (abortBegin, umaBeforeGup, GUP, umaAfterGup, umaLocked, umaDone: the same
 * functions the generator userMemAbort composes) with mmu_lock taken between them, so the common
 * fault costs no generator; the rare blocking parts (slow GUP with host faults and notifiers,
 * access-flag faults) run as generators.
 */
import { EFAULT } from "../common/errno.js";
import type { NumberList } from "../common/number-list.js";
import { SCHED, type Step } from "../common/steps.js";
import { W, type WorkMeter } from "../common/work.js";
import type { GupResult } from "../host/mm.js";
import {
  ABORT_ACCESS_FLAG,
  abortBegin,
  checkAbortReturn,
  CONTINUE,
  countFault,
  handleAccessFault,
  umaAfterGup,
  umaBeforeGup,
  umaDone,
  umaLocked,
  umaLockedChangesNothing,
  umaSampleSeq,
} from "../kvm/fault.js";
import type { Vcpu, Vm } from "../kvm/vm.js";
import type { Engine, SimCode } from "./engine.js";
import type { GuestAccessPath, MutableGuestAccess, PendingAccess } from "./guest-memory.js";
import type { SimMmu } from "./mmu.js";

/** A guest program: its accesses, one at a time (the current one in the PendingAccess fields). */
export interface AccessStream extends PendingAccess {
  /** Advances to the next access; false when the program is done. */
  next(): boolean;
  /**
   * For the fast-forward (optional): how many of the accesses after the current one each step
   * one host page on, in the same direction and with the same stage-1 tables.
   */
  pageRun?(): number;
  /** Bytes of IPA each access of a page run steps on (with {@link pageRun}). */
  pageStep?(): number;
  /** The program's state relative to guest IPA `base`, appended to `out`. */
  periodicState?(out: NumberList, base: number): void;
  /** Skips `k` accesses of the page run. */
  skip?(k: number): void;
}

// A module-private copy: V8 folds it into the code, while an imported binding is re-read.
const W_EXIT = W.exit;
const W_ENTRY = W.entry;
const W_ABORT = W.abort;
const W_PTE_WRITE = W["pte-write"];

const S_NEXT = 0;
const S_ATTEMPT = 1;
const S_SLOW_GUP = 2;
const S_AFTER_GUP = 3;
const S_LOCKED = 4;
const S_UNLOCKED = 5;
const S_SUB = 6;
const S_RESYNC = 7;
const S_HANDLER = 8;
const S_GUP = 9;

/** One vCPU thread of the selftest on the simulated machine. */
export class SimVcpu implements SimCode {
  private state = S_NEXT;
  /** The last access completed from the TLB alone (so the next may run ahead: S_NEXT). */
  private hitting = false;
  /** The last access completed without a fault (so the next may run ahead with walks). */
  private flowing = false;
  private faults = 0;
  /** Of this access's faults, those that found no invalidation in progress (countFault). */
  private stuck = 0;
  private readonly fault: MutableGuestAccess = { ipa: 0, write: false, exec: false, s1ptw: false };
  private gup: Generator<Step, GupResult | null, void> | null = null;
  private sub: Generator<Step, void, void> | null = null;

  constructor(
    private readonly vm: Vm,
    private readonly vcpu: Vcpu,
    private readonly stream: AccessStream,
    private readonly path: GuestAccessPath,
    private readonly mmu: SimMmu,
    private readonly meter: WorkMeter,
    private readonly engine: Engine,
    private readonly onAccess: (n: number) => void,
  ) {
    // Before S_HANDLER a vCPU charges the exit and kvm_handle_guest_abort's bookkeeping.
    this.toHandler = meter.cost[W_EXIT]! + meter.cost[W_ABORT]!;
    const cpu = vm.cpu;
    this.lockedHostQuiet =
      !cpu.dic && (cpu.icache === "vipt" || (cpu.icache === "vpipt" && !cpu.vhe)) ? 0 : this.toHandler;
  }

  /** The least work from a guest access to S_HANDLER: exit plus abort (ps). */
  private readonly toHandler: number;
  /**
   * Host-quiet time under mmu_lock: {@link toHandler}, or 0 where the handler may invalidate the
   * whole I-cache there (an aliasing I-cache on an exec fault, or VPIPT under nVHE at every TLBI by IPA),
   * which resets the host's per-page I-cache state.
   */
  private readonly lockedHostQuiet: number;

  /**
   * Before an access, and replaying one, the vCPU is in the guest: whatever its next segment
   * does, it issues no TLBI and stores no descriptor before the exit and kvm_handle_guest_abort's bookkeeping it charges
   * first (abortBegin charges it on every path), and its fault path yields (lock, slow GUP,
   * access-flag handler) before any TLBI. A fast path that issued one without a step would break
   * the engine's lookahead. Elsewhere it may hold mmu_lock (0: see Engine.mayRunAhead).
   */
  quietFor(): number {
    return this.state === S_NEXT || this.state === S_ATTEMPT ? this.toHandler : 0;
  }

  /**
   * SimCode.changesNothingBeforeUnlock: at S_LOCKED (waiting for or holding mmu_lock, umaLocked
   * still to run) whether umaLocked would store no descriptor and issue no TLBI
   * (umaLockedChangesNothing); at S_UNLOCKED (it ran) true. The answer stands until a descriptor
   * is stored or a TLBI issued somewhere (its fault context is fixed meanwhile), so it is kept
   * until the counts of those move.
   */
  changesNothingBeforeUnlock(): boolean {
    if (this.state === S_UNLOCKED) return true;
    if (this.state !== S_LOCKED) return false;
    const writes = this.meter.count[W_PTE_WRITE]!;
    const tlbis = this.mmu.log.seq;
    if (writes !== this.noopWrites || tlbis !== this.noopTlbis) {
      this.noopWrites = writes;
      this.noopTlbis = tlbis;
      this.noop = umaLockedChangesNothing(this.vm, this.vcpu.fault);
    }
    return this.noop;
  }

  /** The last answer of {@link changesNothingBeforeUnlock} and the counts it was given at (-1: none). */
  private noop = false;
  private noopWrites = -1;
  private noopTlbis = -1;

  /**
   * Host memory state (host page tables, notifier sequence, page pools, per-page cache state)
   * changes only in the fault handler from S_HANDLER on (top-up, sample, GUP, host faults,
   * notifiers), in the access-flag handler, and under mmu_lock where a whole-I-cache invalidation
   * can happen. Everywhere else, in the guest or around mmu_lock, the vCPU first has to fault and
   * exit (the segment it resumes with ends at a step, or runs through the exit, before it reaches
   * S_HANDLER).
   */
  hostQuietFor(): number {
    switch (this.state) {
      case S_NEXT:
      case S_ATTEMPT:
      case S_UNLOCKED:
      case S_RESYNC:
        // Not entry + toHandler at S_UNLOCKED: that vCPU holds mmu_lock, and the waiter it hands
        // the lock to is bounded only through it (Engine.mayReadHostAhead), by handoff + toHandler.
        return this.toHandler;
      case S_LOCKED:
        return this.lockedHostQuiet;
      default:
        return 0;
    }
  }

  /**
   * Whether the handler may go on at S_HANDLER without yielding although other CPUs are earlier:
   * none of them can change host memory state before this point (Engine.mayReadHostAhead), and no
   * memcache top-up will allocate table pages, whose pool umaLocked on other CPUs frees into.
   */
  private handlerMayRunAhead(): boolean {
    const vm = this.vm;
    if (this.vcpu.memcache.count < vm.geo.cacheMinPages) return false;
    if (!this.engine.mayReadHostAhead()) return false;
    // Where the in-order run would have yielded (rounding its time so far).
    this.engine.endSegmentHere();
    return true;
  }

  /**
   * Completes the current access ahead of other CPUs if the engine allows it and it needs no
   * fault: from the TLB alone, tried while accesses keep hitting, else with walks, tried while
   * accesses keep completing without faults (a failed try is work thrown away). Out of resume's
   * loop so that runs which always fault keep that loop small.
   */
  private runAhead(s: AccessStream): boolean {
    const engine = this.engine;
    if (!engine.mayRunAhead()) {
      this.hitting = false;
      this.flowing = false;
      return false;
    }
    // Where the in-order run would have ended the segment (rounding its time) and yielded.
    engine.endSegmentHere();
    const now = engine.timeNow();
    if (this.hitting && this.path.attemptHits(this.vcpu.id, s, now)) return true;
    this.hitting = false;
    if (this.flowing) {
      const walks = this.mmu.walks;
      if (this.path.attemptAhead(this.vcpu.id, s, now, this.fault)) {
        this.hitting = this.mmu.walks === walks;
        return true;
      }
      this.flowing = false;
    }
    return false;
  }

  /**
   * After an access that hit in the TLB: the accesses of the program's page run that would each
   * go on without yielding and hit the same entries, done at once (GuestAccessPath.hitRun).
   */
  private hitRun(s: AccessStream): void {
    const max = s.pageRun!();
    if (max < 2) return;
    const n = this.path.hitRun(this.vcpu.id, s, s.pageStep!(), max, this.engine);
    if (n === 0) return;
    s.skip!(n);
    this.onAccess(n);
    // An access made in sync goes through S_ATTEMPT, which sets both flags.
    if (this.path.ranInSync) this.flowing = true;
  }

  /**
   * While the vCPU flows (its accesses complete without faults, so one that is not the earliest
   * may run ahead): the accesses of its program's page run that would each go on without
   * yielding and translate without a fault, made here one after another. The in-order path and
   * runAhead would check each access's walks first; with no store in flight and no other CPU
   * running meanwhile the tables cannot change, so the run is checked once
   * (GuestAccessPath.startFlow, SimMmu.runTranslates) and each access is made as the path would make it.
   */
  private flowRun(s: AccessStream): void {
    const max = s.pageRun!();
    if (max < 2) return;
    const path = this.path;
    const engine = this.engine;
    const mmu = this.mmu;
    const id = this.vcpu.id;
    const step = s.pageStep!();
    const first = s.ipa + step;
    if (!path.startFlow(s, first, engine.timeNow())) return;
    // Engine.inSync and mayRunAhead as thresholds: no other CPU runs until the run ends.
    engine.runLimits();
    const syncBefore = engine.syncBefore;
    const aheadBefore = engine.aheadBefore;
    // The first accesses at once where they are all alike (a TLB miss and fill each).
    let j = 0;
    if (s.skip !== undefined) {
      j = path.missRun(id, s, first, step, max, engine.timeNow(), syncBefore, aheadBefore);
      if (j > 0) {
        s.skip(j);
        this.onAccess(j);
        this.faults = 0;
        this.hitting = false;
      }
    }
    for (; j < max; j++) {
      const now = engine.timeNow();
      const sync = now < syncBefore;
      if (!sync && now >= aheadBefore) return;
      if (!mmu.runTranslates(first + j * step, s.write)) return;
      s.next();
      this.onAccess(1);
      this.faults = 0;
      path.flowRunAccesses++;
      // Where the in-order run would have yielded, had it not run ahead (as runAhead does).
      if (!sync) engine.endSegmentHere();
      const walks = mmu.walks;
      mmu.ahead = !sync;
      mmu.inRun = true;
      const ok = path.attempt(id, s, engine.timeNow(), this.fault);
      mmu.inRun = false;
      mmu.ahead = false;
      if (!ok) throw new Error(`vCPU ${id}: an access of a flowing run to ${s.ipa} faulted after its check`);
      this.hitting = mmu.walks === walks;
      // In sync the access went through S_ATTEMPT, which sets flowing (it stays set ahead).
    }
  }

  /**
   * For the fast-forward: the vCPU's state relative to guest IPA `base` (its state machine, the
   * access it is on or faulted on, its program), appended to `out`; `rel` expresses an IPA.
   * False when it cannot be expressed (in a generator, or a program without page runs).
   */
  periodicState(out: NumberList, base: number, rel: (ipa: number) => number): boolean {
    const s = this.stream;
    if (this.gup !== null || this.sub !== null || s.periodicState === undefined) return false;
    const f = this.fault;
    out.push(this.state);
    out.push(this.hitting ? 1 : 0);
    out.push(this.flowing ? 1 : 0);
    out.push(this.faults);
    out.push(rel(f.ipa));
    out.push(f.write ? 1 : 0);
    out.push(f.exec ? 1 : 0);
    out.push(f.s1ptw ? 1 : 0);
    s.periodicState(out, base);
    return true;
  }

  /** Appends the stage-1 table pages its current access's walk reads. */
  tablesOf(out: NumberList): void {
    const s = this.stream;
    for (let i = 0; i < s.nTables; i++) out.push(s.tables[i]!);
  }

  /** Guest-physical address of the access its program is on. */
  accessIpa(): number {
    return this.stream.ipa;
  }

  /** Accesses of its program's page run left after the current one (0 without page runs). */
  pageRun(): number {
    return this.stream.pageRun?.() ?? 0;
  }

  /**
   * Moves the vCPU `k` accesses on its page run (`shift` bytes of IPA): the program and the
   * access it is on or faulted on (when `moves` says that IPA moves).
   */
  fastForward(k: number, shift: number, moves: (ipa: number) => boolean): void {
    this.stream.skip!(k);
    if (moves(this.fault.ipa)) this.fault.ipa += shift;
  }

  resume(): Step | null {
    const vm = this.vm;
    const ctx = this.vcpu.fault;
    for (;;) {
      switch (this.state) {
        case S_NEXT: {
          const s = this.stream;
          if (s.pageStep !== undefined) {
            if (this.hitting) this.hitRun(s);
            if (this.flowing) this.flowRun(s);
          }
          if (!s.next()) return null;
          this.onAccess(1);
          this.faults = 0;
          // Not the earliest: an access that only hits in this vCPU's TLB may still run while no
          // other CPU can issue a TLBI before it; anything else reads shared state and must wait.
          if (!this.engine.inSync()) {
            if ((this.hitting || this.flowing) && this.runAhead(s)) continue;
            this.state = S_ATTEMPT;
            return SCHED;
          }
          this.state = S_ATTEMPT;
          continue;
        }
        case S_ATTEMPT: {
          const s = this.stream;
          const walks = this.mmu.walks;
          const ok = this.path.attempt(this.vcpu.id, s, this.engine.timeNow(), this.fault);
          if (ok) {
            this.hitting = this.mmu.walks === walks;
            this.flowing = this.faults === 0;
            this.state = S_NEXT;
            continue;
          }
          this.stuck = countFault(this.vcpu, s.ipa, this.faults, this.faults === 0 ? 0 : this.stuck);
          this.faults++;
          // Exit to EL2, then kvm_handle_guest_abort.
          this.meter.charge(W_EXIT, 1);
          // ctx.access is this.fault itself: attempt() rewrites it only on the next fault.
          const access = this.fault;
          if (
            abortBegin(vm, this.vcpu, ctx, access, this.mmu.faultFsc, this.mmu.faultLevel) ===
            ABORT_ACCESS_FLAG
          ) {
            this.sub = handleAccessFault(vm, this.vcpu, access.ipa);
            this.state = S_SUB;
            continue;
          }
          // user_mem_abort samples mmu_notifier_seq, and GUP reads the host page tables, after the
          // exit and the handler's bookkeeping: shared state as of then, not as of the access.
          this.state = S_HANDLER;
          if (!this.engine.inSync() && !this.handlerMayRunAhead()) return SCHED;
          continue;
        }
        case S_HANDLER: {
          const before = umaBeforeGup(vm, this.vcpu, ctx);
          if (before !== CONTINUE) {
            checkAbortReturn(before, this.vcpu, ctx.access.ipa);
            this.state = S_RESYNC;
            continue;
          }
          this.state = S_GUP;
          // A top-up took time (up to 40 page allocations): in sync again for the sample.
          if (ctx.toppedUp > 0 && !this.engine.inSync() && !this.handlerMayRunAhead()) return SCHED;
          continue;
        }
        case S_GUP: {
          umaSampleSeq(vm, ctx);
          const hva = ctx.slot!.hvaOf(ctx.gpa);
          // As userMemAbort: no `writable` asked of a read-only memslot.
          const askWritable = !ctx.slot!.readonly;
          if (vm.host.gupNoFault(hva, ctx.writeFault, askWritable)) {
            ctx.pa = vm.host.gupPa;
            ctx.writable = vm.host.gupWritable;
            this.state = S_AFTER_GUP;
          } else {
            this.gup = vm.host.gupSlow(hva, ctx.writeFault, askWritable);
            this.state = S_SLOW_GUP;
          }
          continue;
        }
        case S_SLOW_GUP: {
          const r = this.gup!.next();
          if (r.done !== true) return r.value;
          this.gup = null;
          if (r.value === null) {
            checkAbortReturn(EFAULT, this.vcpu, ctx.access.ipa); // no VMA: -EFAULT
            this.state = S_RESYNC;
            continue;
          }
          ctx.pa = r.value.pa;
          ctx.writable = r.value.writable;
          this.state = S_AFTER_GUP;
          continue;
        }
        case S_AFTER_GUP: {
          const after = umaAfterGup(ctx);
          if (after !== CONTINUE) {
            checkAbortReturn(after, this.vcpu, ctx.access.ipa);
            this.state = S_RESYNC;
            continue;
          }
          this.state = S_LOCKED;
          this.noopWrites = -1;
          return vm.lockStep;
        }
        case S_LOCKED:
          umaLocked(vm, this.vcpu, ctx);
          this.state = S_UNLOCKED;
          return vm.unlockStep;
        case S_UNLOCKED:
          checkAbortReturn(umaDone(vm, this.vcpu, ctx), this.vcpu, ctx.access.ipa);
          this.state = S_RESYNC;
          continue;
        case S_SUB: {
          const r = this.sub!.next();
          if (r.done !== true) return r.value;
          this.sub = null;
          this.state = S_RESYNC;
          continue;
        }
        case S_RESYNC:
          // Back into the guest (every handler path ends here), which replays the instruction.
          this.meter.charge(W_ENTRY, 1);
          this.state = S_ATTEMPT;
          if (!this.engine.inSync()) return SCHED;
          continue;
        default:
          throw new Error(`vCPU ${this.vcpu.id}: bad state ${this.state}`);
      }
    }
  }
}
