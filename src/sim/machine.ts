/**
 * The simulated machine around one VM: a priced work meter, the stage-2 store visibility model,
 * TLBs that TLBIs reach, and an engine per timed run. Build the VM with {@link vmHooks}, then
 * {@link attach} it.
 */
import { Digest } from "../common/digest.js";
import type { LockView } from "../common/steps.js";
import { WorkMeter } from "../common/work.js";
import type { Vm } from "../kvm/vm.js";
import type { Stage2Hw } from "../pgtable/hw.js";
import { Engine } from "./engine.js";
import { FastForward } from "./fast-forward.js";
import { GuestAccessPath } from "./guest-memory.js";
import { SimMmu } from "./mmu.js";
import type { CostProfile } from "./profile.js";
import { PteVisibility } from "./visibility.js";
import { type AccessStream, SimVcpu } from "./vcpu.js";

/** What one timed run measured. */
export interface RunTiming {
  /**
   * From time 0, when the selftest's main thread starts posting (the first vCPU starts one
   * vcpu-release later), to the last vCPU done (ps).
   */
  readonly elapsedPs: number;
  /** Release time of each vCPU (ps). */
  readonly startPs: number[];
  /** Finish time of each vCPU (ps). */
  readonly finishPs: number[];
  /** Steps the engine handled. */
  readonly steps: number;
  readonly engine: Engine;
}

/** A machine priced by a cost profile. */
export class SimMachine {
  readonly meter = new WorkMeter();
  readonly visibility: PteVisibility;
  /**
   * Machine time (ps) at which the current or next run's time 0 falls: each run's engine counts
   * from 0, and runs follow one another, so reports can place every run on one time line.
   */
  timeBase = 0;
  private engine: Engine | null = null;
  private mmuRef: SimMmu | null = null;
  private pathRef: GuestAccessPath | null = null;
  private vmRef: Vm | null = null;

  /**
   * Whether runs use the engine's lookahead (Engine.mayRunAhead); it changes no result. It is
   * used only when a guest access and its walks cost whole picoseconds
   * (GuestAccessPath.walksChargeWholePs).
   */
  lookahead = true;
  /**
   * Whether a vCPU makes runs of accesses together: hits at once (GuestAccessPath.hitRun), and
   * flowing accesses without checking each first (SimVcpu.flowRun); it changes no result.
   */
  accessRuns = true;

  /**
   * Whether runs skip the periods of a lock convoy that repeat exactly ({@link FastForward}); it
   * changes no result but the engine's step count.
   */
  fastForward = true;
  /** Periods the fast-forward skipped in the last run. */
  periodsSkipped = 0;

  constructor(
    readonly profile: CostProfile,
    ptrsPerTable: number,
  ) {
    this.meter.cost.set(profile.workCost);
    this.visibility = new PteVisibility(ptrsPerTable, () => this.now());
  }

  /**
   * Options to build the VM with: the meter, the store observer, the TLBI hardware, and whether a
   * lock is held (for the host's lockless checks of its page-table locks).
   */
  vmHooks(): {
    meter: WorkMeter;
    pteObserver: PteVisibility;
    hw: Stage2Hw;
    locks: LockView;
  } {
    const hw: Stage2Hw = {
      tlbFlushVmidIpa: (ipa, level) => this.mmuRef?.log.invalidateIpa(ipa, level),
      tlbFlushVmid: () => this.mmuRef?.log.flushVmid(),
      dcacheCleanInvalPoc: () => {},
      icacheInvalPou: () => {},
      icacheInvalAll: () => {},
    };
    const locks: LockView = {
      takeFree: (lock) => (this.engine === null ? -1 : this.engine.takeFree(lock)),
    };
    return { meter: this.meter, pteObserver: this.visibility, hw, locks };
  }

  /**
   * Connects the VM built with {@link vmHooks}; call after its memslots exist. `guestPage`: the
   * guest's page size, what one cached stage-1 translation covers (default the host's).
   */
  attach(vm: Vm, guestPage: number = vm.geo.granule.size): void {
    this.vmRef = vm;
    this.mmuRef = new SimMmu(
      vm.pgt,
      this.visibility,
      this.meter,
      vm.cpu.hwAccessFlag,
      vm.vcpus.length,
      this.profile.tlb,
      vm.cpu.ttl,
    );
    for (const slot of vm.memslots.slots) this.mmuRef.log.track(slot.gpa, slot.size);
    this.pathRef = new GuestAccessPath(
      vm.vcpus.length,
      guestPage,
      vm.geo.granule.size,
      this.mmuRef,
      this.meter,
    );
  }

  /**
   * A digest of the state a report does not show, between runs: every TLB (entries with their
   * TLBI numbers, victims, recent slots), the TLBI history, the cached stage-1 translations, the
   * stage-2 table pages with their refcounts, and the memslots' dirty bitmaps. For tests that
   * check that two ways of running (the speed-ups on and off) leave the same state.
   */
  stateDigest(): string {
    const vm = this.vmRef;
    const mmu = this.mmuRef;
    const path = this.pathRef;
    if (vm === null || mmu === null || path === null) throw new Error("SimMachine: attach a VM first");
    const d = new Digest();
    d.add(mmu.walks);
    mmu.log.digest(d);
    for (const tlb of mmu.tlbs) tlb.digest(d, Infinity);
    path.digest(d);
    const mem = vm.pgt.mem;
    for (const page of mem.pages) d.addAll(page);
    d.addAll(mem.refcount);
    for (const slot of vm.memslots.slots) d.addAll(slot.dirtyBitmap ?? [-1]);
    return d.toString();
  }

  /** The vCPU whose code is running, or -1 (no timed run, or set-up between runs). */
  currentCpu(): number {
    return this.engine !== null ? this.engine.current : -1;
  }

  /** Virtual time of the running code (ps), or NaN when no simulated CPU is running. */
  now(): number {
    return this.engine !== null && this.engine.current >= 0 ? this.engine.timeNow() : Number.NaN;
  }

  /**
   * A virtual time no event still to come in the running simulation can precede (Engine.earliestToCome),
   * or -Infinity outside a run.
   */
  earliestToCome(): number {
    return this.engine !== null ? this.engine.earliestToCome() : -Infinity;
  }

  get mmu(): SimMmu {
    if (this.mmuRef === null) throw new Error("SimMachine: attach a VM first");
    return this.mmuRef;
  }

  /** The vCPUs' guest access path. */
  get path(): GuestAccessPath {
    if (this.pathRef === null) throw new Error("SimMachine: attach a VM first");
    return this.pathRef;
  }

  /**
   * Runs one guest program per vCPU from time 0 (vCPU i runs streams[i]). The vCPUs start one
   * vcpu-release apart in the order `release` lists them (default: by id), as the test's main
   * thread posts its semaphore once per vCPU. `onAccess` is called at each access. Returns when
   * all have finished.
   */
  run(
    streams: AccessStream[],
    onAccess: (n: number) => void = () => {},
    release: readonly number[] = streams.map((_, i) => i),
  ): RunTiming {
    const vm = this.vmRef;
    const path = this.pathRef;
    if (vm === null || path === null) throw new Error("SimMachine: attach a VM first");
    if (streams.length !== vm.vcpus.length) throw new Error("SimMachine: one stream per vCPU");
    const n = streams.length;
    if (
      release.length !== n ||
      new Set(release).size !== n ||
      !release.every((v) => Number.isInteger(v) && v >= 0 && v < n)
    ) {
      throw new Error("SimMachine: the release order must list every vCPU once");
    }
    const lookahead = this.lookahead && path.walksChargeWholePs();
    const engine = new Engine(this.meter, this.profile.engine, streams.length + 1, lookahead);
    this.engine = engine;
    // Every stage-2 store and TLBI of the model is made under kvm->mmu_lock.
    engine.storeLock = vm.mmuLock;
    this.visibility.clear();
    path.reset();
    path.accessRuns = this.accessRuns;
    const startPs = new Array<number>(streams.length);
    release.forEach((v, k) => {
      startPs[v] = (k + 1) * this.profile.vcpuRelease;
    });
    let accesses = 0;
    const counted = (n: number): void => {
      accesses += n;
      onAccess(n);
    };
    const vcpus = streams.map(
      (s, i) => new SimVcpu(vm, vm.vcpus[i]!, s, path, this.mmu, this.meter, engine, counted),
    );
    const ids = vcpus.map((v, i) => engine.spawn(v, startPs[i]!));
    const ff = this.fastForward
      ? new FastForward(
          vm,
          engine,
          vcpus,
          this.mmu,
          path,
          this.visibility,
          this.meter,
          () => accesses,
          counted,
        )
      : null;
    this.periodsSkipped = 0;
    try {
      const elapsedPs = engine.run();
      // The run lasted until its last task finished (engine.now is where the last one handled ended).
      this.timeBase += elapsedPs;
      return {
        elapsedPs,
        startPs,
        finishPs: ids.map((id) => engine.finishedAt(id)),
        steps: engine.steps,
        engine,
      };
    } finally {
      if (ff !== null) {
        this.periodsSkipped = ff.periodsSkipped;
        ff.detach();
      }
      this.visibility.clear();
      this.engine = null;
    }
  }
}
