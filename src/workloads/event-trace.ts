/**
 * A stage's events as text: every walk step, PTE store, TLBI and CMO of the page-table code, the
 * fault path's decisions and the host's faults, GUPs and notifier calls, each with the virtual
 * time and the CPU that made it, up to a limit. It listens to the VM's events, so the simulator's
 * fast-forward is off meanwhile; every result is the same.
 */
import type { Vm } from "../kvm/vm.js";
import { formatVmEvent } from "../kvm/trace-format.js";
import type { SimMachine } from "../sim/machine.js";

/** The recorded part of a stage's events. */
export interface StageTrace {
  /** Events the stage emitted in all. */
  readonly events: number;
  /**
   * The first of them the simulation made, in virtual-time order: `<time in us> <cpuN> <event>`.
   * (The engine runs a CPU ahead of the others while nothing they do can change what it does, so
   * it makes events out of time order; near the limit an event made later may be earlier.)
   */
  readonly lines: string[];
}

/** Heap bytes per recorded line (the string and its slot), for the memory estimate. */
export const TRACE_LINE_HEAP_BYTES = 200;

/** Records a {@link StageTrace} of the VM's events while started. */
export class EventTraceRecorder {
  private readonly lines: string[] = [];
  /** Each line's virtual time (ps; NaN outside a CPU's code), for the sort. */
  private readonly times: number[] = [];
  private events = 0;
  private stop: (() => void) | null = null;

  constructor(
    private readonly vm: Vm,
    private readonly machine: SimMachine,
    private readonly limit: number,
  ) {}

  /** Starts listening. */
  start(): void {
    if (this.stop !== null) return;
    this.stop = this.vm.events.subscribe((e) => {
      this.events++;
      if (this.lines.length >= this.limit) return;
      const t = this.machine.now();
      const cpu = this.machine.currentCpu();
      // Picoseconds as microseconds with all six decimals: the model's own resolution.
      const time = Number.isNaN(t) ? "-" : `${(t / 1e6).toFixed(6)}us`;
      this.lines.push(`${time} ${cpu >= 0 ? `cpu${cpu}` : "main"} ${formatVmEvent(e)}`);
      this.times.push(t);
    });
  }

  /** Stops listening and returns what it recorded. */
  finish(): StageTrace {
    this.stop?.();
    this.stop = null;
    // In time order; events of one instant keep the order they were made in (a stable sort).
    const order = this.lines.map((_, i) => i);
    const key = (i: number): number => (Number.isNaN(this.times[i]!) ? -1 : this.times[i]!);
    order.sort((a, b) => key(a) - key(b));
    return { events: this.events, lines: order.map((i) => this.lines[i]!) };
  }
}
