/**
 * Break-before-make per descriptor: a valid entry may change to another valid value only in its
 * permissions, access flag and software bits; anything else (output address, table <-> block, memory
 * type, shareability, contiguity) must go valid -> invalid -> TLBI -> valid. The TLBI must cover
 * the broken entry: the whole VMID, or by IPA inside its range at its level.
 */
import {
  ATTR_HI_DBM,
  ATTR_HI_SW_MASK,
  ATTR_HI_XN,
  ATTR_LO_AF,
  ATTR_LO_S2AP_R,
  ATTR_LO_S2AP_W,
  pteMemAttr,
  pteOa,
} from "../arch/descriptor.js";
import { hex, sizeName } from "../common/format.js";
import type { CheckEnv, PteChange } from "./env.js";
import { isTableDesc } from "./env.js";

/** Bits a valid descriptor may change in place. */
const MUTABLE_LO = ATTR_LO_S2AP_R | ATTR_LO_S2AP_W | ATTR_LO_AF;
const MUTABLE_HI = ATTR_HI_XN | ATTR_HI_DBM | ATTR_HI_SW_MASK;

/** The break-before-make checker. */
export class BbmChecker {
  /**
   * Broken entries not yet covered by a TLBI, as a compact list (key, IPA, size, level) with the
   * list position + 1 of each owed key in `at` (0: not owed). With a correct kernel the list holds
   * at most a few entries (a break is followed by its TLBI), so a TLBI scans almost nothing; a
   * store asks `at` whether its entry is owed.
   */
  private keys: Float64Array = new Float64Array(16);
  private ipas: Float64Array = new Float64Array(16);
  private sizes: Float64Array = new Float64Array(16);
  private levels: Int8Array = new Int8Array(16);
  private n = 0;
  private at: Int32Array = new Int32Array(4096);

  constructor(private readonly env: CheckEnv) {}

  pte(c: PteChange): void {
    const oldValid = (c.oldLo & 1) !== 0;
    const newValid = (c.newLo & 1) !== 0;
    if (oldValid && newValid) {
      if (((c.oldLo ^ c.newLo) & ~MUTABLE_LO) !== 0 || ((c.oldHi ^ c.newHi) & ~MUTABLE_HI) !== 0) {
        this.env.report(
          "bbm",
          `L${c.level} entry ${this.where(c)} changed from ${this.kind(c.oldLo, c.oldHi, c.level)} to ` +
            `${this.kind(c.newLo, c.newHi, c.level)} without a break`,
          c.ipa,
          c.level,
          { ipa: c.ipa, ipaEnd: c.ipa + c.size, level: c.level },
        );
      }
      return;
    }
    if (oldValid) {
      this.owe(c.key, c.ipa, c.size, c.level);
      return;
    }
    if (newValid && c.key < this.at.length && this.at[c.key]! > 0) {
      this.remove(this.at[c.key]! - 1);
      this.env.report(
        "bbm",
        `L${c.level} entry ${this.where(c)} was made valid again (${this.kind(c.newLo, c.newHi, c.level)}) ` +
          `with no TLBI since it was broken`,
        c.ipa,
        c.level,
        { ipa: c.ipa, ipaEnd: c.ipa + c.size, level: c.level },
      );
    }
  }

  tlbiVmid(): void {
    for (let i = 0; i < this.n; i++) this.at[this.keys[i]!] = 0;
    this.n = 0;
  }

  tlbiIpa(ipa: number, level: number): void {
    for (let i = this.n - 1; i >= 0; i--) {
      const base = this.ipas[i]!;
      if (ipa >= base && ipa < base + this.sizes[i]! && level === this.levels[i]) this.remove(i);
    }
  }

  /** A table page was freed: its entries are gone with it. */
  pageFree(page: number): void {
    const ptrs = this.env.ptrsPerTable;
    for (let i = this.n - 1; i >= 0; i--) if (Math.floor(this.keys[i]! / ptrs) === page) this.remove(i);
  }

  /** Records that entry `key` was broken and is owed a TLBI (again, if it already was). */
  private owe(key: number, ipa: number, size: number, level: number): void {
    if (key >= this.at.length) this.at = grow(this.at, key);
    let i = this.at[key]! - 1;
    if (i < 0) {
      if (this.n === this.keys.length) this.growList();
      i = this.n++;
      this.keys[i] = key;
      this.at[key] = i + 1;
    }
    this.ipas[i] = ipa;
    this.sizes[i] = size;
    this.levels[i] = level;
  }

  /** Drops list position `i` (the last entry takes its place). */
  private remove(i: number): void {
    this.at[this.keys[i]!] = 0;
    const last = --this.n;
    if (i === last) return;
    const key = this.keys[last]!;
    this.keys[i] = key;
    this.ipas[i] = this.ipas[last]!;
    this.sizes[i] = this.sizes[last]!;
    this.levels[i] = this.levels[last]!;
    this.at[key] = i + 1;
  }

  private growList(): void {
    const cap = this.keys.length * 2;
    const keys = new Float64Array(cap);
    const ipas = new Float64Array(cap);
    const sizes = new Float64Array(cap);
    const levels = new Int8Array(cap);
    keys.set(this.keys);
    ipas.set(this.ipas);
    sizes.set(this.sizes);
    levels.set(this.levels);
    this.keys = keys;
    this.ipas = ipas;
    this.sizes = sizes;
    this.levels = levels;
  }

  private where(c: PteChange): string {
    return `${hex(this.env.vm.tableMem.pa(c.page))}[${c.index}] (IPA ${hex(c.ipa)}, ${sizeName(c.size)})`;
  }

  private kind(lo: number, hi: number, level: number): string {
    const oa = hex(pteOa(this.env.granule, lo, hi));
    return isTableDesc(lo, level) ? `table -> ${oa}` : `leaf -> ${oa} MemAttr ${hex(pteMemAttr(lo))}`;
  }
}

/** A copy of `a`, zero-extended to more than `index` elements (doubling). */
function grow(a: Int32Array, index: number): Int32Array {
  let n = a.length;
  while (n <= index) n *= 2;
  const next = new Int32Array(n);
  next.set(a);
  return next;
}
