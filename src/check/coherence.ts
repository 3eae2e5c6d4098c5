/**
 * Cache coherence of guest memory without FWB. The host writes fresh pages through its cacheable
 * alias (allocation and zeroing, copies); until DC CIVAC cleans them to the PoC a guest running
 * with its caches off would read stale memory, and until the I-cache is invalidated it could
 * execute stale instructions. So a store that makes host memory guest-visible through a Normal
 * leaf must find it clean, and one that makes it executable must find no host write since the last
 * I-cache invalidation over it (unless the CPU has DIC, or a VPIPT I-cache: its lines are tagged
 * with the VMID, so the host's writes cannot leave stale lines of the guest's VMID; under nVHE the
 * kernel accordingly skips the per-page invalidation, spec 4.5).
 */
import { ATTR_HI_XN, pteCacheable, pteOa } from "../arch/descriptor.js";
import { hex, sizeName } from "../common/format.js";
import type { HostPhys } from "../host/host-phys.js";
import type { CheckEnv, PteChange } from "./env.js";
import { isLeafDesc } from "./env.js";

const XN = ATTR_HI_XN;

/** The coherence checker (the per-page state lives in HostPhys, fed by the CPU's CMOs). */
export class CoherenceChecker {
  private readonly phys: HostPhys;

  constructor(private readonly env: CheckEnv) {
    this.phys = env.vm.hostPhys;
  }

  pte(c: PteChange): void {
    if (!isLeafDesc(c.newLo, c.level)) return;
    const g = this.env.granule;
    const pa = pteOa(g, c.newLo, c.newHi);
    const phys = this.phys;
    if (!phys.contains(pa)) return;
    const wasLeaf = isLeafDesc(c.oldLo, c.level) && pteOa(g, c.oldLo, c.oldHi) === pa;
    const cpu = this.env.vm.cpu;
    if (!wasLeaf && !cpu.fwb && pteCacheable(c.newLo, false)) {
      const dirty = phys.firstMarked(phys.unclean, pa, c.size);
      if (dirty >= 0) this.report(c, pa, "visible", dirty);
    }
    const exec = (c.newHi & XN) === 0;
    const wasExec = wasLeaf && (c.oldHi & XN) === 0;
    if (exec && !wasExec && !cpu.dic && cpu.icache !== "vpipt") {
      const stale = phys.firstMarked(phys.icacheStale, pa, c.size);
      if (stale >= 0) this.report(c, pa, "executable", stale);
    }
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
