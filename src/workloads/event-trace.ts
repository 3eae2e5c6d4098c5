/**
 * A stage's events as text: every walk step, PTE store, TLBI and CMO of the page-table code, the
 * fault path's decisions and the host's faults, GUPs and notifier calls, each with the virtual
 * time and the CPU that made it, up to a limit. It listens to the VM's events, so the simulator's
 * fast-forward is off meanwhile, until no event still to come can be among the earliest it keeps;
 * every result is the same.
 */
import type { Vm } from "../kvm/vm.js";
import { formatVmEvent } from "../kvm/trace-format.js";
import type { SimMachine } from "../sim/machine.js";

/** The recorded part of a stage's events. */
export interface StageTrace {
  /** Events the stage made while recorded: all of them when `complete`. */
  readonly events: number;
  /**
   * Whether the whole stage was recorded. False when recording stopped early, once every event
   * still to come was later in virtual time than the kept ones (the rest of the stage then runs
   * with the simulator's fast paths, which listening turns off).
   */
  readonly complete: boolean;
  /**
   * The earliest of them in virtual time (up to the limit), in time order, events of one instant
   * in the order they were made: `<time in us> <cpuN> <event>`.
   */
  readonly lines: string[];
}

/**
 * Heap bytes per kept line: the string, its time and number, and the copies the text or JSON
 * output makes of it (`-b 64M -v 8 --trace 1000000`, 1.93 M lines, needed about 900 MiB of heap).
 */
export const TRACE_LINE_HEAP_BYTES = 750;

/**
 * Records a {@link StageTrace} of the VM's events while started. The engine runs a CPU ahead of
 * the others while nothing they do can change what it does, so events are made out of time order:
 * the recorder keeps the `limit` earliest in a bounded max-heap on (time, number made), so an
 * event made later but earlier in time still gets in.
 */
export class EventTraceRecorder {
  /** The kept events as a max-heap: their lines, times (ps; -1 outside a CPU) and numbers. */
  private readonly lines: string[] = [];
  private readonly times: number[] = [];
  private readonly seqs: number[] = [];
  private events = 0;
  private stop: (() => void) | null = null;
  private complete = true;

  constructor(
    private readonly vm: Vm,
    private readonly machine: SimMachine,
    private readonly limit: number,
  ) {}

  /** Starts listening. */
  start(): void {
    if (this.stop !== null) return;
    this.stop = this.vm.events.subscribe((e) => {
      const seq = this.events++;
      const now = this.machine.now();
      const t = Number.isNaN(now) ? -1 : now;
      const full = this.lines.length >= this.limit;
      // Later than every kept event: not formatted at all (most events, once the heap is full).
      if (!full || this.before(t, seq, 0)) {
        const cpu = this.machine.currentCpu();
        // Picoseconds as microseconds with all six decimals: the model's own resolution.
        const time = t < 0 ? "-" : `${(t / 1e6).toFixed(6)}us`;
        const line = `${time} ${cpu >= 0 ? `cpu${cpu}` : "main"} ${formatVmEvent(e)}`;
        if (full) this.replaceTop(line, t, seq);
        else this.push(line, t, seq);
      }
      // Every event to come is at earliestToCome or later, and made after these: none can get in.
      // (No event of a run is made outside a CPU, t = -1, which would sort first.)
      if (this.lines.length >= this.limit && t >= 0 && this.times[0]! < this.machine.earliestToCome()) {
        this.stop?.();
        this.stop = null;
        this.complete = false;
      }
    });
  }

  /** Stops listening and returns what it kept, in time order. */
  finish(): StageTrace {
    this.stop?.();
    this.stop = null;
    const order = this.lines.map((_, i) => i);
    order.sort((a, b) => this.times[a]! - this.times[b]! || this.seqs[a]! - this.seqs[b]!);
    return { events: this.events, complete: this.complete, lines: order.map((i) => this.lines[i]!) };
  }

  /** Whether (t, seq) comes before the kept event at heap slot `i`. */
  private before(t: number, seq: number, i: number): boolean {
    return t < this.times[i]! || (t === this.times[i]! && seq < this.seqs[i]!);
  }

  private push(line: string, t: number, seq: number): void {
    let i = this.lines.length;
    this.lines.push(line);
    this.times.push(t);
    this.seqs.push(seq);
    // Sift up: a parent comes after its children.
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(this.times[p]!, this.seqs[p]!, i)) break;
      this.swap(i, p);
      i = p;
    }
  }

  private replaceTop(line: string, t: number, seq: number): void {
    this.lines[0] = line;
    this.times[0] = t;
    this.seqs[0] = seq;
    const n = this.lines.length;
    for (let i = 0; ;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let last = i;
      if (l < n && this.before(this.times[last]!, this.seqs[last]!, l)) last = l;
      if (r < n && this.before(this.times[last]!, this.seqs[last]!, r)) last = r;
      if (last === i) return;
      this.swap(i, last);
      i = last;
    }
  }

  private swap(a: number, b: number): void {
    [this.lines[a], this.lines[b]] = [this.lines[b]!, this.lines[a]!];
    [this.times[a], this.times[b]] = [this.times[b]!, this.times[a]!];
    [this.seqs[a], this.seqs[b]] = [this.seqs[b]!, this.seqs[a]!];
  }
}
