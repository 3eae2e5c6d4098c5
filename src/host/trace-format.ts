/** One-line text rendering of host memory events (for `page-table-test --trace`). */
import { hex, sizeName } from "../common/format.js";
import type { HostEvent } from "./events.js";

/** Renders one host event as a single line. */
export function formatHostEvent(e: HostEvent): string {
  switch (e.kind) {
    case "gup":
      return `gup ${e.path} hva=${hex(e.hva)} ${e.write ? "write" : "read"} -> pa=${hex(e.pa)}${e.writable ? " writable" : ""}`;
    case "host-fault":
      return `host-fault hva=${hex(e.hva)} ${e.write ? "write" : "read"} ${e.result} ${sizeName(e.size)}`;
    case "host-alloc":
      return `host-alloc pa=${hex(e.pa)} ${sizeName(e.size)}`;
    case "host-free":
      return `host-free pa=${hex(e.pa)} ${sizeName(e.size)}`;
    case "notifier":
      return e.op === "change_pte"
        ? `notifier change_pte hva=${hex(e.start)} pa=${hex(e.pa)}`
        : `notifier ${e.op} hva=${hex(e.start)}-${hex(e.end)}`;
  }
}
