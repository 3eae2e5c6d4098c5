/**
 * The checkers attached to a VM (and, when it runs on the simulated machine, to its MMU): they see
 * every page-table event, host write and TLB fill or hit, and report what breaks a rule. In
 * fail-fast mode the first violation throws a {@link CheckFailure}; in collect mode violations
 * accumulate (up to a limit) and the run goes on.
 */
import { levelSize } from "../arch/granule.js";
import type { VmEvent } from "../kvm/events.js";
import type { Vm } from "../kvm/vm.js";
import type { SimMachine } from "../sim/machine.js";
import type { MmuObserver } from "../sim/observer.js";
import { BbmChecker } from "./bbm.js";
import { CoherenceChecker } from "./coherence.js";
import type { CheckEnv, PteChange } from "./env.js";
import { EventHistory, type Focus } from "./history.js";
import { RefcountChecker } from "./refcount.js";
import type { CheckName } from "./rules.js";
import { TableFreeChecker } from "./table-free.js";
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

/** The checkers of one VM. */
export class Checkers implements MmuObserver {
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
  private readonly machine: SimMachine | null;
  private readonly failFast: boolean;
  private readonly max: number;

  constructor(
    private readonly vm: Vm,
    opts: CheckOptions,
  ) {
    const machine = opts.machine ?? null;
    const granule = vm.geo.granule;
    const sizes = [0, 1, 2, 3].map((l) => levelSize(granule, l));
    this.failFast = (opts.mode ?? "fail-fast") === "fail-fast";
    this.max = opts.maxViolations ?? 100;
    this.history = new EventHistory(sizes);
    this.env = {
      vm,
      granule,
      ptrsPerTable: granule.ptrsPerTable,
      levelSize: sizes,
      cpu: () => (machine !== null ? machine.currentCpu() : -1),
      now: () => (machine !== null ? machine.timeBase + machine.now() : Number.NaN),
      global: (t) => (machine !== null ? machine.timeBase + t : t),
      report: (check, what, ipa, level, focus, cpu) => this.report(check, what, ipa, level, focus, cpu),
    };
    const on = opts.checks;
    this.bbm = on.has("bbm") ? new BbmChecker(this.env) : null;
    const tlbOn = machine !== null && (on.has("tlb-conflict") || on.has("stale-tlb"));
    this.tlb = tlbOn
      ? new TlbChecker(this.env, machine.mmu, on.has("tlb-conflict"), on.has("stale-tlb"))
      : null;
    this.tables = on.has("table-free") ? new TableFreeChecker(this.env) : null;
    this.refcounts = on.has("refcount") ? new RefcountChecker(this.env) : null;
    this.coherence = on.has("coherence") ? new CoherenceChecker(this.env) : null;
    this.unsubscribe = vm.events.subscribe((e) => this.onEvent(e));
    this.machine = machine;
    if (machine !== null && (this.tlb !== null || this.tables !== null)) machine.mmu.observer = this;
  }

  /** Stops checking. */
  detach(): void {
    this.unsubscribe();
    if (this.machine !== null && this.machine.mmu.observer === this) this.machine.mmu.observer = null;
  }

  // ---------------------------------------------------------------- MmuObserver

  // The MMU passes engine times (its TLBs and visibility work in them); reports use machine time.

  tlbHit(cpu: number, ipa: number, now: number): void {
    if (this.tlb !== null) this.tlb.hit(cpu, ipa, now);
  }

  tlbFill(cpu: number, base: number, level: number, pa: number, perms: number, now: number): void {
    this.history.addFill(this.env.global(now), cpu, base, level, pa, perms);
    if (this.tlb !== null) this.tlb.fill(cpu, base, level, pa, now);
  }

  walkRead(cpu: number, page: number, level: number, now: number): void {
    if (this.tables !== null) this.tables.walkRead(cpu, page, level, this.env.global(now));
  }

  // ---------------------------------------------------------------- events

  private onEvent(e: VmEvent): void {
    switch (e.kind) {
      case "pte":
        this.history.add(this.env.now(), this.env.cpu(), e);
        this.pte(e.table, e.index, e.level, e.ipa, e.old, e.new);
        return;
      case "tlbi":
        this.history.add(this.env.now(), this.env.cpu(), e);
        if (e.scope === "vmid") {
          this.bbm?.tlbiVmid();
          this.tables?.tlbiVmid();
        } else {
          this.bbm?.tlbiIpa(e.ipa, e.level);
          this.tables?.tlbiIpa(e.ipa);
        }
        return;
      case "cmo":
        this.history.add(this.env.now(), this.env.cpu(), e);
        return;
      case "table-alloc": {
        this.history.add(this.env.now(), this.env.cpu(), e);
        const page = this.vm.tableMem.pageOf(e.pa);
        this.tables?.tableAlloc(page);
        this.refcounts?.tableAlloc(page);
        return;
      }
      case "page-free": {
        this.history.add(this.env.now(), this.env.cpu(), e);
        const page = this.vm.tableMem.pageOf(e.pa);
        this.tables?.pageFree(page);
        this.refcounts?.pageFree(page);
        this.bbm?.pageFree(page);
        return;
      }
      case "refcount":
        this.refcounts?.refcount(this.vm.tableMem.pageOf(e.pa));
        return;
      case "op":
        this.tables?.op(e.op);
        this.refcounts?.op(e.op);
        return;
      case "op-done":
        this.refcounts?.opDone(e.op);
        return;
      case "host-alloc":
        this.history.add(this.env.now(), this.env.cpu(), e);
        return;
      default:
        return;
    }
  }

  private pte(tablePa: number, index: number, level: number, ipa: number, old: bigint, nw: bigint): void {
    const c = this.change;
    const page = this.vm.tableMem.pageOf(tablePa);
    c.page = page;
    c.index = index;
    c.key = page * this.env.ptrsPerTable + index;
    c.level = level;
    c.ipa = ipa;
    c.size = this.env.levelSize[level]!;
    c.oldLo = Number(BigInt.asUintN(32, old));
    c.oldHi = Number(old >> 32n);
    c.newLo = Number(BigInt.asUintN(32, nw));
    c.newHi = Number(nw >> 32n);
    this.tlb?.store(c);
    this.bbm?.pte(c);
    this.tables?.pte(c);
    this.refcounts?.pte(c);
    this.coherence?.pte(c);
  }

  private report(
    check: CheckName,
    what: string,
    ipa: number,
    level: number,
    focus: Focus,
    cpu?: number,
  ): void {
    this.found++;
    const v: Violation = {
      check,
      what,
      vcpu: cpu ?? this.env.cpu(),
      timePs: this.env.now(),
      ipa,
      level,
      history: this.history.lines(focus),
    };
    if (this.failFast) throw new CheckFailure(v);
    if (this.violations.length < this.max) this.violations.push(v);
  }
}
