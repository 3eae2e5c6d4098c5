/** Kernel profiles of the KVM fault path: where v5.12 and v5.14 differ outside pgtable.c. */
import { S2simError } from "../common/error.js";
import { INJECTED_BUGS, injectedBugInfo } from "../pgtable/bugs.js";
import { type KernelVersion, type PgtableKernel, pgtableKernel } from "../pgtable/kernel.js";

/** How one kernel's mmu.c and MMU-notifier glue behave where the versions differ. */
export interface KvmKernel {
  readonly version: KernelVersion;
  readonly pgtable: PgtableKernel;
  /**
   * Where guest CMOs happen on a fault: in user_mem_abort under mmu_lock for every faulting vCPU
   * (v5.12), or in the pgtable walkers through mm_ops, only for an installed leaf (v5.14).
   */
  readonly faultCmos: "user_mem_abort" | "pgtable";
  /**
   * MMU-notifier glue: HVA-based (v5.12: change_pte bumps mmu_notifier_seq and cleans the new page
   * before mapping it) or gfn-range based (v5.13+: no bump, no clean outside the walker).
   */
  readonly notifierApi: "hva" | "gfn";
  /**
   * kvm_arch_prepare_memory_region cleans a new memslot's stage-2 range to the PoC
   * (stage2_flush_memslot) on a CPU without FWB (v5.12; gone by v5.14, spec 5.6).
   */
  readonly flushNewMemslot: boolean;
}

/** Linux v5.12 (before the series). */
export const KVM_V5_12: KvmKernel = {
  version: "v5.12",
  pgtable: pgtableKernel("v5.12"),
  faultCmos: "user_mem_abort",
  notifierApi: "hva",
  flushNewMemslot: true,
};

/** Linux v5.14 (after the series). */
export const KVM_V5_14: KvmKernel = {
  version: "v5.14",
  pgtable: pgtableKernel("v5.14"),
  faultCmos: "pgtable",
  notifierApi: "gfn",
  flushNewMemslot: false,
};

/** The KVM profile of a kernel version. */
export function kvmKernel(version: KernelVersion): KvmKernel {
  switch (version) {
    case "v5.12":
      return KVM_V5_12;
    case "v5.14":
      return KVM_V5_14;
  }
}

/**
 * `kernel` with the injected bug `name` (see pgtable/bugs.ts); a clear error for an unknown name
 * or a kernel that does not have the code the bug changes.
 */
export function withInjectedBug(kernel: KvmKernel, name: string): KvmKernel {
  const info = injectedBugInfo(name);
  if (info === undefined) {
    throw new S2simError(
      "bad-inject",
      `unknown bug '${name}'; injectable bugs: ${INJECTED_BUGS.map((b) => b.name).join(", ")}`,
    );
  }
  if (!info.kernels.includes(kernel.version)) {
    throw new S2simError(
      "bad-inject",
      `bug '${name}' changes code that only ${info.kernels.join(" and ")} has, not ${kernel.version}`,
    );
  }
  return { ...kernel, pgtable: { ...kernel.pgtable, bug: info.name } };
}
