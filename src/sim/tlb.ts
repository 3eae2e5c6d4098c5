/**
 * A vCPU's TLB of stage-2 translations, holding entries of their real size (4K, 2M, 1G...),
 * set-associative with FIFO replacement per set. Entries are removed lazily: an entry is dead once
 * a TLBI covering it has been issued after it was filled ({@link TlbiLog}), or once the descriptor
 * it was read from has been overwritten (its `expiry`, for entries filled from a value another CPU
 * was in the middle of changing).
 */
import type { LevelSizes } from "../pgtable/walker.js";
import type { TlbiLog } from "./tlbi-log.js";

/** One vCPU's stage-2 TLB. */
export class Stage2Tlb {
  private readonly sets: number;
  private readonly ways: number;
  private readonly base: Float64Array;
  private readonly pa: Float64Array;
  private readonly level: Int8Array;
  private readonly perms: Uint8Array;
  private readonly fillSeq: Float64Array;
  private readonly expiry: Float64Array;
  private readonly victim: Uint16Array;
  private readonly setMask: number;
  /** Slot of the last hit or fill. */
  lastSlot = -1;
  /** Result of the last successful {@link lookup}. */
  hitPa = 0;
  hitPerms = 0;
  hitLevel = 0;
  hits = 0;
  misses = 0;

  constructor(
    entries: number,
    ways: number,
    private readonly sizes: LevelSizes,
    private readonly leafLevels: readonly number[],
    private readonly log: TlbiLog,
  ) {
    this.ways = ways;
    this.sets = Math.max(1, Math.floor(entries / ways));
    if ((this.sets & (this.sets - 1)) !== 0) throw new Error("TLB sets must be a power of two");
    this.setMask = this.sets - 1;
    const n = this.sets * ways;
    this.base = new Float64Array(n).fill(-1);
    this.pa = new Float64Array(n);
    this.level = new Int8Array(n);
    this.perms = new Uint8Array(n);
    this.fillSeq = new Float64Array(n);
    this.expiry = new Float64Array(n);
    this.victim = new Uint16Array(this.sets);
  }

  /** Finds a live entry translating `ipa` at time `now`; sets hitPa/hitPerms/hitLevel. */
  lookup(ipa: number, now: number): boolean {
    // The entry that hit last (a small L1 TLB in front of the main one).
    const last = this.lastSlot;
    if (last >= 0 && this.match(last, ipa, now)) return true;
    const levels = this.leafLevels;
    const sizes = this.sizes;
    for (let k = levels.length - 1; k >= 0; k--) {
      const level = levels[k]!;
      const block = Math.floor(ipa * sizes.inv[level + 1]!);
      const blockBase = block * sizes.size[level + 1]!;
      const first = this.setOf(block) * this.ways;
      for (let i = first; i < first + this.ways; i++) {
        if (this.base[i] !== blockBase || this.level[i] !== level) continue;
        if (this.match(i, ipa, now)) {
          this.lastSlot = i;
          return true;
        }
      }
    }
    this.misses++;
    return false;
  }

  /** Whether slot `i` holds a live entry covering `ipa`; on a hit sets the hit fields. */
  private match(i: number, ipa: number, now: number): boolean {
    const base = this.base[i]!;
    if (base < 0) return false;
    const level = this.level[i]!;
    if (ipa < base || ipa >= base + this.sizes.size[level + 1]!) return false;
    if (!this.isLive(i, now)) return false;
    this.hitPa = this.pa[i]! + (ipa - base);
    this.hitPerms = this.perms[i]!;
    this.hitLevel = level;
    this.hits++;
    return true;
  }

  /** Number of entry slots. */
  get capacity(): number {
    return this.base.length;
  }

  /** Whether slot `i` holds an entry that no TLBI or overwritten store has removed by `now`. */
  isLive(i: number, now: number): boolean {
    const base = this.base[i]!;
    if (base < 0) return false;
    // The log keeps one TLBI number per block of each level, so any address of the entry will do.
    if (now >= this.expiry[i]! || this.log.lastFor(base, this.level[i]!) > this.fillSeq[i]!) {
      this.base[i] = -1;
      return false;
    }
    return true;
  }

  /**
   * A live entry that would conflict with caching a `level` leaf at `blockBase` -> `paBase`: one
   * that overlaps it with a different size, or covers the same block with a different output
   * address. Returns its slot, or -1. With `larger` false, entries larger than a `level` leaf are
   * not looked for (the caller knows there are none).
   */
  findConflict(blockBase: number, level: number, paBase: number, now: number, larger = true): number {
    const sizes = this.sizes;
    const levels = this.leafLevels;
    // Entries of this size (or, unless `larger` is false, larger) that contain the block.
    for (const l of levels) {
      if (l > level || (l < level && !larger)) continue;
      const block = Math.floor(blockBase * sizes.inv[l + 1]!);
      const base = block * sizes.size[l + 1]!;
      const first = this.setOf(block) * this.ways;
      for (let i = first; i < first + this.ways; i++) {
        if (this.base[i] !== base || this.level[i] !== l || !this.isLive(i, now)) continue;
        if (l !== level) return i;
        const offset = blockBase - base;
        if (this.pa[i]! + offset !== paBase) return i;
      }
    }
    // Smaller entries inside the block: anywhere in the TLB.
    if (level === levels[levels.length - 1]) return -1;
    const end = blockBase + sizes.size[level + 1]!;
    for (let i = 0; i < this.base.length; i++) {
      const b = this.base[i]!;
      if (b < blockBase || b >= end || this.level[i]! <= level) continue;
      if (this.isLive(i, now)) return i;
    }
    return -1;
  }

  /** The entry in slot `i`: IPA base, level, output address base, permissions. */
  entry(i: number): { base: number; level: number; pa: number; perms: number } {
    return { base: this.base[i]!, level: this.level[i]!, pa: this.pa[i]!, perms: this.perms[i]! };
  }

  /** Set index of a block number (sets is a power of two). */
  private setOf(block: number): number {
    return block < 2147483648 ? block & this.setMask : block % this.sets;
  }

  /** Caches a `level` leaf at `blockBase` -> `paBase` with `perms`, valid until `expiry`. */
  fill(blockBase: number, level: number, paBase: number, perms: number, expiry: number): void {
    const block = Math.floor(blockBase * this.sizes.inv[level + 1]!);
    const set = this.setOf(block);
    const first = set * this.ways;
    let slot = -1;
    for (let i = first; i < first + this.ways; i++) {
      if (this.base[i] === blockBase && this.level[i] === level) {
        slot = i;
        break;
      }
    }
    if (slot < 0) {
      const v = this.victim[set]!;
      slot = first + v;
      this.victim[set] = v + 1 === this.ways ? 0 : v + 1;
    }
    this.lastSlot = slot;
    this.base[slot] = blockBase;
    this.level[slot] = level;
    this.pa[slot] = paBase;
    this.perms[slot] = perms;
    this.fillSeq[slot] = this.log.seq;
    this.expiry[slot] = expiry;
  }
}
