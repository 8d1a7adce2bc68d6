/* More page-heap behaviour (docs/heap.md section 4) that core_pagefit and
   the other tests leave unchecked.  Each case runs on a fresh heap.

   `tiebreak`: of two free runs of more than 128 pages of the same length,
   each between two objects that stay (so neither coalesces with anything),
   an allocation takes the one at the lower address, whichever was freed
   last.

   `below`: when the heap's first mapping could not go where cgc asks (the
   address is taken before cgc_init) and a later growth cannot go right
   after it either, the new mapping lands wherever mmap puts it, usually
   below the heap so far; objects there are still heap objects (heap_lo
   widens), found by cgc_base and kept alive by the collector.

   `grow_at_end`: a large object that ends where the heap grows next, grown
   by cgc_realloc past the free pages that follow it while no free run could
   hold its new size, stays where it is: the missing pages are mapped right
   after the heap (docs/free.md section 3), nothing is copied.

   `peak_window` (run with CGC_DEBUG=bgsweep=0): the scavenger keeps the
   most pages in use in the last eight collections; when several paced
   collections ran without a sweep (and so without a scavenge) in between,
   the peak since the last scavenge counts in the oldest of them, so a heap
   that shrank goes back to the OS as many collections after its peak as
   when every collection was swept (docs/heap.md section 4, "Pages in
   use"), not up to seven collections later.

   `grow_exact`: the heap grows by at least an eighth of what is mapped (up
   to 64 MiB); when the address space (RLIMIT_AS) has no room for that but
   has room for what the allocation needs, it maps exactly that (docs/heap.md
   section 4, "Growth") and the allocation succeeds. */
#include "core_util.h"

#include <sys/mman.h>
#include <sys/resource.h>

#define PAGE ((size_t)8192)

static unsigned char *alloc_pages(size_t npages) {
  unsigned char *p = (unsigned char *)cgc_alloc_noscan(npages * PAGE);
  CHECKF(p != NULL, "allocation of %zu pages failed", npages);
  return p;
}

/* Two 250-page holes, each between two 5-page objects that stay, laid out
   back to back (checked) from the heap's free tail; freed in either order. */
static void tiebreak_order(bool free_low_first) {
  unsigned char *s0 = alloc_pages(5);
  unsigned char *lo = alloc_pages(250);
  unsigned char *s1 = alloc_pages(5);
  unsigned char *hi = alloc_pages(250);
  unsigned char *s2 = alloc_pages(5);
  CHECKF(lo == s0 + 5 * PAGE && s1 == lo + 250 * PAGE && hi == s1 + 5 * PAGE && s2 == hi + 250 * PAGE,
         "objects not laid out back to back: %p %p %p %p %p", (void *)s0, (void *)lo, (void *)s1, (void *)hi,
         (void *)s2);
  uintptr_t hlo = hide_ptr(lo), hhi = hide_ptr(hi);
  if (free_low_first) {
    cgc_free(lo);
    cgc_free(hi);
  } else {
    cgc_free(hi);
    cgc_free(lo);
  }
  lo = hi = NULL;
  unsigned char *g = alloc_pages(240);
  CHECKF(hide_ptr(g) == hlo, "240 pages went to %p, not to the lower of two separate 250-page holes (%p; the "
         "other is %p; %s freed last)", (void *)g, reveal_ptr(hlo), reveal_ptr(hhi),
         free_low_first ? "the higher" : "the lower");
  unsigned char *g2 = alloc_pages(240);
  CHECKF(hide_ptr(g2) == hhi, "the next 240 pages went to %p, not to the other 250-page hole %p", (void *)g2,
         reveal_ptr(hhi));
  cgc_free(g);
  cgc_free(g2);
  cgc_free(s0);
  cgc_free(s1);
  cgc_free(s2);
}

static void tiebreak(void) {
  tiebreak_order(true);
  tiebreak_order(false);
}

#define BELOW_N 4
void *g_below[BELOW_N]; /* not static: the stores must stay */

static __attribute__((noinline)) void fill_below(hidden_obj_t *rec, uintptr_t lo, int *below) {
  for (int i = 0; i < BELOW_N; i++) {
    rec[i] = make_obj_at(&g_below[i], 2000 * PAGE, 0, 500 + (uint64_t)i, 1);
    if ((uintptr_t)g_below[i] < lo) (*below)++;
  }
}

static void *g_hint_wall; /* set by main before cgc_init */

static void below(void) {
  if (g_hint_wall == MAP_FAILED) {
    printf("core_pageheap_more below: skipped (cannot take the heap's first address)\n");
    return;
  }
  unsigned char *first = alloc_pages(1);
  uintptr_t lo = (uintptr_t)first, top = mapping_end(lo);
  size_t block = (size_t)1 << 30;
  void *wall = map_wall_at(top, block, "core_pageheap_more below");
  if (wall == NULL) return;
  hidden_obj_t rec[BELOW_N];
  int nbelow = 0;
  fill_below(rec, lo, &nbelow);
  if (nbelow == 0) {
    printf("core_pageheap_more below: skipped (mmap put no mapping below the heap)\n");
  } else {
    for (int i = 0; i < BELOW_N; i++) {
      void *p = reveal_ptr(rec[i].hbase);
      CHECKF(cgc_base((char *)p + 8) == p, "cgc_base(%p + 8) is %p: an object below the heap's first mapping %p is "
             "not a heap object", p, cgc_base((char *)p + 8), (void *)lo);
    }
    for (int round = 0; round < 3; round++) {
      clear_stack();
      cgc_collect();
      for (int i = 0; i < 64; i++) memset(alloc_pages(1 + (size_t)i % 50), 0xdd, PAGE);
      for (int i = 0; i < BELOW_N; i++) verify_obj(rec[i], "object in a mapping below the heap's first one");
    }
  }
  for (int i = 0; i < BELOW_N; i++) g_below[i] = NULL;
  consume(first);
  if (wall != MAP_FAILED) munmap(wall, block);
}

static void grow_at_end(void) {
  /* The first object of a fresh heap: what follows it is the rest of the
     heap's first mapping, and no free run holds 3000 pages. */
  unsigned char *b = alloc_pages(100);
  fill_pattern(b, 100 * PAGE, 31);
  uint64_t mapped = stats_now().mapped_bytes;
  CHECKF(mapped < 3000 * PAGE, "a fresh heap has %llu KiB mapped", (unsigned long long)(mapped >> 10));
  unsigned char *g = (unsigned char *)cgc_realloc(b, 3000 * PAGE);
  CHECK(g != NULL);
  CHECKF(g == b, "the heap's last object, grown from 100 to 3000 pages, moved from %p to %p instead of growing "
         "in place over pages mapped at the heap's end", (void *)b, (void *)g);
  CHECK(pattern_mismatch(g, 100 * PAGE, 31) == (size_t)-1);
  CHECKF(cgc_usable_size(g) >= 3000 * PAGE, "usable size %zu", cgc_usable_size(g));
  CHECK(cgc_base(g + 2999 * PAGE) == g);
  uint64_t after = stats_now().mapped_bytes;
  CHECKF(after - mapped < 3000 * PAGE, "mapped_bytes grew by %llu KiB for 2900 more pages",
         (unsigned long long)((after - mapped) >> 10));
  cgc_free(g);
}

#define PEAK_LIVE_N 96
void *g_peak_live[PEAK_LIVE_N]; /* 96 MiB that stays live for a while (not static: the stores must stay) */
static char *volatile g_peak_tmp;

static __attribute__((noinline)) void peak_fill(void) {
  for (int i = 0; i < PEAK_LIVE_N; i++) {
    g_peak_live[i] = cgc_alloc_noscan(CORE_MIB);
    CHECK(g_peak_live[i] != NULL);
    memset(g_peak_live[i], 0x11, CORE_MIB);
  }
}

static void peak_window(void) {
  /* A live heap of 96 MiB and a goal 10% above it: paced collections come
     every 9.6 MiB of allocation, and leave less mapped than the scavenger
     would keep for that goal, so without a sweeper thread none of them
     sweeps or scavenges. */
  cgc_set_gc_percent(10);
  peak_fill();
  clear_stack();
  cgc_collect(); /* swept and scavenged: a period starts here */
  /* The peak: a 32 MiB buffer, dropped at once. */
  g_peak_tmp = cgc_alloc_noscan(32 * CORE_MIB);
  CHECK(g_peak_tmp != NULL);
  memset(g_peak_tmp, 0x22, 32 * CORE_MIB);
  g_peak_tmp = NULL;
  uint64_t gc0 = cgc_gc_count();
  uint64_t released0 = stats_now().released_bytes;
  for (int i = 0; i < 4; i++) until_paced_collection(4096);
  CHECKF(stats_now().released_bytes == released0, "a paced collection scavenged (the case needs none to)");
  /* The heap shrinks to nothing. */
  for (int i = 0; i < PEAK_LIVE_N; i++) g_peak_live[i] = NULL;
  uint64_t n = 0;
  for (int i = 0; i < 16; i++) {
    clear_stack();
    cgc_collect();
    if (stats_now().mapped_bytes < 64 * CORE_MIB) break;
  }
  n = cgc_gc_count() - gc0;
  uint64_t mapped = stats_now().mapped_bytes;
  CHECKF(mapped < 64 * CORE_MIB && n <= 9,
         "after %llu collections since the 32 MiB peak (4 of them paced, unswept), %llu MiB mapped: the dead "
         "heap must go back within 9 collections of its peak, as when every collection is swept",
         (unsigned long long)n, (unsigned long long)(mapped >> 20));
}

void *g_grow_big; /* not static: the store must stay */

static void grow_exact(void) {
  if (CORE_ASAN) {
    printf("core_pageheap_more grow_exact: skipped (RLIMIT_AS under AddressSanitizer)\n");
    return;
  }
  /* 512 MiB mapped (never touched: fresh pages are known zero), so the
     heap's next growth step is 64 MiB. */
  g_grow_big = cgc_alloc_noscan(512 * CORE_MIB);
  CHECK(g_grow_big != NULL);
  uint64_t mapped = stats_now().mapped_bytes;
  /* Room for 48 MiB more address space: not for a 64 MiB step, but for the
     40 MiB the next object needs (and the page map's metadata). */
  struct rlimit old, rl;
  CHECK(getrlimit(RLIMIT_AS, &old) == 0);
  rl = old;
  rl.rlim_cur = vsize_bytes() + 48 * CORE_MIB;
  CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
  void *p = cgc_alloc_noscan(40 * CORE_MIB);
  int err = errno;
  uint64_t after = stats_now().mapped_bytes;
  CHECK(setrlimit(RLIMIT_AS, &old) == 0);
  CHECKF(p != NULL, "40 MiB with 48 MiB of address space left failed (%s): the heap did not retry its 64 MiB "
         "growth with exactly the pages needed (mapped %llu MiB)", strerror(err), (unsigned long long)(mapped >> 20));
  CHECKF(after - mapped < 48 * CORE_MIB, "mapped_bytes grew by %llu MiB for 40 MiB",
         (unsigned long long)((after - mapped) >> 20));
  memset(p, 0x33, 40 * CORE_MIB);
  cgc_free(p);
  cgc_free(g_grow_big);
  g_grow_big = NULL;
}

static const test_case_t cases[] = {
    {"grow_exact", grow_exact},
    {"peak_window", peak_window},
    {"grow_at_end", grow_at_end},
    {"tiebreak", tiebreak},
    {"below", below},
};

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "below") == 0) {
    /* Take the address where cgc maps its heap first (docs/heap.md, section
       4: 0x5a5a << 32 on x86-64 and aarch64, plus the offset collect.c adds). */
    g_hint_wall = mmap((void *)((uintptr_t)0x5a5a << 32), (size_t)1 << 32, PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
  }
  cgc_init();
  cgc_set_gc_percent(-1); /* no collection while the holes are made */
  return RUN_NAMED_CASE(argc, argv, "core_pageheap_more", cases);
}
