/* A program that frees what it allocates never needs a collection and keeps
   the heap flat: 10M small allocate/free pairs (a ring of 16 live objects of
   random sizes and kinds), large objects, and growing buffers. */
#include "free_util.h"

#define RING 16

static void check_flat(const char *what, cgc_stats_t a, cgc_stats_t b) {
  printf("%s: %llu collections, mapped %llu -> %llu KiB, live %llu -> %llu KiB\n", what,
         (unsigned long long)(b.num_gc - a.num_gc), (unsigned long long)(a.mapped_bytes >> 10),
         (unsigned long long)(b.mapped_bytes >> 10), (unsigned long long)(a.live_bytes >> 10),
         (unsigned long long)(b.live_bytes >> 10));
  CHECKF(b.num_gc == a.num_gc, "%s: a collection ran", what);
  CHECKF(b.mapped_bytes <= a.mapped_bytes, "%s: the heap grew", what);
  CHECKF(b.live_bytes <= a.live_bytes + 64 * 1024, "%s: live bytes grew", what);
}

static size_t pick_size(void) {
  uint64_t r = test_rand();
  switch (r % 4) {
    case 0: return 8 + (r >> 8) % 56;
    case 1: return 64 + (r >> 8) % 448;
    case 2: return 512 + (r >> 8) % 3584;
    default: return 8 + (r >> 8) % 200;
  }
}

static void small_loop(long iters) {
  void *ring[RING] = {0};
  for (long i = 0; i < iters; i++) {
    size_t n = pick_size();
    unsigned char *p = (i & 1) ? cgc_alloc_noscan(n) : cgc_alloc(n);
    CHECK(p != NULL);
    p[0] = 1;
    p[n - 1] = 2;
    int k = (int)(i % RING);
    cgc_free(ring[k]);
    ring[k] = p;
  }
  for (int k = 0; k < RING; k++) cgc_free(ring[k]);
}

static void large_loop(long iters) {
  for (long i = 0; i < iters; i++) {
    size_t n = 40000 + (size_t)(test_rand() % (2 * MIB));
    unsigned char *p = cgc_alloc(n);
    CHECK(p != NULL);
    p[n - 1] = 1;
    cgc_free(p);
  }
}

/* A large buffer shrunk and grown again in place (or moved): each shrink
   gives its pages back to the pacer's count, so no collection comes. */
static void resize_loop(long iters) {
  unsigned char *p = cgc_alloc_noscan(32 * MIB);
  CHECK(p != NULL);
  for (long i = 0; i < iters; i++) {
    p = cgc_realloc(p, MIB);
    CHECK(p != NULL);
    p = cgc_realloc(p, 32 * MIB);
    CHECK(p != NULL);
    p[32 * MIB - 1] = 1;
  }
  cgc_free(p);
}

static void builder_loop(long iters) {
  for (long i = 0; i < iters; i++) {
    size_t cap = 8, len = 0, want = 100 + (size_t)(test_rand() % 20000);
    char *b = cgc_alloc_noscan(cap);
    while (len < want) {
      size_t w = 8 + (size_t)(test_rand() % 25);
      if (len + w > cap) {
        while (len + w > cap) cap *= 2;
        b = cgc_realloc(b, cap);
        CHECK(b != NULL);
      }
      memset(b + len, 'x', w);
      len += w;
    }
    cgc_free(b);
  }
}

int main(int argc, char **argv) {
  test_seed();
  long iters = argc > 1 ? atol(argv[1]) : 10000000;
  if (FREE_ASAN) iters /= 10;
  small_loop(100000); /* warm up: every class this loop uses has its slots */
  cgc_stats_t a = stats();
  uint64_t t0 = now_ns();
  small_loop(iters);
  uint64_t t1 = now_ns();
  cgc_stats_t b = stats();
  check_flat("small", a, b);
  CHECK(b.total_free_objects - a.total_free_objects == (uint64_t)iters);
  printf("small: %ld pairs, %.1f ns per pair\n", iters, (double)(t1 - t0) / (double)iters);

  large_loop(200);
  a = stats();
  large_loop(5000);
  b = stats();
  check_flat("large", a, b);

  resize_loop(2);
  a = stats();
  resize_loop(100);
  b = stats();
  check_flat("resize", a, b);

  builder_loop(1000);
  a = stats();
  builder_loop(50000);
  b = stats();
  check_flat("builder", a, b);
  printf("free_loop: ok\n");
  return 0;
}
