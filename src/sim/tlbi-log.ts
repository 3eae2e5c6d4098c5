/**
 * When each stage-2 translation was last invalidated, so TLBs can drop entries lazily: a TLBI is
 * O(1) however many vCPUs there are, and a TLB entry is valid while no TLBI covering it has been
 * issued since it was filled. TLBIs are numbered; an entry remembers the number current when it
 * was filled.
 */
import type { LevelSizes } from "../pgtable/walker.js";

/** A guest-physical range whose translations are tracked (a memslot). */
interface TrackedRange {
  readonly base: number;
  readonly end: number;
  /** First block number of the range, per level. */
  readonly firstBlock: Float64Array;
  /** Last TLBI number per block, one array per leaf level (index = level). */
  readonly last: Array<Uint32Array | null>;
}

/** The TLBI history of one VMID. */
export class TlbiLog {
  /** Number of the latest TLBI (0 = none yet). */
  seq = 0;
  /** Number of the latest whole-VMID invalidation. */
  vmidSeq = 0;
  private readonly ranges: TrackedRange[] = [];

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

  /** Tracks translations in [base, base + size) (every memslot must be tracked). */
  track(base: number, size: number): void {
    const last: Array<Uint32Array | null> = [null, null, null, null];
    const firstBlock = new Float64Array(4);
    for (const level of this.leafLevels) {
      const s = this.sizes.of(level);
      const first = Math.floor(base / s);
      const lastBlock = Math.floor((base + size - 1) / s);
      last[level] = new Uint32Array(lastBlock - first + 1);
      firstBlock[level] = first;
    }
    this.ranges.push({ base, end: base + size, firstBlock, last });
  }

  /** TLBI by IPA with level hint `level` (0: none): the cached leaves containing `ipa` it removes. */
  invalidateIpa(ipa: number, level = 0): void {
    const seq = ++this.seq;
    const r = this.rangeOf(ipa);
    if (r === null) return;
    for (const l of this.leafLevels) {
      if (this.ttl && level > 0 && l !== level) continue;
      r.last[l]![Math.floor(ipa * this.sizes.inv[l + 1]!) - r.firstBlock[l]!] = seq;
    }
  }

  /** TLBI VMALLS12E1IS: everything. */
  flushVmid(): void {
    this.vmidSeq = ++this.seq;
  }

  /** Number of the latest TLBI that removes a `level` leaf containing `ipa`. */
  lastFor(ipa: number, level: number): number {
    const r = this.rangeOf(ipa);
    if (r === null) return this.vmidSeq;
    const n = r.last[level]![Math.floor(ipa * this.sizes.inv[level + 1]!) - r.firstBlock[level]!]!;
    return n > this.vmidSeq ? n : this.vmidSeq;
  }

  private rangeOf(ipa: number): TrackedRange | null {
    const rs = this.ranges;
    for (let i = 0; i < rs.length; i++) {
      const r = rs[i]!;
      if (ipa >= r.base && ipa < r.end) return r;
    }
    return null;
  }
}
