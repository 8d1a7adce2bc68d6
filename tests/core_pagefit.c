/* Where the page heap puts a large object (docs/heap.md section 4, "Free
   lists"): in the best-fitting free run of more than 128 pages, the one with
   the fewest pages, and of two equally long runs the one at the lower
   address; not in the heap's long free tail while a freed hole that fits is
   free (`fit`).  A large object at the heap's end that cgc_realloc grows
   past the free pages that follow it moves into a free run that holds it
   rather than mapping more at the end (`realloc_end`).  Each case runs on a
   fresh heap, so that the only free runs are the ones it makes. */
#include "core_util.h"

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

  /* Two holes of the same length: the lower one is used, whichever was freed
     last. */
  void *lo = alloc_pages(250);
  void *sep3 = alloc_pages(5);
  void *hi = alloc_pages(250);
  void *sep4 = alloc_pages(5);
  CHECK((uintptr_t)lo < (uintptr_t)hi);
  uintptr_t hlo = hide_ptr(lo);
  cgc_free(lo);
  cgc_free(hi);
  void *g = alloc_pages(240);
  CHECKF(hide_ptr(g) == hlo, "240 pages went to %p, not to the lower of two 250-page holes (%p)", g,
         reveal_ptr(hlo));

  cgc_free(e);
  cgc_free(f);
  cgc_free(g);
  cgc_free(sep1);
  cgc_free(sep2);
  cgc_free(sep3);
  cgc_free(sep4);
}

int main(int argc, char **argv) {
  CHECKF(argc == 2, "usage: core_pagefit fit|realloc_end");
  cgc_init();
  cgc_set_gc_percent(-1); /* no collection while the holes are made */
  if (strcmp(argv[1], "fit") == 0)
    fit();
  else if (strcmp(argv[1], "realloc_end") == 0)
    realloc_end();
  else
    CHECKF(0, "unknown case %s", argv[1]);
  printf("core_pagefit %s: ok\n", argv[1]);
  return 0;
}
