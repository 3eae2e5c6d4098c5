/**
 * The host's own TLB invalidation of a user address (flush_tlb_page, `host-tlbi`): wp_page_copy
 * clears the old PTE with ptep_clear_flush before change_pte, and a write that takes a read-only
 * page over (wp_page_reuse, hugetlb_cow's reuse) makes it writable with ptep_set_access_flags,
 * which flushes the stale read-only entry. Installing a PTE where there was none flushes nothing.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { GRANULES } from "../../src/arch/index.js";
import { EventBus } from "../../src/common/events.js";
import { type Blocking, runToCompletion, SCHED } from "../../src/common/steps.js";
import { W, WorkMeter } from "../../src/common/work.js";
import { backingSource } from "../../src/host/backing.js";
import { HOST_EVENT_KINDS, type HostEvent } from "../../src/host/events.js";
import { HostPhys } from "../../src/host/host-phys.js";
import { HPTE_PRESENT, HPTE_WRITE, HostMm } from "../../src/host/mm.js";
import type { MmuNotifier } from "../../src/host/notifier.js";
import { finish } from "./helpers.js";

const G = GRANULES[4096];
const HVA = 2 ** 40;
const TLBI = W["host-tlbi"];

function host(src: string, size = 2 ** 21): { mm: HostMm; meter: WorkMeter } {
  const meter = new WorkMeter();
  const mm = new HostMm(
    G,
    new HostPhys(G, 2 ** 24, 2 ** 21),
    new EventBus<HostEvent>(HOST_EVENT_KINDS),
    2 ** 21,
    meter,
  );
  mm.mmap(HVA, size, backingSource(src, G));
  return { mm, meter };
}

/** Runs `gen` up to its first scheduling point (past the locks it took and dropped). */
function untilSched(gen: Blocking<unknown>): void {
  for (let r = gen.next(); r.done !== true; r = gen.next()) if (r.value === SCHED) return;
  assert.fail("no scheduling point");
}

/** A notifier that notes the host TLBIs counted so far whenever change_pte is called. */
function tlbisAtChangePte(meter: WorkMeter, seen: number[]): MmuNotifier {
  const none = function* (): Blocking<void> {};
  // eslint-disable-next-line require-yield
  const never = function* (): Blocking<boolean> {
    return false;
  };
  return {
    invalidateRangeStart: none,
    invalidateRangeEnd: none,
    // eslint-disable-next-line require-yield
    *changePte() {
      seen.push(meter.count[TLBI]!);
    },
    clearFlushYoung: never,
    clearYoung: never,
    testYoung: never,
    release: none,
  };
}

test("anonymous memory: a fresh page or the zero page costs no host TLBI; the zero page's copy one, before change_pte", () => {
  const { mm, meter } = host("anonymous");
  const seen: number[] = [];
  mm.registerNotifier(tlbisAtChangePte(meter, seen));
  runToCompletion(mm.gup(HVA, true)); // do_anonymous_page with a write: a new page, no old PTE
  runToCompletion(mm.gup(HVA + 4096, false)); // the zero page, no old PTE
  assert.equal(meter.count[TLBI], 0);
  runToCompletion(mm.gup(HVA + 4096, true)); // wp_page_copy of the zero page
  assert.equal(meter.count[TLBI], 1);
  assert.deepEqual(seen, [1], "ptep_clear_flush runs before set_pte_at_notify");
  runToCompletion(mm.gup(HVA + 4096, true)); // already writable: no fault
  assert.equal(meter.count[TLBI], 1);
});

test("anonymous memory: a copy that lost the race to another flushes nothing", () => {
  const { mm, meter } = host("anonymous");
  runToCompletion(mm.gup(HVA, false)); // the zero page
  const a = mm.gup(HVA, true);
  const b = mm.gup(HVA, true);
  // Both pass do_wp_page's check and zero a page for the copy; then one finishes before the other
  // re-checks the PTE.
  untilSched(a);
  untilSched(b);
  finish(a);
  finish(b);
  assert.equal(meter.count[TLBI], 1);
  assert.equal(meter.count[W["page-alloc"]], 2, "both copies allocated a page");
});

test("anonymous memory: taking over a read-only page of one's own (wp_page_reuse) flushes once", () => {
  const { mm, meter } = host("anonymous");
  runToCompletion(mm.gup(HVA, true));
  const vma = mm.findVma(HVA)!;
  vma.flags[0] = HPTE_PRESENT; // read-only, not the zero page (as after a fork's child exited)
  runToCompletion(mm.gup(HVA, true));
  assert.equal(vma.flags[0], HPTE_PRESENT | HPTE_WRITE);
  assert.equal(meter.count[TLBI], 1);
});

test("private hugetlb: the read fault maps read-only with no flush; the write's reuse flushes once", () => {
  const { mm, meter } = host("anonymous_hugetlb_2mb");
  runToCompletion(mm.gup(HVA, false));
  assert.equal(meter.count[TLBI], 0);
  runToCompletion(mm.gup(HVA + 8192, true));
  assert.equal(meter.count[TLBI], 1);
  runToCompletion(mm.gup(HVA + 4096, true));
  assert.equal(meter.count[TLBI], 1);
});

test("private hugetlb: a write that faults the page in flushes once (installed read-only, then hugetlb_cow's reuse)", () => {
  const { mm, meter } = host("anonymous_hugetlb_2mb");
  runToCompletion(mm.gup(HVA, true));
  assert.equal(meter.count[TLBI], 1);
  runToCompletion(mm.gup(HVA + 4096, true));
  assert.equal(meter.count[TLBI], 1);
});

test("shared hugetlb: a write that faults the page in installs it writable, with no flush", () => {
  const { mm, meter } = host("shared_hugetlb");
  runToCompletion(mm.gup(HVA, true));
  assert.equal(meter.count[TLBI], 0);
});
