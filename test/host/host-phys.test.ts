/** Host physical memory's coherence marks, kept per page. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { GRANULES } from "../../src/arch/granule.js";
import { HostPhys } from "../../src/host/host-phys.js";

const K4 = 4096;

test("a write marks every page it touches; a clean or I-cache invalidation clears only the pages it covers whole", () => {
  const phys = new HostPhys(GRANULES[K4], 2 ** 24, 2 ** 21);
  const pa = phys.alloc(K4);
  phys.markWritten(pa, K4);
  assert.equal(phys.marksAt(pa), 3, "unclean and I-cache stale");
  // The last line of the page cleaned: the rest of the page's writes are still in the cache.
  phys.cleanToPoc(pa + K4 - 64, 64);
  phys.invalidateIcache(pa + K4 - 64, 64);
  assert.equal(phys.isUnclean(pa, K4), true);
  assert.equal(phys.marksAt(pa), 3);
  phys.cleanToPoc(pa, K4);
  assert.equal(phys.isUnclean(pa, K4), false);
  assert.equal(phys.marksAt(pa), 2, "the I-cache is still stale");
  phys.invalidateIcache(pa, K4);
  assert.equal(phys.marksAt(pa), 0);
  // A write across a page boundary marks both pages; a clean of the first page leaves the second.
  const two = phys.alloc(2 * K4);
  phys.markWritten(two + K4 - 8, 16);
  assert.equal(phys.isUnclean(two, K4), true);
  assert.equal(phys.isUnclean(two + K4, K4), true);
  phys.cleanToPoc(two, K4 + 8);
  assert.equal(phys.isUnclean(two, K4), false);
  assert.equal(phys.isUnclean(two + K4, K4), true);
});
