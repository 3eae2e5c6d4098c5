/**
 * The hardware operations the stage-2 code issues. The page-table code reports each one as an
 * event and then calls the matching method here; the simulator supplies an implementation that
 * charges time and updates the vCPUs' TLBs, tests use {@link NULL_HW}.
 */
import type { CpuFeatures } from "../arch/cpu.js";
import { W, type WorkMeter } from "../common/work.js";
import type { CmoOp, PgtableSink } from "./events.js";

const W_DC_CIVAC_LINE = W["dc-civac-line"];
const W_IC_IALLU = W["ic-iallu"];
const W_IC_IVAU_LINE = W["ic-ivau-line"];
// Declared before its use in linesIn: a later declaration costs a hole check at every read.
const TWO_53 = 2 ** 53;
/**
 * The line size linesIn last saw and its reciprocal, always set together (so invOfLine is
 * 1 / invLine at every read); declared before use, as TWO_53 is.
 */
let invLine = 1;
let invOfLine = 1;

/** TLB and cache maintenance as the CPU performs it. */
export interface Stage2Hw {
  /** __kvm_tlb_flush_vmid_ipa: TLBI IPAS2E1IS at `level` + TLBI VMALLE1IS, broadcast. */
  tlbFlushVmidIpa(ipa: number, level: number): void;
  /** __kvm_tlb_flush_vmid: TLBI VMALLS12E1IS, broadcast. */
  tlbFlushVmid(): void;
  /** DC CIVAC over the linear alias of [pa, pa + size), then DSB. */
  dcacheCleanInvalPoc(pa: number, size: number): void;
  /** IC IVAU over the linear alias of [pa, pa + size), then DSB ISH, ISB. */
  icacheInvalPou(pa: number, size: number): void;
  /** IC IALLUIS. */
  icacheInvalAll(): void;
}

/** Hardware that does nothing beyond the events the model emits. */
export const NULL_HW: Stage2Hw = {
  tlbFlushVmidIpa() {},
  tlbFlushVmid() {},
  dcacheCleanInvalPoc() {},
  icacheInvalPou() {},
  icacheInvalAll() {},
};

/** What the page-table code needs from its surroundings besides memory. */
export interface Stage2Env {
  readonly cpu: CpuFeatures;
  readonly hw: Stage2Hw;
  readonly events: PgtableSink;
  /** Where executed work is counted (and, under the simulator, priced). */
  readonly meter: WorkMeter;
}

/** The kernel's dcache_clean_inval_poc on a linear-map range: always performed. */
export function dcacheCleanInvalPoc(env: Stage2Env, pa: number, size: number): void {
  if (env.events.active) emitCmo(env, "dc-civac", pa, size);
  env.meter.charge(W_DC_CIVAC_LINE, linesIn(pa, size, env.cpu.dcacheLine));
  env.hw.dcacheCleanInvalPoc(pa, size);
}

/** A `cmo` event (out of line: keeps the CMO functions small enough to inline). */
function emitCmo(env: Stage2Env, op: CmoOp, pa: number, size: number): void {
  const ev = env.events;
  if (ev.tap !== null) ev.tap.cmo(op, pa, size);
  if (ev.wants["cmo"]) ev.emit({ kind: "cmo", op, pa, size });
}

/** __clean_dcache_guest_page: skipped with FWB, otherwise clean+invalidate to the PoC. */
export function cleanDcacheGuestPage(env: Stage2Env, pa: number, size: number): void {
  if (env.cpu.fwb) return;
  dcacheCleanInvalPoc(env, pa, size);
}

/**
 * icache_inval_all_pou (__flush_icache_all in v5.12): IC IALLUIS then DSB ISH, the whole I-cache
 * of every CPU; nothing with DIC. The event carries the range whose maintenance caused it (0, 0
 * when there is none).
 */
export function icacheInvalAll(env: Stage2Env, pa: number, size: number): void {
  if (env.cpu.dic) return;
  if (env.events.active) emitCmo(env, "ic-ialluis", pa, size);
  env.meter.charge(W_IC_IALLU, 1);
  env.hw.icacheInvalAll();
}

/**
 * __invalidate_icache_guest_page: the whole I-cache if it aliases (VIPT); by line unless the
 * I-cache is VPIPT under nVHE (then the TLBI path invalidates it, see Stage2Pgtable); with DIC
 * neither is needed (the whole-cache flush returns at once, the by-line one leaves only an ISB).
 */
export function invalidateIcacheGuestPage(env: Stage2Env, pa: number, size: number): void {
  const cpu = env.cpu;
  if (cpu.icache === "vipt") {
    icacheInvalAll(env, pa, size);
    return;
  }
  if (cpu.vhe || cpu.icache !== "vpipt") {
    if (cpu.dic) return;
    if (env.events.active) emitCmo(env, "ic-ivau", pa, size);
    env.meter.charge(W_IC_IVAU_LINE, linesIn(pa, size, env.cpu.icacheLine));
    env.hw.icacheInvalPou(pa, size);
  }
}

/**
 * Cache lines a by-VA maintenance loop over [pa, pa + size) touches:
 * ceil((pa + size - (pa - pa % line)) / line). For a power-of-two line (as real lines are) and
 * 0 <= pa, pa + size < 2^53 that is ceil((pa + size) / line) - floor(pa / line), and dividing by
 * the line is multiplying by its reciprocal, both exact; that form avoids a floating-point modulo.
 */
function linesIn(pa: number, size: number, line: number): number {
  const end = pa + size;
  if (pa >= 0 && end < TWO_53 && line > 0 && (line | 0) === line && (line & (line - 1)) === 0) {
    // The reciprocal of the last line size seen: a division per call costs more than the rest.
    if (line !== invLine) {
      invLine = line;
      invOfLine = 1 / line;
    }
    return Math.ceil(end * invOfLine) - Math.floor(pa * invOfLine);
  }
  return linesInAny(pa, size, line);
}

/** {@link linesIn} by the general formula (out of line: keeps linesIn small to inline). */
function linesInAny(pa: number, size: number, line: number): number {
  return Math.ceil((pa + size - (pa - (pa % line))) / line);
}
