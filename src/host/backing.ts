/**
 * Backing sources of guest memory, named as in the KVM selftests (`-s`), and which of them a host
 * with a given page size can provide (spec section 9.1).
 */
import { type Granule, levelSize } from "../arch/granule.js";
import { S2simError } from "../common/error.js";
import { sizeName } from "../common/format.js";

/** How a backing source is mapped on the host. */
export type BackingKind = "anonymous" | "thp" | "hugetlb" | "shmem";

/** A backing source resolved for one host page size. */
export interface BackingSource {
  /** The selftest name, e.g. `anonymous_hugetlb_1gb`. */
  readonly name: string;
  readonly kind: BackingKind;
  /** The backing page size ("large page" L of the selftest). */
  readonly pageSize: number;
  /** log2 of pageSize. */
  readonly shift: number;
  /** MAP_SHARED (shmem, shared_hugetlb) rather than MAP_PRIVATE. */
  readonly shared: boolean;
}

const HUGETLB_SIZES: ReadonlyArray<[string, number]> = [
  ["16kb", 16 << 10],
  ["64kb", 64 << 10],
  ["512kb", 512 << 10],
  ["1mb", 1 << 20],
  ["2mb", 2 << 20],
  ["8mb", 8 << 20],
  ["16mb", 16 << 20],
  ["32mb", 32 << 20],
  ["256mb", 256 << 20],
  ["512mb", 512 << 20],
  ["1gb", 2 ** 30],
  ["2gb", 2 ** 31],
  ["16gb", 2 ** 34],
];

/**
 * Hugetlb page sizes an arm64 host supports for a page size: contiguous-PTE, PMD, contiguous-PMD
 * and PUD sizes (4K: 64K, 2M, 32M, 1G; 16K: 2M, 32M, 1G; 64K: 2M, 512M, 16G).
 */
export function hugetlbSizes(g: Granule): number[] {
  switch (g.size) {
    case 4096:
      return [64 << 10, 2 << 20, 32 << 20, 2 ** 30];
    case 16384:
      return [2 << 20, 32 << 20, 2 ** 30];
    case 65536:
      return [2 << 20, 512 << 20, 2 ** 34];
  }
}

/** THP size: the PMD size of the host page size (hpage_pmd_size). */
export function thpSize(g: Granule): number {
  return levelSize(g, 2);
}

/** The default hugetlb size (Hugepagesize): the PMD size. */
export function defaultHugetlbSize(g: Granule): number {
  return thpSize(g);
}

/** Every backing-source name the selftest knows. */
export function backingNames(): string[] {
  return [
    "anonymous",
    "anonymous_thp",
    "anonymous_hugetlb",
    ...HUGETLB_SIZES.map(([n]) => `anonymous_hugetlb_${n}`),
    "shmem",
    "shared_hugetlb",
  ];
}

/** Resolves a backing-source name for a host page size; unknown or unsupported names are errors. */
export function backingSource(name: string, g: Granule): BackingSource {
  const unsupported = (size: number): never => {
    const ok = hugetlbSizes(g).map(sizeName).join(", ");
    throw new S2simError(
      "unsupported-backing",
      `backing source ${name} needs ${sizeName(size)} hugetlb pages, which a ${g.name}-page host does not have (it has ${ok})`,
    );
  };
  const src = (kind: BackingKind, pageSize: number, shared: boolean): BackingSource => ({
    name,
    kind,
    pageSize,
    shift: Math.log2(pageSize),
    shared,
  });
  switch (name) {
    case "anonymous":
      return src("anonymous", g.size, false);
    case "anonymous_thp":
      return src("thp", thpSize(g), false);
    case "anonymous_hugetlb":
      return src("hugetlb", defaultHugetlbSize(g), false);
    case "shmem":
      return src("shmem", g.size, true);
    case "shared_hugetlb":
      return src("hugetlb", defaultHugetlbSize(g), true);
  }
  const m = /^anonymous_hugetlb_(\w+)$/.exec(name);
  const entry = m ? HUGETLB_SIZES.find(([n]) => n === m[1]) : undefined;
  if (!entry) {
    // The names this host runs first; the selftest's others need other hugetlb page sizes.
    const runs = backingNames().filter((n) => {
      const hugetlb = HUGETLB_SIZES.find(([s]) => n === `anonymous_hugetlb_${s}`);
      return hugetlb === undefined || hugetlbSizes(g).includes(hugetlb[1]);
    });
    const others = backingNames().filter((n) => !runs.includes(n));
    throw new S2simError(
      "unknown-backing",
      `unknown backing source "${name}"; on this ${g.name}-page host: ${runs.join(", ")}` +
        (others.length > 0 ? ` (the selftest also names ${others.join(", ")}, for other page sizes)` : ""),
    );
  }
  if (!hugetlbSizes(g).includes(entry[1])) unsupported(entry[1]);
  return src("hugetlb", entry[1], false);
}
