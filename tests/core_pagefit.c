/* Where the page heap puts a large object (docs/heap.md section 4, "Free
   lists"): in the best-fitting free run of more than 128 pages, the one with
   the fewest pages (of two equally long runs the one at the lower address:
   core_pageheap_more tiebreak); not in the heap's long free tail while a freed hole that fits is
   free (`fit`).  A large object at the heap's end that cgc_realloc grows
   past the free pages that follow it moves into a free run that holds it
   rather than mapping more at the end (`realloc_end`).  A large object that
   cgc_realloc grows in place over the free pages that follow it owns those
   pages: a pointer into them is a pointer into the object, for cgc_base and
   for the collector (`grow_interior`); one that cgc_realloc shrinks in place
   gives up the pages past its new end (`shrink_tail`).  When the address
   space after the heap is taken, the heap grows elsewhere, and objects
   there are marked and kept like the others (`grow_elsewhere`).  Each case
   runs on a
   fresh heap, so that the only free runs are the ones it makes. */
#include "core_util.h"

#include <sys/mman.h>

#define PAGE ((size_t)8192)

static void *alloc_pages(size_t npages) {
  void *p = cgc_alloc_noscan(npages * PAGE);
  CHECKF(p != NULL, "allocation of %zu pages failed", npages);
  return p;
}

static void realloc_end(void) {
  /* A 4000-page hole, then b, last in the heap: what follows it is the rest
     of the heap's last mapping (4 MiB: less than the 2900 pages it grows
     by). */
  unsigned char *h = alloc_pages(4000);
  void *sep = alloc_pages(5);
  unsigned char *b = alloc_pages(100);
  memset(b, 0x5a, 100 * PAGE);
  uintptr_t hh = hide_ptr(h);
  cgc_free(h);
  h = NULL;
  uint64_t mapped = stats_now().mapped_bytes;
  b = (unsigned char *)cgc_realloc(b, 3000 * PAGE);
  CHECK(b != NULL);
  CHECK(b[0] == 0x5a && b[100 * PAGE - 1] == 0x5a);
  uint64_t after = stats_now().mapped_bytes;
  CHECKF(hide_ptr(b) == hh && after == mapped,
         "3000 pages for the heap's last object: at %p with mapped_bytes %llu -> %llu KiB, not moved into the "
         "free 4000-page run at %p", (void *)b, (unsigned long long)(mapped >> 10), (unsigned long long)(after >> 10),
         reveal_ptr(hh));
  cgc_free(b);
  cgc_free(sep);
}

static void *volatile g_inner; /* the only reference to the grown object */

static __attribute__((noinline)) hidden_obj_t grow_in_place(void) {
  /* b, a 40-page hole after it, and a separator that keeps the hole from
     being the heap's free tail. */
  unsigned char *b = alloc_pages(20);
  void *after = alloc_pages(40);
  void *sep = alloc_pages(5);
  CHECK((uintptr_t)after == (uintptr_t)b + 20 * PAGE);
  cgc_free(after);
  unsigned char *g = (unsigned char *)cgc_realloc(b, 50 * PAGE);
  CHECKF(g == b, "50 pages: the 20-page object moved to %p instead of growing over the free pages after it (%p)",
         (void *)g, (void *)b);
  fill_pattern(g, 50 * PAGE, 77);
  unsigned char *inner = g + 45 * PAGE + 8; /* in the pages the object grew by */
  CHECKF(cgc_base(inner) == g, "cgc_base(%p), 45 pages into the grown object %p, is %p", (void *)inner, (void *)g,
         cgc_base(inner));
  CHECKF(cgc_usable_size(g) >= 50 * PAGE, "usable size %zu after growing to 50 pages", cgc_usable_size(g));
  g_inner = inner;
  consume(sep);
  hidden_obj_t h = {hide_ptr(g), 50 * PAGE, 77};
  return h;
}

/* Garbage in the sizes the grown object's pages would be reused for. */
static __attribute__((noinline)) void reuse_pages(void) {
  for (int i = 0; i < 64; i++) memset(alloc_pages(1 + (size_t)i % 50), 0xdd, PAGE);
}

static void grow_interior(void) {
  hidden_obj_t h = grow_in_place();
  for (int round = 0; round < 3; round++) {
    clear_stack();
    cgc_collect();
    reuse_pages();
    verify_obj(h, "object grown in place, referenced only by a pointer into its new pages");
  }
  g_inner = NULL;
}

static void shrink_tail(void) {
  unsigned char *b = alloc_pages(40);
  void *sep = alloc_pages(5);
  memset(b, 0x5a, 40 * PAGE);
  unsigned char *s = (unsigned char *)cgc_realloc(b, 10 * PAGE);
  CHECKF(s == b, "shrinking a 40-page object to 10 pages moved it to %p (from %p)", (void *)s, (void *)b);
  CHECK(s[0] == 0x5a && s[10 * PAGE - 1] == 0x5a);
  CHECKF(cgc_usable_size(s) == 10 * PAGE, "usable size %zu after shrinking to 10 pages", cgc_usable_size(s));
  for (size_t pg = 10; pg < 40; pg++)
    CHECKF(cgc_base(s + pg * PAGE + 8) != s,
           "page %zu of a 40-page object shrunk to 10 pages still belongs to it (cgc_base %p)", pg,
           cgc_base(s + pg * PAGE + 8));
  /* The tail is free pages: a new object of 30 pages takes them. */
  unsigned char *t = alloc_pages(30);
  CHECKF(t == s + 10 * PAGE, "30 pages went to %p, not to the 30 pages %p gave up at %p", (void *)t, (void *)s,
         (void *)(s + 10 * PAGE));
  CHECK(cgc_base(t + 20 * PAGE) == t);
  cgc_free(t);
  cgc_free(s);
  cgc_free(sep);
}

#define ELSEWHERE_N 4
void *g_elsewhere[ELSEWHERE_N]; /* not static: the stores must stay */

static __attribute__((noinline)) void fill_elsewhere(hidden_obj_t *rec, uintptr_t lo, uintptr_t hi, int *outside) {
  for (int i = 0; i < ELSEWHERE_N; i++) {
    rec[i] = make_obj_at(&g_elsewhere[i], 2000 * PAGE, 0, 900 + (uint64_t)i, 1);
    uintptr_t a = (uintptr_t)g_elsewhere[i];
    if (a < lo || a >= hi) (*outside)++;
  }
}

static void grow_elsewhere(void) {
  /* The heap so far, and the address space right after it taken (by a
     mapping that is no part of cgc's heap). */
  void *first = alloc_pages(1);
  uintptr_t lo = (uintptr_t)first, top = mapping_end(lo);
  size_t block = (size_t)1 << 30;
  void *wall = map_wall_at(top, block, "core_pagefit grow_elsewhere");
  if (wall == NULL) return;
  /* 4 objects of 2000 pages (16 MiB): more than the heap has free, so it
     maps more, not at its end. */
  hidden_obj_t rec[ELSEWHERE_N];
  int outside = 0;
  fill_elsewhere(rec, lo, top, &outside);
  CHECKF(outside > 0, "no object of %d x 16 MiB outside the heap's first mapping %p-%p", ELSEWHERE_N, (void *)lo,
         (void *)top);
  for (int round = 0; round < 3; round++) {
    clear_stack();
    cgc_collect();
    reuse_pages();
    for (int i = 0; i < ELSEWHERE_N; i++) verify_obj(rec[i], "object in a mapping away from the heap's first one");
  }
  for (int i = 0; i < ELSEWHERE_N; i++) g_elsewhere[i] = NULL;
  consume(first);
  if (wall != MAP_FAILED) munmap(wall, block);
}

static void fit(void) {
  /* A long free tail: the pages of a freed 32 MiB object. */
  cgc_free(alloc_pages(4096));

  /* Holes of 211 and 431 pages (kept apart by small large objects that stay),
     the longer one freed last, so that it heads the list of long runs. */
  void *a = alloc_pages(211);
  void *sep1 = alloc_pages(5);
  void *c = alloc_pages(431);
  void *sep2 = alloc_pages(5);
  uintptr_t ha = hide_ptr(a), hc = hide_ptr(c);
  cgc_free(a);
  cgc_free(c);
  void *e = alloc_pages(207);
  CHECKF(hide_ptr(e) == ha, "207 pages went to %p, not to the 211-page hole at %p (the 431-page hole is at %p)", e,
         reveal_ptr(ha), reveal_ptr(hc));
  void *f = alloc_pages(300);
  CHECKF(hide_ptr(f) == hc, "300 pages went to %p, not to the 431-page hole at %p", f, reveal_ptr(hc));

  /* Two holes of the same length: core_pageheap_more tiebreak. */
  cgc_free(e);
  cgc_free(f);
  cgc_free(sep1);
  cgc_free(sep2);
}

static const test_case_t cases[] = {
    {"fit", fit},
    {"realloc_end", realloc_end},
    {"grow_interior", grow_interior},
    {"shrink_tail", shrink_tail},
    {"grow_elsewhere", grow_elsewhere},
};

int main(int argc, char **argv) {
  cgc_init();
  cgc_set_gc_percent(-1); /* no collection while the holes are made */
  return RUN_NAMED_CASE(argc, argv, "core_pagefit", cases);
}
