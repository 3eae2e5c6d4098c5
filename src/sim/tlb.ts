/**
 * A vCPU's TLB of stage-2 translations, holding entries of their real size (4K, 2M, 1G...),
 * set-associative with FIFO replacement per set. Entries are removed lazily: an entry is dead once
 * a TLBI covering it has been issued after it was filled ({@link TlbiLog}), or once the descriptor
 * it was read from has been overwritten (its `expiry`, for entries filled from a value another CPU
 * was in the middle of changing).
 */
import { type Footprint, heapFootprint, sumFootprints, typedArrayFootprint } from "../common/footprint.js";
import type { Digest } from "../common/digest.js";
import { NumberList } from "../common/number-list.js";
import type { LevelSizes } from "../pgtable/walker.js";
import type { TlbiLog } from "./tlbi-log.js";

// Fields of a slot's record in `data` (one 64-byte record per slot, read together on a hit).
const F_BASE = 0;
const F_END = 1;
const F_PA = 2;
const F_PERMS = 3;
const F_LEVEL = 4;
const F_FILL_SEQ = 5;
const F_EXPIRY = 6;
const F_LOG_INDEX = 7;
const STRIDE = 8;
/**
 * Slots of recent hits and fills, looked at before the sets (a small L1 TLB in front): three
 * cover the stage-1 table pages and the data of one guest access.
 */
export const RECENT = 3;
// Where the parts of Stage2Tlb.hot start.
const H_LO = 0;
const H_HI = RECENT;
const H_SLOT = 2 * RECENT;
const H_TAGGED = 3 * RECENT;
const H_SIZE = 3 * RECENT + 4;

/** A flowing run's recent-ring shape: per position its content, then the next position. */
const SHAPE = RECENT + 1;
/** Shapes kept: periods up to SHAPES - 1 accesses are found. */
const SHAPES = 8;

/** Whether the shapes at `a` and `b` of `s` are the same. */
function sameShape(s: Float64Array, a: number, b: number): boolean {
  for (let k = 0; k < SHAPE; k++) if (s[a + k] !== s[b + k]) return false;
  return true;
}

/** A lookup's leaf levels from the smallest entry size up, with their sizes and reciprocals. */
interface SearchOrder {
  readonly levels: Int32Array;
  readonly size: Float64Array;
  readonly inv: Float64Array;
}

/** The search order of the TLBs of one geometry, shared by all of them (it stays in the cache). */
const searchOrders = new WeakMap<LevelSizes, Map<string, SearchOrder>>();

function searchOrder(sizes: LevelSizes, leafLevels: readonly number[]): SearchOrder {
  let byLevels = searchOrders.get(sizes);
  if (byLevels === undefined) searchOrders.set(sizes, (byLevels = new Map()));
  const key = leafLevels.join(",");
  let order = byLevels.get(key);
  if (order === undefined) {
    const down = [...leafLevels].reverse();
    order = {
      levels: Int32Array.from(down),
      size: Float64Array.from(down, (l) => sizes.size[l + 1]!),
      inv: Float64Array.from(down, (l) => sizes.inv[l + 1]!),
    };
    byLevels.set(key, order);
  }
  return order;
}

/** How the fast-forward's snapshots express a TLB entry's addresses (relative or not). */
export interface SlotRelativizer {
  ipa(ipa: number): number;
  pa(base: number, pa: number): number;
}

/** The footprint of one {@link Stage2Tlb}: per entry its tag and record, per set its victim. */
export function stage2TlbFootprint(entries: number, ways: number): Footprint {
  return sumFootprints(
    typedArrayFootprint(entries, 8),
    typedArrayFootprint(entries * STRIDE, 8),
    typedArrayFootprint(Math.max(1, Math.floor(entries / ways)), 2),
    heapFootprint(1, TLB_FIXED_HEAP_BYTES),
  );
}

/** Heap bytes of a {@link Stage2Tlb}'s fixed parts (the object, its small arrays). */
const TLB_FIXED_HEAP_BYTES = 2048;

/** One vCPU's stage-2 TLB. */
export class Stage2Tlb {
  private readonly sets: number;
  private readonly ways: number;
  /**
   * Per slot, its tag: the entry's IPA base plus its level (bases are granule-aligned, so the sum
   * names both), or -1 when empty. A set's tags share a cache line, so a set is searched with
   * one load per way.
   */
  private readonly tag: Float64Array;
  /** Per slot, a record of STRIDE fields (F_*). */
  private readonly data: Float64Array;
  private readonly victim: Uint16Array;
  private readonly setMask: number;
  /**
   * The TLB's small, hot state in one array, so that a lookup's first loads share a cache line or
   * two (a vCPU's state is cold each time the engine switches to it): the IPA range of each
   * recent slot's entry (H_LO + j, H_HI + j; empty: Infinity, -Infinity, so most misses read no
   * record), the recent slots, those of the last RECENT distinct hits or fills (H_SLOT + j; -1:
   * none), and per level the number of slots tagged with an entry of it (H_TAGGED + level), so a
   * lookup skips sizes the TLB holds none of.
   */
  private readonly hot = new Float64Array(H_SIZE);
  /** Where the next recent slot goes. */
  private recentNext = 0;
  private readonly saved = new Float64Array(3 * RECENT + 2);
  /** Leaf levels from the smallest entry size up, and their sizes and reciprocals. */
  private readonly searchLevels: Int32Array;
  private readonly searchSize: Float64Array;
  private readonly searchInv: Float64Array;
  /** Slot of the last hit or fill. */
  lastSlot = -1;
  /** Fills so far, and the IPA base of the last one (for the simulator's fast-forward). */
  fills = 0;
  /** Fills of the entry the last fill made, again (in its slot; for the fast-forward). */
  refills = 0;
  lastFillBase = -1;
  /** Result of the last successful {@link lookup}. */
  hitPa = 0;
  hitPerms = 0;
  hitLevel = 0;

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
    this.tag = new Float64Array(n).fill(-1);
    this.hot.fill(Infinity, H_LO, H_LO + RECENT);
    this.hot.fill(-Infinity, H_HI, H_HI + RECENT);
    this.hot.fill(-1, H_SLOT, H_SLOT + RECENT);
    this.data = new Float64Array(n * STRIDE);
    this.victim = new Uint16Array(this.sets);
    const order = searchOrder(sizes, leafLevels);
    this.searchLevels = order.levels;
    this.searchSize = order.size;
    this.searchInv = order.inv;
  }

  /**
   * Finds a live entry translating `ipa` at time `now`; sets hitPa/hitPerms/hitLevel and
   * lastSlot. Recently used slots are looked at first, then the set of each entry size from the
   * smallest. Only a TLB conflict (which the architecture leaves unpredictable) leaves more than
   * one live entry covering `ipa`; then whichever is found first hits.
   */
  lookup(ipa: number, now: number): boolean {
    // The same address missed and nothing was cached since: it misses again (entries only die
    // with time and TLBIs; only fills add them). A faulting access's replay is such a lookup.
    if (ipa === this.missIpa && this.fills === this.missFills) return false;
    const hot = this.hot;
    for (let j = 0; j < RECENT; j++) {
      if (ipa < hot[H_LO + j]! || ipa >= hot[H_HI + j]!) continue;
      const r = hot[H_SLOT + j]!;
      if (this.match(r, ipa, now)) {
        this.lastSlot = r;
        return true;
      }
    }
    const tag = this.tag;
    const ways = this.ways;
    const levels = this.searchLevels;
    for (let k = 0; k < levels.length; k++) {
      if (this.hot[H_TAGGED + levels[k]!] === 0) continue;
      const block = Math.floor(ipa * this.searchInv[k]!);
      const want = block * this.searchSize[k]! + levels[k]!;
      const first = this.setOf(block) * ways;
      const end = first + ways;
      for (let i = first; i < end; i++) {
        // At most one slot of a set holds a given tag.
        if (tag[i] === want) {
          if (this.match(i, ipa, now)) {
            this.lastSlot = i;
            const o = i * STRIDE;
            this.remember(i, this.data[o + F_BASE]!, this.data[o + F_END]!);
            return true;
          }
          break;
        }
      }
    }
    this.missIpa = ipa;
    this.missFills = this.fills;
    return false;
  }

  /** The address of the last {@link lookup} that missed, and {@link fills} then. */
  private missIpa = -1;
  private missFills = -1;

  /**
   * Puts slot `i`, holding an entry for [base, end), among the recent ones (replacing the oldest)
   * unless it is there; either way records its range.
   */
  private remember(i: number, base: number, end: number): void {
    const hot = this.hot;
    let j = 0;
    while (j < RECENT && hot[H_SLOT + j] !== i) j++;
    if (j === RECENT) {
      j = this.recentNext;
      hot[H_SLOT + j] = i;
      this.recentNext = j + 1 === RECENT ? 0 : j + 1;
    }
    hot[H_LO + j] = base;
    hot[H_HI + j] = end;
  }

  /** Whether slot `i` holds a live entry covering `ipa`; on a hit sets the hit fields. */
  private match(i: number, ipa: number, now: number): boolean {
    if (this.tag[i]! < 0) return false;
    const d = this.data;
    const o = i * STRIDE;
    const base = d[o + F_BASE]!;
    if (ipa < base || ipa >= d[o + F_END]!) return false;
    if (!this.liveAt(o, now)) return false;
    this.hitPa = d[o + F_PA]! + (ipa - base);
    this.hitPerms = d[o + F_PERMS]!;
    this.hitLevel = d[o + F_LEVEL]!;
    return true;
  }

  /**
   * Saves which slots are recent (and lastSlot), for {@link restoreRecent}: lookups done ahead of
   * time that are then abandoned must leave no trace, since which slot is looked at first decides
   * which of two conflicting entries hits.
   */
  saveRecent(): void {
    const v = this.saved;
    for (let j = 0; j < RECENT; j++) {
      v[3 * j] = this.hot[H_SLOT + j]!;
      v[3 * j + 1] = this.hot[H_LO + j]!;
      v[3 * j + 2] = this.hot[H_HI + j]!;
    }
    v[3 * RECENT] = this.recentNext;
    v[3 * RECENT + 1] = this.lastSlot;
  }

  /** Puts back what {@link saveRecent} saved. */
  restoreRecent(): void {
    const v = this.saved;
    for (let j = 0; j < RECENT; j++) {
      this.hot[H_SLOT + j] = v[3 * j]!;
      this.hot[H_LO + j] = v[3 * j + 1]!;
      this.hot[H_HI + j] = v[3 * j + 2]!;
    }
    this.recentNext = v[3 * RECENT]!;
    this.lastSlot = v[3 * RECENT + 1]!;
  }

  /** Number of entry slots. */
  get capacity(): number {
    return this.tag.length;
  }

  /** Whether slot `i` holds an entry that no TLBI or overwritten store has removed by `now`. */
  isLive(i: number, now: number): boolean {
    return this.tag[i]! >= 0 && this.liveAt(i * STRIDE, now);
  }

  /** Whether the filled entry whose record starts at `o` is still live at `now`. */
  private liveAt(o: number, now: number): boolean {
    const d = this.data;
    return now < d[o + F_EXPIRY]! && this.log.lastAt(d[o + F_LOG_INDEX]!) <= d[o + F_FILL_SEQ]!;
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
    const d = this.data;
    // Entries of this size (or, unless `larger` is false, larger) that contain the block.
    for (const l of levels) {
      if (l > level || (l < level && !larger)) continue;
      const block = Math.floor(blockBase * sizes.inv[l + 1]!);
      const want = block * sizes.size[l + 1]! + l;
      const first = this.setOf(block) * this.ways;
      for (let i = first; i < first + this.ways; i++) {
        if (this.tag[i] !== want || !this.isLive(i, now)) continue;
        if (l !== level) return i;
        const o = i * STRIDE;
        if (d[o + F_PA]! + (blockBase - d[o + F_BASE]!) !== paBase) return i;
      }
    }
    // Smaller entries inside the block: anywhere in the TLB.
    if (level === levels[levels.length - 1]) return -1;
    const end = blockBase + sizes.size[level + 1]!;
    for (let i = 0; i < this.tag.length; i++) {
      if (this.tag[i]! < 0) continue;
      const o = i * STRIDE;
      const b = d[o + F_BASE]!;
      if (b < blockBase || b >= end || d[o + F_LEVEL]! <= level) continue;
      if (this.isLive(i, now)) return i;
    }
    return -1;
  }

  /** The entry in slot `i`: IPA base, level, output address base, permissions. */
  entry(i: number): { base: number; level: number; pa: number; perms: number } {
    const d = this.data;
    const o = i * STRIDE;
    return { base: d[o + F_BASE]!, level: d[o + F_LEVEL]!, pa: d[o + F_PA]!, perms: d[o + F_PERMS]! };
  }

  /**
   * The slot a {@link lookup} of every address in [lo, hi] finds among the recent slots at `now`
   * (live, its entry covering the whole range), when it is the same slot for all and no recent
   * slot looked at before it has a range meeting [lo, hi]; else -1. Changes nothing.
   */
  recentRunHit(lo: number, hi: number, now: number): number {
    for (let j = 0; j < RECENT; j++) {
      if (hi < this.hot[H_LO + j]! || lo >= this.hot[H_HI + j]!) continue;
      const r = this.hot[H_SLOT + j]!;
      if (lo < this.hot[H_LO + j]! || hi >= this.hot[H_HI + j]! || !this.isLive(r, now)) return -1;
      const o = r * STRIDE;
      return lo >= this.data[o + F_BASE]! && hi < this.data[o + F_END]! ? r : -1;
    }
    return -1;
  }

  /** The permissions of slot `i`'s entry. */
  permsOf(i: number): number {
    return this.data[i * STRIDE + F_PERMS]!;
  }

  /** Records a hit on slot `i` for `ipa` as {@link lookup} would (the hit fields, lastSlot). */
  markHit(i: number, ipa: number): void {
    const o = i * STRIDE;
    this.lastSlot = i;
    this.hitPa = this.data[o + F_PA]! + (ipa - this.data[o + F_BASE]!);
    this.hitPerms = this.data[o + F_PERMS]!;
    this.hitLevel = this.data[o + F_LEVEL]!;
  }

  /** The slot tagged with a `level` entry at `blockBase` (live or not), or -1. Changes nothing. */
  slotOf(blockBase: number, level: number): number {
    const block = Math.floor(blockBase * this.sizes.inv[level + 1]!);
    const first = this.setOf(block) * this.ways;
    const want = blockBase + level;
    for (let i = first; i < first + this.ways; i++) if (this.tag[i] === want) return i;
    return -1;
  }

  /**
   * How many of the fills of `level` entries at `first`, `first` + size, ... (consecutive blocks,
   * at most `max`) could be made in order before one would meet a slot already tagged for its
   * block, or take one of the slots in `keep` (-1 entries ignored) as its set's victim. The blocks
   * take consecutive sets, so fill j is its set's (j / sets)-th of the run (rounded down) and
   * takes the way that many places past the set's victim now (FIFO). Changes nothing.
   */
  fillRunLimit(first: number, level: number, max: number, keep: ArrayLike<number>): number {
    const size = this.sizes.size[level + 1]!;
    const ways = this.ways;
    const sets = this.sets;
    const tag = this.tag;
    const victim = this.victim;
    const setMask = this.setMask;
    const set0 = this.setOf(Math.floor(first * this.sizes.inv[level + 1]!));
    // The first fill that would take a kept slot: fill j is the (j / sets)-th of its set (rounded
    // down), so set s's way w goes to the one of round (w - victim) mod ways.
    let limit = max;
    for (let k = 0; k < keep.length; k++) {
      const slot = keep[k]!;
      if (slot < 0) continue;
      const set = Math.floor(slot / ways);
      const round = (slot - set * ways - victim[set]! + ways) % ways;
      const j = ((set - set0) & setMask) + round * sets;
      if (j < limit) limit = j;
    }
    // The first fill that would meet a slot already tagged for its block.
    let want = first + level;
    if (ways === 4) {
      for (let j = 0; j < limit; j++, want += size) {
        const from = ((set0 + j) & setMask) * 4;
        if (tag[from] === want || tag[from + 1] === want || tag[from + 2] === want || tag[from + 3] === want)
          return j;
      }
      return limit;
    }
    for (let j = 0; j < limit; j++, want += size) {
      const from = ((set0 + j) & setMask) * ways;
      for (let i = from; i < from + ways; i++) if (tag[i] === want) return j;
    }
    return limit;
  }

  /**
   * Slot `i`'s entry appended to `out` as base, end, output address, permissions, level, expiry
   * and whether it is live at `now` (one -1 for an empty slot); the IPAs and output address as
   * `rel` makes them.
   */
  slotState(out: NumberList, i: number, now: number, rel: SlotRelativizer): void {
    if (i < 0 || this.tag[i]! < 0) {
      out.push(-1);
      return;
    }
    const d = this.data;
    const o = i * STRIDE;
    const base = d[o + F_BASE]!;
    out.push(rel.ipa(base));
    out.push(rel.ipa(d[o + F_END]!));
    out.push(rel.pa(base, d[o + F_PA]!));
    out.push(d[o + F_PERMS]!);
    out.push(d[o + F_LEVEL]!);
    out.push(d[o + F_EXPIRY]!);
    out.push(this.isLive(i, now) ? 1 : 0);
  }

  /**
   * Everything the TLB holds, into `d`: each slot's entry (liveness at `now`), the sets' victims,
   * the recent slots and the counters.
   */
  digest(d: Digest, now: number): void {
    const out = new NumberList();
    const rel: SlotRelativizer = { ipa: (x) => x, pa: (_b, pa) => pa };
    for (let i = 0; i < this.tag.length; i++) {
      out.clear();
      this.slotState(out, i, now, rel);
      if (out.length > 1) {
        out.push(this.fillSeqOf(i));
        out.push(this.data[i * STRIDE + F_LOG_INDEX]!);
      }
      d.addAll(out.toArray());
    }
    d.addAll(this.victim);
    const hot = this.hot;
    d.addAll(hot.subarray(H_SLOT, H_SLOT + RECENT));
    d.addAll(hot.subarray(H_LO, H_LO + RECENT));
    d.addAll(hot.subarray(H_HI, H_HI + RECENT));
    d.addAll(hot.subarray(H_TAGGED, H_TAGGED + 4));
    d.addAll([this.recentNext, this.lastSlot, this.fills, this.refills, this.lastFillBase]);
  }

  /**
   * Sets slot `i`'s permissions, expiry and TLBI number, as filling its entry again would (the
   * fast-forward's replays: the refill that completes a page's period).
   */
  refillAs(i: number, perms: number, expiry: number, seq: number): void {
    const o = i * STRIDE;
    this.data[o + F_PERMS] = perms;
    this.data[o + F_EXPIRY] = expiry;
    this.data[o + F_FILL_SEQ] = seq;
  }

  /** When slot `i`'s entry expires (Infinity: only a TLBI removes it). */
  expiryOf(i: number): number {
    return this.data[i * STRIDE + F_EXPIRY]!;
  }

  /** The TLBI number current when slot `i`'s entry was filled. */
  fillSeqOf(i: number): number {
    return this.data[i * STRIDE + F_FILL_SEQ]!;
  }

  /**
   * The recent slots with their ranges, oldest first, and the last slot, appended to `out`. The
   * ring's position is left out: while no two recent ranges overlap, which slot is looked at
   * first decides nothing, so rings that differ by a rotation behave alike ({@link rotateRecent}).
   * Returns false when two ranges overlap.
   */
  recentState(out: NumberList, now: number, rel: SlotRelativizer): boolean {
    for (let n = 0; n < RECENT; n++) {
      const j = (this.recentNext + n) % RECENT;
      this.slotState(out, this.hot[H_SLOT + j]!, now, rel);
      out.push(rel.ipa(this.hot[H_LO + j]!));
      out.push(rel.ipa(this.hot[H_HI + j]!));
      for (let m = 0; m < j; m++)
        if (this.hot[H_LO + m]! < this.hot[H_HI + j]! && this.hot[H_LO + j]! < this.hot[H_HI + m]!)
          return false;
    }
    this.slotState(out, this.lastSlot, now, rel);
    return true;
  }

  /** The ring position of the next recent slot to replace. */
  get recentPosition(): number {
    return this.recentNext;
  }

  /** Rotates the recent ring so that its next slot to replace is at position `next`. */
  rotateRecent(next: number): void {
    const r = (((next - this.recentNext) % RECENT) + RECENT) % RECENT;
    if (r === 0) return;
    // Each step moves every position one on (RECENT is small).
    for (let step = 0; step < r; step++) {
      const slot = this.hot[H_SLOT + RECENT - 1]!;
      const lo = this.hot[H_LO + RECENT - 1]!;
      const hi = this.hot[H_HI + RECENT - 1]!;
      for (let j = RECENT - 1; j > 0; j--) {
        this.hot[H_SLOT + j] = this.hot[H_SLOT + j - 1]!;
        this.hot[H_LO + j] = this.hot[H_LO + j - 1]!;
        this.hot[H_HI + j] = this.hot[H_HI + j - 1]!;
      }
      this.hot[H_SLOT + 0] = slot;
      this.hot[H_LO + 0] = lo;
      this.hot[H_HI + 0] = hi;
    }
    this.recentNext = next;
  }

  /**
   * After fills that moved the TLB on by `shift` bytes of IPA (the fast-forward): each recent slot
   * and the last slot that held an entry `moves` says moves (`moves(base)`) now name the slot of
   * the entry `shift` further on, and their recorded ranges move with them.
   */
  moveRecent(shift: number, moves: (base: number) => boolean): void {
    const d = this.data;
    const moved = (i: number): number => {
      if (i < 0 || this.tag[i]! < 0) return i;
      const o = i * STRIDE;
      const base = d[o + F_BASE]!;
      if (!moves(base)) return i;
      const j = this.slotOf(base + shift, d[o + F_LEVEL]!);
      if (j < 0) throw new Error("fast-forward: a recent TLB entry has no successor");
      return j;
    };
    for (let j = 0; j < RECENT; j++) {
      if (moves(this.hot[H_LO + j]!)) {
        this.hot[H_LO + j]! += shift;
        this.hot[H_HI + j]! += shift;
      }
      this.hot[H_SLOT + j] = moved(this.hot[H_SLOT + j]!);
    }
    this.lastSlot = moved(this.lastSlot);
  }

  /** Set index of a block number (sets is a power of two). */
  private setOf(block: number): number {
    return block < 2147483648 ? block & this.setMask : block % this.sets;
  }

  /**
   * `n` {@link fill}s of `level` leaves at `first`, `first` + size, ... (consecutive blocks) ->
   * `pa[0]`, `pa[1]`, ... with `perms` and `expiry`, the j-th (from 0) made when the TLBI count
   * was `seq` + (j + 1) x `seqStep`, as those fills in order would leave the entries, the sets'
   * victims, {@link fills} and {@link lastFillBase}; but not the recent slots or
   * {@link lastSlot}, which the caller restores. For the fast-forward's replays, which
   * {@link fillRunLimit} has checked: no slot is tagged for these blocks before the run.
   */
  fillRun(
    first: number,
    level: number,
    pa: Float64Array,
    perms: number,
    expiry: number,
    seq: number,
    seqStep: number,
    n: number,
    slots: Int32Array | null = null,
  ): void {
    if (n <= 0) return;
    const size = this.sizes.size[level + 1]!;
    const ways = this.ways;
    const mask = this.setMask;
    const tag = this.tag;
    const victim = this.victim;
    const hot = this.hot;
    const d = this.data;
    // Consecutive blocks: consecutive sets, and (within one tracked range) consecutive counters.
    const set0 = this.setOf(Math.floor(first * this.sizes.inv[level + 1]!));
    const log0 = this.log.runIndex(first, level, n);
    // The entries replaced, per level, counted in locals and taken off the tagged counts once.
    let l0 = 0;
    let l1 = 0;
    let l2 = 0;
    let l3 = 0;
    for (let j = 0; j < n; j++) {
      const blockBase = first + j * size;
      const set = (set0 + j) & mask;
      const v = victim[set]!;
      const slot = set * ways + v;
      if (slots !== null) slots[j] = slot;
      victim[set] = v + 1 === ways ? 0 : v + 1;
      const old = tag[slot]!;
      if (old >= 0) {
        const oldLevel = old - Math.floor(old * 0.25) * 4;
        if (oldLevel === 3) l3++;
        else if (oldLevel === 2) l2++;
        else if (oldLevel === 1) l1++;
        else l0++;
      }
      tag[slot] = blockBase + level;
      const o = slot * STRIDE;
      d[o + F_BASE] = blockBase;
      d[o + F_END] = blockBase + size;
      d[o + F_PA] = pa[j]!;
      d[o + F_PERMS] = perms;
      d[o + F_LEVEL] = level;
      d[o + F_FILL_SEQ] = seq + (j + 1) * seqStep;
      d[o + F_EXPIRY] = expiry;
      d[o + F_LOG_INDEX] = log0 >= 0 ? log0 + j : this.log.indexOf(blockBase, level);
    }
    hot[H_TAGGED + 0]! -= l0;
    hot[H_TAGGED + 1]! -= l1;
    hot[H_TAGGED + 2]! -= l2;
    hot[H_TAGGED + 3]! -= l3;
    hot[H_TAGGED + level]! += n;
    this.fills += n;
    this.lastFillBase = first + (n - 1) * size;
  }

  /**
   * The slot of the only live entry covering `ipa` at `now`, when that entry is a `level` leaf
   * and no larger leaf covering it is live (so every lookup of `ipa` until then finds that
   * slot, wherever it looks first); else -1. Changes nothing.
   */
  onlyLiveLeaf(ipa: number, level: number, now: number): number {
    const size = this.sizes.size[level + 1]!;
    const slot = this.slotOf(Math.floor(ipa / size) * size, level);
    if (slot < 0 || !this.isLive(slot, now)) return -1;
    return this.liveAbove(ipa, ipa, level, now) ? -1 : slot;
  }

  /**
   * Whether a leaf larger than a `level` one covering some of [lo, hi] is live at `now` (a lookup
   * there could hit it). Changes nothing.
   */
  liveAbove(lo: number, hi: number, level: number, now: number): boolean {
    const levels = this.leafLevels;
    for (let k = 0; k < levels.length; k++) {
      const l = levels[k]!;
      if (l >= level || this.hot[H_TAGGED + l] === 0) continue;
      const size = this.sizes.size[l + 1]!;
      for (let b = Math.floor(lo / size) * size; b <= hi; b += size) {
        const slot = this.slotOf(b, l);
        if (slot >= 0 && this.isLive(slot, now)) return true;
      }
    }
    return false;
  }

  /**
   * `n` accesses of a flowing run at once, as translate leaves the TLB after each when it looks up
   * the `nHits` entries in `hits` (the stage-1 table pages': each a hit on its slot, which
   * {@link onlyLiveLeaf} found) and then misses its data page and fills it: the fills of
   * {@link fillRun} (with the TLBI count `seq`, no expiry), then the recent slots and lastSlot
   * as those lookups and fills in order leave them (a hit outside the recent slots is remembered,
   * a fill always is). For runs {@link fillRunLimit} has checked with `hits` kept.
   */
  flowFills(
    first: number,
    level: number,
    pa: Float64Array,
    perms: number,
    seq: number,
    n: number,
    hits: Int32Array,
    nHits: number,
  ): void {
    if (n <= 0) return;
    if (this.flowSlots.length < n) this.flowSlots = new Int32Array(n);
    const slots = this.flowSlots;
    this.fillRun(first, level, pa, perms, Infinity, seq, 0, n, slots);
    const d = this.data;
    const size = this.sizes.size[level + 1]!;
    // The recent slots after each access, as shapes (see ringShape). Once the ring holds only the
    // run's hits and fills, each access changes it as its shape says (the fills take distinct
    // slots, none a hit's), so a shape that comes again p accesses later comes every p accesses:
    // the run goes on whole periods at once.
    const shapes = this.ringShapes;
    let periodic = false;
    for (let j = 0; j < n; j++) {
      for (let h = 0; h < nHits; h++) {
        const i = hits[h]!;
        let j2 = 0;
        while (j2 < RECENT && this.hot[H_SLOT + j2] !== i) j2++;
        if (j2 === RECENT) this.remember(i, d[i * STRIDE + F_BASE]!, d[i * STRIDE + F_END]!);
      }
      const base = first + j * size;
      this.remember(slots[j]!, base, base + size);
      if (periodic || !this.ringShape(shapes, (j % SHAPES) * SHAPE, slots, j, hits, nHits)) continue;
      for (let p = 1; p < SHAPES && p <= j; p++) {
        if (!sameShape(shapes, (j % SHAPES) * SHAPE, ((j - p) % SHAPES) * SHAPE)) continue;
        periodic = true;
        const jump = n - 1 - j - ((n - 1 - j) % p);
        if (jump === 0) break;
        j += jump;
        // The ring as after access j: the same shape, its fills `off` accesses before j.
        const o = ((j - jump) % SHAPES) * SHAPE;
        for (let q = 0; q < RECENT; q++) {
          const off = shapes[o + q]!;
          if (off < 0) continue;
          const fillBase = first + (j - off) * size;
          this.hot[H_SLOT + q] = slots[j - off]!;
          this.hot[H_LO + q] = fillBase;
          this.hot[H_HI + q] = fillBase + size;
        }
        break;
      }
    }
    this.lastSlot = slots[n - 1]!;
  }

  /**
   * The recent slots after access j of a flowing run, as a shape written at `o` of `out`: per
   * ring position, a hit (-1 - its index in `hits`) or the run's fill `off` accesses before
   * (off >= 0), then the next position to replace. False (and no shape at `o`) when a position
   * holds anything else.
   */
  private ringShape(
    out: Float64Array,
    o: number,
    slots: Int32Array,
    j: number,
    hits: Int32Array,
    nHits: number,
  ): boolean {
    for (let q = 0; q < RECENT; q++) {
      const r = this.hot[H_SLOT + q]!;
      let code = Number.NaN;
      for (let off = 0; off < RECENT && off <= j; off++) {
        if (slots[j - off] === r) {
          code = off;
          break;
        }
      }
      for (let h = 0; h < nHits && code !== code; h++) if (hits[h] === r) code = -1 - h;
      if (code !== code) {
        // No shape here: a later one must not match what an earlier access left at `o`.
        out[o + RECENT] = Number.NaN;
        return false;
      }
      out[o + q] = code;
    }
    out[o + RECENT] = this.recentNext;
    return true;
  }

  /** Scratch for {@link flowFills}: the slot of each fill, and the ring's last shapes. */
  private flowSlots = new Int32Array(0);
  private readonly ringShapes = new Float64Array(SHAPES * SHAPE);

  /** Caches a `level` leaf at `blockBase` -> `paBase` with `perms`, valid until `expiry`. */
  fill(blockBase: number, level: number, paBase: number, perms: number, expiry: number): void {
    const block = Math.floor(blockBase * this.sizes.inv[level + 1]!);
    const set = this.setOf(block);
    const first = set * this.ways;
    const want = blockBase + level;
    let slot = -1;
    for (let i = first; i < first + this.ways; i++) {
      if (this.tag[i] === want) {
        slot = i;
        break;
      }
    }
    if (slot < 0) {
      const v = this.victim[set]!;
      slot = first + v;
      this.victim[set] = v + 1 === this.ways ? 0 : v + 1;
    } else if (blockBase === this.lastFillBase) this.refills++;
    this.lastSlot = slot;
    this.fills++;
    this.lastFillBase = blockBase;
    const d = this.data;
    const o = slot * STRIDE;
    const old = this.tag[slot]!;
    if (old !== want) {
      // The level of the entry replaced, from its tag (its record is likely not in the cache).
      if (old >= 0) this.hot[H_TAGGED + old - Math.floor(old * 0.25) * 4]!--;
      this.hot[H_TAGGED + level]!++;
    }
    this.tag[slot] = want;
    const end = blockBase + this.sizes.size[level + 1]!;
    this.remember(slot, blockBase, end);
    d[o + F_BASE] = blockBase;
    d[o + F_END] = end;
    d[o + F_PA] = paBase;
    d[o + F_PERMS] = perms;
    d[o + F_LEVEL] = level;
    d[o + F_FILL_SEQ] = this.log.seq;
    d[o + F_EXPIRY] = expiry;
    d[o + F_LOG_INDEX] = this.log.indexOf(blockBase, level);
  }
}
