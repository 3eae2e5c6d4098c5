/**
 * The recent history a violation report shows: the last page-table events, host allocations and
 * TLB fills, each with the vCPU and virtual time it happened at, kept in a fixed-size ring.
 */
import { hex, sizeName } from "../common/format.js";
import { pteBig } from "../arch/descriptor.js";
import type { CmoOp, PgtableEvent } from "../pgtable/events.js";
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

/** Record kinds in the ring (the low 4 bits of a record's meta word). */
const R_FILL = 0;
const R_PTE = 1;
const R_TLBI_IPA = 2;
const R_TLBI_VMID = 3;
const R_CMO = 4;
const R_TABLE_ALLOC = 5;
const R_PAGE_FREE = 6;
const R_HOST_ALLOC = 7;

/** The CMO operations, by their code in the ring. */
const CMO_OPS: readonly CmoOp[] = ["dc-civac", "ic-ivau", "ic-ialluis"];

/**
 * A ring of the most recent events, kept as numbers in typed arrays and only turned into event
 * records when a report asks for them: recording allocates nothing and retains no object, so the
 * collector never has to promote or trace them.
 */
export class EventHistory {
  /** Per record: time, address, aux (3 doubles; see {@link put}). */
  private readonly rec: Float64Array;
  /** Per record: kind | (level + 1) << 4 | small << 8 (level < 15, small < 2^23), and the vCPU. */
  private readonly meta: Int32Array;
  /** Per pte record: the old and new descriptor words. */
  private readonly words: Uint32Array;
  private next = 0;
  private count = 0;

  /**
   * @param levelSize bytes an entry of each level maps
   * @param pagePa the physical address of a table page (for the records)
   */
  constructor(
    private readonly levelSize: LevelSizeTable,
    private readonly pagePa: (page: number) => number,
    readonly capacity = 65536,
  ) {
    this.rec = new Float64Array(3 * capacity);
    this.meta = new Int32Array(2 * capacity);
    this.words = new Uint32Array(4 * capacity);
  }

  /** Records a descriptor store (the words are unsigned 32-bit numbers). */
  addPte(
    time: number,
    cpu: number,
    page: number,
    index: number,
    level: number,
    ipa: number,
    oldLo: number,
    oldHi: number,
    newLo: number,
    newHi: number,
  ): void {
    const i = this.put(R_PTE, time, cpu, ipa, page, level, index);
    const w = this.words;
    w[4 * i] = oldLo;
    w[4 * i + 1] = oldHi;
    w[4 * i + 2] = newLo;
    w[4 * i + 3] = newHi;
  }

  /** Records a TLBI by IPA with level hint `level`. */
  addTlbiIpa(time: number, cpu: number, ipa: number, level: number): void {
    this.put(R_TLBI_IPA, time, cpu, ipa, 0, level, 0);
  }

  /** Records a whole-VMID TLBI. */
  addTlbiVmid(time: number, cpu: number): void {
    this.put(R_TLBI_VMID, time, cpu, 0, 0, 0, 0);
  }

  /** Records cache maintenance over [pa, pa + size). */
  addCmo(time: number, cpu: number, op: CmoOp, pa: number, size: number): void {
    this.put(R_CMO, time, cpu, pa, size, 0, CMO_OPS.indexOf(op));
  }

  /** Records the allocation of table page `page` for `level`. */
  addTableAlloc(time: number, cpu: number, page: number, level: number): void {
    this.put(R_TABLE_ALLOC, time, cpu, page, 0, level, 0);
  }

  /** Records the freeing of table page `page`. */
  addPageFree(time: number, cpu: number, page: number): void {
    this.put(R_PAGE_FREE, time, cpu, page, 0, 0, 0);
  }

  /** Records a host write of fresh contents over [pa, pa + size). */
  addHostAlloc(time: number, cpu: number, pa: number, size: number): void {
    this.put(R_HOST_ALLOC, time, cpu, pa, size, 0, 0);
  }

  /** Records a TLB fill of a `level` leaf [base, +size) -> pa. */
  addFill(time: number, cpu: number, base: number, level: number, pa: number, perms: number): void {
    this.put(R_FILL, time, cpu, base, pa, level, perms);
  }

  /**
   * Appends a record: `addr` is the IPA (pte, tlbi, fill), PA (cmo, host write) or table page
   * (alloc, free); `aux` the table page (pte), size (cmo, host write) or output address (fill);
   * `small` the entry index (pte), permissions (fill) or CMO code. Returns its slot.
   */
  private put(
    kind: number,
    time: number,
    cpu: number,
    addr: number,
    aux: number,
    level: number,
    small: number,
  ): number {
    const i = this.next;
    const rec = this.rec;
    rec[3 * i] = time;
    rec[3 * i + 1] = addr;
    rec[3 * i + 2] = aux;
    this.meta[2 * i] = kind | ((level + 1) << 4) | (small << 8);
    this.meta[2 * i + 1] = cpu;
    this.next = i + 1 === this.capacity ? 0 : i + 1;
    if (this.count < this.capacity) this.count++;
    return i;
  }

  /** The record in slot `i`, as the event the model emitted. */
  private eventAt(i: number): HistoryEvent {
    const m = this.meta[2 * i]!;
    const level = ((m >> 4) & 15) - 1;
    const small = m >> 8;
    const addr = this.rec[3 * i + 1]!;
    const aux = this.rec[3 * i + 2]!;
    const w = this.words;
    switch (m & 15) {
      case R_PTE:
        return {
          kind: "pte",
          ipa: addr,
          level,
          table: this.pagePa(aux),
          index: small,
          old: pteBig(w[4 * i]!, w[4 * i + 1]!),
          new: pteBig(w[4 * i + 2]!, w[4 * i + 3]!),
        };
      case R_TLBI_IPA:
        return { kind: "tlbi", scope: "vmid-ipa", ipa: addr, level };
      case R_TLBI_VMID:
        return { kind: "tlbi", scope: "vmid" };
      case R_CMO:
        return { kind: "cmo", op: CMO_OPS[small]!, pa: addr, size: aux };
      case R_TABLE_ALLOC:
        return { kind: "table-alloc", pa: this.pagePa(addr), level };
      case R_PAGE_FREE:
        return { kind: "page-free", pa: this.pagePa(addr) };
      case R_HOST_ALLOC:
        return { kind: "host-alloc", pa: addr, size: aux };
      default:
        return { kind: "tlb-fill", base: addr, size: this.levelSize[level]!, level, pa: aux, perms: small };
    }
  }

  /** The last `max` recorded events about `focus`, oldest first, one line each. */
  lines(focus: Focus, max = 16): string[] {
    const out: string[] = [];
    for (let k = 0; k < this.count && out.length < max; k++) {
      const i = (this.next - 1 - k + this.capacity) % this.capacity;
      const e = this.eventAt(i);
      if (!this.relevant(e, focus)) continue;
      if (e.kind === "tlb-fill") {
        if (focus.cpu !== undefined && this.meta[2 * i + 1] !== focus.cpu) continue;
        if (focus.fillBases !== undefined && !focus.fillBases.includes(e.base)) continue;
      }
      out.push(
        `${formatTime(this.rec[3 * i]!).padStart(18)}  ${formatCpu(this.meta[2 * i + 1]!).padEnd(8)} ${describe(e)}`,
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
