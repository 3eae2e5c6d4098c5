/**
 * The recent history a violation report shows: the last page-table events, host allocations and
 * TLB fills, each with the vCPU and virtual time it happened at, kept in a fixed-size ring.
 */
import { hex, sizeName } from "../common/format.js";
import type { PgtableEvent } from "../pgtable/events.js";
import { formatPgtableEvent } from "../pgtable/trace-format.js";

/** A TLB fill, as the history records it. */
export interface TlbFillRecord {
  readonly kind: "tlb-fill";
  readonly base: number;
  readonly size: number;
  readonly level: number;
  readonly pa: number;
  readonly perms: number;
}

/** A host write of fresh page contents (allocation and zeroing, or a copy). */
export interface HostWriteRecord {
  readonly kind: "host-alloc";
  readonly pa: number;
  readonly size: number;
}

/** What the history holds. */
export type HistoryEvent = PgtableEvent | TlbFillRecord | HostWriteRecord;

/** Which events a report is about: an IPA range (and entries no smaller than maxLevel), a PA range. */
export interface Focus {
  readonly ipa: number;
  readonly ipaEnd: number;
  /** Only PTE events of this level or above (larger entries) are shown. */
  readonly level: number;
  readonly pa?: number;
  readonly paEnd?: number;
  /** A table page whose allocation, refcount and free are relevant. */
  readonly tablePa?: number;
  /** Only this vCPU's TLB fills are relevant (default: every vCPU's). */
  readonly cpu?: number;
  /** Only TLB fills of entries at these IPA bases are relevant (default: any in the range). */
  readonly fillBases?: readonly number[];
}

/** Bytes mapped by an entry of each level (index = level), for range tests. */
export type LevelSizeTable = readonly number[];

/** Renders a virtual time in picoseconds as microseconds, or "untimed" (between timed runs). */
export function formatTime(ps: number): string {
  return Number.isNaN(ps) ? "untimed" : `${(ps / 1e6).toFixed(6)} us`;
}

/** Renders the CPU an event ran on. */
export function formatCpu(cpu: number): string {
  return cpu >= 0 ? `vCPU ${cpu}` : "host";
}

/**
 * A ring of the most recent events. TLB fills, the most frequent, are kept in typed arrays and
 * only turned into records when a report asks for them.
 */
export class EventHistory {
  private readonly time: Float64Array;
  private readonly cpu: Int32Array;
  /** An event object, or null for a TLB fill held in the fill arrays. */
  private readonly events: Array<HistoryEvent | null>;
  private readonly fillBase: Float64Array;
  private readonly fillPa: Float64Array;
  private readonly fillLevel: Int8Array;
  private readonly fillPerms: Uint8Array;
  private next = 0;
  private count = 0;

  constructor(
    private readonly levelSize: LevelSizeTable,
    readonly capacity = 65536,
  ) {
    this.time = new Float64Array(capacity);
    this.cpu = new Int32Array(capacity);
    this.events = new Array<HistoryEvent | null>(capacity).fill(null);
    this.fillBase = new Float64Array(capacity);
    this.fillPa = new Float64Array(capacity);
    this.fillLevel = new Int8Array(capacity);
    this.fillPerms = new Uint8Array(capacity);
  }

  /** Records an event. */
  add(time: number, cpu: number, e: HistoryEvent): void {
    this.events[this.slot(time, cpu)] = e;
  }

  /** Records a TLB fill of a `level` leaf [base, +size) -> pa. */
  addFill(time: number, cpu: number, base: number, level: number, pa: number, perms: number): void {
    const i = this.slot(time, cpu);
    this.events[i] = null;
    this.fillBase[i] = base;
    this.fillLevel[i] = level;
    this.fillPa[i] = pa;
    this.fillPerms[i] = perms;
  }

  private slot(time: number, cpu: number): number {
    const i = this.next;
    this.time[i] = time;
    this.cpu[i] = cpu;
    this.next = i + 1 === this.capacity ? 0 : i + 1;
    if (this.count < this.capacity) this.count++;
    return i;
  }

  private eventAt(i: number): HistoryEvent {
    const e = this.events[i];
    if (e !== null && e !== undefined) return e;
    const level = this.fillLevel[i]!;
    return {
      kind: "tlb-fill",
      base: this.fillBase[i]!,
      size: this.levelSize[level]!,
      level,
      pa: this.fillPa[i]!,
      perms: this.fillPerms[i]!,
    };
  }

  /** The last `max` recorded events about `focus`, oldest first, one line each. */
  lines(focus: Focus, max = 16): string[] {
    const out: string[] = [];
    for (let k = 0; k < this.count && out.length < max; k++) {
      const i = (this.next - 1 - k + this.capacity) % this.capacity;
      const e = this.eventAt(i);
      if (!this.relevant(e, focus)) continue;
      if (e.kind === "tlb-fill") {
        if (focus.cpu !== undefined && this.cpu[i] !== focus.cpu) continue;
        if (focus.fillBases !== undefined && !focus.fillBases.includes(e.base)) continue;
      }
      out.push(
        `${formatTime(this.time[i]!).padStart(18)}  ${formatCpu(this.cpu[i]!).padEnd(8)} ${describe(e)}`,
      );
    }
    return out.reverse();
  }

  private relevant(e: HistoryEvent, f: Focus): boolean {
    switch (e.kind) {
      case "pte":
        return e.level <= f.level && overlaps(e.ipa, e.ipa + this.levelSize[e.level]!, f.ipa, f.ipaEnd);
      case "tlbi":
        return e.scope === "vmid" || (e.ipa >= f.ipa && e.ipa < f.ipaEnd);
      case "tlb-fill":
        return overlaps(e.base, e.base + e.size, f.ipa, f.ipaEnd);
      case "cmo":
      case "host-alloc":
        return f.pa !== undefined && overlaps(e.pa, e.pa + e.size, f.pa, f.paEnd ?? f.pa + 1);
      case "table-alloc":
      case "page-free":
      case "refcount":
        return f.tablePa !== undefined && e.pa === f.tablePa;
      case "op":
      case "op-done":
        return false;
    }
  }
}

function overlaps(a: number, aEnd: number, b: number, bEnd: number): boolean {
  return a < bEnd && b < aEnd;
}

function describe(e: HistoryEvent): string {
  switch (e.kind) {
    case "tlb-fill":
      return `tlb-fill L${e.level} ipa=${hex(e.base)} size=${sizeName(e.size)} -> pa=${hex(e.pa)} perms=${permsName(e.perms)}`;
    case "host-alloc":
      return `host writes (alloc+zero) pa=${hex(e.pa)} size=${sizeName(e.size)}`;
    default:
      return formatPgtableEvent(e).trim();
  }
}

/** R/W/X permissions as text, e.g. "RW-". */
export function permsName(p: number): string {
  return `${p & 1 ? "R" : "-"}${p & 2 ? "W" : "-"}${p & 4 ? "X" : "-"}`;
}
