/**
 * The checkers attached to a VM (and, when it runs on the simulated machine, to its MMU): they see
 * every page-table event, host write and TLB fill or hit, and report what breaks a rule. In
 * fail-fast mode the first violation throws a {@link CheckFailure}; in collect mode violations
 * accumulate (up to a limit) and the run goes on.
 */
import { levelSize } from "../arch/granule.js";
import type { Vm } from "../kvm/vm.js";
import type { CmoOp, PgtableOp, PgtableTap } from "../pgtable/events.js";
import type { SimMachine } from "../sim/machine.js";
import type { MmuObserver } from "../sim/observer.js";
import { BbmChecker } from "./bbm.js";
import { CoherenceChecker } from "./coherence.js";
import type { CheckEnv, PteChange } from "./env.js";
import { EventHistory } from "./history.js";
import { RefcountChecker } from "./refcount.js";
import type { CheckName } from "./rules.js";
import { TableFreeChecker } from "./table-free.js";
import { TableLinks } from "./table-links.js";
import { TlbChecker } from "./tlb-rules.js";
import { CheckFailure, type Violation } from "./violation.js";

/** How to check. */
export interface CheckOptions {
  readonly checks: ReadonlySet<CheckName>;
  /** Throw at the first violation (default), or collect them. */
  readonly mode?: "fail-fast" | "collect";
  /** Most violations collected (default 100); later ones are counted only. */
  readonly maxViolations?: number;
  /** The simulated machine the VM runs on: enables the TLB checkers and the walk check. */
  readonly machine?: SimMachine;
}

/**
 * The checkers of one VM: the tap of its event bus (so at most one Checkers per VM at a time) and
 * the observer of its machine's MMU.
 */
export class Checkers implements MmuObserver, PgtableTap {
  readonly violations: Violation[] = [];
  /** Violations found, including those beyond maxViolations. */
  found = 0;
  private readonly env: CheckEnv;
  private readonly history: EventHistory;
  private readonly bbm: BbmChecker | null;
  private readonly tlb: TlbChecker | null;
  private readonly tables: TableFreeChecker | null;
  private readonly refcounts: RefcountChecker | null;
  private readonly coherence: CoherenceChecker | null;
  /** Where each table page sits (for the table-free and refcount checkers). */
  private readonly links: TableLinks | null;
  private readonly change: PteChange = {
    page: 0,
    index: 0,
    key: 0,
    level: 0,
    ipa: 0,
    size: 0,
    oldLo: 0,
    oldHi: 0,
    newLo: 0,
    newHi: 0,
  };
  private readonly unsubscribe: () => void;
  private readonly untap: () => void;
  private readonly machine: SimMachine | null;
  private readonly failFast: boolean;
  private readonly max: number;

  constructor(
    private readonly vm: Vm,
    opts: CheckOptions,
  ) {
    const machine = opts.machine ?? null;
    this.machine = machine;
    const granule = vm.geo.granule;
    const sizes = [0, 1, 2, 3].map((l) => levelSize(granule, l));
    this.failFast = (opts.mode ?? "fail-fast") === "fail-fast";
    this.max = opts.maxViolations ?? 100;
    const mem = vm.tableMem;
    this.history = new EventHistory(sizes, (page) => mem.pa(page));
    this.env = {
      vm,
      granule,
      ptrsPerTable: granule.ptrsPerTable,
      levelSize: sizes,
      cpu: () => this.cpu(),
      now: () => this.now(),
      global: (t) => this.global(t),
      report: this.report,
    };
    const on = opts.checks;
    this.bbm = on.has("bbm") ? new BbmChecker(this.env) : null;
    const tlbOn = machine !== null && (on.has("tlb-conflict") || on.has("stale-tlb"));
    this.tlb = tlbOn
      ? new TlbChecker(this.env, machine.mmu, on.has("tlb-conflict"), on.has("stale-tlb"))
      : null;
    const links = on.has("table-free") || on.has("refcount") ? new TableLinks(this.env) : null;
    this.links = links;
    this.tables = links !== null && on.has("table-free") ? new TableFreeChecker(this.env, links) : null;
    this.refcounts = links !== null && on.has("refcount") ? new RefcountChecker(this.env, links) : null;
    this.coherence = on.has("coherence") ? new CoherenceChecker(this.env) : null;
    // Page-table events come through the tap, as numbers; from the bus only the host writes.
    this.untap = vm.events.setTap(this);
    this.unsubscribe = vm.events.subscribe(
      (e) => this.history.addHostAlloc(this.now(), this.cpu(), e.pa, e.size),
      ["host-alloc"],
    );
    if (machine !== null && (this.tlb !== null || this.tables !== null)) machine.mmu.observer = this;
  }

  /** Stops checking. */
  detach(): void {
    this.unsubscribe();
    this.untap();
    if (this.machine !== null && this.machine.mmu.observer === this) this.machine.mmu.observer = null;
  }

  /** The running vCPU (-1: host code between timed runs, or no machine). */
  private cpu(): number {
    const m = this.machine;
    const cpu = m !== null ? m.currentCpu() : -1;
    return cpu >= 0 ? cpu : this.vm.untimedVcpu;
  }

  /** Machine time now (NaN between timed runs, or without a machine). */
  private now(): number {
    const m = this.machine;
    return m !== null ? m.timeBase + m.now() : Number.NaN;
  }

  /** Machine time of engine time `t` of the current run. */
  private global(t: number): number {
    const m = this.machine;
    return m !== null ? m.timeBase + t : t;
  }

  // ---------------------------------------------------------------- MmuObserver

  // The MMU passes engine times (its TLBs and visibility work in them); reports use machine time.

  tlbHit(cpu: number, ipa: number, now: number): void {
    if (this.tlb !== null) this.tlb.hit(cpu, ipa, now);
  }

  tlbFill(cpu: number, base: number, level: number, pa: number, perms: number, now: number): void {
    this.history.addFill(this.global(now), cpu, base, level, pa, perms);
    if (this.tlb !== null) this.tlb.fill(cpu, base, level, pa, now);
  }

  walkRead(cpu: number, page: number, level: number, now: number): void {
    // Only a freed page can break the rule: test that before converting the time.
    if (this.tables !== null && !(this.vm.tableMem.refcount[page]! > 0)) {
      this.tables.walkRead(cpu, page, level, this.global(now));
    }
  }

  // ---------------------------------------------------------------- PgtableTap

  op(op: PgtableOp): void {
    if (this.bbm !== null) this.bbm.op(op);
    if (this.tables !== null) this.tables.op(op);
    if (this.refcounts !== null) this.refcounts.op(op);
  }

  opDone(op: PgtableOp): void {
    if (this.refcounts !== null) this.refcounts.opDone(op);
    if (this.bbm !== null) this.bbm.opDone(op);
  }

  pte(
    page: number,
    index: number,
    level: number,
    ipa: number,
    oldLo: number,
    oldHi: number,
    newLo: number,
    newHi: number,
  ): void {
    this.history.addPte(this.now(), this.cpu(), page, index, level, ipa, oldLo, oldHi, newLo, newHi);
    const c = this.change;
    c.page = page;
    c.index = index;
    c.key = page * this.env.ptrsPerTable + index;
    c.level = level;
    c.ipa = ipa;
    c.size = this.env.levelSize[level]!;
    c.oldLo = oldLo;
    c.oldHi = oldHi;
    c.newLo = newLo;
    c.newHi = newHi;
    if (this.tlb !== null) this.tlb.store(c);
    if (this.links !== null) this.links.pte(c);
    if (this.bbm !== null) this.bbm.pte(c);
    if (this.tables !== null) this.tables.pte(c);
    if (this.refcounts !== null) this.refcounts.pte(c);
    if (this.coherence !== null) this.coherence.pte(c);
  }

  tableAlloc(page: number, level: number): void {
    this.history.addTableAlloc(this.now(), this.cpu(), page, level);
    if (this.links !== null) this.links.alloc(page, level);
    if (this.tables !== null) this.tables.tableAlloc(page);
    if (this.refcounts !== null) this.refcounts.tableAlloc(page);
  }

  pageFree(page: number): void {
    this.history.addPageFree(this.now(), this.cpu(), page);
    if (this.tables !== null) this.tables.pageFree(page);
    if (this.refcounts !== null) this.refcounts.pageFree(page);
    if (this.bbm !== null) this.bbm.pageFree(page);
    // After the checks: they follow the freed page's link.
    if (this.links !== null) this.links.free(page);
  }

  refcount(page: number): void {
    if (this.refcounts !== null) this.refcounts.refcount(page);
  }

  tlbiIpa(ipa: number, level: number): void {
    this.history.addTlbiIpa(this.now(), this.cpu(), ipa, level);
    if (this.bbm !== null) this.bbm.tlbiIpa(ipa, level);
    if (this.tables !== null) this.tables.tlbiIpa(ipa, level);
  }

  tlbiVmid(): void {
    this.history.addTlbiVmid(this.now(), this.cpu());
    if (this.bbm !== null) this.bbm.tlbiVmid();
    if (this.tables !== null) this.tables.tlbiVmid();
  }

  cmo(op: CmoOp, pa: number, size: number): void {
    this.history.addCmo(this.now(), this.cpu(), op, pa, size);
  }

  /** CheckEnv.report. */
  private readonly report: CheckEnv["report"] = (check, what, ipa, level, focus, cpu, timePs) => {
    this.found++;
    const v: Violation = {
      check,
      what,
      vcpu: cpu ?? this.env.cpu(),
      timePs: timePs ?? this.env.now(),
      ipa,
      level,
      history: this.history.lines(focus),
    };
    if (this.failFast) throw new CheckFailure(v);
    if (this.violations.length < this.max) this.violations.push(v);
  };
}
