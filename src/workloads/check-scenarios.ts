/**
 * Small named scenarios on the simulated machine that provoke what each injectable bug breaks:
 * a few vCPUs, a few pages, steps that run guest accesses concurrently or change dirty logging.
 * With the unmodified kernels every checker stays silent; with the bug, the checker that guards
 * the broken rule reports it. They are the golden good/bad programs of the checker tests, and a
 * way to watch a rule being broken (`s2sim scenario`).
 */
import type { CpuFeatures } from "../arch/cpu.js";
import { Checkers } from "../check/checkers.js";
import type { CheckName } from "../check/rules.js";
import type { Violation } from "../check/violation.js";
import { S2simError } from "../common/error.js";
import { runToCompletion } from "../common/steps.js";
import { disableDirtyLogging, enableDirtyLogging } from "../kvm/dirty-log.js";
import { kvmKernel, withInjectedBug } from "../kvm/kernel.js";
import { Vm } from "../kvm/vm.js";
import type { InjectedBug } from "../pgtable/bugs.js";
import type { KernelVersion } from "../pgtable/kernel.js";
import { SimMachine } from "../sim/machine.js";
import type { CostProfile } from "../sim/profile.js";
import type { AccessStream } from "../sim/vcpu.js";
import { freeWatched, inTeardown } from "./teardown.js";

/** One guest access: a 4K page of the test region, read or written. */
export interface ScenarioAccess {
  readonly page: number;
  readonly write: boolean;
}

/**
 * A step: every vCPU runs its list of accesses (concurrently), dirty logging changes, or (for
 * checker tests) host code run between the runs with no vCPU in the guest: a store into the
 * stage-2 tables that no kernel path makes, with nothing after it (no TLBI), what a buggy kernel
 * could do that no injectable bug does; a kvm_pgtable call that no KVM path of the workloads makes;
 * a count changed behind the checkers' back.
 */
export type ScenarioStep =
  | { readonly kind: "run"; readonly what: string; readonly vcpus: readonly (readonly ScenarioAccess[])[] }
  | { readonly kind: "dirty-log"; readonly on: boolean }
  | { readonly kind: "host"; readonly what: string; readonly run: (vm: Vm) => void };

/** A scenario. */
export interface CheckScenario {
  readonly name: string;
  readonly summary: string;
  readonly backing: string;
  readonly vcpus: number;
  /** Test region size in bytes (at IPA {@link SCENARIO_GPA}). */
  readonly memBytes: number;
  /** The bugs this scenario provokes. */
  readonly provokes: readonly InjectedBug[];
  readonly steps: readonly ScenarioStep[];
}

/** IPA of the test region (1 GiB: every block size aligns). */
export const SCENARIO_GPA = 2 ** 30;
const HVA = 0x4000_0000_0000;
const PAGE = 4096;

const r = (page: number): ScenarioAccess => ({ page, write: false });
const w = (page: number): ScenarioAccess => ({ page, write: true });

/** The scenarios, in `scenario list` order. */
export const CHECK_SCENARIOS: readonly CheckScenario[] = [
  {
    name: "first-touch",
    summary: "a vCPU writes a fresh anonymous page: the host zeroes it and KVM maps it 4K",
    backing: "anonymous",
    vcpus: 1,
    memBytes: 2 ** 21,
    provokes: ["install-no-cmo"],
    steps: [{ kind: "run", what: "vCPU 0 writes page 0", vcpus: [[w(0)]] }],
  },
  {
    name: "split",
    summary:
      "a 2M hugetlb block is mapped, write-protected for dirty logging, then split by a write while " +
      "another vCPU holds it in its TLB",
    backing: "anonymous_hugetlb",
    vcpus: 2,
    memBytes: 2 ** 21,
    provokes: ["no-tlbi-after-break", "no-break"],
    steps: [
      { kind: "run", what: "vCPU 0 writes page 0 (2M block)", vcpus: [[w(0)], []] },
      { kind: "dirty-log", on: true },
      { kind: "run", what: "vCPU 1 reads page 1 (caches the RO block)", vcpus: [[], [r(1)]] },
      { kind: "run", what: "vCPU 0 writes page 0 (split to 4K)", vcpus: [[w(0)], []] },
      { kind: "run", what: "vCPU 1 reads page 2", vcpus: [[], [r(2)]] },
    ],
  },
  {
    name: "coalesce",
    summary:
      "a split 2M hugetlb region, 4K pages cached in another vCPU's TLB, is coalesced back into a block " +
      "after dirty logging is turned off",
    backing: "anonymous_hugetlb",
    vcpus: 2,
    memBytes: 2 ** 21,
    provokes: ["coalesce-tlbi-ipa", "free-before-tlbi"],
    steps: [
      { kind: "run", what: "vCPU 0 writes page 0 (2M block)", vcpus: [[w(0)], []] },
      { kind: "dirty-log", on: true },
      { kind: "run", what: "vCPU 0 writes page 0 (split)", vcpus: [[w(0)], []] },
      { kind: "run", what: "vCPU 1 reads pages 1 and 2 (4K)", vcpus: [[], [r(1), r(2)]] },
      { kind: "dirty-log", on: false },
      { kind: "run", what: "vCPU 0 reads page 3 (coalesce to 2M)", vcpus: [[r(3)], []] },
      { kind: "run", what: "vCPU 1 reads page 4", vcpus: [[], [r(4)]] },
    ],
  },
  {
    name: "coalesce-unclean",
    summary:
      "a 2M hugetlb region first touched with dirty logging on (one 4K page mapped and cleaned) is " +
      "coalesced into a block over pages the host zeroed and nobody cleaned",
    backing: "anonymous_hugetlb",
    vcpus: 1,
    memBytes: 2 ** 21,
    provokes: ["coalesce-no-cmo"],
    steps: [
      { kind: "dirty-log", on: true },
      { kind: "run", what: "vCPU 0 writes page 0 (4K)", vcpus: [[w(0)]] },
      { kind: "dirty-log", on: false },
      { kind: "run", what: "vCPU 0 reads page 1 (coalesce to 2M)", vcpus: [[r(1)]] },
    ],
  },
];

/** The last step of every scenario's run. */
export const TEARDOWN_STEP = "kvm_vm_free: memslot 1 deleted (its range unmapped), then the VM destroyed";
const TEARDOWN_AFTER = "after the steps";

/** The scenario named `name`; a clear error listing the names otherwise. */
export function checkScenario(name: string): CheckScenario {
  const s = CHECK_SCENARIOS.find((x) => x.name === name);
  if (s === undefined) {
    throw new S2simError(
      "bad-scenario",
      `unknown scenario '${name}'; scenarios: ${CHECK_SCENARIOS.map((x) => x.name).join(", ")}`,
    );
  }
  return s;
}

/** How to run a scenario. */
export interface ScenarioRunOptions {
  readonly kernel: KernelVersion;
  readonly inject?: string;
  readonly checks: ReadonlySet<CheckName>;
  /** Stop at the first violation (throws CheckFailure), or collect them all. */
  readonly mode: "fail-fast" | "collect";
  /** The host CPU (default: the Kunpeng 920's features). */
  readonly cpu?: CpuFeatures;
}

/** What a scenario run saw. */
export interface ScenarioResult {
  /** The violations kept (the checkers keep the first 100). */
  readonly violations: Violation[];
  /** How many were found, kept or not. */
  readonly found: number;
  /** Per step: what it did and the machine time it ended at (ps). */
  readonly steps: Array<{ readonly what: string; readonly endPs: number }>;
  /**
   * Times an injected bug made the code depart from the kernel's in the steps
   * (Stage2Pgtable.bugDepartures).
   */
  readonly bugDepartures: number;
  /** The same in kvm_vm_free, after the steps. */
  readonly teardownDepartures: number;
}

/** Runs `s` on the simulated machine of `profile` with the checkers of `opts`. */
export function runCheckScenario(
  s: CheckScenario,
  profile: CostProfile,
  opts: ScenarioRunOptions,
): ScenarioResult {
  const kernel =
    opts.inject !== undefined ? withInjectedBug(kvmKernel(opts.kernel), opts.inject) : kvmKernel(opts.kernel);
  const machine = new SimMachine(profile, PAGE / 8);
  const vm = new Vm({
    kernel,
    vcpus: s.vcpus,
    hostBytes: s.memBytes,
    ...(opts.cpu === undefined ? {} : { cpu: opts.cpu }),
    ...machine.vmHooks(),
  });
  const slot = vm.addMemory(1, SCENARIO_GPA, s.memBytes, HVA, s.backing);
  machine.attach(vm);
  const checkers = new Checkers(vm, { checks: opts.checks, mode: opts.mode, machine });
  const steps: Array<{ what: string; endPs: number }> = [];
  for (const step of s.steps) {
    switch (step.kind) {
      case "run":
        machine.run(step.vcpus.map((list) => new ListStream(list)));
        steps.push({ what: step.what, endPs: machine.timeBase });
        break;
      case "dirty-log":
        if (step.on) runToCompletion(enableDirtyLogging(vm, slot));
        else disableDirtyLogging(vm, slot);
        steps.push({ what: `dirty logging ${step.on ? "on" : "off"}`, endPs: machine.timeBase });
        break;
      case "host":
        step.run(vm);
        steps.push({ what: step.what, endPs: machine.timeBase });
        break;
    }
  }
  // The VM ends as a selftest's does, with the checkers still watching; what they find there, and
  // what an injected bug does there, is told apart from the steps'.
  const stepDepartures = vm.pgt.bugDepartures;
  const stepViolations = checkers.violations.length;
  freeWatched(vm, TEARDOWN_AFTER);
  steps.push({ what: TEARDOWN_STEP, endPs: machine.timeBase });
  checkers.detach();
  return {
    violations: checkers.violations.map((v, i) => (i < stepViolations ? v : inTeardown(v, TEARDOWN_AFTER))),
    found: checkers.found,
    steps,
    bugDepartures: stepDepartures,
    teardownDepartures: vm.pgt.bugDepartures - stepDepartures,
  };
}

/** A vCPU's accesses of one step. */
class ListStream implements AccessStream {
  ipa = 0;
  write = false;
  readonly tables = new Float64Array(0);
  readonly nTables = 0;
  private i = -1;

  constructor(private readonly list: readonly ScenarioAccess[]) {}

  next(): boolean {
    if (++this.i >= this.list.length) return false;
    const a = this.list[this.i]!;
    this.ipa = SCENARIO_GPA + a.page * PAGE;
    this.write = a.write;
    return true;
  }
}
