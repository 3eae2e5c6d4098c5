/**
 * Cache coherence of guest memory without FWB. The host writes fresh pages through its cacheable
 * alias (allocation and zeroing, copies); until DC CIVAC cleans them to the PoC a guest running
 * with its caches off would read stale memory, and until the I-cache is invalidated it could
 * execute stale instructions. So a store that makes host memory guest-visible through a Normal
 * leaf must find it clean, and one that makes it executable must find no host write since the last
 * I-cache invalidation over it (unless the CPU has DIC).
 */
import { ATTR_HI_XN, pteCacheable, pteOa } from "../arch/descriptor.js";
import { hex, sizeName } from "../common/format.js";
import type { HostPhys } from "../host/host-phys.js";
import type { CheckEnv, PteChange } from "./env.js";
import { isLeafDesc } from "./env.js";

const XN = ATTR_HI_XN;

/** The coherence checker. */
export class CoherenceChecker {
  /** Per host page: written by the host since its last I-cache invalidation. */
  private readonly icacheStale: Uint8Array;
  private readonly phys: HostPhys;

  constructor(private readonly env: CheckEnv) {
    this.phys = env.vm.hostPhys;
    // Pages the host wrote before the checker started (the zero pages) and never cleaned.
    this.icacheStale = Uint8Array.from(this.phys.unclean);
  }

  pte(c: PteChange): void {
    if (!isLeafDesc(c.newLo, c.level)) return;
    const g = this.env.granule;
    const pa = pteOa(g, c.newLo, c.newHi);
    if (!this.phys.contains(pa)) return;
    const wasLeaf = isLeafDesc(c.oldLo, c.level) && pteOa(g, c.oldLo, c.oldHi) === pa;
    const cpu = this.env.vm.cpu;
    if (!wasLeaf && !cpu.fwb && pteCacheable(c.newLo, false) && this.phys.isUnclean(pa, c.size)) {
      this.report(c, pa, "visible", this.firstMarked(this.phys.unclean, pa, c.size));
    }
    const exec = (c.newHi & XN) === 0;
    const wasExec = wasLeaf && (c.oldHi & XN) === 0;
    if (exec && !wasExec && !cpu.dic) {
      const stale = this.firstMarked(this.icacheStale, pa, c.size);
      if (stale >= 0) this.report(c, pa, "executable", stale);
    }
  }

  /** The host wrote [pa, pa + size). */
  hostWrite(pa: number, size: number): void {
    this.mark(pa, size, 1);
  }

  /** IC IVAU over [pa, pa + size). */
  icacheInval(pa: number, size: number): void {
    this.mark(pa, size, 0);
  }

  /** IC IALLUIS. */
  icacheInvalAll(): void {
    this.icacheStale.fill(0);
  }

  private mark(pa: number, size: number, v: number): void {
    const page = this.env.granule.size;
    const first = Math.max(0, Math.floor((pa - this.phys.base) / page));
    const end = Math.min(this.icacheStale.length, Math.ceil((pa + size - this.phys.base) / page));
    if (end > first) this.icacheStale.fill(v, first, end);
  }

  /** PA of the first marked host page in [pa, pa + size), or -1. */
  private firstMarked(marks: Uint8Array, pa: number, size: number): number {
    const page = this.env.granule.size;
    const first = Math.floor((pa - this.phys.base) / page);
    const end = Math.min(marks.length, first + Math.max(1, size / page));
    for (let i = Math.max(0, first); i < end; i++) if (marks[i] !== 0) return this.phys.base + i * page;
    return -1;
  }

  private report(c: PteChange, pa: number, how: "visible" | "executable", dirty: number): void {
    const what =
      how === "visible"
        ? `L${c.level} leaf IPA ${hex(c.ipa)} -> PA ${hex(pa)} (${sizeName(c.size)}) becomes guest-visible ` +
          `while host page ${hex(dirty)} holds host writes not cleaned to the PoC`
        : `L${c.level} leaf IPA ${hex(c.ipa)} -> PA ${hex(pa)} (${sizeName(c.size)}) becomes executable ` +
          `with no I-cache invalidation since the host wrote page ${hex(dirty)}`;
    this.env.report("coherence", what, c.ipa, c.level, {
      ipa: c.ipa,
      ipaEnd: c.ipa + c.size,
      level: c.level,
      pa,
      paEnd: pa + c.size,
    });
  }
}
