/**
 * One execution of a guest memory access on the simulated machine: a guest instruction, a stage-1
 * walk when the access moves to a new page, and stage-2 translations through the vCPU's TLB for
 * the stage-1 table pages the walk reads and for the data. Callers must be in sync (the earliest
 * thing in the simulation) since a translation reads tables and the TLBI history.
 */
import { W, type WorkMeter } from "../common/work.js";
import type { GuestAccess } from "../pgtable/hw-walk.js";
import { type SimMmu, XLATE_OK } from "./mmu.js";

// Module-private copies: V8 folds these into the code, while an imported binding is re-read.
const W_GUEST_ACCESS = W["guest-access"];
const W_S1_WALK = W["s1-walk"];

/** A guest access as the simulator mutates it in place (one per vCPU). */
export type MutableGuestAccess = { -readonly [K in keyof GuestAccess]: GuestAccess[K] };

/** The guest-side access path of every vCPU. */
export class GuestAccessPath {
  /** Page each vCPU last accessed (its stage-1 translation is still cached). */
  private readonly lastPage: Float64Array;
  private readonly pageInv: number;

  constructor(
    vcpus: number,
    pageSize: number,
    private readonly mmu: SimMmu,
    private readonly meter: WorkMeter,
  ) {
    this.lastPage = new Float64Array(vcpus).fill(-1);
    this.pageInv = 1 / pageSize;
  }

  /** Forgets cached stage-1 translations (a new stage's first access walks again). */
  reset(): void {
    this.lastPage.fill(-1);
  }

  /**
   * Executes the access at `now`; true when it completes. When it faults, `fault` is set to the
   * access the MMU reports (the data access, or the S1PTW read of a table page) and the MMU holds
   * the fault status and level.
   */
  attempt(
    cpu: number,
    ipa: number,
    write: boolean,
    tables: Float64Array,
    nTables: number,
    now: number,
    fault: MutableGuestAccess,
  ): boolean {
    const meter = this.meter;
    const mmu = this.mmu;
    meter.charge(W_GUEST_ACCESS, 1);
    const page = Math.floor(ipa * this.pageInv);
    if (page !== this.lastPage[cpu]) {
      meter.charge(W_S1_WALK, 1);
      for (let i = 0; i < nTables; i++) {
        const t = tables[i]!;
        // The stage-1 walker's read of a guest table page; KVM treats its faults as writes.
        if (mmu.translate(cpu, t, true, false, now) !== XLATE_OK) {
          fault.ipa = t;
          fault.write = false;
          fault.exec = false;
          fault.s1ptw = true;
          return false;
        }
      }
    }
    if (mmu.translate(cpu, ipa, write, false, now) !== XLATE_OK) {
      fault.ipa = ipa;
      fault.write = write;
      fault.exec = false;
      fault.s1ptw = false;
      return false;
    }
    this.lastPage[cpu] = page;
    return true;
  }
}
