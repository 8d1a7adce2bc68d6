/* cgc_arena_free: every address of the arena faults afterwards (checked in
   child processes, which must die of SIGSEGV, and with the kernel's EFAULT in
   this process); release takes time proportional to the chunks; a range that
   a reachable word still points into stays faulting through collections,
   while the arena's other ranges, and the range itself once the pointer is
   gone, return to the heap after a collection and are reused; creating and
   freeing arenas in a loop keeps mapped_bytes, the address space and the
   number of mappings bounded; the pages of a freed arena go back to the
   system at once, before any collection. */
#include "free_util.h"

static void do_read(void *p) { touch_read(p); }
static void do_write(void *p) { touch_write(p); }

static void expect_fault(void *p, const char *what) {
  CHECKF(!readable(p), "%s: %p is still readable", what, p);
  int sig = in_child(do_read, p);
  CHECKF(sig == SIGSEGV, "%s: reading %p in a child: signal %d", what, p, sig);
  sig = in_child(do_write, p);
  CHECKF(sig == SIGSEGV, "%s: writing %p in a child: signal %d", what, p, sig);
}

/* Reusable addresses of a freed arena, hidden from the collector. */
typedef struct {
  uintptr_t first, last, tail, big, big_end, noscan;
} addrs_t;

static __attribute__((noinline)) addrs_t make_and_free(void) {
  cgc_arena_t *a = cgc_arena_new();
  char *first = cgc_arena_alloc(a, 32), *last = NULL;
  for (int i = 0; i < 3000; i++) last = cgc_arena_alloc(a, 40); /* several chunks */
  char *big = cgc_arena_alloc(a, 3 * MIB);
  char *ns = cgc_arena_alloc_noscan(a, 100);
  memset(first, 1, 32);
  memset(big, 2, 3 * MIB);
  memset(ns, 3, 100);
  addrs_t r = {hide_ptr(first), hide_ptr(last), hide_ptr(last + 4096), hide_ptr(big + MIB),
               hide_ptr(big + 3 * MIB - 1), hide_ptr(ns)};
  cgc_arena_free(a);
  return r;
}

static void test_fault(void) {
  addrs_t r = make_and_free();
  expect_fault(reveal_ptr(r.first), "first object");
  expect_fault(reveal_ptr(r.last), "last small object");
  expect_fault(reveal_ptr(r.tail), "unused tail of a chunk");
  expect_fault(reveal_ptr(r.big), "big object");
  expect_fault(reveal_ptr(r.big_end), "last byte of a big object");
  expect_fault(reveal_ptr(r.noscan), "noscan object");
}

/* cgc_arena_free drops the arena's pages (docs/free.md, cgc_arena_free
   step 2): 32 MiB written into an arena stop being resident at once. */
static __attribute__((noinline)) void test_release(void) {
  cgc_arena_t *a = cgc_arena_new();
  for (int i = 0; i < 8; i++) {
    char *p = cgc_arena_alloc_noscan(a, 4 * MIB);
    CHECK(p != NULL);
    memset(p, 0x5a, 4 * MIB);
  }
  uint64_t before = rss_bytes();
  cgc_arena_free(a);
  uint64_t after = rss_bytes();
  CHECKF(after + 24 * MIB <= before, "cgc_arena_free of 32 MiB written: resident %llu -> %llu KiB",
         (unsigned long long)(before >> 10), (unsigned long long)(after >> 10));
}

/* Free time follows the chunks: a million objects in few chunks free about as
   fast as a handful of objects. */
static __attribute__((noinline)) uint64_t free_time(size_t objs, size_t size) {
  cgc_arena_t *a = cgc_arena_new();
  for (size_t i = 0; i < objs; i++) CHECK(cgc_arena_alloc(a, size) != NULL);
  uint64_t t0 = now_ns();
  cgc_arena_free(a);
  return now_ns() - t0;
}

static void test_free_time(void) {
  uint64_t best_many = UINT64_MAX, best_few = UINT64_MAX;
  for (int i = 0; i < 5; i++) {
    uint64_t m = free_time(1000000, 32), f = free_time(8, 4 * MIB);
    if (m < best_many) best_many = m;
    if (f < best_few) best_few = f;
    clear_stack();
    cgc_collect();
  }
  printf("cgc_arena_free: 1M objects of 32 bytes: %.1f us; 8 objects of 4 MiB: %.1f us\n", best_many / 1e3,
         best_few / 1e3);
  /* Touching a million objects would take milliseconds. */
  CHECKF(best_many < 2000000, "freeing 1M objects took %llu ns", (unsigned long long)best_many);
}

/* ---- quarantine ------------------------------------------------------------------ */

void *volatile g_into; /* a reachable word pointing into a freed arena */

typedef struct {
  uintptr_t chunk[3]; /* three big objects, each in its own chunk */
} three_t;

static three_t make_three(int pin) {
  cgc_arena_t *a = cgc_arena_new();
  three_t t;
  for (int i = 0; i < 3; i++) {
    char *p = cgc_arena_alloc(a, 512 * 1024);
    memset(p, 0x40 + i, 512 * 1024);
    t.chunk[i] = hide_ptr(p);
    if (i == pin) g_into = p + 1000; /* interior */
  }
  cgc_arena_free(a);
  return t;
}

static volatile three_t g_three;
static void make_three_thread(void *arg) {
  three_t t = make_three((int)(intptr_t)arg);
  g_three = t;
}

static bool is_reused(uintptr_t lo, size_t len) {
  /* Allocate big objects until one lands in [lo, lo+len) (or give up). */
  void *held[64];
  bool found = false;
  int n;
  for (n = 0; n < 64 && !found; n++) {
    held[n] = cgc_alloc_noscan(256 * 1024);
    uintptr_t p = (uintptr_t)held[n];
    found = p < lo + len && p + 256 * 1024 > lo;
  }
  for (int i = 0; i < n; i++) cgc_free(held[i]);
  return found;
}

/* The checks that reveal addresses run on threads of their own, so that no
   copy of those addresses stays on the main stack. */
static void check_pinned(void *arg) {
  (void)arg;
  three_t t = g_three;
  /* The pinned chunk stays faulting; the others came back (zeroed). */
  expect_fault(reveal_ptr(t.chunk[1]), "pinned chunk after collections");
  expect_fault(g_into, "the pinning pointer itself");
  CHECKF(readable(reveal_ptr(t.chunk[0])) && readable(reveal_ptr(t.chunk[2])),
         "unpinned chunks of the arena were not given back");
  CHECK(is_reused((uintptr_t)reveal_ptr(t.chunk[0]), 512 * 1024) ||
        is_reused((uintptr_t)reveal_ptr(t.chunk[2]), 512 * 1024));
}

static void check_unpinned(void *arg) {
  (void)arg;
  three_t t = g_three;
  CHECKF(readable(reveal_ptr(t.chunk[1])), "the range was not given back after the pointer was dropped");
  CHECK(zeroed(reveal_ptr(t.chunk[1]), 4096));
  CHECK(is_reused((uintptr_t)reveal_ptr(t.chunk[1]), 512 * 1024));
}

static void test_quarantine(void) {
  in_thread(make_three_thread, (void *)(intptr_t)1);
  clear_stack();
  for (int i = 0; i < 3; i++) cgc_collect();
  in_thread(check_pinned, NULL);

  /* Once nothing points there, the next collection gives it back too. */
  g_into = NULL;
  clear_stack();
  cgc_collect();
  in_thread(check_unpinned, NULL);

  /* Before a collection has run, nothing is reused: new arenas get fresh ranges. */
  uint64_t gc = cgc_gc_count();
  volatile three_t u = make_three(-1);
  cgc_arena_t *b = cgc_arena_new();
  uintptr_t got[3];
  for (int i = 0; i < 3; i++) got[i] = (uintptr_t)cgc_arena_alloc(b, 512 * 1024);
  if (cgc_gc_count() == gc) {
    for (int i = 0; i < 3; i++)
      for (int k = 0; k < 3; k++) {
        uintptr_t c = (uintptr_t)reveal_ptr(u.chunk[k]);
        CHECK(got[i] + 512 * 1024 <= c || got[i] >= c + 512 * 1024);
      }
  }
  cgc_arena_free(b);
}

/* ---- loops --------------------------------------------------------------------- */

static int mappings(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  CHECK(f != NULL);
  int n = 0, c;
  while ((c = fgetc(f)) != EOF) n += c == '\n';
  fclose(f);
  return n;
}

static __attribute__((noinline)) void one_arena(uint64_t *st) {
  cgc_arena_t *a = cgc_arena_new();
  size_t total = 4096 + (size_t)(rng_next(st) % (300 * 1024));
  for (size_t done = 0; done < total;) {
    size_t n = 8 + (size_t)(rng_next(st) % 200);
    char *p = (n & 8) ? cgc_arena_alloc(a, n) : cgc_arena_alloc_noscan(a, n);
    p[0] = 1;
    done += n;
  }
  if (rng_next(st) % 16 == 0) consume(cgc_arena_alloc(a, 200000));
  cgc_arena_free(a);
}

static void test_loop(void) {
  uint64_t st = test_rand();
  int iters = FREE_ASAN ? 5000 : 20000;
  for (int i = 0; i < 500; i++) one_arena(&st);
  uint64_t gc0 = cgc_gc_count(), vm0 = vsize_bytes();
  int maps0 = mappings();
  uint64_t max_mapped = 0, max_vm = 0;
  int max_maps = 0;
  for (int i = 0; i < iters; i++) {
    one_arena(&st);
    if (i % 500 == 0) {
      cgc_stats_t s = stats();
      max_mapped = s.mapped_bytes > max_mapped ? s.mapped_bytes : max_mapped;
      uint64_t vm = vsize_bytes();
      max_vm = vm > max_vm ? vm : max_vm;
      int m = mappings();
      max_maps = m > max_maps ? m : max_maps;
    }
  }
  printf("arena loop: %d arenas, %llu collections, max mapped %llu MiB, address space +%lld MiB, mappings %d -> max %d\n",
         iters, (unsigned long long)(cgc_gc_count() - gc0), (unsigned long long)(max_mapped >> 20),
         (long long)((int64_t)(max_vm - vm0) >> 20), maps0, max_maps);
  CHECK(cgc_gc_count() > gc0);
  CHECK(max_mapped < 64 * MIB);
  CHECK(max_vm < vm0 + 256 * MIB);
  CHECK(max_maps < maps0 + 200);
}

int main(void) {
  test_seed();
  cgc_init();
  test_release();
  test_fault();
  test_quarantine();
  test_free_time();
  test_loop();
  printf("arena_fault: ok\n");
  return 0;
}
