/*
 * Native baseline for the s2sim pgtable benchmark (MIT, written for s2sim; no kernel code).
 *
 * A minimal 3-level stage-2 table with 4 KiB granule (levels 1..3, 40-bit IPA, two concatenated
 * level-1 pages), driven by one generic depth-first walker with visitor callbacks, like the model:
 *   map       one walk installing 4 KiB leaves, allocating tables from a preallocated cache and
 *             counting one reference per present entry on each table page;
 *   map+CMO   the same with a no-op clean-to-PoC hook per new leaf (v5.14's shape without FWB);
 *   wrprotect one walk clearing the write permission of every valid leaf;
 *   unmap     one walk clearing leaves (with no-op TLB/cache maintenance hooks) and freeing
 *             tables whose only reference left is their parent's.
 * Times ns per 4 KiB page with clock_gettime(CLOCK_MONOTONIC), best of N runs, and prints JSON.
 *
 * usage: walk <size-bytes> <runs>
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GRAN_SHIFT 12
#define GRAN (1ULL << GRAN_SHIFT)
#define ENTRIES 512
#define TOP_LEVEL 1
#define LEAF_LEVEL 3
#define TOP_PAGES 2
#define IPA_BITS 40

#define D_VALID 1ULL
#define D_TYPE 2ULL
#define D_READ (1ULL << 6)
#define D_WRITE (1ULL << 7)
#define D_SH_INNER (3ULL << 8)
#define D_AF (1ULL << 10)
#define D_MEMATTR_WB (0xfULL << 2)
#define D_XN (1ULL << 54)
#define D_OA_MASK 0x0000fffffffff000ULL

#define F_LEAF 1
#define F_PRE 2
#define F_POST 4

#define POOL_PA 0x40000000ULL

typedef uint64_t desc_t;

/* Table pages: descriptors, reference counts and a stack of free pages, all by page number. */
struct pool {
	desc_t (*page)[ENTRIES];
	int32_t *ref;
	uint32_t *free_stack;
	uint32_t nfree;
	uint32_t npages;
};

struct walk;
typedef int (*visit_fn)(struct walk *w, uint64_t addr, int level, uint32_t table, uint32_t idx, int flag);

struct walk {
	struct pool *pool;
	visit_fn visit;
	int flags;
	uint64_t addr;
	uint64_t end;
	uint64_t phys; /* map: next output address */
	uint64_t attr; /* map: leaf attributes */
};

static uint32_t page_of(desc_t d)
{
	return (uint32_t)(((d & D_OA_MASK) - POOL_PA) >> GRAN_SHIFT);
}

static uint64_t pa_of(uint32_t page)
{
	return POOL_PA + ((uint64_t)page << GRAN_SHIFT);
}

static int is_table(desc_t d, int level)
{
	return level < LEAF_LEVEL && (d & 3) == 3;
}

static uint64_t span(int level)
{
	return 1ULL << (GRAN_SHIFT + 9 * (LEAF_LEVEL - level));
}

/* Hardware maintenance is not modelled; these stand for the calls the model makes to NULL_HW. */
__attribute__((noinline)) static void hw_tlbi_ipa(uint64_t ipa, int level)
{
	__asm__ volatile("" : : "r"(ipa), "r"(level) : "memory");
}

__attribute__((noinline)) static void hw_clean_poc(uint64_t pa, uint64_t size)
{
	__asm__ volatile("" : : "r"(pa), "r"(size) : "memory");
}

static void ref_get(struct pool *p, uint32_t page)
{
	p->ref[page]++;
}

static void ref_put(struct pool *p, uint32_t page)
{
	if (--p->ref[page] == 0)
		p->free_stack[p->nfree++] = page;
}

static int walk_table(struct walk *w, uint32_t table, int level);

static int walk_entry(struct walk *w, uint32_t table, uint32_t idx, int level)
{
	desc_t *slot = &w->pool->page[table][idx];
	uint64_t addr = w->addr;
	int table_entry = is_table(*slot, level);
	int ret = 0;

	if (table_entry && (w->flags & F_PRE))
		ret = w->visit(w, addr, level, table, idx, F_PRE);
	if (!table_entry && (w->flags & F_LEAF)) {
		ret = w->visit(w, addr, level, table, idx, F_LEAF);
		table_entry = is_table(*slot, level);
	}
	if (ret)
		return ret;
	if (!table_entry) {
		w->addr = (w->addr & ~(span(level) - 1)) + span(level);
		return 0;
	}
	ret = walk_table(w, page_of(*slot), level + 1);
	if (ret)
		return ret;
	if (w->flags & F_POST)
		ret = w->visit(w, addr, level, table, idx, F_POST);
	return ret;
}

static int walk_table(struct walk *w, uint32_t table, int level)
{
	uint32_t idx = (uint32_t)(w->addr >> (GRAN_SHIFT + 9 * (LEAF_LEVEL - level))) & (ENTRIES - 1);

	for (; idx < ENTRIES && w->addr < w->end; idx++) {
		int ret = walk_entry(w, table, idx, level);
		if (ret)
			return ret;
	}
	return 0;
}

static int walk_range(struct walk *w, uint64_t addr, uint64_t size)
{
	uint32_t top = (uint32_t)(addr >> (GRAN_SHIFT + 9 * (LEAF_LEVEL - TOP_LEVEL + 1)));

	w->addr = addr;
	w->end = addr + size;
	for (; w->addr < w->end; top++) {
		int ret = walk_table(w, top, TOP_LEVEL);
		if (ret)
			return ret;
	}
	return 0;
}

static int map_visit(struct walk *w, uint64_t addr, int level, uint32_t table, uint32_t idx, int flag)
{
	struct pool *p = w->pool;
	desc_t *slot = &p->page[table][idx];
	(void)addr;
	(void)flag;

	if (level == LEAF_LEVEL) {
		if (*slot & D_VALID)
			return -17; /* already mapped: not exercised by the benchmark */
		*slot = (w->phys & D_OA_MASK) | w->attr | D_TYPE | D_VALID;
		ref_get(p, table);
		w->phys += GRAN;
		return 0;
	}
	if (*slot & D_VALID)
		return -17; /* a block in the way: not exercised by the benchmark */
	if (p->nfree == 0)
		return -12;
	uint32_t child = p->free_stack[--p->nfree];
	p->ref[child] = 1;
	*slot = pa_of(child) | D_TYPE | D_VALID;
	ref_get(p, table);
	return 0;
}

/*
 * map_visit with v5.14's shape for memory that needs cleaning (no FWB): a clean-to-PoC hook on the
 * new leaf's page before it is stored, as the model's v5.14 map issues its CMO callback per leaf
 * (when it runs leaf by leaf; its quiet runs only count the lines).
 */
static int map_cmo_visit(struct walk *w, uint64_t addr, int level, uint32_t table, uint32_t idx, int flag)
{
	if (level == LEAF_LEVEL && !(w->pool->page[table][idx] & D_VALID))
		hw_clean_poc(w->phys & D_OA_MASK, GRAN);
	return map_visit(w, addr, level, table, idx, flag);
}

static int wrprotect_visit(struct walk *w, uint64_t addr, int level, uint32_t table, uint32_t idx, int flag)
{
	desc_t *slot = &w->pool->page[table][idx];
	desc_t old = *slot;
	(void)addr;
	(void)level;
	(void)flag;

	if (!(old & D_VALID))
		return 0;
	desc_t new = old & ~D_WRITE;
	if (new != old)
		*slot = new;
	return 0;
}

static int unmap_visit(struct walk *w, uint64_t addr, int level, uint32_t table, uint32_t idx, int flag)
{
	struct pool *p = w->pool;
	desc_t *slot = &p->page[table][idx];
	desc_t old = *slot;
	(void)flag;

	if (!(old & D_VALID))
		return 0;
	if (is_table(old, level)) {
		uint32_t child = page_of(old);
		if (p->ref[child] != 1)
			return 0;
		*slot = 0;
		hw_tlbi_ipa(addr, level);
		ref_put(p, table);
		ref_put(p, child);
		return 0;
	}
	*slot = 0;
	hw_tlbi_ipa(addr, level);
	hw_clean_poc(old & D_OA_MASK, span(level));
	ref_put(p, table);
	return 0;
}

/* A pool whose free stack holds every page but the top-level ones, all zeroed, untimed. */
static void pool_init(struct pool *p, uint32_t npages)
{
	p->npages = npages;
	p->page = aligned_alloc(GRAN, (size_t)npages * GRAN);
	p->ref = calloc(npages, sizeof(*p->ref));
	p->free_stack = malloc((size_t)npages * sizeof(*p->free_stack));
	if (!p->page || !p->ref || !p->free_stack) {
		fprintf(stderr, "walk: out of memory\n");
		exit(1);
	}
	memset(p->page, 0, (size_t)npages * GRAN);
	for (uint32_t i = 0; i < TOP_PAGES; i++)
		p->ref[i] = 1;
	p->nfree = 0;
	for (uint32_t i = npages; i-- > TOP_PAGES;)
		p->free_stack[p->nfree++] = i;
}

static void pool_fini(struct pool *p)
{
	free(p->page);
	free(p->ref);
	free(p->free_stack);
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void check(int ret, const char *what)
{
	if (ret) {
		fprintf(stderr, "walk: %s failed: %d\n", what, ret);
		exit(1);
	}
}

/* One walk of [addr, addr + size) with `visit`, its time kept in *best if lower. */
static void timed_walk(struct walk *w, visit_fn visit, int flags, uint64_t addr, uint64_t size, const char *what, double *best)
{
	w->visit = visit;
	w->flags = flags;
	double t0 = now_ns();
	check(walk_range(w, addr, size), what);
	double t1 = now_ns();
	if (t1 - t0 < *best)
		*best = t1 - t0;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: walk <size-bytes> <runs>\n");
		return 2;
	}
	uint64_t size = strtoull(argv[1], NULL, 0);
	int runs = atoi(argv[2]);
	if (size == 0 || size % (2ULL << 20) || runs < 1) {
		fprintf(stderr, "walk: size must be a non-zero multiple of 2M and runs >= 1\n");
		return 2;
	}
	const uint64_t ipa = 1ULL << 30;
	const uint64_t phys = 0x1000000000ULL + GRAN; /* 4K- but not 2M-aligned */
	const uint64_t attr = D_MEMATTR_WB | D_READ | D_WRITE | D_SH_INNER | D_AF | D_XN;
	uint64_t pages = size >> GRAN_SHIFT;
	uint32_t tables = (uint32_t)((pages + ENTRIES - 1) / ENTRIES + (pages + ENTRIES * ENTRIES - 1) / (ENTRIES * ENTRIES));
	double best_map = 1e300, best_map_cmo = 1e300, best_call = 1e300, best_wrp = 1e300, best_unmap = 1e300;
	uint32_t used = 0;

	for (int r = 0; r < runs; r++) {
		struct pool p;
		struct walk w = { .pool = &p, .attr = attr };
		double t0, t1;

		pool_init(&p, TOP_PAGES + tables + 2);
		w.phys = phys;
		timed_walk(&w, map_visit, F_LEAF, ipa, size, "map", &best_map);
		used = p.npages - p.nfree;
		timed_walk(&w, wrprotect_visit, F_LEAF, ipa, size, "wrprotect", &best_wrp);
		timed_walk(&w, unmap_visit, F_LEAF | F_POST, ipa, size, "unmap", &best_unmap);
		if (p.npages - p.nfree != TOP_PAGES) {
			fprintf(stderr, "walk: unmap left %u table pages\n", p.npages - p.nfree - TOP_PAGES);
			return 1;
		}

		/* The map walk again with a CMO hook per leaf (v5.14's shape), then unmapped untimed. */
		w.phys = phys;
		timed_walk(&w, map_cmo_visit, F_LEAF, ipa, size, "map with CMO hook", &best_map_cmo);
		w.visit = unmap_visit;
		w.flags = F_LEAF | F_POST;
		check(walk_range(&w, ipa, size), "unmap");
		pool_fini(&p);

		/* One map walk per 4 KiB page, on a fresh table. */
		pool_init(&p, TOP_PAGES + tables + 2);
		w.visit = map_visit;
		w.flags = F_LEAF;
		t0 = now_ns();
		for (uint64_t i = 0; i < pages; i++) {
			w.phys = phys + i * GRAN;
			check(walk_range(&w, ipa + i * GRAN, GRAN), "map");
		}
		t1 = now_ns();
		if (t1 - t0 < best_call)
			best_call = t1 - t0;
		pool_fini(&p);
	}
	printf("{\"benchmark\":\"native\",\"map_ns_per_page\":%.2f,\"map_cmo_ns_per_page\":%.2f,"
	       "\"map_per_call_ns_per_page\":%.2f,"
	       "\"wrprotect_ns_per_page\":%.2f,\"unmap_ns_per_page\":%.2f,\"table_bytes_per_page\":%.2f,"
	       "\"table_pages\":%u,\"size_bytes\":%llu,\"pages\":%llu,\"runs\":%d,\"ipa_bits\":%d}\n",
	       best_map / pages, best_map_cmo / pages, best_call / pages, best_wrp / pages, best_unmap / pages,
	       (double)used * GRAN / pages, used, (unsigned long long)size, (unsigned long long)pages, runs,
	       IPA_BITS);
	return 0;
}
