/**
 * The order in which the selftest's vCPU threads start a stage. kvm_page_table_test's main thread
 * posts one shared semaphore once per vCPU; each post wakes the longest waiter (futex waiters of
 * one priority queue in FIFO order), and a vCPU thread waits again as soon as it has finished a
 * stage. So the first timed stage starts the vCPUs in thread-creation order (id order: the
 * untimed KVM_BEFORE_MAPPINGS stage lets them through in that order), and each later stage in the
 * order they finished the stage before. Other orders are there to explore how much a result
 * depends on the start order.
 */
import { S2simError } from "../common/error.js";
import type { SeededRandom } from "../common/random.js";

/** The release orders a run can use. */
export const RELEASE_ORDERS = ["fifo", "id", "reverse", "random"] as const;

/**
 * fifo: as the selftest's semaphore (id order, then each stage's finish order); id: vCPU 0 first,
 * every stage; reverse: the last vCPU first; random: a fresh permutation per stage from the seed.
 */
export type ReleaseOrder = (typeof RELEASE_ORDERS)[number];

/** Checks a release-order name. */
export function parseReleaseOrder(text: string): ReleaseOrder {
  const found = RELEASE_ORDERS.find((o) => o === text);
  if (found === undefined) {
    throw new S2simError(
      "bad-release-order",
      `unknown release order "${text}" (expected one of: ${RELEASE_ORDERS.join(", ")})`,
    );
  }
  return found;
}

/**
 * The vCPU ids in the order they are released for a stage. `previousFinish` holds when each vCPU
 * finished the stage before (null for the first timed stage); ties go to the lower id.
 */
export function releaseOrder(
  order: ReleaseOrder,
  vcpus: number,
  previousFinish: readonly number[] | null,
  random: SeededRandom,
): number[] {
  const ids = Array.from({ length: vcpus }, (_, i) => i);
  switch (order) {
    case "fifo":
      return previousFinish === null
        ? ids
        : ids.sort((a, b) => previousFinish[a]! - previousFinish[b]! || a - b);
    case "id":
      return ids;
    case "reverse":
      return ids.reverse();
    case "random":
      return random.shuffle(ids);
  }
}
