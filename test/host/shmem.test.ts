/**
 * shmem faults (shmem_getpage_gfp + finish_fault): the page-cache page is found or allocated
 * under its page lock, so faults racing on one page allocate and zero it once.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { GRANULES } from "../../src/arch/index.js";
import { EventBus } from "../../src/common/events.js";
import { SCHED } from "../../src/common/steps.js";
import { W, WorkMeter } from "../../src/common/work.js";
import { backingSource } from "../../src/host/backing.js";
import { HOST_EVENT_KINDS, type HostEvent } from "../../src/host/events.js";
import { HostPhys } from "../../src/host/host-phys.js";
import { HPTE_PRESENT, HPTE_WRITE, HostMm } from "../../src/host/mm.js";
import { finish } from "./helpers.js";

const G = GRANULES[4096];
const HVA = 2 ** 40;

test("two faults on one shmem page: one allocation; the second waits for the page lock and finds the PTE", () => {
  const events = new EventBus<HostEvent>(HOST_EVENT_KINDS);
  const meter = new WorkMeter();
  const mm = new HostMm(G, new HostPhys(G, 2 ** 24, 2 ** 21), events, 2 ** 21, meter);
  const vma = mm.mmap(HVA, 2 ** 21, backingSource("shmem", G));
  const faults: string[] = [];
  events.subscribe((e) => faults.push(`${e.result}:${e.write}`), ["host-fault"]);
  const pageLock = vma.pageLock(HVA);

  // The first fault takes the page lock, allocates and zeroes the page, and stops there.
  const a = mm.gup(HVA, true);
  assert.deepEqual(a.next().value, pageLock.take);
  assert.equal(a.next().value, SCHED);
  assert.equal(meter.count[W["page-alloc"]], 1);
  // The second fault asks for the same page lock (it would sleep: the first holds it).
  const b = mm.gup(HVA, false);
  assert.deepEqual(b.next().value, pageLock.take);

  const ra = finish(a);
  const rb = finish(b);
  assert.ok(ra !== null && rb !== null);
  assert.equal(rb.pa, ra.pa);
  assert.equal(rb.writable, true, "shared mappings map writable on any fault");
  assert.equal(meter.count[W["page-alloc"]], 1);
  assert.deepEqual(faults, ["alloc:true"], "the second fault installs nothing");
  assert.equal(vma.flags[0], HPTE_PRESENT | HPTE_WRITE);
  assert.equal(vma.cachePa[0], ra.pa);
});
