/**
 * Two orders inside the page-table model that a mutation review found only the exact-trace tests
 * guarding, run here on the simulated machine with every checker on:
 *
 * - try_leaf replacing a valid leaf by a different one: break, TLBI by IPA, then the new leaf. A
 *   TLBI moved after the new store is a break-before-make violation, and `bbm` reports it.
 * - unmap of a leaf: break, TLBI by IPA, then the clean to the PoC (on hardware a vCPU could
 *   otherwise write through its cached entry after the clean, leaving dirty lines). No checker can
 *   see a clean moved before the TLBI: TLBIs act at the start of the code segment that issues them
 *   (docs/model.md, "The simulated machine") and the whole unmap is one segment under mmu_lock, so
 *   no vCPU access falls between the two; nor is a guest write cache state in the model
 *   (`coherence` follows host writes only, HostPhys.markWritten). So the order is checked as an
 *   event order.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { pteOa, pteWords } from "../../src/arch/descriptor.js";
import { parseChecks } from "../../src/check/rules.js";
import { formatViolation, type Violation } from "../../src/check/violation.js";
import { hex, sizeName } from "../../src/common/format.js";
import type { Vm } from "../../src/kvm/vm.js";
import type { PgtableEvent } from "../../src/pgtable/events.js";
import { KERNEL_VERSIONS, type KernelVersion } from "../../src/pgtable/kernel.js";
import { PROT_RW } from "../../src/pgtable/prot.js";
import { loadProfile } from "../../src/sim/profile.js";
import { type CheckScenario, runCheckScenario, SCENARIO_GPA } from "../../src/workloads/check-scenarios.js";

const profile = loadProfile("kunpeng920");
const ALL = parseChecks("all");
const PAGE = 4096;
const r = (page: number): { page: number; write: boolean } => ({ page, write: false });
const w = (page: number): { page: number; write: boolean } => ({ page, write: true });

/** The page-table events whose order the tests state: stores, TLBIs and CMOs. */
type OrderEvent = Extract<PgtableEvent, { kind: "pte" | "tlbi" | "cmo" }>;
const ORDER_KINDS = ["pte", "tlbi", "cmo"] as const;

/** One line per event, without the table pages' addresses (they depend on allocation order). */
function eventLine(vm: Vm, e: OrderEvent): string {
  switch (e.kind) {
    case "pte": {
      const value = (v: bigint): string => {
        const { lo, hi } = pteWords(v);
        return (lo & 1) === 0 ? "invalid" : hex(pteOa(vm.geo.granule, lo, hi));
      };
      return `pte L${e.level} ${hex(e.ipa)}: ${value(e.old)} -> ${value(e.new)}`;
    }
    case "tlbi":
      return e.scope === "vmid" ? "tlbi vmid" : `tlbi ipa ${hex(e.ipa)} L${e.level}`;
    case "cmo":
      return `${e.op} ${hex(e.pa)} ${sizeName(e.size)}`;
  }
}

/** The output address of the leaf that maps `ipa` now. */
function leafPa(vm: Vm, ipa: number): number {
  const { lo, hi } = vm.pgt.lookup(ipa);
  return pteOa(vm.geo.granule, lo, hi);
}

/**
 * Page 0 remapped by kvm_pgtable_stage2_map to page 1's memory while vCPU 1 caches it (no KVM path
 * of the modelled workloads replaces a valid leaf by a different one, so the test calls the map
 * between runs), then read again. Returns what the checkers found, the map's stores, TLBIs and
 * CMOs as lines, and the PAs of pages 0 and 1.
 */
function runRemap(
  kernel: KernelVersion,
  inject?: string,
): { violations: readonly Violation[]; order: string[]; pa0: number; pa1: number } {
  const order: string[] = [];
  let pa0 = -1;
  let pa1 = -1;
  const s: CheckScenario = {
    name: "remap",
    summary: "a cached 4K leaf remapped to another page by kvm_pgtable_stage2_map, then read",
    backing: "anonymous",
    vcpus: 2,
    memBytes: 4 * PAGE,
    provokes: [],
    steps: [
      // Both pages allocated, zeroed and cleaned by the fault path: the remap owes no clean.
      { kind: "run", what: "vCPU 0 writes pages 0 and 1", vcpus: [[w(0), w(1)], []] },
      { kind: "run", what: "vCPU 1 reads page 0 (caches its leaf)", vcpus: [[], [r(0)]] },
      {
        kind: "host",
        what: "kvm_pgtable_stage2_map maps page 0's IPA to page 1's PA",
        run: (vm) => {
          pa0 = leafPa(vm, SCENARIO_GPA);
          pa1 = leafPa(vm, SCENARIO_GPA + PAGE);
          const off = vm.events.subscribe((e) => order.push(eventLine(vm, e)), ORDER_KINDS);
          const ret = vm.pgt.map(SCENARIO_GPA, PAGE, pa1, PROT_RW, null);
          off();
          assert.equal(ret, 0);
        },
      },
      { kind: "run", what: "vCPU 1 reads page 0 again", vcpus: [[], [r(0)]] },
    ],
  };
  const found = runCheckScenario(s, profile, {
    kernel,
    checks: ALL,
    mode: "collect",
    ...(inject === undefined ? {} : { inject }),
  });
  return { violations: found.violations, order, pa0, pa1 };
}

for (const kernel of KERNEL_VERSIONS) {
  test(`bbm: a valid leaf replaced by another is broken, invalidated by IPA, then made anew (${kernel})`, () => {
    const { violations, order, pa0, pa1 } = runRemap(kernel);
    // A TLBI moved after the new store fails here first: bbm reports the entry "made valid again
    // ... with no TLBI since it was broken", as for no-tlbi-after-break below.
    assert.deepEqual(violations.map(formatViolation), []);
    const ipa = hex(SCENARIO_GPA);
    assert.deepEqual(order, [
      `pte L3 ${ipa}: ${hex(pa0)} -> invalid`,
      `tlbi ipa ${ipa} L3`,
      // v5.14's map walker cleans the new leaf's page; v5.12 left that to user_mem_abort.
      ...(kernel === "v5.14" ? [`dc-civac ${hex(pa1)} 4K`] : []),
      `pte L3 ${ipa}: invalid -> ${hex(pa1)}`,
    ]);
  });

  // The same path with its TLBI dropped or its break dropped: what bbm says when the order breaks.
  test(`bbm: a valid leaf replaced by another with no TLBI before the new store is reported (${kernel})`, () => {
    const noTlbi = runRemap(kernel, "no-tlbi-after-break").violations;
    assert.equal(noTlbi[0]?.check, "bbm", noTlbi.map(formatViolation).join("\n"));
    assert.match(
      noTlbi[0].what,
      /^L3 entry 0x[0-9a-f]+\[0\] \(IPA 0x40000000, 4K\) was made valid again \(leaf -> 0x[0-9a-f]+ MemAttr 0xf\) with no TLBI since it was broken$/,
    );
    const noBreak = runRemap(kernel, "no-break").violations;
    assert.equal(noBreak[0]?.check, "bbm", noBreak.map(formatViolation).join("\n"));
    assert.match(
      noBreak[0].what,
      /^L3 entry .* \(IPA 0x40000000, 4K\) changed from leaf -> .* without a break$/,
    );
  });
}

for (const kernel of KERNEL_VERSIONS) {
  test(`unmap: a leaf's clean to the PoC follows its TLBI, which no checker can see (${kernel})`, () => {
    const order: string[] = [];
    let zeroPage = -1;
    const s: CheckScenario = {
      name: "cow-unmap",
      summary: "a zero-page leaf unmapped by the MMU notifier of a copy-on-write",
      backing: "anonymous",
      vcpus: 1,
      memBytes: 4 * PAGE,
      provokes: [],
      steps: [
        { kind: "run", what: "vCPU 0 reads page 0 (the zero page, RO)", vcpus: [[r(0)]] },
        {
          kind: "host",
          what: "the page-table events are recorded from here",
          run: (vm) => {
            zeroPage = vm.hostPhys.zeroPage;
            vm.events.subscribe((e) => order.push(eventLine(vm, e)), ORDER_KINDS);
          },
        },
        // The host copies the zero page: invalidate_range_start unmaps page 0's leaf.
        { kind: "run", what: "vCPU 0 writes page 0 (copy-on-write)", vcpus: [[w(0)]] },
      ],
    };
    const found = runCheckScenario(s, profile, { kernel, checks: ALL, mode: "collect" });
    assert.deepEqual(found.violations.map(formatViolation), []);
    const ipa = hex(SCENARIO_GPA);
    // The unmap's first three: the leaf's break, its TLBI, its clean (then its empty tables go).
    assert.deepEqual(order.slice(0, 3), [
      `pte L3 ${ipa}: ${hex(zeroPage)} -> invalid`,
      `tlbi ipa ${ipa} L3`,
      `dc-civac ${hex(zeroPage)} 4K`,
    ]);
  });
}
