/**
 * The TLB rules, checked on the simulated vCPUs' TLBs (entries of their real size):
 * - conflict: caching a leaf while a live entry overlaps it with another size or output address;
 * - stale translation: a hit on an entry the tables (as visible at that time) no longer agree
 *   with: they do not map the address, map it elsewhere, or grant less. TLBIs take effect when
 *   the code issuing them runs, so with a correct kernel no CPU can hit an entry whose change was
 *   made without its TLBI. A clear access flag is not a disagreement (the kernel's mkold leaves
 *   cached copies alone by design).
 */
import { ATTR_HI_XN, ATTR_LO_AF, ATTR_LO_S2AP_R, ATTR_LO_S2AP_W, pteOa } from "../arch/descriptor.js";
import { hex, sizeName } from "../common/format.js";
import { leafPerms } from "../pgtable/hw-walk.js";
import type { SimMmu } from "../sim/mmu.js";
import type { CheckEnv, PteChange } from "./env.js";
import { isLeafDesc } from "./env.js";
import { permsName } from "./history.js";

const PERM_LO = ATTR_LO_S2AP_R | ATTR_LO_S2AP_W;
/** Low-word bits a valid descriptor may gain (or lose, see losesPerm) without changing its target. */
const GROW_LO = PERM_LO | ATTR_LO_AF;

/** The TLB conflict and stale-translation checkers. */
export class TlbChecker {
  /**
   * Only a store that takes something from a valid descriptor can make a cached copy stale. Such
   * stores are numbered (`serial`); each level-2 block remembers the number of the last one inside
   * it, and `wide` the last one at a level above 2. checked[cpu][slot] is the serial at which the
   * slot's entry was last found to agree with the tables (with no store in flight): until a newer
   * store touches its range, it needs no new walk. (A slot refilled since then holds an entry read
   * from the tables after that point, which is as good.)
   */
  private serial = 0;
  private wide = 0;
  private readonly regionSerial = new Map<number, number>();
  private readonly regionInv: number;
  private readonly checked: Float64Array[];
  /** Per vCPU: the smallest level (largest size) of any entry it ever cached; 4 = none yet. */
  private readonly largest: Int8Array;

  constructor(
    private readonly env: CheckEnv,
    private readonly mmu: SimMmu,
    readonly conflict: boolean,
    readonly stale: boolean,
  ) {
    this.checked = mmu.tlbs.map((t) => new Float64Array(t.capacity));
    this.largest = new Int8Array(mmu.tlbs.length).fill(4);
    this.regionInv = 1 / env.levelSize[2]!;
  }

  /** A descriptor store: numbered if it takes something away (see {@link serial}). */
  store(c: PteChange): void {
    if ((c.oldLo & 1) === 0) return;
    const keepsLo = (c.newLo & 1) !== 0 && ((c.oldLo ^ c.newLo) & ~GROW_LO) === 0;
    const keepsHi = ((c.oldHi ^ c.newHi) & ~ATTR_HI_XN) === 0;
    const losesPerm = (c.oldLo & ~c.newLo & PERM_LO) !== 0 || (c.newHi & ~c.oldHi & ATTR_HI_XN) !== 0;
    if (keepsLo && keepsHi && !losesPerm) return;
    const n = ++this.serial;
    if (c.level >= 2) this.regionSerial.set(Math.floor(c.ipa * this.regionInv), n);
    else this.wide = n;
  }

  /** Before vCPU `cpu` caches a `level` leaf [base, +size) -> pa. */
  fill(cpu: number, base: number, level: number, pa: number, now: number): void {
    if (!this.conflict) return;
    const tlb = this.mmu.tlbs[cpu]!;
    // Larger entries can only be there if this vCPU ever cached one.
    const slot = tlb.findConflict(base, level, pa, now, this.largest[cpu]! < level);
    if (level < this.largest[cpu]!) this.largest[cpu] = level;
    if (slot < 0) return;
    const other = tlb.entry(slot);
    const size = this.env.levelSize[level]!;
    const otherSize = this.env.levelSize[other.level]!;
    this.env.report(
      "tlb-conflict",
      `vCPU ${cpu} caches L${level} ${sizeName(size)} IPA ${hex(base)} -> PA ${hex(pa)} while it still ` +
        `holds L${other.level} ${sizeName(otherSize)} IPA ${hex(other.base)} -> PA ${hex(other.pa)}`,
      base,
      level,
      {
        ipa: Math.min(base, other.base),
        ipaEnd: Math.max(base + size, other.base + otherSize),
        level,
        cpu,
        fillBases: [base, other.base],
      },
      cpu,
    );
  }

  /** vCPU `cpu` hit a live entry for `ipa` (the TLB's hit fields). */
  hit(cpu: number, ipa: number, now: number): void {
    if (!this.stale) return;
    const tlb = this.mmu.tlbs[cpu]!;
    const checked = this.checked[cpu]!;
    const slot = tlb.lastSlot;
    let need = this.serial;
    if (tlb.hitLevel >= 2) {
      const r = this.regionSerial.get(Math.floor(ipa * this.regionInv)) ?? 0;
      need = r > this.wide ? r : this.wide;
    }
    if (checked[slot]! >= need) return;
    const mmu = this.mmu;
    const level = mmu.probe(ipa, now);
    let why: string | null = null;
    if (level < 0 || !isLeafDesc(mmu.probeLo, level)) {
      why = "the tables no longer map it";
    } else {
      const size = this.env.levelSize[level]!;
      const pa = pteOa(this.env.granule, mmu.probeLo, mmu.probeHi) + (ipa % size);
      const perms = leafPerms(mmu.probeLo, mmu.probeHi);
      if (pa !== tlb.hitPa) why = `the tables map it to PA ${hex(pa)}`;
      else if ((tlb.hitPerms & ~perms) !== 0) {
        why = `the tables grant only ${permsName(perms)}`;
      }
    }
    if (why === null) {
      if (!mmu.storesInFlight()) checked[slot] = this.serial;
      return;
    }
    const entrySize = this.env.levelSize[tlb.hitLevel]!;
    const base = ipa - (ipa % entrySize);
    this.env.report(
      "stale-tlb",
      `vCPU ${cpu} hit its cached L${tlb.hitLevel} entry IPA ${hex(ipa)} -> PA ${hex(tlb.hitPa)} ` +
        `${permsName(tlb.hitPerms)}, but ${why}, and no TLBI removed the entry`,
      ipa,
      tlb.hitLevel,
      { ipa: base, ipaEnd: base + entrySize, level: 3, cpu },
      cpu,
    );
  }
}
