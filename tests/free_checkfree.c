/* CGC_DEBUG=checkfree=1 (set by tests/free.cmake): freed objects are
   poisoned and not reused; a collection that finds them unreferenced
   releases them; references from stacks are not reported (stale copies are
   normal there) and keep the object quarantined; a reference from a global,
   a heap object, an arena or a registered root aborts with a message giving
   the object's address and size and the reference's address and place;
   words that are not references are not reported either: the data of a
   noscan object, or of an object no longer reachable.
   Programs that use free correctly run clean, with collections, threads,
   realloc and arenas. */
#include <semaphore.h>
#include <sys/mman.h>

#include "free_util.h"

#define POISON 0xA5

static bool poisoned(const void *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (((const unsigned char *)p)[i] != POISON) return false;
  return true;
}

static volatile uintptr_t g_freed[2];

/* On a thread of their own (no stale stack copies): freed, hidden. */
static void freed_objects(void *arg) {
  (void)arg;
  size_t sizes[2] = {48, 200000};
  for (int i = 0; i < 2; i++) {
    unsigned char *p = cgc_alloc(sizes[i]);
    fill(p, sizes[i], sizes[i]);
    g_freed[i] = hide_ptr(p);
    cgc_free(p);
  }
}

/* ---- poison, no reuse, release ------------------------------------------------ */

static void test_quarantine(void) {
  unsigned char *p = cgc_alloc(64);
  fill(p, 64, 1);
  cgc_free(p);
  CHECK(poisoned(p, 64));
  for (int i = 0; i < 1000; i++) CHECK(cgc_alloc(64) != (void *)p);

  unsigned char *big = cgc_realloc(NULL, 100000);
  size_t bsize = cgc_usable_size(big);
  cgc_free(big);
  CHECK(poisoned(big, bsize));
  CHECK(cgc_is_heap_ptr(big));
  /* Quarantined objects are not live objects. */
  CHECK(cgc_base(p) == NULL && cgc_base(p + 10) == NULL);
  CHECK(cgc_base(big) == NULL && cgc_base(big + 5000) == NULL);
  consume(p);
}

static void test_release(void) {
  in_thread(freed_objects, NULL);
  uintptr_t hs = g_freed[0], hl = g_freed[1];
  clear_stack();
  cgc_collect();
  /* The large object's pages are free again. */
  CHECK(!cgc_is_heap_ptr(reveal_ptr(hl)));
  /* The small slot comes back to an allocation of its class (its span may
     be this thread's own, swept when its list runs dry). */
  bool found = false;
  for (int i = 0; i < 100000 && !found; i++) {
    void *q = cgc_alloc(48);
    found = q == reveal_ptr(hs);
    if (found) CHECK(zeroed(q, 48));
  }
  CHECK(found);
}

/* A reference on the stack is not reported; it keeps the object in quarantine. */
static __attribute__((noinline)) void stack_ref(void) {
  void *volatile keep = cgc_alloc(150000);
  size_t n = cgc_usable_size(keep);
  cgc_free(keep);
  cgc_collect();
  cgc_collect();
  CHECK(cgc_is_heap_ptr(keep));
  CHECK(poisoned(keep, n));
  keep = NULL;
}
static void test_stack_ref(void) {
  stack_ref();
  clear_stack();
  cgc_collect();
}

/* A freed object that a stack reference keeps quarantined (so the
   collection looks for references to it), whose address is also in the
   data of a reachable noscan object and of an unreachable scanned object
   (made by a thread of its own next to a reachable one, in the same span):
   neither is a reference, nothing is reported. */
static void *volatile g_noscan_holder, *volatile g_live_neighbour;
static void dead_holder(void *arg) {
  void *target = reveal_ptr((uintptr_t)arg);
  for (int i = 0; i < 16; i++) {
    void **live = cgc_alloc(64), **dead = cgc_alloc(64);
    live[0] = (void *)g_live_neighbour; /* a list of the live ones, from a global */
    g_live_neighbour = live;
    dead[0] = target;
  }
}
static __attribute__((noinline)) void not_references(void) {
  void *volatile keep = cgc_alloc(150000);
  size_t n = cgc_usable_size(keep);
  uintptr_t *ns = cgc_alloc_noscan(64);
  ns[0] = (uintptr_t)keep;
  g_noscan_holder = ns;
  in_thread(dead_holder, (void *)hide_ptr(keep));
  cgc_free(keep);
  cgc_collect(); /* this thread freed and then collected: a reference would be reported now */
  cgc_collect();
  CHECK(cgc_is_heap_ptr(keep));
  CHECK(poisoned(keep, n));
  keep = NULL;
}
static void test_not_references(void) {
  not_references();
  g_noscan_holder = NULL;
  g_live_neighbour = NULL;
  clear_stack();
  cgc_collect();
}

/* Thousands of quarantined objects of mixed sizes, every third still
   referenced from this stack: a collection releases the others and closes
   the holes they leave in the quarantine's table in place.  Every kept
   object must still be found there (cgc_base refuses it, it stays poisoned,
   allocation does not hand it out) after that collection and the next. */
#define REHASH_N 3000
static size_t rehash_size(int i) { return 16 + (size_t)(i % 7) * 24; }

static void test_rehash(void) {
  void *kept[REHASH_N / 3];
  size_t nk = 0;
  for (int i = 0; i < REHASH_N; i++) {
    void *p = cgc_alloc(rehash_size(i));
    CHECK(p != NULL);
    if (i % 3 == 0) kept[nk++] = p;
    cgc_free(p);
  }
  for (int round = 0; round < 2; round++) {
    cgc_collect();
    for (size_t k = 0; k < nk; k++) {
      CHECKF(cgc_base(kept[k]) == NULL, "collection %d: kept object %zu (%p) is no longer in the quarantine", round,
             k, kept[k]);
      CHECKF(poisoned(kept[k], rehash_size((int)k * 3)), "collection %d: kept object %zu (%p) was written", round, k,
             kept[k]);
    }
    for (int i = 0; i < REHASH_N; i++) {
      void *q = cgc_alloc(rehash_size(i));
      for (size_t k = 0; k < nk; k++) CHECKF(q != kept[k], "kept object %p handed out again", q);
    }
  }
  consume(kept);
}

/* ---- correct programs run clean ------------------------------------------------------- */

static void *churn(void *arg) {
  uint64_t st = (uint64_t)(uintptr_t)arg * 1000003 + 17;
  void *ring[32] = {0};
  cgc_arena_t *a = cgc_arena_new();
  void *anchor = cgc_alloc(40); /* outlives the arena that points to it */
  for (int i = 0; i < (FREE_ASAN ? 20000 : 100000); i++) {
    uint64_t r = rng_next(&st);
    size_t n = 8 + (r >> 8) % ((r & 64) ? 5000 : 300);
    int k = (int)(r % 32);
    cgc_free(ring[k]);
    ring[k] = (r & 1) ? cgc_alloc(n) : cgc_alloc_noscan(n);
    if ((r & 0x70) == 0) ring[k] = cgc_realloc(ring[k], n * 3);
    if ((r & 0x1f00) == 0) consume(cgc_alloc(4096)); /* garbage */
    void **o = cgc_arena_alloc(a, 32);
    o[0] = anchor;
    if (i % 5000 == 4999) {
      cgc_arena_free(a);
      cgc_free(anchor);
      a = cgc_arena_new();
      anchor = cgc_alloc(40);
    }
  }
  cgc_arena_free(a);
  cgc_free(anchor);
  for (int k = 0; k < 32; k++) cgc_free(ring[k]);
  return NULL;
}

static void test_clean(void) {
  uint64_t gc0 = cgc_gc_count();
  pthread_t t[3];
  for (int i = 0; i < 3; i++) CHECK(pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1)) == 0);
  churn(NULL);
  for (int i = 0; i < 3; i++) CHECK(pthread_join(t[i], NULL) == 0);
  cgc_collect();
  printf("clean run: %llu collections, %llu MiB mapped\n", (unsigned long long)(cgc_gc_count() - gc0),
         (unsigned long long)(stats().mapped_bytes >> 20));
  CHECK(cgc_gc_count() - gc0 >= 3);
}

/* A correct program whose references to freed objects are dropped right
   after the call (g = cgc_realloc(g, n); cgc_free(g); g = NULL;
   cgc_free(g); g = cgc_alloc(n)), in a global
   and in a heap object, while another thread collects without pause: a
   collection that stops a thread between the free and that store must not
   report the reference (it is not yet past the free).  Reported within a
   few thousand rounds before freeing threads' progress was tracked. */
static char *volatile g_race[2];
typedef struct {
  char *volatile f;
} race_holder_t;
static race_holder_t *volatile g_race_holder[2];
static _Atomic int race_done;

static void *race_churn(void *arg) {
  int k = (int)(uintptr_t)arg;
  race_holder_t *h = cgc_alloc(sizeof *h);
  g_race_holder[k] = h;
  for (int i = 0; i < 20000; i++) {
    g_race[k] = cgc_alloc(16);
    h->f = cgc_alloc_noscan(24);
    for (size_t n = 32; n <= 512; n *= 2) {
      g_race[k] = cgc_realloc(g_race[k], n);
      h->f = cgc_realloc(h->f, n + 8);
    }
    /* The value stored over the reference is computed by an allocation,
       which may collect (paced: nothing is reused in checkfree mode), or
       count before another thread's collection stops this one. */
    cgc_free(g_race[k]);
    g_race[k] = cgc_alloc(40);
    cgc_free(h->f);
    h->f = cgc_alloc_noscan(24);
    cgc_free(g_race[k]);
    g_race[k] = NULL;
    cgc_free(h->f);
    h->f = NULL;
  }
  return NULL;
}

static void test_race_clean(void) {
  /* One thread alone: every paced collection runs inside the allocation
     whose result is about to be stored over the freed object's reference. */
  uint64_t gc0 = cgc_gc_count();
  g_race[0] = cgc_alloc(64);
  while (cgc_gc_count() - gc0 < 5) {
    cgc_free(g_race[0]);
    g_race[0] = cgc_alloc(64);
  }
  g_race[0] = NULL;
  gc0 = cgc_gc_count();
  pthread_t c, t[2];
  atomic_store(&race_done, 0);
  CHECK(pthread_create(&c, NULL, collect_until, &race_done) == 0);
  for (int k = 0; k < 2; k++) CHECK(pthread_create(&t[k], NULL, race_churn, (void *)(uintptr_t)k) == 0);
  for (int k = 0; k < 2; k++) CHECK(pthread_join(t[k], NULL) == 0);
  atomic_store(&race_done, 1);
  CHECK(pthread_join(c, NULL) == 0);
  g_race_holder[0] = g_race_holder[1] = NULL;
  printf("race run: %llu collections\n", (unsigned long long)(cgc_gc_count() - gc0));
  CHECK(cgc_gc_count() - gc0 >= 10);
}

/* ---- dangling references abort with the right message ------------------------------- */

void *volatile g_dangling;
void *volatile g_base_sentinel;
void **volatile g_holder;
static char *expect; /* shared with the children */

static void run_child(void (*fn)(void), const char *what) {
  expect[0] = 0;
  int st;
  const char *out = child_stderr(fn, &st);
  CHECKF(expect[0], "%s: the child wrote no expectation; its output:\n%s", what, out);
  CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "%s: the child did not abort (status %d); output:\n%s", what, st,
         out);
  CHECKF(strstr(out, expect) != NULL, "%s: expected\n  %s\nin\n%s", what, expect, out);
  printf("%s: %s\n", what, expect);
}

/* The child tells the parent what message to expect before it aborts. */
static void expect_msg(const void *obj, size_t size, const void *where, const char *place) {
  snprintf(expect, 512, "cgc: use after free: object %p (%zu bytes) freed with cgc_free is still referenced from %p (in %s)\n",
           obj, size, where, place);
}

static void case_global(void) {
  void *p = cgc_alloc(64);
  g_dangling = p;
  expect_msg(p, 64, (const void *)&g_dangling, "a global or thread-local variable");
  cgc_free(p);
  cgc_collect();
}

static void case_global_interior(void) {
  char *p = cgc_alloc(1000);
  g_dangling = p + 500;
  expect_msg(p, cgc_usable_size(p), (const void *)&g_dangling, "a global or thread-local variable");
  cgc_free(p);
  cgc_collect();
}

static void case_global_large(void) {
  void *p = cgc_alloc(100000);
  g_dangling = p;
  expect_msg(p, cgc_usable_size(p), (const void *)&g_dangling, "a global or thread-local variable");
  cgc_free(p);
  cgc_collect();
}

static void case_heap(void) {
  void *p = cgc_alloc(32);
  g_holder = cgc_alloc(128);
  g_holder[3] = p;
  char place[128];
  snprintf(place, sizeof place, "heap object %p of 128 bytes, at offset 24", (void *)g_holder);
  expect_msg(p, 32, (const void *)&g_holder[3], place);
  cgc_free(p);
  cgc_collect();
}

static void case_arena(void) {
  void *p = cgc_alloc(256);
  cgc_arena_t *a = cgc_arena_new();
  void **o = cgc_arena_alloc(a, 64);
  o[5] = p;
  expect_msg(p, 256, (const void *)&o[5], "memory of a live arena");
  cgc_free(p);
  cgc_collect();
  cgc_arena_free(a);
}

static void case_roots(void) {
  void **blk = calloc(16, sizeof(void *));
  CHECK(blk != NULL);
  cgc_add_roots(blk, 16 * sizeof(void *));
  void *p = cgc_alloc(16);
  blk[7] = p;
  char place[128];
  snprintf(place, sizeof place, "the range %p registered with cgc_add_roots", (void *)blk);
  expect_msg(p, 16, (const void *)&blk[7], place);
  cgc_free(p);
  cgc_collect();
}

static void nop_cleanup(void *arg) { (void)arg; }

/* The argument of a cleanup still registered, freed: the report names the
   cleanup's record as the place (the record's address is cgc's, so only the
   place is checked). */
static void case_cleanup_arg(void) {
  void *owner = cgc_alloc(32);
  g_holder = owner;
  void *p = cgc_alloc(48);
  cgc_add_cleanup(owner, nop_cleanup, p);
  snprintf(expect, 512, "(in the argument of a cleanup registered with cgc_add_cleanup)\n");
  cgc_free(p);
  cgc_collect();
}

static void *thread_case(void *arg) {
  (void)arg;
  case_heap();
  return NULL;
}
static void case_other_thread(void) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, thread_case, NULL) == 0);
  pthread_join(t, NULL);
}

/* Freed on a thread that then keeps allocating, with the reference left in
   a global; only another thread collects: reported once a collection finds
   the reference again after the freeing thread has run on. */
static sem_t oc_freed;
static void *oc_freer(void *arg) {
  (void)arg;
  void *p = cgc_alloc(64);
  g_dangling = p;
  expect_msg(p, 64, (const void *)&g_dangling, "a global or thread-local variable");
  cgc_free(p);
  CHECK(sem_post(&oc_freed) == 0);
  for (;;) consume(cgc_alloc(32));
  return NULL;
}
static void case_other_collector(void) {
  CHECK(sem_init(&oc_freed, 0, 0) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, oc_freer, NULL) == 0);
  while (sem_wait(&oc_freed) != 0) CHECK(errno == EINTR);
  uint64_t n0 = cgc_gc_count();
  while (cgc_gc_count() - n0 < 1000) cgc_collect(); /* the abort comes within a few */
}

/* Frees count in the statistics as without checkfree, and a large object
   shrunk by cgc_realloc moves: its pages stay whole in the quarantine. */
static void test_stats_and_shrink(void) {
  cgc_stats_t a = stats();
  cgc_free(cgc_alloc(64));
  cgc_stats_t b = stats();
  CHECK(b.total_free_objects == a.total_free_objects + 1 && b.total_free_bytes == a.total_free_bytes + 64);
  unsigned char *p = cgc_alloc(4 << 20);
  CHECK(p != NULL);
  p[0] = 7;
  unsigned char *q = cgc_realloc(p, 1 << 20);
  CHECKF(q != NULL && q != p, "a 4 MiB object shrunk to 1 MiB in place under checkfree");
  CHECK(q[0] == 7);
  cgc_free(q);
}

int main(void) {
  test_seed();
  const char *d = getenv("CGC_DEBUG");
  CHECKF(d && strstr(d, "checkfree=1"), "run with CGC_DEBUG=checkfree=1");
  cgc_init();
  /* The first object sits at the heap's first address, which a pair of
     32-bit counters in the collector's own scanned statics can spell out;
     keep it allocated so that such a word cannot be taken for a reference
     to a freed object. */
  g_base_sentinel = cgc_alloc(64);
  expect = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(expect != MAP_FAILED);
  test_quarantine();
  test_stats_and_shrink();
  test_release();
  test_stack_ref();
  test_not_references();
  test_rehash();
  test_clean();
  test_race_clean();
  run_child(case_global, "global");
  run_child(case_global_interior, "interior pointer in a global");
  run_child(case_global_large, "large object");
  run_child(case_heap, "heap object");
  run_child(case_arena, "arena");
  run_child(case_roots, "registered root");
  run_child(case_cleanup_arg, "a cleanup's argument");
  run_child(case_other_thread, "freed and collected on another thread");
  run_child(case_other_collector, "freed on a thread that runs on, collected by another");
  printf("free_checkfree: ok\n");
  return 0;
}
