/** One-line text rendering of every event a VM emits (for `page-table-test --trace`). */
import { errnoName } from "../common/errno.js";
import { hex, sizeName } from "../common/format.js";
import { formatHostEvent } from "../host/trace-format.js";
import { PROT_R, PROT_W, PROT_X } from "../pgtable/prot.js";
import { formatPgtableEvent } from "../pgtable/trace-format.js";
import type { VmEvent } from "./events.js";

/** `prot` as the kernel's flags read: R, RW, RX, RWX or "-". */
function protText(prot: number): string {
  const r = (prot & PROT_R) !== 0 ? "R" : "";
  const w = (prot & PROT_W) !== 0 ? "W" : "";
  const x = (prot & PROT_X) !== 0 ? "X" : "";
  return r + w + x || "-";
}

/** Renders one VM event (KVM, page table or host) as a single line, without indentation. */
export function formatVmEvent(e: VmEvent): string {
  switch (e.kind) {
    case "guest-abort":
      return `guest-abort vcpu=${e.vcpu} ipa=${hex(e.ipa)} ${e.fsc}-L${e.level}${e.s1ptw ? " s1ptw" : e.write ? " write" : " read"}${e.exec ? " exec" : ""}`;
    case "fault-action":
      return `handled vcpu=${e.vcpu}: ${e.action} ipa=${hex(e.ipa)} size=${sizeName(e.size)} prot=${protText(e.prot)} -> ${errnoName(e.ret)}`;
    case "memcache-topup":
      return `memcache-topup vcpu=${e.vcpu} +${e.pages} pages`;
    case "mark-dirty":
      return `mark-dirty gpa=${hex(e.gpa)}`;
    case "notifier-handler":
      return `kvm ${e.op} gpa=${hex(e.gpa)} size=${sizeName(e.size)}`;
    case "dirty-log":
      return `dirty-log ${e.op} slot=${e.slot}`;
    case "gup":
    case "host-fault":
    case "host-alloc":
    case "host-free":
    case "notifier":
      return formatHostEvent(e);
    default:
      return formatPgtableEvent(e).trimStart();
  }
}
