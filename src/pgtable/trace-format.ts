/** One-line text rendering of page-table events, used by golden traces and the CLI. */
import { errnoName } from "../common/errno.js";
import { hex, sizeName } from "../common/format.js";
import type { PgtableEvent } from "./events.js";

/** Renders one event as a stable single line. */
export function formatPgtableEvent(e: PgtableEvent): string {
  switch (e.kind) {
    case "op":
      return `${e.op} addr=${hex(e.addr)} size=${sizeName(e.size)}`;
    case "op-done":
      return `${e.op} -> ${errnoName(e.ret)}`;
    case "pte":
      return `  pte L${e.level} ${hex(e.table)}[${e.index}] ipa=${hex(e.ipa)}: ${hex(e.old)} -> ${hex(e.new)}`;
    case "table-alloc":
      return `  table-alloc ${hex(e.pa)} L${e.level}`;
    case "page-free":
      return `  page-free ${hex(e.pa)}`;
    case "refcount":
      return `  refcount ${hex(e.pa)} = ${e.count}`;
    case "tlbi":
      switch (e.scope) {
        case "vmid-ipa":
          return `  tlbi vmid-ipa ipa=${hex(e.ipa)} L${e.level}`;
        case "vmid":
          return `  tlbi vmid`;
      }
      break;
    case "cmo":
      return `  cmo ${e.op} pa=${hex(e.pa)} size=${sizeName(e.size)}`;
  }
}
