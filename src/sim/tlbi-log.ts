/**
 * When each stage-2 translation was last invalidated, so TLBs can drop entries lazily: a TLBI is
 * O(1) however many vCPUs there are, and a TLB entry is valid while no TLBI covering it has been
 * issued since it was filled. TLBIs are numbered; an entry remembers the number current when it
 * was filled, and the index of its block's counter ({@link TlbiLog.indexOf}), so checking it
 * later is one array read.
 */
import type { Digest } from "../common/digest.js";
import { type Footprint, typedArrayFootprint } from "../common/footprint.js";
import { NumberList } from "../common/number-list.js";
import type { LevelSizes } from "../pgtable/walker.js";

/** A guest-physical range whose translations are tracked (a memslot). */
interface TrackedRange {
  readonly base: number;
  readonly end: number;
  /** First block number of the range, per level. */
  readonly firstBlock: Float64Array;
  /** Where each leaf level's counters start in the log's flat array (-1: not a leaf level). */
  readonly offset: Int32Array;
}

/** The TLBIs issued since it was last cleared, in order. */
export class TlbiRecord {
  /** The IPA and level hint of each TLBI by IPA. */
  readonly ipa = new NumberList(16);
  readonly level = new NumberList(16);
  /** Whole-VMID TLBIs. */
  vmids = 0;

  byIpa(ipa: number, level: number): void {
    this.ipa.push(ipa);
    this.level.push(level);
  }

  clear(): void {
    this.ipa.clear();
    this.level.clear();
    this.vmids = 0;
  }
}

/**
 * The footprint of a {@link TlbiLog} tracking ranges of `rangeBytes` with leaves of `leafSizes`:
 * a counter per block of each leaf size. (Tracking a range copies the array, for a moment, while
 * the memslots are set up and no stage-2 table exists yet.)
 */
export function tlbiLogFootprint(rangeBytes: readonly number[], leafSizes: readonly number[]): Footprint {
  let blocks = 0;
  for (const size of rangeBytes) for (const leaf of leafSizes) blocks += Math.ceil(size / leaf) + 1;
  return typedArrayFootprint(blocks, 4);
}

/** The TLBI history of one VMID. */
export class TlbiLog {
  /** Number of the latest TLBI (0 = none yet). */
  seq = 0;
  /** Number of the latest whole-VMID invalidation. */
  vmidSeq = 0;
  private readonly ranges: TrackedRange[] = [];
  /** The range {@link rangeOf} found last (runs of lookups stay in one memslot). */
  private lastRange: TrackedRange | null = null;
  /** Last TLBI number per block, for every tracked range and leaf level. */
  private last = new Uint32Array(0);

  /**
   * @param ttl the CPU has FEAT_TTL: a TLBI by IPA with a level hint removes only entries of that
   *   level (an entry of another level may survive: the architecture lets it). Without FEAT_TTL,
   *   or with hint 0 (none), it removes cached leaves of every level that contain the IPA.
   */
  constructor(
    private readonly sizes: LevelSizes,
    private readonly leafLevels: readonly number[],
    private readonly ttl = false,
  ) {}

  /**
   * Tracks translations in [base, base + size). Every memslot must be tracked before any entry
   * of it is cached: an entry keeps the counter index it got when it was filled.
   */
  track(base: number, size: number): void {
    const offset = new Int32Array(4).fill(-1);
    const firstBlock = new Float64Array(4);
    let total = this.last.length;
    for (const level of this.leafLevels) {
      const s = this.sizes.of(level);
      const first = Math.floor(base / s);
      const lastBlock = Math.floor((base + size - 1) / s);
      offset[level] = total;
      firstBlock[level] = first;
      total += lastBlock - first + 1;
    }
    const last = new Uint32Array(total);
    last.set(this.last);
    this.last = last;
    this.ranges.push({ base, end: base + size, firstBlock, offset });
  }

  /**
   * When set, the TLBIs issued are recorded in it (for the simulator's fast-forward, which
   * repeats them).
   */
  recorder: TlbiRecord | null = null;

  /** TLBI by IPA with level hint `level` (0: none): the cached leaves containing `ipa` it removes. */
  invalidateIpa(ipa: number, level = 0): void {
    const seq = ++this.seq;
    if (this.recorder !== null) this.recorder.byIpa(ipa, level);
    const r = this.rangeOf(ipa);
    if (r === null) return;
    for (const l of this.leafLevels) {
      if (this.ttl && level > 0 && l !== level) continue;
      this.last[this.blockIndex(r, ipa, l)] = seq;
    }
  }

  /** TLBI VMALLS12E1IS: everything. */
  flushVmid(): void {
    this.vmidSeq = ++this.seq;
    if (this.recorder !== null) this.recorder.vmids++;
  }

  /** The whole history, into `d`. */
  digest(d: Digest): void {
    d.addAll([this.seq, this.vmidSeq]);
    d.addAll(this.last);
  }

  /** The counter of the `level` block containing `ipa`, for {@link lastAt}; -1 if untracked. */
  indexOf(ipa: number, level: number): number {
    const r = this.rangeOf(ipa);
    return r === null ? -1 : this.blockIndex(r, ipa, level);
  }

  /**
   * The counter of the `level` block containing `ipa` when the `n` consecutive `level` blocks
   * from there all lie in one tracked range (their counters are then consecutive); else -1.
   */
  runIndex(ipa: number, level: number, n: number): number {
    const r = this.rangeOf(ipa);
    if (r === null || ipa + n * this.sizes.size[level + 1]! > r.end) return -1;
    return this.blockIndex(r, ipa, level);
  }

  /** Number of the latest TLBI that removes the leaves of counter `index` (from {@link indexOf}). */
  lastAt(index: number): number {
    const v = this.vmidSeq;
    if (index < 0) return v;
    const n = this.last[index]!;
    return n > v ? n : v;
  }

  private blockIndex(r: TrackedRange, ipa: number, level: number): number {
    return r.offset[level]! + Math.floor(ipa * this.sizes.inv[level + 1]!) - r.firstBlock[level]!;
  }

  private rangeOf(ipa: number): TrackedRange | null {
    const last = this.lastRange;
    if (last !== null && ipa >= last.base && ipa < last.end) return last;
    const rs = this.ranges;
    for (let i = 0; i < rs.length; i++) {
      const r = rs[i]!;
      if (ipa >= r.base && ipa < r.end) {
        this.lastRange = r;
        return r;
      }
    }
    return null;
  }
}
