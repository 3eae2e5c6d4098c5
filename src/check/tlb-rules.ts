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
import { LAST_LEVEL } from "../arch/granule.js";
import { hex, sizeName } from "../common/format.js";
import { leafPerms } from "../pgtable/hw-walk.js";
import type { SimMmu } from "../sim/mmu.js";
import type { Stage2Tlb } from "../sim/tlb.js";
import type { CheckEnv, PteChange } from "./env.js";
import { isLeafDesc } from "./env.js";
import { permsName } from "./history.js";

const PERM_LO = ATTR_LO_S2AP_R | ATTR_LO_S2AP_W;
/** Low-word bits a valid descriptor may gain (or lose, see losesPerm) without changing its target. */
const GROW_LO = PERM_LO | ATTR_LO_AF;

/** A module-local copy (optimized code folds it; an imported binding is re-read). */
const LAST = LAST_LEVEL;

/** Level-2 regions per chunk of {@link TlbChecker}'s serial table (4096 x 2 MiB = 8 GiB at 4K). */
const REGION_CHUNK = 4096;

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
  /**
   * Last serial per level-2 region, in chunks of REGION_CHUNK regions allocated on first store
   * (a TLB hit reads it: a typed-array load, where a Map lookup cost several times more).
   */
  private readonly regionSerial: Array<Float64Array | undefined> = [];
  private readonly regionInv: number;
  private readonly checked: Float64Array[];
  /** Per vCPU: the smallest level (largest size) of any entry it ever cached; 4 = none yet. */
  private readonly largest: Int8Array;
  /** The vCPU, time and address of the last TLB hit (-1: none). */
  private hitCpu = -1;
  private hitNow = -1;
  private hitIpa = -1;

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
    if (!this.stale || (c.oldLo & 1) === 0) return;
    const keepsLo = (c.newLo & 1) !== 0 && ((c.oldLo ^ c.newLo) & ~GROW_LO) === 0;
    const keepsHi = ((c.oldHi ^ c.newHi) & ~ATTR_HI_XN) === 0;
    const losesPerm = (c.oldLo & ~c.newLo & PERM_LO) !== 0 || (c.newHi & ~c.oldHi & ATTR_HI_XN) !== 0;
    if (keepsLo && keepsHi && !losesPerm) return;
    const n = ++this.serial;
    if (c.level >= 2) {
      const r = Math.floor(c.ipa * this.regionInv);
      const k = Math.floor(r / REGION_CHUNK);
      let chunk = this.regionSerial[k];
      if (chunk === undefined) {
        chunk = new Float64Array(REGION_CHUNK);
        while (this.regionSerial.length < k) this.regionSerial.push(undefined);
        this.regionSerial[k] = chunk;
      }
      chunk[r - k * REGION_CHUNK] = n;
    } else {
      this.wide = n;
    }
  }

  /** Before vCPU `cpu` caches a `level` leaf [base, +size) -> pa. */
  fill(cpu: number, base: number, level: number, pa: number, now: number): void {
    if (!this.conflict) return;
    // The MMU walks, and fills, right after a TLB lookup of an address in the block at the same
    // time: a miss, or a hit whose permissions fell short (the last hit, then). After a miss no
    // live entry contains the address, so none of this size or larger can conflict, only smaller
    // ones, and a last-level leaf has none below it: the search would find nothing.
    const hitIpa = this.hitIpa;
    const afterHit =
      cpu === this.hitCpu &&
      now === this.hitNow &&
      hitIpa >= base &&
      hitIpa < base + this.env.levelSize[level]!;
    if (level === LAST && !afterHit) {
      if (level < this.largest[cpu]!) this.largest[cpu] = level;
      return;
    }
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
      this.env.global(now),
    );
  }

  /**
   * vCPU `cpu` hit a live entry for `ipa` (the TLB's hit fields). Kept small, the rest being in
   * {@link recheck}: the MMU's translate inlines it, and translate is inlined in turn.
   */
  hit(cpu: number, ipa: number, now: number): void {
    this.hitCpu = cpu;
    this.hitNow = now;
    this.hitIpa = ipa;
    // Verified since the last store that took anything away, anywhere: nothing to look up. (With
    // the stale check off nothing is numbered, so this always holds.)
    if (this.checked[cpu]![this.mmu.tlbs[cpu]!.lastSlot]! < this.serial) this.recheck(cpu, ipa, now);
  }

  /** A hit on an entry verified before the latest store that took something away. */
  private recheck(cpu: number, ipa: number, now: number): void {
    const tlb = this.mmu.tlbs[cpu]!;
    const checked = this.checked[cpu]!;
    const slot = tlb.lastSlot;
    // The region's serial speaks for a level 2 or 3 entry only. For a larger one it would be enough
    // too, as things stand (a store below a cached level-1 leaf needs that leaf replaced first, a
    // `wide` store), but that is an argument about the tables' shape, not a rule: walk instead.
    if (tlb.hitLevel >= 2 && checked[slot]! >= this.needed(ipa)) return;
    this.verify(cpu, tlb, checked, slot, ipa, now);
  }

  /** The serial a level 2 or 3 entry for `ipa` must have been verified at (see {@link serial}). */
  private needed(ipa: number): number {
    const region = Math.floor(ipa * this.regionInv);
    const k = Math.floor(region / REGION_CHUNK);
    const chunk = k < this.regionSerial.length ? this.regionSerial[k] : undefined;
    const r = chunk !== undefined ? chunk[region - k * REGION_CHUNK]! : 0;
    return r > this.wide ? r : this.wide;
  }

  /** Walks the tables for the entry vCPU `cpu` hit in `slot`: stale, or verified now. */
  private verify(
    cpu: number,
    tlb: Stage2Tlb,
    checked: Float64Array,
    slot: number,
    ipa: number,
    now: number,
  ): void {
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
      // The entry agrees everywhere only when one descriptor covers all of it (a leaf at its level
      // or above): under a smaller leaf, the rest of a block entry's range may map elsewhere or
      // not at all, so each hit there is walked.
      if (level <= tlb.hitLevel && !mmu.storesInFlight()) checked[slot] = this.serial;
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
      this.env.global(now),
    );
  }
}
