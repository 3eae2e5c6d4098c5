import assert from "node:assert/strict";
import { test } from "node:test";
import { pteOa } from "../../src/arch/descriptor.js";
import { GRANULES } from "../../src/arch/granule.js";
import { stage2Geometry } from "../../src/arch/geometry.js";
import { KUNPENG_920 } from "../../src/arch/cpu.js";
import { EventBus } from "../../src/common/events.js";
import {
  MemoryCache,
  PGTABLE_EVENT_KINDS,
  type PgtableEvent,
  type PgtableTap,
  PhysMem,
  PROT_R,
  PROT_W,
  Stage2Pgtable,
  V5_12,
  V5_14,
} from "../../src/pgtable/index.js";

// A table descriptor holds its table's address in bits [47:PAGE_SHIFT] (and [51:48] in the low
// word with 64K pages): table pages above 4 GiB need the descriptor's high word too.
for (const size of [4096, 16384, 65536] as const) {
  for (const kernel of [V5_12, V5_14]) {
    test(`tables above 4 GiB are linked through both descriptor words (${size / 1024}K, ${kernel.version})`, () => {
      const g = GRANULES[size];
      const base = 5 * 2 ** 32 + 3 * size;
      const mem = new PhysMem(g, { base });
      const events = new EventBus<PgtableEvent, PgtableTap>(PGTABLE_EVENT_KINDS);
      const geometry = stage2Geometry(g, 40);
      const pgt = new Stage2Pgtable({ geometry, kernel, cpu: KUNPENG_920, mem, events });
      const mc = new MemoryCache(mem, 8);
      mc.topup(8);
      const ipa = 2 ** 35 + 7 * size;
      const pa = 2 ** 36;
      assert.equal(pgt.map(ipa, size, pa, PROT_R | PROT_W, mc), 0);
      // A second leaf under the same last-level table walks through the tables just linked.
      assert.equal(pgt.map(ipa + size, size, pa + size, PROT_R, mc), 0);
      for (const [at, oa] of [
        [ipa, pa],
        [ipa + size, pa + size],
      ] as const) {
        const leaf = pgt.lookup(at);
        assert.equal(leaf.level, 3);
        assert.equal(pteOa(g, leaf.lo, leaf.hi), oa);
      }
      assert.equal(pgt.unmap(ipa, 2 * size), 0);
      assert.equal(pgt.lookup(ipa).lo & 1, 0);
      pgt.destroy();
    });
  }
}
