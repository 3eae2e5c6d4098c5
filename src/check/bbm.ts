/**
 * Break-before-make per descriptor: a valid entry may change to another valid value only in its
 * permissions, access flag and software bits; anything else (output address, table <-> block, memory
 * type, shareability, contiguity) must go valid -> invalid -> TLBI -> valid. The TLBI must cover
 * the broken entry: the whole VMID, or one by IPA inside its range whose level hint removes it
 * (see hintCoversLeaf and hintCoversTable). A broken table entry also owes the valid leaves below
 * it, which may be cached: only a whole-VMID TLBI, or TLBIs by IPA covering each of them, remove
 * them (why coalescing flushes the VMID, spec 4.3). Every correct path of these kernels issues the
 * covering TLBI inside the kvm_pgtable operation that broke the entry, so an entry still owed one
 * when that operation returns, when it is made valid again or when its table page is freed is a
 * violation (destroy, with its VMID retired, is exempt). An entry made valid again with the value
 * it was broken from (up to the bits that may change in place) owes no break: a copy a TLB may still
 * hold differs from it only as an in-place change would (whether such a copy is then used stale is
 * the stale-TLB checker's to judge).
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
import type { PgtableOp } from "../pgtable/events.js";
import { grown } from "./arrays.js";
import type { CheckEnv, PteChange } from "./env.js";
import { hintCoversLeaf, hintCoversTable, isTableDesc } from "./env.js";

/** Bits a valid descriptor may change in place. */
const MUTABLE_LO = ATTR_LO_S2AP_R | ATTR_LO_S2AP_W | ATTR_LO_AF;
const MUTABLE_HI = ATTR_HI_XN | ATTR_HI_DBM | ATTR_HI_SW_MASK;

/** Whether two valid descriptors differ only in the bits a valid descriptor may change in place. */
function sameTranslation(aLo: number, aHi: number, bLo: number, bHi: number): boolean {
  return ((aLo ^ bLo) & ~MUTABLE_LO) === 0 && ((aHi ^ bHi) & ~MUTABLE_HI) === 0;
}

/** Per owed entry flags: the entry itself still needs a TLBI; it was a table entry. */
const SELF = 1;
const TABLE = 2;

/** The break-before-make checker. */
export class BbmChecker {
  /**
   * Broken entries not yet covered by a TLBI, as a compact list (key, IPA, size, level, flags, and
   * the hint of the first TLBI by IPA that fell in the range without covering the entry, usually
   * the one the kernel meant for it) with the list position + 1 of each owed key in `at` (0: not
   * owed). A broken table entry's valid leaves are kept in a pool (IPA, level; -1 once covered),
   * [leafFrom, leafTo) per entry with leafLeft still live. With a correct kernel the list is empty
   * between operations and a break is followed at once by its TLBI, so a TLBI scans almost
   * nothing; a store asks `at` whether its entry is owed.
   */
  private keys: Float64Array = new Float64Array(16);
  private ipas: Float64Array = new Float64Array(16);
  private sizes: Float64Array = new Float64Array(16);
  private levels: Int8Array = new Int8Array(16);
  private flags: Uint8Array = new Uint8Array(16);
  private hinted: Int8Array = new Int8Array(16);
  /** The descriptor each owed entry was broken from. */
  private oldLos: Float64Array = new Float64Array(16);
  private oldHis: Float64Array = new Float64Array(16);
  private leafFrom: Int32Array = new Int32Array(16);
  private leafTo: Int32Array = new Int32Array(16);
  private leafLeft: Int32Array = new Int32Array(16);
  private n = 0;
  private at: Int32Array = new Int32Array(4096);
  private leafIpas: Float64Array = new Float64Array(64);
  private leafLevels: Int8Array = new Int8Array(64);
  private nLeaves = 0;
  private readonly ttl: boolean;
  private destroying = false;

  constructor(private readonly env: CheckEnv) {
    this.ttl = env.vm.cpu.ttl;
  }

  pte(c: PteChange): void {
    const oldValid = (c.oldLo & 1) !== 0;
    const newValid = (c.newLo & 1) !== 0;
    if (oldValid && newValid) {
      if (!sameTranslation(c.oldLo, c.oldHi, c.newLo, c.newHi)) {
        this.env.report(
          "bbm",
          `L${c.level} entry ${this.where(c.key, c.ipa, c.size)} changed from ` +
            `${this.kind(c.oldLo, c.oldHi, c.level)} to ${this.kind(c.newLo, c.newHi, c.level)} without a break`,
          c.ipa,
          c.level,
          { ipa: c.ipa, ipaEnd: c.ipa + c.size, level: c.level },
        );
      }
      return;
    }
    if (oldValid) {
      this.owe(c);
      return;
    }
    if (newValid && c.key < this.at.length && this.at[c.key]! > 0) {
      const i = this.at[c.key]! - 1;
      if (sameTranslation(this.oldLos[i]!, this.oldHis[i]!, c.newLo, c.newHi)) {
        // Back to what it was, up to in-place bits: as if it had been changed in place.
        this.remove(i);
        return;
      }
      const debt = this.debt(i);
      this.remove(i);
      this.env.report(
        "bbm",
        `L${c.level} entry ${this.where(c.key, c.ipa, c.size)} was made valid again ` +
          `(${this.kind(c.newLo, c.newHi, c.level)}) with ${debt}`,
        c.ipa,
        c.level,
        { ipa: c.ipa, ipaEnd: c.ipa + c.size, level: c.level },
      );
    }
  }

  tlbiVmid(): void {
    this.clear();
  }

  tlbiIpa(ipa: number, hint: number): void {
    for (let i = this.n - 1; i >= 0; i--) {
      const base = this.ipas[i]!;
      if (ipa < base || ipa >= base + this.sizes[i]!) continue;
      const f = this.flags[i]!;
      if ((f & SELF) !== 0) {
        const level = this.levels[i]!;
        const covers =
          (f & TABLE) !== 0 ? hintCoversTable(this.ttl, hint) : hintCoversLeaf(this.ttl, hint, level);
        if (covers) this.flags[i] = f & ~SELF;
        else if (this.hinted[i] === 0) this.hinted[i] = hint;
      }
      if (this.leafLeft[i]! > 0) this.coverLeaves(i, ipa, hint);
      if ((this.flags[i]! & SELF) === 0 && this.leafLeft[i] === 0) this.remove(i);
    }
    if (this.n === 0) this.nLeaves = 0;
  }

  op(op: PgtableOp): void {
    this.destroying = op === "destroy";
  }

  /** The operation returned: every entry it broke must have had its TLBI by now. */
  opDone(op: PgtableOp): void {
    if (this.n === 0) return;
    const debt = this.debt(0);
    const key = this.keys[0]!;
    const ipa = this.ipas[0]!;
    const size = this.sizes[0]!;
    const level = this.levels[0]!;
    this.clear();
    if (this.destroying) return;
    this.env.report(
      "bbm",
      `${op} returned leaving L${level} entry ${this.where(key, ipa, size)} with ${debt}`,
      ipa,
      level,
      { ipa, ipaEnd: ipa + size, level },
    );
  }

  /** A table page was freed: an entry of it still owed a TLBI is reported (destroy excepted). */
  pageFree(page: number): void {
    const ptrs = this.env.ptrsPerTable;
    let first = -1;
    let debt = "";
    let key = 0;
    for (let i = this.n - 1; i >= 0; i--) {
      if (Math.floor(this.keys[i]! / ptrs) !== page) continue;
      first = i;
      debt = this.debt(i);
      key = this.keys[i]!;
    }
    if (first < 0) return;
    const ipa = this.ipas[first]!;
    const size = this.sizes[first]!;
    const level = this.levels[first]!;
    for (let i = this.n - 1; i >= 0; i--) if (Math.floor(this.keys[i]! / ptrs) === page) this.remove(i);
    if (this.destroying) return;
    this.env.report(
      "bbm",
      `table page ${hex(this.env.vm.tableMem.pa(page))} was freed holding L${level} entry ` +
        `[${key - page * ptrs}] (IPA ${hex(ipa)}, ${sizeName(size)}) with ${debt}`,
      ipa,
      level,
      { ipa, ipaEnd: ipa + size, level },
    );
  }

  /** Records that the entry of `c` was broken and is owed a TLBI (again, if it already was). */
  private owe(c: PteChange): void {
    const key = c.key;
    this.at = grown(this.at, key + 1);
    let i = this.at[key]! - 1;
    if (i < 0) {
      if (this.n === this.keys.length) this.growList(this.n + 1);
      i = this.n++;
      this.keys[i] = key;
      this.at[key] = i + 1;
    }
    this.ipas[i] = c.ipa;
    this.sizes[i] = c.size;
    this.levels[i] = c.level;
    this.hinted[i] = 0;
    this.oldLos[i] = c.oldLo;
    this.oldHis[i] = c.oldHi;
    const table = isTableDesc(c.oldLo, c.level);
    this.flags[i] = SELF | (table ? TABLE : 0);
    this.leafFrom[i] = this.nLeaves;
    if (table) {
      const child = this.env.vm.tableMem.pageOfPte(c.oldLo, c.oldHi);
      if (child >= 0) this.addLeaves(child, c.level + 1, c.ipa);
    }
    this.leafTo[i] = this.nLeaves;
    this.leafLeft[i] = this.nLeaves - this.leafFrom[i]!;
  }

  /** Adds the valid leaves of the `level` table page `page` (mapping from `ipa`) and below to the pool. */
  private addLeaves(page: number, level: number, ipa: number): void {
    const mem = this.env.vm.tableMem;
    const words = mem.pages[page]!;
    const size = this.env.levelSize[level]!;
    for (let idx = 0; idx < this.env.ptrsPerTable; idx++) {
      const lo = words[2 * idx]!;
      if ((lo & 1) === 0) continue;
      const at = ipa + idx * size;
      if (isTableDesc(lo, level)) {
        const child = mem.pageOfPte(lo, words[2 * idx + 1]!);
        if (child >= 0) this.addLeaves(child, level + 1, at);
        continue;
      }
      this.leafIpas = grown(this.leafIpas, this.nLeaves + 1);
      this.leafLevels = grown(this.leafLevels, this.nLeaves + 1);
      this.leafIpas[this.nLeaves] = at;
      this.leafLevels[this.nLeaves++] = level;
    }
  }

  /** A TLBI by IPA with `hint`: the leaves below owed entry `i` it removes. */
  private coverLeaves(i: number, ipa: number, hint: number): void {
    const sizes = this.env.levelSize;
    for (let j = this.leafFrom[i]!; j < this.leafTo[i]!; j++) {
      const level = this.leafLevels[j]!;
      if (level < 0) continue;
      const base = this.leafIpas[j]!;
      if (ipa < base || ipa >= base + sizes[level]! || !hintCoversLeaf(this.ttl, hint, level)) continue;
      this.leafLevels[j] = -1;
      this.leafLeft[i]!--;
    }
  }

  /** What owed entry `i` still lacks, as the end of a sentence ("with ..."). */
  private debt(i: number): string {
    const f = this.flags[i]!;
    if ((f & SELF) !== 0) {
      const hint = this.hinted[i]!;
      if (hint === 0) return "no TLBI since it was broken";
      const why =
        (f & TABLE) !== 0
          ? `TLBI by IPA hinted L${hint}: with FEAT_TTL a hint names the level of a leaf, and this is a table entry`
          : `TLBI by IPA hinted L${hint}, the entry is L${this.levels[i]!}`;
      return `no TLBI covering it since it was broken (${why})`;
    }
    let first = this.leafFrom[i]!;
    while (this.leafLevels[first]! < 0) first++;
    const level = this.leafLevels[first]!;
    return (
      `${this.leafLeft[i]!} valid leaves of the table it held (first: L${level} IPA ` +
      `${hex(this.leafIpas[first]!)}, ${sizeName(this.env.levelSize[level]!)}) not covered by any TLBI ` +
      `since it was broken; a TLBI by IPA removes only the leaves that contain its address`
    );
  }

  /** Drops every owed entry. */
  private clear(): void {
    for (let i = 0; i < this.n; i++) this.at[this.keys[i]!] = 0;
    this.n = 0;
    this.nLeaves = 0;
  }

  /** Drops list position `i` (the last entry takes its place; its leaves stay in the pool). */
  private remove(i: number): void {
    this.at[this.keys[i]!] = 0;
    const last = --this.n;
    if (i === last) return;
    const key = this.keys[last]!;
    this.keys[i] = key;
    this.ipas[i] = this.ipas[last]!;
    this.sizes[i] = this.sizes[last]!;
    this.levels[i] = this.levels[last]!;
    this.flags[i] = this.flags[last]!;
    this.hinted[i] = this.hinted[last]!;
    this.oldLos[i] = this.oldLos[last]!;
    this.oldHis[i] = this.oldHis[last]!;
    this.leafFrom[i] = this.leafFrom[last]!;
    this.leafTo[i] = this.leafTo[last]!;
    this.leafLeft[i] = this.leafLeft[last]!;
    this.at[key] = i + 1;
  }

  private growList(cap: number): void {
    this.keys = grown(this.keys, cap);
    this.ipas = grown(this.ipas, cap);
    this.sizes = grown(this.sizes, cap);
    this.levels = grown(this.levels, cap);
    this.flags = grown(this.flags, cap);
    this.hinted = grown(this.hinted, cap);
    this.oldLos = grown(this.oldLos, cap);
    this.oldHis = grown(this.oldHis, cap);
    this.leafFrom = grown(this.leafFrom, cap);
    this.leafTo = grown(this.leafTo, cap);
    this.leafLeft = grown(this.leafLeft, cap);
  }

  private where(key: number, ipa: number, size: number): string {
    const ptrs = this.env.ptrsPerTable;
    const page = Math.floor(key / ptrs);
    return `${hex(this.env.vm.tableMem.pa(page))}[${key - page * ptrs}] (IPA ${hex(ipa)}, ${sizeName(size)})`;
  }

  private kind(lo: number, hi: number, level: number): string {
    const oa = hex(pteOa(this.env.granule, lo, hi));
    return isTableDesc(lo, level) ? `table -> ${oa}` : `leaf -> ${oa} MemAttr ${hex(pteMemAttr(lo))}`;
  }
}
