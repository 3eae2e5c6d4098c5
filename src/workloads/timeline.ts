/**
 * A stage's timeline along the test region: per chunk of the region (e.g. 64 MiB), what the fault
 * path did there and when the last fault there was handled. It shows a race that changes regime
 * along the run (the CREATE stage on zero-page-backed memory, docs/calibration.md), which the
 * stage's totals average away. It listens to the VM's events, so the simulator's fast-forward is
 * off while it records; every result is the same.
 */
import { EAGAIN } from "../common/errno.js";
import type { Vm } from "../kvm/vm.js";
import type { SimMachine } from "../sim/machine.js";

/** What happened in one chunk of the region during a stage. */
export interface TimelineRow {
  /** Offset of the chunk in the test region, bytes. */
  readonly offset: number;
  /**
   * When the last fault handled for an address in the chunk returned (seconds from the stage's
   * start), or null when no fault there was handled.
   */
  readonly done_s: number | null;
  /** Guest aborts on addresses in the chunk (not S1PTW faults, which are on the guest's tables). */
  readonly aborts: number;
  readonly maps: number;
  readonly relaxes: number;
  /** mmu_notifier_retry returns. */
  readonly retries: number;
  /** Maps and relaxes that returned -EAGAIN. */
  readonly eagain: number;
  /**
   * Bytes cleaned to the PoC (DC CIVAC) while a vCPU handled a fault in the chunk, including the
   * cleans of the notifier calls its GUP made.
   */
  readonly dcache_bytes: number;
}

/** A stage's timeline: its chunk size and one row per chunk, in address order. */
export interface StageTimeline {
  readonly chunk_bytes: number;
  readonly rows: TimelineRow[];
}

const PS = 1e-12;

/** Records a {@link StageTimeline} of the VM's faults on [base, base + size) while started. */
export class TimelineRecorder {
  private readonly chunks: number;
  private readonly inv: number;
  private readonly aborts: Float64Array;
  private readonly maps: Float64Array;
  private readonly relaxes: Float64Array;
  private readonly retries: Float64Array;
  private readonly eagain: Float64Array;
  private readonly dcache: Float64Array;
  private readonly done: Float64Array;
  /** Per vCPU, the chunk of the fault it is handling (-1: none in the region). */
  private readonly current: Int32Array;
  private stop: (() => void) | null = null;

  constructor(
    private readonly vm: Vm,
    private readonly machine: SimMachine,
    private readonly base: number,
    private readonly size: number,
    private readonly chunk: number,
  ) {
    this.chunks = Math.ceil(size / chunk);
    this.inv = 1 / chunk;
    this.aborts = new Float64Array(this.chunks);
    this.maps = new Float64Array(this.chunks);
    this.relaxes = new Float64Array(this.chunks);
    this.retries = new Float64Array(this.chunks);
    this.eagain = new Float64Array(this.chunks);
    this.dcache = new Float64Array(this.chunks);
    this.done = new Float64Array(this.chunks).fill(Number.NaN);
    this.current = new Int32Array(vm.vcpus.length).fill(-1);
  }

  /** The chunk of guest address `ipa`, or -1 outside the region. */
  private chunkOf(ipa: number): number {
    if (ipa < this.base || ipa >= this.base + this.size) return -1;
    return Math.floor((ipa - this.base) * this.inv);
  }

  /** Starts listening (the stage's time 0 is the machine's run start). */
  start(): void {
    if (this.stop !== null) return;
    this.stop = this.vm.events.subscribe(
      (e) => {
        switch (e.kind) {
          case "guest-abort": {
            const c = this.chunkOf(e.ipa);
            this.current[e.vcpu] = c;
            if (c >= 0) this.aborts[c]!++;
            return;
          }
          case "fault-action": {
            const c = this.chunkOf(e.ipa);
            if (c < 0) return;
            if (e.action === "map") this.maps[c]!++;
            else if (e.action === "relax") this.relaxes[c]!++;
            else if (e.action === "retry") this.retries[c]!++;
            if (e.ret === EAGAIN) this.eagain[c]!++;
            const t = this.machine.now();
            if (!(t <= this.done[c]!)) this.done[c] = t;
            return;
          }
          case "cmo": {
            if (e.op !== "dc-civac") return;
            const cpu = this.machine.currentCpu();
            const c = cpu >= 0 && cpu < this.current.length ? this.current[cpu]! : -1;
            if (c >= 0) this.dcache[c]! += e.size;
            return;
          }
        }
      },
      ["guest-abort", "fault-action", "cmo"],
    );
  }

  /** Stops listening and returns the timeline. */
  finish(): StageTimeline {
    this.stop?.();
    this.stop = null;
    const rows: TimelineRow[] = [];
    for (let c = 0; c < this.chunks; c++) {
      const done = this.done[c]!;
      rows.push({
        offset: c * this.chunk,
        done_s: Number.isNaN(done) ? null : done * PS,
        aborts: this.aborts[c]!,
        maps: this.maps[c]!,
        relaxes: this.relaxes[c]!,
        retries: this.retries[c]!,
        eagain: this.eagain[c]!,
        dcache_bytes: this.dcache[c]!,
      });
    }
    return { chunk_bytes: this.chunk, rows };
  }
}
