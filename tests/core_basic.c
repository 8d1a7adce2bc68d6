/* The public API on one thread: allocation, zeroing, sizes, bases, heap
   pointers, huge requests and calloc overflow, stats, pacing knobs, reuse of
   collected memory. */
#include "core_util.h"

#include <signal.h>

static int g_static_int = 42;

static void test_init_idempotent(void) {
  cgc_init();
  cgc_init();
  void *p = cgc_alloc(16);
  CHECK(p != NULL);
  cgc_init();
  CHECK(cgc_base(p) == p);
}

static void test_suspend_signal_default(void) {
  if (!getenv("CGC_SIGNAL")) CHECKF(cgc_suspend_signal() == SIGPWR, "suspend signal %d", cgc_suspend_signal());
  int before = cgc_suspend_signal();
  cgc_collect();
  CHECKF(cgc_set_suspend_signal(SIGUSR1) == -1, "cgc_set_suspend_signal after a collection must return -1");
  CHECK(cgc_suspend_signal() == before);
}

static void check_fresh(unsigned char *p, size_t n, int noscan) {
  CHECKF(p != NULL, "alloc(%zu) returned NULL", n);
  CHECKF(((uintptr_t)p & 7) == 0, "alloc(%zu) = %p is not 8-byte aligned", n, (void *)p);
  size_t us = cgc_usable_size(p);
  CHECKF(us >= n, "usable_size %zu < %zu", us, n);
  CHECKF(all_zero(p, us), "alloc%s(%zu) is not zeroed", noscan ? "_noscan" : "", n);
  CHECK(cgc_is_heap_ptr(p));
  CHECK(cgc_is_heap_ptr(p + us - 1));
  CHECK(cgc_base(p) == p);
  CHECK(cgc_base(p + n / 2) == p);
  CHECKF(cgc_base(p + us - 1) == p, "cgc_base of last usable byte of a %zu-byte object", n);
  memset(p, 0xab, us);
}

static void test_alloc_shapes(void) {
  static const size_t sizes[] = {1,     2,     7,     8,     9,      15,      16,      17,     31,
                                 32,    33,    63,    64,    65,     100,     127,     128,    129,
                                 255,   256,   257,   1000,  1024,   1025,    4095,    4096,   4097,
                                 8191,  8192,  8193,  16384, 32767,  32768,   32769,   40000,  65536,
                                 65537, 100000, 262144, 1 << 20, (1 << 20) + 1, 8 << 20, 33 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    check_fresh((unsigned char *)cgc_alloc(n), n, 0);
    check_fresh((unsigned char *)cgc_alloc_noscan(n), n, 1);
    unsigned char *c = (unsigned char *)cgc_calloc(1, n);
    check_fresh(c, n, 0);
    c = (unsigned char *)cgc_calloc(n, 1);
    check_fresh(c, n, 0);
  }
  unsigned char *c = (unsigned char *)cgc_calloc(10, 100);
  check_fresh(c, 1000, 0);
  c = (unsigned char *)cgc_calloc(3, 40000);
  check_fresh(c, 120000, 0);
}

/* Many live objects of random sizes must not overlap: fill each over its whole
   usable size, then check every one. */
static void test_no_overlap(void) {
  enum { N = 3000 };
  unsigned char **objs = (unsigned char **)cgc_alloc(N * sizeof *objs);
  size_t *sizes = (size_t *)cgc_alloc_noscan(N * sizeof *sizes);
  CHECK(objs && sizes);
  for (size_t i = 0; i < N; i++) {
    uint64_t r = test_rand();
    size_t n = (r % 16 == 0) ? 32768 + (r >> 8) % 200000 : 1 + (r >> 8) % 3000;
    objs[i] = (unsigned char *)((r & 1) ? cgc_alloc(n) : cgc_alloc_noscan(n));
    CHECK(objs[i] != NULL);
    sizes[i] = cgc_usable_size(objs[i]);
    CHECK(sizes[i] >= n);
    fill_pattern(objs[i], sizes[i], i + 1);
  }
  cgc_collect();
  for (size_t i = 0; i < N; i++) {
    size_t bad = pattern_mismatch(objs[i], sizes[i], i + 1);
    CHECKF(bad == (size_t)-1, "object %zu (%zu bytes) overwritten at byte %zu", i, sizes[i], bad);
    CHECK(cgc_base(objs[i] + sizes[i] - 1) == objs[i]);
  }
}

static void test_huge_and_overflow(void) {
  /* Also sizes that fit the address space but not 16 times this machine's
     memory (whose page-map words alone would exhaust it): refused at once. */
  uint64_t ram = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
  size_t beyond = (size_t)1 << 45; /* 32 TiB */
  while (beyond <= ram * 16 && beyond < ((size_t)1 << 46)) beyond <<= 1;
  volatile size_t huge[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4096, SIZE_MAX - 65536, SIZE_MAX / 2,
                            SIZE_MAX / 2 + 1, (size_t)1 << 62, (size_t)1 << 56, beyond, beyond + 12345};
  for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
    size_t n = huge[i];
    errno = 0;
    void *p = cgc_alloc(n);
    CHECKF(p == NULL && errno == ENOMEM, "cgc_alloc(%zu) = %p, errno %d", n, p, errno);
    errno = 0;
    p = cgc_alloc_noscan(n);
    CHECKF(p == NULL && errno == ENOMEM, "cgc_alloc_noscan(%zu) = %p, errno %d", n, p, errno);
    errno = 0;
    p = cgc_calloc(1, n);
    CHECKF(p == NULL && errno == ENOMEM, "cgc_calloc(1, %zu) = %p, errno %d", n, p, errno);
  }
  /* Growing a large object that far fails and leaves it intact. */
  char *big = cgc_alloc_noscan(100000);
  CHECK(big);
  big[99999] = 7;
  errno = 0;
  CHECK(cgc_realloc(big, beyond) == NULL && errno == ENOMEM);
  CHECK(big[99999] == 7 && cgc_usable_size(big) >= 100000);
  volatile size_t a = ((size_t)1 << 33) + 1, b = (size_t)1 << 31;  /* product wraps to 2^31 */
  errno = 0;
  void *p = cgc_calloc(a, b);
  CHECKF(p == NULL && errno == ENOMEM, "cgc_calloc overflow = %p, errno %d", p, errno);
  volatile size_t c = SIZE_MAX / 16 + 2, d = 16;  /* wraps to 16 */
  errno = 0;
  p = cgc_calloc(c, d);
  CHECKF(p == NULL && errno == ENOMEM, "cgc_calloc overflow = %p, errno %d", p, errno);
  errno = 0;
  p = cgc_calloc(d, c);
  CHECKF(p == NULL && errno == ENOMEM, "cgc_calloc overflow = %p, errno %d", p, errno);
  /* The heap still works. */
  p = cgc_alloc(100);
  CHECK(p != NULL && all_zero(p, 100));
  cgc_collect();
  CHECK(cgc_base(p) == p);
}

static void test_strdup(void) {
  const char *src = "the quick brown fox";
  char *s = cgc_strdup(src);
  CHECK(s != NULL && s != src);
  CHECK(strcmp(s, src) == 0);
  CHECK(cgc_is_heap_ptr(s) && cgc_base(s) == s);
  CHECK(cgc_usable_size(s) >= strlen(src) + 1);
  char *e = cgc_strdup("");
  CHECK(e != NULL && e[0] == 0 && cgc_base(e) == e);
  /* Every length up to 300, size classes included (a 16-character string
     needs 17 bytes): the copy always holds its terminator. */
  char str[301];
  for (size_t len = 0; len < sizeof str; len++) {
    memset(str, 'a' + (int)(len % 26), len);
    str[len] = 0;
    char *d = cgc_strdup(str);
    CHECKF(d != NULL && cgc_usable_size(d) > len && d[len] == 0 && strcmp(d, str) == 0,
           "cgc_strdup of %zu characters: %zu bytes", len, d ? cgc_usable_size(d) : 0);
  }
  char big[50000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  char *b = cgc_strdup(big);
  CHECK(b != NULL && strcmp(b, big) == 0);
  cgc_collect();
  CHECK(strcmp(s, src) == 0 && strcmp(b, big) == 0);
}

static void test_non_heap(void) {
  int local = 1;
  void *m = malloc(64);
  CHECK(m != NULL);
  CHECK(cgc_base(&local) == NULL);
  CHECK(cgc_base(m) == NULL);
  CHECK(cgc_base(&g_static_int) == NULL);
  CHECK(cgc_base(NULL) == NULL);
  CHECK(cgc_base((void *)(uintptr_t)1) == NULL);
  CHECK(cgc_base((void *)~(uintptr_t)0) == NULL);
  CHECK(!cgc_is_heap_ptr(&local));
  CHECK(!cgc_is_heap_ptr(m));
  CHECK(!cgc_is_heap_ptr(&g_static_int));
  CHECK(!cgc_is_heap_ptr(NULL));
  CHECK(!cgc_is_heap_ptr((void *)~(uintptr_t)0));
  CHECK(!cgc_is_heap_ptr((void *)test_non_heap));
  free(m);
}

static void test_stats(void) {
  cgc_collect();
  cgc_stats_t s0 = stats_now();
  CHECK(s0.num_gc == cgc_gc_count());
  CHECK(s0.num_gc >= 1);
  CHECKF(s0.live_bytes >= s0.last_live_bytes && s0.live_bytes - s0.last_live_bytes <= 256 * 1024,
         "right after a collection live_bytes %llu, last_live_bytes %llu",
         (unsigned long long)s0.live_bytes, (unsigned long long)s0.last_live_bytes);
  CHECK(s0.mapped_bytes >= s0.live_bytes);
  CHECK(s0.heap_goal_bytes > 0);
  CHECK(s0.pause_total_ns >= s0.pause_max_ns);
  CHECK(s0.pause_max_ns >= s0.last_pause_ns);
  CHECK(s0.last_pause_ns > 0);
  CHECK(s0.mark_total_ns <= s0.pause_total_ns);
  CHECK(s0.num_forced_gc >= 1 && s0.num_forced_gc <= s0.num_gc);
  CHECK(s0.num_threads >= 1);
  CHECK(s0.total_free_objects == 0 && s0.total_free_bytes == 0);
  int cpus = cpus_available();
  int want = cpus < 2 ? cpus : 2;
  CHECKF(s0.mark_workers >= (uint64_t)want, "mark_workers %llu with %d CPUs: marking must use every core",
         (unsigned long long)s0.mark_workers, cpus);

  /* One explicit collection: exactly one more, counted as forced. */
  uint64_t c0 = cgc_gc_count();
  cgc_collect();
  cgc_stats_t s1 = stats_now();
  CHECK(cgc_gc_count() == c0 + 1);
  CHECK(s1.num_gc == c0 + 1);
  CHECK(s1.num_forced_gc == s0.num_forced_gc + 1);
  CHECK(s1.pause_total_ns > s0.pause_total_ns);

  /* Allocation counters. */
  enum { K = 256 };
  void **keep = (void **)cgc_alloc(K * sizeof(void *));
  CHECK(keep != NULL);
  cgc_stats_t a0 = stats_now();
  for (int i = 0; i < K; i++) keep[i] = cgc_alloc(4000);
  cgc_stats_t a1 = stats_now();
  CHECKF(a1.total_alloc_bytes - a0.total_alloc_bytes >= (uint64_t)K * 4000,
         "total_alloc_bytes grew by %llu", (unsigned long long)(a1.total_alloc_bytes - a0.total_alloc_bytes));
  CHECKF(a1.total_alloc_objects - a0.total_alloc_objects >= K, "total_alloc_objects grew by %llu",
         (unsigned long long)(a1.total_alloc_objects - a0.total_alloc_objects));
  if (a1.num_gc == a0.num_gc)
    CHECKF(a1.live_bytes - a0.live_bytes >= (uint64_t)K * 4000, "live_bytes grew by %llu",
           (unsigned long long)(a1.live_bytes - a0.live_bytes));
  cgc_collect();
  cgc_stats_t a2 = stats_now();
  CHECKF(a2.last_live_bytes >= (uint64_t)K * 4000, "last_live_bytes %llu with %d KB reachable",
         (unsigned long long)a2.last_live_bytes, K * 4);
  cgc_keep_alive(keep);
}

static void test_knobs(void) {
  if (!getenv("CGC_PERCENT")) {
    int prev = cgc_set_gc_percent(100);
    CHECKF(prev == 100, "default GC percent is %d", prev);
  }
  cgc_set_gc_percent(100);
  CHECK(cgc_set_gc_percent(50) == 100);
  CHECK(cgc_set_gc_percent(-1) == 50);
  CHECK(cgc_set_gc_percent(300) < 0);
  CHECK(cgc_set_gc_percent(100) == 300);

  int64_t lim = cgc_set_memory_limit(-1);
  CHECK(lim > 0);
  CHECK(cgc_set_memory_limit(-1) == lim);
  CHECK(cgc_set_memory_limit((int64_t)1 << 40) == lim);
  CHECK(cgc_set_memory_limit(-1) == (int64_t)1 << 40);
  CHECK(cgc_set_memory_limit(lim) == (int64_t)1 << 40);
  CHECK(cgc_set_memory_limit(-1) == lim);
}

/* Memory of collected objects is reused, and comes back zeroed. */
static __attribute__((noinline)) void fill_garbage(size_t n, size_t count, int noscan) {
  for (size_t i = 0; i < count; i++) {
    unsigned char *p = (unsigned char *)(noscan ? cgc_alloc_noscan(n) : cgc_alloc(n));
    CHECK(p != NULL);
    memset(p, 0xff, cgc_usable_size(p));
  }
}

/* cgc_base answers NULL for an object the last collection found
   unreachable, even before its span is swept (the allocating thread's own
   span is not swept while it still allocates from it). */
#define NHIDDEN 16
static uintptr_t g_hidden[NHIDDEN];
static __attribute__((noinline)) void make_hidden(void) {
  for (int i = 0; i < NHIDDEN; i++) g_hidden[i] = hide_ptr(cgc_alloc(200));
}
static __attribute__((noinline)) void test_base_of_dead(void) {
  make_hidden();
  clear_stack();
  until_paced_collection(1000);
  int dead = 0;
  for (int i = 0; i < NHIDDEN; i++) {
    char *p = reveal_ptr(g_hidden[i]);
    void *b = cgc_base(p + 8);
    CHECKF(b == NULL || b == p, "cgc_base(%p) = %p", (void *)(p + 8), b);
    dead += b == NULL;
  }
  CHECKF(dead >= NHIDDEN * 3 / 4, "cgc_base found %d of %d unreachable objects live", NHIDDEN - dead, NHIDDEN);
}

static __attribute__((noinline)) void test_reuse_zeroed(void) {
  static const size_t sizes[] = {8, 16, 24, 48, 100, 512, 1500, 3000, 8192, 20000, 32768, 40000, 300000};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    size_t n = sizes[k];
    size_t count = (4 * CORE_MIB) / n + 4;
    for (int noscan = 0; noscan < 2; noscan++) {
      for (int round = 0; round < 2; round++) {
        uint64_t before = live_after_collect();
        fill_garbage(n, count, noscan);
        uint64_t after = live_after_collect();
        CHECKF(after < before + (uint64_t)(n * count) / 4,
               "garbage of %zu x %zu bytes survived a collection: live %llu -> %llu", count, n,
               (unsigned long long)before, (unsigned long long)after);
        for (size_t i = 0; i < count; i++) {
          unsigned char *p = (unsigned char *)(noscan ? cgc_alloc_noscan(n) : cgc_alloc(n));
          CHECK(p != NULL);
          size_t us = cgc_usable_size(p);
          CHECKF(all_zero(p, us), "reused %s object of %zu bytes is not zeroed",
                 noscan ? "noscan" : "scan", n);
          memset(p, 0xff, us);
        }
      }
    }
  }
}

/* A huge object (64 MiB and more) made in the pages of a freed one comes
   back zeroed too: dirty runs that long are cleared by giving them back to
   the OS, not by writing (docs/heap.md, "Zeroing"). */
static __attribute__((noinline)) void test_reuse_zeroed_huge(void) {
  const size_t n = 80 * CORE_MIB;
  unsigned char *p = (unsigned char *)cgc_alloc_noscan(n);
  CHECK(p != NULL);
  memset(p, 0xa5, n);
  uintptr_t old = hide_ptr(p);
  cgc_free(p);
  p = (unsigned char *)cgc_alloc_noscan(n);
  CHECK(p != NULL);
  CHECKF(hide_ptr(p) == old, "a huge object was not made in the pages of the one just freed: %p, %p", (void *)p,
         reveal_ptr(old));
  for (size_t i = 0; i < n; i += 4096)
    CHECKF(p[i] == 0 && p[i + 4095] == 0, "a huge object in reused pages is not zeroed at offset %zu", i);
  cgc_free(p);
}

static void test_release_memory(void) {
  fill_garbage(1000, 20000, 0);
  clear_stack();
  cgc_collect();
  cgc_stats_t s0 = stats_now();
  cgc_release_memory();
  cgc_stats_t s1 = stats_now();
  CHECK(s1.mapped_bytes <= s0.mapped_bytes);
  CHECK(s1.released_bytes >= s0.released_bytes);
  void *p = cgc_alloc(1000);
  CHECK(p != NULL && all_zero(p, 1000));
}

/* cgc_collect returns with the heap swept: garbage of every size class,
   made with collections off, is swept by the time it returns, so the pages
   of its spans are free and cgc_release_memory gives them back. */
static void *garbage_of_every_class(void *arg) {
  (void)arg;
  /* Every small class (up to 32 KiB) once: the size after a class's slot
     size is the next class's smallest. */
  for (size_t n = 8; n <= 32768; n = cgc_usable_size(cgc_alloc_noscan(n)) + 1)
    for (int noscan = 0; noscan < 2; noscan++) fill_garbage(n, (size_t)(256 * 1024) / n + 1, noscan);
  return NULL;
}

/* Garbage made by `make` on a thread that exits, with collections off:
   at least min_mib MiB more mapped, and all of it given back by
   cgc_collect and cgc_release_memory (spans left unswept would stay). */
static void expect_garbage_released(void *(*make)(void *), uint64_t min_mib, const char *what) {
  cgc_collect();
  cgc_release_memory();
  uint64_t base = stats_now().mapped_bytes;
  int pct = cgc_set_gc_percent(-1);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, make, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  uint64_t full = stats_now().mapped_bytes;
  cgc_set_gc_percent(pct);
  CHECKF(full >= base + min_mib * CORE_MIB, "%s mapped only %llu MiB", what, (unsigned long long)((full - base) >> 20));
  cgc_collect();
  cgc_release_memory();
  uint64_t after = stats_now().mapped_bytes;
  CHECKF(after <= base + 4 * CORE_MIB, "after cgc_collect and cgc_release_memory %llu MiB stay mapped (%llu before %s, "
         "%llu with it): spans left unswept",
         (unsigned long long)(after >> 20), (unsigned long long)(base >> 20), what, (unsigned long long)(full >> 20));
}

static void test_collect_sweeps_every_class(void) {
  expect_garbage_released(garbage_of_every_class, 32, "garbage of every class");
}

/* The same for the smallest class alone, with enough garbage to see: 16 MiB
   of 8-byte objects (scanned and noscan), made by a thread that exits, so
   that no allocation of the main thread sweeps their spans lazily. */
static void *garbage_of_smallest_class(void *arg) {
  (void)arg;
  for (int noscan = 0; noscan < 2; noscan++)
    for (size_t i = 0; i < (size_t)(8 * CORE_MIB) / 8; i++) CHECK((noscan ? cgc_alloc_noscan(8) : cgc_alloc(8)) != NULL);
  return NULL;
}

static void test_collect_sweeps_smallest_class(void) {
  expect_garbage_released(garbage_of_smallest_class, 16, "16 MiB of 8-byte garbage");
}

/* cgc_calloc's memory is scanned, as cgc_alloc's: objects referenced only
   from a small or a large calloc'd block live through collections. */
void **g_calloc_blocks[2]; /* not static: the stores must stay */
static __attribute__((noinline)) void make_calloc_blocks(cgc_weak_t *w, uintptr_t *hidden) {
  static const size_t counts[2] = {4, 10000}; /* 32 bytes and 80000 (a large object) */
  for (int i = 0; i < 2; i++) {
    void **b = cgc_calloc(counts[i], sizeof(void *));
    CHECK(b != NULL);
    void *t = cgc_alloc_noscan(100);
    memset(t, 0x3c, 100);
    w[i] = cgc_weak_make(t);
    b[counts[i] - 1] = t; /* the only reference */
    hidden[i] = hide_ptr(t);
    g_calloc_blocks[i] = b;
  }
}
static __attribute__((noinline)) void test_calloc_scanned(void) {
  cgc_weak_t w[2];
  uintptr_t hidden[2];
  make_calloc_blocks(w, hidden);
  clear_stack();
  cgc_collect();
  fill_garbage(100, 20000, 1); /* reuses whatever died */
  cgc_collect();
  for (int i = 0; i < 2; i++) {
    void *t = cgc_weak_value(w[i]);
    CHECKF(t == reveal_ptr(hidden[i]), "an object referenced only from a %s cgc_calloc block was collected",
           i ? "large" : "small");
    CHECK(((unsigned char *)t)[99] == 0x3c);
  }
  g_calloc_blocks[0] = g_calloc_blocks[1] = NULL;
}

/* Slots a collection found dead in spans that still hold live objects are
   handed out again, also once the sweep has been finished by someone other
   than the allocating thread (cgc_release_memory): the spans it swept go to
   the central lists' partial spans, which an allocation takes before new
   memory.  Half of 40000 objects of 200 bytes die, every other one; of
   10000 allocations of that size after the sweep, with pacing off, most
   land on the dead objects' slots. */
enum { NHALF = 40000, HALF_SIZE = 200, NAGAIN = 10000 };
void **g_half;            /* not static: the stores must stay */
static uintptr_t *g_dead; /* noscan: the dead objects' addresses, sorted */
static int cmp_addr(const void *a, const void *b) {
  uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
  return x < y ? -1 : x > y;
}
static __attribute__((noinline)) void make_half_garbage(void) {
  g_half = cgc_alloc(NHALF / 2 * sizeof(void *));
  g_dead = cgc_alloc_noscan(NHALF / 2 * sizeof(uintptr_t));
  CHECK(g_half != NULL && g_dead != NULL);
  for (int i = 0; i < NHALF; i++) {
    void *p = cgc_alloc(HALF_SIZE);
    CHECK(p != NULL);
    if (i % 2 == 0) g_half[i / 2] = p;
    else g_dead[i / 2] = (uintptr_t)p; /* noscan: keeps nothing alive */
  }
  qsort(g_dead, NHALF / 2, sizeof *g_dead, cmp_addr);
}
static bool was_dead(uintptr_t p) {
  size_t lo = 0, hi = NHALF / 2;
  while (lo < hi) {
    size_t m = (lo + hi) / 2;
    if (g_dead[m] < p) lo = m + 1;
    else hi = m;
  }
  return lo < NHALF / 2 && g_dead[lo] == p;
}
static __attribute__((noinline)) void test_partial_spans_reused(void) {
  make_half_garbage();
  clear_stack();
  cgc_collect();
  cgc_release_memory(); /* every span swept here, not by the allocations below */
  int percent = cgc_set_gc_percent(-1);
  int reused = 0;
  for (int i = 0; i < NAGAIN; i++) reused += was_dead((uintptr_t)cgc_alloc(HALF_SIZE));
  cgc_set_gc_percent(percent);
  fprintf(stderr, "%d of %d allocations of %d bytes reused dead objects' slots\n", reused, NAGAIN, HALF_SIZE);
  CHECKF(reused >= NAGAIN / 4, "only %d of %d allocations reused the slots of the %d objects that died",
         reused, NAGAIN, NHALF / 2);
  g_half = NULL;
  g_dead = NULL;
}

int main(void) {
  test_seed();
  test_init_idempotent();
  test_suspend_signal_default();
  test_alloc_shapes();
  test_no_overlap();
  test_huge_and_overflow();
  test_strdup();
  test_calloc_scanned();
  test_partial_spans_reused();
  test_non_heap();
  test_stats();
  test_knobs();
  test_base_of_dead();
  test_reuse_zeroed();
  test_reuse_zeroed_huge();
  test_release_memory();
  test_collect_sweeps_every_class();
  test_collect_sweeps_smallest_class();
  printf("core_basic: ok\n");
  return 0;
}
