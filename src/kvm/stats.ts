/**
 * Counters of the fault path kept without events (cheap enough for the simulator's hot loop):
 * guest aborts by fault class and level, and what the handler did.
 */
import { EAGAIN } from "../common/errno.js";
import type { FaultStatus } from "../pgtable/hw-walk.js";
import type { FaultAction } from "./events.js";

const FSC_INDEX: Record<FaultStatus, number> = { translation: 0, permission: 1, access: 2 };
const FSCS: readonly FaultStatus[] = ["translation", "permission", "access"];
const ACTION_INDEX: Record<FaultAction, number> = { map: 0, relax: 1, retry: 2, mkyoung: 3 };
const ACTIONS: readonly FaultAction[] = ["map", "relax", "retry", "mkyoung"];

/** Fault-path counters of one VM. */
export class FaultStats {
  /** Aborts, indexed fsc * 4 + level. */
  readonly aborts = new Float64Array(12);
  /** Handler outcomes, indexed by action. */
  readonly actions = new Float64Array(4);
  /** Outcomes that returned -EAGAIN, indexed by action. */
  readonly eagain = new Float64Array(4);
  /** Stage-2 aborts on the guest's own stage-1 table walk. */
  s1ptw = 0;

  /** Counts one abort reported to kvm_handle_guest_abort. */
  abort(fsc: FaultStatus, level: number, s1ptw: boolean): void {
    this.aborts[FSC_INDEX[fsc] * 4 + level]!++;
    if (s1ptw) this.s1ptw++;
  }

  /** Counts what the handler did and its return value. */
  action(action: FaultAction, ret: number): void {
    const i = ACTION_INDEX[action];
    this.actions[i]!++;
    if (ret === EAGAIN) this.eagain[i]!++;
  }

  /** A copy of the counters, to subtract later. */
  snapshot(): FaultStats {
    const s = new FaultStats();
    s.aborts.set(this.aborts);
    s.actions.set(this.actions);
    s.eagain.set(this.eagain);
    s.s1ptw = this.s1ptw;
    return s;
  }

  /** The counts since `before`, as plain objects ("translation-L3": n, ...). */
  since(before: FaultStats): FaultCounts {
    const faults: Record<string, number> = {};
    for (let f = 0; f < 3; f++) {
      for (let l = 0; l < 4; l++) {
        const n = this.aborts[f * 4 + l]! - before.aborts[f * 4 + l]!;
        if (n > 0) faults[`${FSCS[f]}-L${l}`] = n;
      }
    }
    const actions: Record<string, number> = {};
    const eagain: Record<string, number> = {};
    ACTIONS.forEach((a, i) => {
      actions[a] = this.actions[i]! - before.actions[i]!;
      eagain[a] = this.eagain[i]! - before.eagain[i]!;
    });
    return { faults, s1ptw: this.s1ptw - before.s1ptw, actions, eagain };
  }
}

/** Fault-path counts over an interval. */
export interface FaultCounts {
  /** Aborts by "fsc-Llevel". */
  readonly faults: Record<string, number>;
  readonly s1ptw: number;
  /** Handler outcomes by action (map, relax, retry, mkyoung). */
  readonly actions: Record<string, number>;
  /** Of those, the ones that returned -EAGAIN. */
  readonly eagain: Record<string, number>;
}
