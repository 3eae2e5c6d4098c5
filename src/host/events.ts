/** Events of the host memory model. Addresses: `hva` host virtual, `pa` host physical. */
import type { EventKinds } from "../common/events.js";

/** What a host page fault did (handle_mm_fault and the GUP around it). */
export type HostFaultResult =
  /** A read fault mapped the shared zero page. */
  | "zero-page"
  /** A new page was allocated, zeroed and mapped. */
  | "alloc"
  /** A shared (shmem) page already in the page cache was mapped. */
  | "page-cache"
  /** Copy-on-write of the zero page into a new page. */
  | "cow"
  /** A read fault mapped the huge zero page with a PMD. */
  | "huge-zero"
  /** A write fault allocated, zeroed and PMD-mapped a THP. */
  | "thp-alloc"
  /** A write to a huge-zero PMD split it into PTEs of the zero page. */
  | "thp-split"
  /** A hugetlb page was allocated, zeroed and mapped. */
  | "hugetlb-alloc"
  /** Private hugetlb write on a read-only sole-owner page: made writable in place. */
  | "hugetlb-reuse"
  /** Write to a read-only anonymous page the process owns alone: made writable in place. */
  | "reuse"
  /** The page was prepared but another fault installed first; it was dropped. */
  | "raced";

/** Everything the host layer reports. */
export type HostEvent =
  | { kind: "host-fault"; hva: number; write: boolean; result: HostFaultResult; size: number }
  | { kind: "host-alloc"; pa: number; size: number }
  | { kind: "host-free"; pa: number; size: number }
  | { kind: "gup"; hva: number; write: boolean; path: "fast" | "slow"; pa: number; writable: boolean }
  | { kind: "notifier"; op: "invalidate_range_start" | "invalidate_range_end"; start: number; end: number }
  | { kind: "notifier"; op: "change_pte"; start: number; end: number; pa: number }
  | { kind: "notifier"; op: "clear_flush_young" | "clear_young" | "test_young"; start: number; end: number };

/** Every kind of {@link HostEvent} (for an EventBus). */
export const HOST_EVENT_KINDS: EventKinds<HostEvent> = {
  "host-fault": true,
  "host-alloc": true,
  "host-free": true,
  gup: true,
  notifier: true,
};
