/** Dirty logging (spec section 7): enable, KVM_GET_DIRTY_LOG, KVM_CLEAR_DIRTY_LOG, disable. */
import { S2simError } from "../common/error.js";
import type { Blocking } from "../common/steps.js";
import { KVM_MEM_LOG_DIRTY_PAGES, type Memslot, newDirtyBitmap } from "./memslot.js";
import type { Vm } from "./vm.js";

/** Options of dirty logging (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 and KVM_DIRTY_LOG_INITIALLY_SET). */
export interface DirtyLogMode {
  readonly manualProtect: boolean;
  readonly initiallySet: boolean;
}

const DEFAULT_MODE: DirtyLogMode = { manualProtect: false, initiallySet: false };

/** stage2_wp_range: wrprotect in top-level chunks (cond_resched_lock never yields here). */
function stage2WpRange(vm: Vm, gpa: number, size: number): void {
  const chunk = vm.pgt.sizes.of(vm.geo.startLevel);
  const end = gpa + size;
  for (let addr = gpa; addr < end;) {
    const next = Math.min(end, Math.floor(addr / chunk) * chunk + chunk);
    vm.pgt.wrprotect(addr, next - addr);
    addr = next;
  }
}

/**
 * Setting KVM_MEM_LOG_DIRTY_PAGES: a dirty bitmap (kvm_alloc_dirty_bitmap, with exactly the slot's
 * pages set for initially-set), then (unless manual protect with initially-set)
 * kvm_mmu_wp_memory_region: write-protect the slot under mmu_lock, then flush the VMID. On a slot
 * that already logs, the flags do not change and __kvm_set_memory_region does nothing.
 */
export function* enableDirtyLogging(
  vm: Vm,
  slot: Memslot,
  mode: DirtyLogMode = DEFAULT_MODE,
): Blocking<void> {
  if ((slot.flags & KVM_MEM_LOG_DIRTY_PAGES) !== 0) return;
  const bm = newDirtyBitmap(slot.npages);
  if (mode.manualProtect && mode.initiallySet) {
    bm.fill(0xffffffff, 0, slot.npages >>> 5);
    if (slot.npages % 32 !== 0) bm[slot.npages >>> 5] = (2 ** (slot.npages % 32) - 1) >>> 0;
  }
  slot.dirtyBitmap = bm;
  slot.flags |= KVM_MEM_LOG_DIRTY_PAGES;
  report(vm, "enable", slot);
  if (mode.manualProtect && mode.initiallySet) return;
  yield vm.lockStep;
  stage2WpRange(vm, slot.gpa, slot.size);
  yield vm.unlockStep;
  vm.flushRemoteTlbs();
}

/** Clearing KVM_MEM_LOG_DIRTY_PAGES: arm64 leaves stage 2 alone; blocks come back lazily. */
export function disableDirtyLogging(vm: Vm, slot: Memslot): void {
  slot.dirtyBitmap = null;
  slot.flags &= ~KVM_MEM_LOG_DIRTY_PAGES;
  report(vm, "disable", slot);
}

/**
 * KVM_GET_DIRTY_LOG. Without manual protect each 64-page word is exchanged with 0 and the range
 * from its first to last set bit is write-protected, then the VMID is flushed; with manual
 * protect the bitmap is only copied. Returns the copy.
 */
export function* getDirtyLog(
  vm: Vm,
  slot: Memslot,
  mode: DirtyLogMode = DEFAULT_MODE,
): Blocking<Uint32Array> {
  const bm = bitmapOf(slot, "KVM_GET_DIRTY_LOG");
  report(vm, "get", slot);
  if (mode.manualProtect) return bm.slice();
  // The copy is what each word held when it was exchanged under the lock: a page marked dirty
  // while this call waited for the lock is both returned and write-protected.
  const copy = new Uint32Array(bm.length);
  let flush = false;
  yield vm.lockStep;
  for (let w = 0; w < bm.length; w += 2) {
    // The kernel works in unsigned longs: 64 pages, two of our 32-bit words.
    if (bm[w] === 0 && (bm[w + 1] ?? 0) === 0) continue;
    flush = true;
    copy[w] = bm[w]!;
    if (w + 1 < bm.length) copy[w + 1] = bm[w + 1]!;
    protectWord(vm, slot, w, bm[w]!, bm[w + 1] ?? 0);
    bm[w] = 0;
    if (w + 1 < bm.length) bm[w + 1] = 0;
  }
  yield vm.unlockStep;
  if (flush) vm.flushRemoteTlbs();
  return copy;
}

/**
 * KVM_CLEAR_DIRTY_LOG for pages [firstPage, firstPage + 64 * masks.length / 2): clear the given
 * bits and write-protect what was set, then flush. As kvm_clear_dirty_log_protect, `firstPage`
 * must be a multiple of 64 inside the slot, and the range may pass the slot's end only by the
 * rounding of its last 64-page word (bits there are ignored): else a bad-dirty-log-range error.
 * A slot that does not log dirty pages fails with dirty-log-off (-ENOENT).
 */
export function* clearDirtyLog(vm: Vm, slot: Memslot, firstPage: number, mask: Uint32Array): Blocking<void> {
  const pages = mask.length * 32;
  if (firstPage % 64 !== 0) badRange(slot, firstPage, pages);
  const bm = bitmapOf(slot, "KVM_CLEAR_DIRTY_LOG");
  if (
    !Number.isInteger(firstPage) ||
    firstPage % 64 !== 0 ||
    firstPage < 0 ||
    firstPage > slot.npages ||
    mask.length % 2 !== 0 ||
    (firstPage + pages > slot.npages && firstPage + pages - slot.npages >= 64)
  )
    badRange(slot, firstPage, pages);
  report(vm, "clear", slot);
  let flush = false;
  yield vm.lockStep;
  const base = firstPage >>> 5;
  for (let w = 0; w < mask.length; w += 2) {
    const lo = (bm[base + w]! & mask[w]!) >>> 0;
    const hi = ((bm[base + w + 1] ?? 0) & (mask[w + 1] ?? 0)) >>> 0;
    if (lo === 0 && hi === 0) continue;
    flush = true;
    bm[base + w] = (bm[base + w]! & ~lo) >>> 0;
    if (base + w + 1 < bm.length) bm[base + w + 1] = (bm[base + w + 1]! & ~hi) >>> 0;
    protectWord(vm, slot, base + w, lo, hi);
  }
  yield vm.unlockStep;
  if (flush) vm.flushRemoteTlbs();
}

/** The slot's dirty bitmap; a slot that does not log has none, and the ioctl fails with -ENOENT. */
function bitmapOf(slot: Memslot, ioctl: string): Uint32Array {
  if (slot.dirtyBitmap === null) {
    throw new S2simError(
      "dirty-log-off",
      `${ioctl} on memslot ${slot.id}, which does not log dirty pages (-ENOENT)`,
    );
  }
  return slot.dirtyBitmap;
}

/** The -EINVAL of kvm_clear_dirty_log_protect's range checks. */
function badRange(slot: Memslot, firstPage: number, pages: number): never {
  throw new S2simError(
    "bad-dirty-log-range",
    `KVM_CLEAR_DIRTY_LOG of ${pages} pages from page ${firstPage} does not fit memslot ${slot.id} (${slot.npages} pages, 64-page aligned)`,
  );
}

/** kvm_arch_mmu_enable_log_dirty_pt_masked: wrprotect from the first to the last set bit. */
function protectWord(vm: Vm, slot: Memslot, word: number, lo: number, hi: number): void {
  const bits: number[] = [];
  for (let b = 0; b < 64; b++) if (((b < 32 ? lo : hi) >>> (b & 31)) & 1) bits.push(b);
  const page = slot.pageSize;
  const first = word * 32 + bits[0]!;
  const last = word * 32 + bits[bits.length - 1]!;
  stage2WpRange(vm, slot.gpa + first * page, (last - first + 1) * page);
}

function report(vm: Vm, op: "enable" | "get" | "clear" | "disable", slot: Memslot): void {
  if (vm.events.active && vm.events.wants["dirty-log"])
    vm.events.emit({ kind: "dirty-log", op, slot: slot.id });
}
