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

/** A broken entry still owed its TLBI. */
interface Broken {
  readonly ipa: number;
  readonly size: number;
  readonly level: number;
}

/** The break-before-make checker. */
export class BbmChecker {
  /** Broken entries (by key) not yet covered by a TLBI. */
  private readonly owed = new Map<number, Broken>();

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
      this.owed.set(c.key, { ipa: c.ipa, size: c.size, level: c.level });
      return;
    }
    if (newValid && this.owed.has(c.key)) {
      this.owed.delete(c.key);
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
    this.owed.clear();
  }

  tlbiIpa(ipa: number, level: number): void {
    for (const [key, b] of this.owed) {
      if (ipa >= b.ipa && ipa < b.ipa + b.size && level === b.level) this.owed.delete(key);
    }
  }

  /** A table page was freed: its entries are gone with it. */
  pageFree(page: number): void {
    const ptrs = this.env.ptrsPerTable;
    for (const key of this.owed.keys()) if (Math.floor(key / ptrs) === page) this.owed.delete(key);
  }

  private where(c: PteChange): string {
    return `${hex(this.env.vm.tableMem.pa(c.page))}[${c.index}] (IPA ${hex(c.ipa)}, ${sizeName(c.size)})`;
  }

  private kind(lo: number, hi: number, level: number): string {
    const oa = hex(pteOa(this.env.granule, lo, hi));
    return isTableDesc(lo, level) ? `table -> ${oa}` : `leaf -> ${oa} MemAttr ${hex(pteMemAttr(lo))}`;
  }
}
