/**
 * Where the selftests' library puts the guest's memory that the model needs (kvm_util.c and the
 * aarch64 processor.c of the selftests): the guest's stage-1 tables of the test region, for 4K and
 * 64K guest pages, and memslot 0's layout (the vCPUs' stacks, then the region's tables).
 */

/** Guest pages of memslot 0 besides the test region's page tables (DEFAULT_GUEST_PHY_PAGES). */
export const DEFAULT_GUEST_PHY_PAGES = 512;

/** KVM_GUEST_PAGE_TABLE_MIN_PADDR: where the guest's page-table pages are allocated from. */
const GUEST_PT_MIN_PADDR = 0x180000;

/**
 * DEFAULT_STACK_PGS: a vCPU's stack, in guest pages, with 4K guest pages (aarch64's
 * vm_vcpu_add_default; with larger guest pages a stack is one page).
 */
const DEFAULT_STACK_PGS = 5;

/**
 * KVM_UTIL_MIN_PFN (2): the guest's code, data and stacks are allocated from its address up (in
 * guest pages), below the page tables (GUEST_PT_MIN_PADDR).
 */
const KVM_UTIL_MIN_PFN = 2;

/** The bytes of a guest table page that one stage-2 translation of an S1PTW covers at least. */
const DESCRIPTOR_PIECE = 4096;

/**
 * The guest's stage-1 tables of the test region as virt_map builds them (48-bit VA, the region at
 * GVA 0xc0000000), for a guest page size: which table pages it allocates, and which the walk of a
 * region offset reads that the guest's earlier walks (of its code, data and stacks) did not. Past
 * 509 GiB of region (4K pages: a new level-1 table) or 253 GiB (64K: another 4 KiB of the level-2
 * table) the walk reads one more new page, which is not modelled: one S1PTW fault missed per
 * 512 or 256 GiB.
 */
export interface GuestTables {
  /** The guest's page size. */
  readonly page: number;
  /**
   * Table pages the library allocated before the region's: the PGD and the tables of the code,
   * data and stack mappings. With 4K pages an estimate (the selftest does not print it; it only
   * moves the region's tables within memslot 0); with 64K pages the PGD, one level-2 and one
   * level-3 table.
   */
  readonly before: number;
  /** Guest table pages virt_map allocates for a region of `size` bytes. */
  pages(size: number): number;
  /**
   * The IPAs the walk of offset `off` reads first, the tables allocated from `base`: for each
   * table page, the 4 KiB of it holding the descriptor (what its S1PTW translates). Returns how
   * many (at most 2).
   */
  walked(base: number, off: number, out: Float64Array): number;
  /** Region bytes, from a multiple of it, over which {@link walked} gives the same pages. */
  readonly span: number;
}

/**
 * 4K guest pages: four levels (39, 30, 21, 12). The region's level-1 entries share the code's
 * level-1 table; each GiB gets a level-2 table, then its 512 level-3 tables, one per 2 MiB.
 */
const GUEST_TABLES_4K: GuestTables = {
  page: 4096,
  before: 16,
  pages: (size) => Math.ceil(size / 2 ** 30) + Math.ceil(size / 2 ** 21),
  walked(base, off, out) {
    const first = base + Math.floor(off / 2 ** 30) * 513 * 4096;
    out[0] = first;
    out[1] = first + (1 + Math.floor((off % 2 ** 30) / 2 ** 21)) * 4096;
    return 2;
  },
  span: 2 ** 21,
};

/**
 * 64K guest pages: three levels (42, 29, 16). The region's level-2 entries (index 6 on) share the
 * code's level-2 table, and the 4 KiB of it that holds them (indexes 0-511); each 512 MiB gets a
 * level-3 table of 8,192 descriptors, whose 4 KiB pieces each map 32 MiB.
 */
const GUEST_TABLES_64K: GuestTables = {
  page: 65536,
  before: 3,
  pages: (size) => Math.ceil(size / 2 ** 29),
  walked(base, off, out) {
    out[0] =
      base + Math.floor(off / 2 ** 29) * 65536 + Math.floor((off % 2 ** 29) / 2 ** 25) * DESCRIPTOR_PIECE;
    return 1;
  },
  span: 2 ** 25,
};

/** The guest table layout of a guest page size. */
export function guestTables(pageSize: number): GuestTables {
  if (pageSize === 4096) return GUEST_TABLES_4K;
  if (pageSize === 65536) return GUEST_TABLES_64K;
  throw new Error(`no guest table layout for ${pageSize}-byte guest pages`);
}

/**
 * Where the selftest's library puts the guest's own pages in memslot 0, as far as the model needs
 * them: the vCPUs' stacks, allocated page by page from KVM_UTIL_MIN_PFN up (the program image before
 * them is left out: its size is not known), those that do not fit below the page tables after the
 * tables allocated so far; then the test region's tables, which virt_map allocates after the vCPUs
 * exist.
 */
export interface Slot0Layout {
  /** The IPA of vCPU `i`'s stack's top page, its first store's. */
  stackTop(i: number): number;
  /** The IPA of the region's first table page. */
  readonly tablesIpa: number;
  /** Bytes used up to the end of the region's tables. */
  readonly used: number;
}

export function slot0Layout(tables: GuestTables, vcpus: number, size: number): Slot0Layout {
  const page = tables.page;
  const stack = (page === 4096 ? DEFAULT_STACK_PGS : 1) * page;
  const dataMin = KVM_UTIL_MIN_PFN * page;
  const below = Math.floor((GUEST_PT_MIN_PADDR - dataMin) / stack);
  const early = GUEST_PT_MIN_PADDR + tables.before * page;
  const tablesIpa = early + Math.max(0, vcpus - below) * stack;
  return {
    stackTop: (i) => (i < below ? dataMin + i * stack : early + (i - below) * stack) + stack - page,
    tablesIpa,
    used: tablesIpa + tables.pages(size) * page,
  };
}
