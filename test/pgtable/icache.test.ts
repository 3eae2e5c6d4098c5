/**
 * I-cache maintenance on the less common I-cache types (spec 4.5, 4.6): a VPIPT I-cache under
 * nVHE is invalidated by the TLBI-by-IPA path; an aliasing (VIPT) one as a whole; neither with DIC
 * (icache_inval_all_pou returns at once).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type CpuFeatures, GRANULES, KUNPENG_920, stage2Geometry } from "../../src/arch/index.js";
import { EventBus } from "../../src/common/events.js";
import {
  MemoryCache,
  PGTABLE_EVENT_KINDS,
  type PgtableEvent,
  type PgtableTap,
  PhysMem,
  PROT_R,
  PROT_W,
  PROT_X,
  Stage2Pgtable,
  V5_14,
} from "../../src/pgtable/index.js";

const IPA = 2 ** 30;
const PA = 2 ** 33;

/** A v5.14 table on `cpu` with one 4K page mapped R, and the events of what `act` does next. */
function eventsOf(cpu: CpuFeatures, act: (pgt: Stage2Pgtable) => void): PgtableEvent[] {
  const g = GRANULES[4096];
  const mem = new PhysMem(g);
  const events = new EventBus<PgtableEvent, PgtableTap>(PGTABLE_EVENT_KINDS);
  const pgt = new Stage2Pgtable({ geometry: stage2Geometry(g, 40), kernel: V5_14, cpu, mem, events });
  const mc = new MemoryCache(mem, 8);
  mc.topup(8);
  assert.equal(pgt.map(IPA, 4096, PA, PROT_R, mc), 0);
  const seen: PgtableEvent[] = [];
  events.subscribe((e) => seen.push(e), ["tlbi", "cmo"]);
  act(pgt);
  return seen;
}

const kinds = (es: PgtableEvent[]): string[] =>
  es.map((e) => (e.kind === "cmo" ? e.op : e.kind === "tlbi" ? `tlbi-${e.scope}` : e.kind));

test("VPIPT under nVHE: every TLBI by IPA is followed by IC IALLUIS (not with DIC); under VHE it is not", () => {
  const relax = (pgt: Stage2Pgtable): void => void pgt.relaxPerms(IPA, PROT_R | PROT_W);
  assert.deepEqual(kinds(eventsOf({ ...KUNPENG_920, icache: "vpipt", vhe: false }, relax)), [
    "tlbi-vmid-ipa",
    "ic-ialluis",
  ]);
  assert.deepEqual(kinds(eventsOf({ ...KUNPENG_920, icache: "vpipt", vhe: false, dic: true }, relax)), [
    "tlbi-vmid-ipa",
  ]);
  assert.deepEqual(kinds(eventsOf({ ...KUNPENG_920, icache: "vpipt", vhe: true }, relax)), ["tlbi-vmid-ipa"]);
  assert.deepEqual(kinds(eventsOf(KUNPENG_920, relax)), ["tlbi-vmid-ipa"]);
});

test("VIPT: adding X invalidates the whole I-cache, except with DIC", () => {
  const addX = (pgt: Stage2Pgtable): void => void pgt.relaxPerms(IPA, PROT_R | PROT_X);
  assert.deepEqual(kinds(eventsOf({ ...KUNPENG_920, icache: "vipt" }, addX)), [
    "ic-ialluis",
    "tlbi-vmid-ipa",
  ]);
  assert.deepEqual(kinds(eventsOf({ ...KUNPENG_920, icache: "vipt", dic: true }, addX)), ["tlbi-vmid-ipa"]);
  // PIPT: by line over the leaf.
  assert.deepEqual(kinds(eventsOf(KUNPENG_920, addX)), ["ic-ivau", "tlbi-vmid-ipa"]);
});
