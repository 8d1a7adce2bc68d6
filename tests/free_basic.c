/* cgc_free and cgc_realloc: LIFO reuse on the freeing thread, zeroing,
   statistics, large objects, and every cgc_realloc case (in place, grow,
   shrink, moves, kind kept, failure). */
#include "free_util.h"

static const size_t sizes[] = {1, 8, 16, 24, 40, 100, 256, 1000, 1024, 1025, 4000, 12345, 32768};
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* 1. The next allocation of the class returns the object just freed, zeroed;
   several frees come back in reverse order. */
static void test_lifo(void) {
  for (int noscan = 0; noscan < 2; noscan++) {
    for (size_t i = 0; i < NSIZES; i++) {
      size_t n = sizes[i];
      void *(*alloc)(size_t) = noscan ? cgc_alloc_noscan : cgc_alloc;
      unsigned char *p = alloc(n);
      CHECK(p != NULL);
      fill(p, cgc_usable_size(p), n);
      cgc_free(p);
      unsigned char *q = alloc(n);
      CHECKF(q == p, "size %zu noscan %d: %p freed, %p allocated", n, noscan, (void *)p, (void *)q);
      CHECKF(zeroed(q, cgc_usable_size(q)), "size %zu: reused object not zeroed", n);

      void *a = alloc(n), *b = alloc(n), *c = alloc(n);
      cgc_free(a);
      cgc_free(b);
      cgc_free(c);
      CHECK(alloc(n) == c);
      CHECK(alloc(n) == b);
      CHECK(alloc(n) == a);
      cgc_free(q);
    }
  }
  /* Same size class, other request size: still the same slot. */
  void *p = cgc_alloc(100);
  size_t cls = cgc_usable_size(p);
  cgc_free(p);
  CHECK(cgc_alloc(cls) == p);
  /* Scanned and noscan objects never share a list. */
  void *s = cgc_alloc(48);
  cgc_free(s);
  void *ns = cgc_alloc_noscan(48);
  CHECK(ns != s);
  CHECK(cgc_alloc(48) == s);
  cgc_free(NULL); /* a no-op */
  CHECK(cgc_usable_size(NULL) == 0); /* as documented in cgc.h */
}

/* Statistics count explicit frees; large objects go straight back. */
static void test_stats_large(void) {
  cgc_stats_t before = stats();
  void *objs[100];
  for (int i = 0; i < 100; i++) objs[i] = cgc_alloc(64);
  for (int i = 0; i < 100; i++) cgc_free(objs[i]);
  cgc_stats_t after = stats();
  CHECK(after.total_free_objects - before.total_free_objects == 100);
  CHECK(after.total_free_bytes - before.total_free_bytes == 100 * 64);

  before = stats();
  unsigned char *big = cgc_alloc(3 * MIB);
  CHECK(big != NULL);
  fill(big, 4096, 9);
  cgc_stats_t mid = stats();
  CHECK(mid.live_bytes >= before.live_bytes + 3 * MIB);
  /* A large object counts as one allocated object, of all its bytes. */
  CHECKF(mid.total_alloc_objects == before.total_alloc_objects + 1, "a large allocation counted %llu objects",
         (unsigned long long)(mid.total_alloc_objects - before.total_alloc_objects));
  CHECK(mid.total_alloc_bytes >= before.total_alloc_bytes + 3 * MIB);
  cgc_free(big);
  after = stats();
  CHECK(after.live_bytes + 3 * MIB <= mid.live_bytes);
  CHECK(after.total_free_objects == mid.total_free_objects + 1);
  /* The pages come back zeroed to the next allocation. */
  unsigned char *again = cgc_alloc(3 * MIB);
  CHECK(again != NULL);
  CHECK(zeroed(again, 3 * MIB));
  cgc_free(again);
}

/* An object whose first word's top byte is one a free-list link can have
   (cgc_free's first test reads that byte) is freed and reused as any other:
   cgc_free confirms it live with the full test. */
static void test_tagged_first_word(void) {
  static const size_t tsizes[] = {8, 16, 24, 32, 48, 64, 100, 1000, 4000};
  for (size_t i = 0; i < sizeof tsizes / sizeof tsizes[0]; i++) {
    for (unsigned tag = 0xF0; tag <= 0xFF; tag++) {
      size_t n = tsizes[i];
      unsigned char *p = cgc_alloc(n);
      CHECK(p != NULL);
      fill(p, n, tag);
      uint64_t w = (uint64_t)tag << 56 | (0x00123456789ABCDEull ^ (uint64_t)(uintptr_t)p);
      memcpy(p, &w, sizeof w);
      cgc_free(p);
      unsigned char *q = cgc_alloc(n);
      CHECKF(q == p && zeroed(q, n), "size %zu, top byte %#x: %p freed, %p allocated", n, tag, (void *)p, (void *)q);
      cgc_free(q);
    }
  }
}

/* Statistics count every small free, on threads that exit too, across many
   refills of a class's span. */
enum { STAT_N = 30000 };
static void *free_many(void *arg) {
  uint64_t *bytes = arg;
  static const size_t ssizes[] = {8, 32, 48, 256, 2000};
  for (int i = 0; i < STAT_N; i++) {
    size_t n = ssizes[i % 5];
    void *p = cgc_alloc(n), *q = cgc_alloc_noscan(n);
    CHECK(p && q);
    *bytes += cgc_usable_size(p) + cgc_usable_size(q);
    cgc_free(p);
    if (i % 3 == 0) {
      CHECK(cgc_realloc(q, n * 3) != NULL); /* the old slot counts as freed; the new one is dropped */
    } else {
      cgc_free(q);
    }
  }
  return NULL;
}
static void test_stats_threads(void) {
  cgc_stats_t a = stats();
  uint64_t bytes[3] = {0, 0, 0};
  pthread_t t[2];
  for (int i = 0; i < 2; i++) CHECK(pthread_create(&t[i], NULL, free_many, &bytes[i]) == 0);
  free_many(&bytes[2]);
  for (int i = 0; i < 2; i++) CHECK(pthread_join(t[i], NULL) == 0);
  cgc_stats_t b = stats();
  uint64_t objs = b.total_free_objects - a.total_free_objects, freed = b.total_free_bytes - a.total_free_bytes;
  CHECKF(objs == 3ull * 2 * STAT_N, "%llu objects freed, %llu expected", (unsigned long long)objs,
         3ull * 2 * STAT_N);
  CHECKF(freed == bytes[0] + bytes[1] + bytes[2], "%llu bytes freed, %llu expected", (unsigned long long)freed,
         (unsigned long long)(bytes[0] + bytes[1] + bytes[2]));
}

/* The cumulative counts never go back, even read while threads exit: an
   exiting thread's counts move to the exited totals as it leaves the
   thread list, in one step (else a read in between counts them twice, and
   the next read is lower). */
static _Atomic int mono_stop;
static void *short_lived(void *arg) {
  (void)arg;
  for (int i = 0; i < 500; i++) cgc_free(cgc_alloc(32));
  return NULL;
}
static void *spawner(void *arg) {
  (void)arg;
  while (!atomic_load(&mono_stop)) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, short_lived, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
  }
  return NULL;
}
static void test_stats_monotonic(void) {
  pthread_t t[2];
  atomic_store(&mono_stop, 0);
  for (int i = 0; i < 2; i++) CHECK(pthread_create(&t[i], NULL, spawner, NULL) == 0);
  cgc_stats_t prev = stats();
  uint64_t drops = 0;
  for (int i = 0; i < 300000; i++) {
    cgc_stats_t now = stats();
    if (now.total_free_objects < prev.total_free_objects || now.total_free_bytes < prev.total_free_bytes ||
        now.total_alloc_objects < prev.total_alloc_objects || now.total_alloc_bytes < prev.total_alloc_bytes)
      drops++;
    prev = now;
  }
  atomic_store(&mono_stop, 1);
  for (int i = 0; i < 2; i++) CHECK(pthread_join(t[i], NULL) == 0);
  CHECKF(drops == 0, "%llu of 300000 statistics reads went back", (unsigned long long)drops);
}

/* Freed from another thread: the object lands on the freeing thread's list. */
static void *free_here(void *arg) {
  void *p = arg;
  size_t n = cgc_usable_size(p);
  cgc_free(p);
  void *q = cgc_alloc(n);
  return (void *)(uintptr_t)(q == p);
}
static void test_other_thread(void) {
  void *p = cgc_alloc(200);
  fill(p, 200, 3);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, free_here, p) == 0);
  void *r;
  CHECK(pthread_join(t, &r) == 0);
  CHECK(r == (void *)1);
}

/* cgc_free remembers the spans of recent frees.  A remembered span whose
   pages are freed and reused by a span of another class must not mislead
   it: frees in the new span go to the new span's class. */
static uintptr_t t_page; /* the page of the object the thread handed over */
static void *fill_and_leave(void *arg) {
  (void)arg;
  void *keep = NULL;
  for (int i = 0; i < 4000; i++) {
    void *p = cgc_alloc(64);
    if (i == 2000) keep = p;
  }
  return (void *)hide_ptr(keep); /* its spans die with the thread's lists */
}

/* In a frame of its own, so that no stale copy of y outlives it. */
static __attribute__((noinline)) void hand_over_and_drop(void) {
  pthread_t t;
  void *r;
  CHECK(pthread_create(&t, NULL, fill_and_leave, NULL) == 0);
  CHECK(pthread_join(t, &r) == 0);
  unsigned char *y = reveal_ptr((uintptr_t)r);
  t_page = (uintptr_t)y >> 13;
  /* Free y here: this thread now remembers y's span for its page. */
  cgc_free(y);
  CHECK(cgc_alloc(64) == y); /* LIFO; dropped */
}

static void test_free_span_reuse(void) {
  hand_over_and_drop();
  for (int i = 0; i < 5 && cgc_is_heap_ptr((void *)(t_page << 13)); i++) {
    clear_stack();
    cgc_collect(); /* the thread's spans die: their pages are free */
  }
  if (cgc_is_heap_ptr((void *)(t_page << 13))) {
    /* A conservative survivor (seen under ASan, whose runtime keeps its own
       copies of stack words): nothing to reuse, nothing to check. */
    printf("free_basic: span reuse not checked: the page stayed in use\n");
    return;
  }
  /* Allocate another class until a slot lands on that page. */
  enum { N = 200000 };
  static unsigned char *objs[N];
  int hit = -1;
  for (int i = 0; i < N && hit < 0; i++) {
    objs[i] = cgc_alloc(48);
    if ((uintptr_t)objs[i] >> 13 == t_page) hit = i;
  }
  CHECKF(hit >= 0, "no 48-byte object on the reused page");
  unsigned char *p = objs[hit];
  CHECK(cgc_usable_size(p) == 48);
  fill(p, 48, 11);
  cgc_free(p);
  CHECK(cgc_alloc(48) == p && zeroed(p, 48));
  for (int i = 0; i <= hit; i++) objs[i] = NULL;
}

/* ---- cgc_realloc ----------------------------------------------------------- */

static void test_realloc_basic(void) {
  /* NULL: allocate (scanned). */
  unsigned char *p = cgc_realloc(NULL, 50);
  CHECK(p != NULL && cgc_usable_size(p) >= 50 && zeroed(p, 50));

  /* Grow in place within the size class.  (Through cgc_realloc, so that the
     compiler does not take the object for 100 bytes.) */
  p = cgc_realloc(NULL, 100);
  size_t cls = cgc_usable_size(p);
  CHECK(cls > 100);
  fill(p, 100, 1);
  CHECK(cgc_realloc(p, cls) == p);
  CHECK(intact(p, 100, 1));
  /* Shrink in place (the slot is not more than twice too big); the cut bytes
     read as zero when grown again. */
  CHECK(cgc_realloc(p, 60) == p);
  CHECK(intact(p, 60, 1));
  CHECK(cgc_realloc(p, cls) == p);
  CHECK(intact(p, 60, 1) && zeroed(p + 60, cls - 60));

  /* Grow beyond the class: moves, copies, zero tail, old block freed at once
     (the next allocation of its class on this thread gets it back). */
  fill(p, cls, 2);
  unsigned char *q = cgc_realloc(p, 500);
  CHECK(q != NULL && q != p);
  CHECK(intact(q, cls, 2) && zeroed(q + cls, cgc_usable_size(q) - cls));
  CHECK(cgc_alloc(cls) == p);

  /* Shrink a lot: moves to a small slot, old freed. */
  unsigned char *big = cgc_alloc(1000);
  fill(big, 1000, 3);
  unsigned char *small = cgc_realloc(big, 16);
  CHECK(small != big && cgc_usable_size(small) == 16);
  CHECK(intact(small, 16, 3));
  CHECK(cgc_alloc(1000) == big);

  /* Size 0 frees, whatever the kind and size. */
  unsigned char *z = cgc_alloc(72);
  CHECK(cgc_realloc(z, 0) == NULL);
  CHECK(cgc_alloc(72) == z);
  z = cgc_alloc_noscan(72);
  CHECK(cgc_realloc(z, 0) == NULL);
  CHECK(cgc_alloc_noscan(72) == z);
  cgc_stats_t s0 = stats();
  z = cgc_alloc_noscan(100000);
  CHECK(cgc_realloc(z, 0) == NULL);
  cgc_stats_t s1 = stats();
  CHECK(s1.total_free_objects == s0.total_free_objects + 1 && s1.total_free_bytes >= s0.total_free_bytes + 100000);

  /* In place only while the slot is less than twice what the size needs:
     a 128-byte slot keeps 72 bytes (class 72) and gives up 64. */
  unsigned char *h = cgc_alloc(128);
  CHECK(cgc_usable_size(h) == 128);
  CHECK(cgc_realloc(h, 72) == h);
  unsigned char *h2 = cgc_realloc(h, 64);
  CHECK(h2 != h && cgc_usable_size(h2) == 64);
}

static void test_realloc_large(void) {
  unsigned char *p = cgc_alloc(100000);
  fill(p, 100000, 4);
  unsigned char *q = cgc_realloc(p, 300000); /* large -> larger */
  CHECK(q != NULL && intact(q, 100000, 4) && zeroed(q + 100000, 200000));
  fill(q, 300000, 5);
  unsigned char *r = cgc_realloc(q, 200000); /* shrink within 2x: in place */
  CHECK(r == q && intact(r, 200000, 5) && zeroed(r + 200000, cgc_usable_size(r) - 200000));
  /* Shrink within the same pages (200000 and 199000 bytes both take them
     all): in place, and the bytes past the size are cleared all the same,
     so that growing again reads zeros. */
  size_t pages = cgc_usable_size(r);
  unsigned char *r2 = cgc_realloc(r, 199000);
  CHECK(r2 == r && cgc_usable_size(r2) == pages);
  CHECKF(intact(r2, 199000, 5) && zeroed(r2 + 199000, pages - 199000),
         "a same-pages shrink of a scanned large object left bytes past the size");
  r = cgc_realloc(r2, 200000);
  CHECK(r == r2 && intact(r, 199000, 5) && zeroed(r + 199000, pages - 199000));
  unsigned char *s = cgc_realloc(r, 1000); /* large -> small */
  CHECK(s != r && cgc_usable_size(s) < 2000 && intact(s, 1000, 5));
  unsigned char *t = cgc_realloc(s, 50000); /* small -> large */
  CHECK(t != s && intact(t, 1000, 5) && zeroed(t + 1000, 49000));

  /* Failure leaves the block alone. */
  errno = 0;
  CHECK(cgc_realloc(t, (size_t)1 << 62) == NULL);
  CHECK(errno == ENOMEM);
  CHECK(intact(t, 1000, 5));
  cgc_free(t);
}

/* A large object that stays large is resized in place: a growth takes the
   free pages that follow it, a shrink gives its tail pages back (the next
   large allocation gets them), and nothing is copied.  X's pages (more than
   any free run the heap had before) make the room: A is carved from their
   start, so the pages after A are free. */
static void test_realloc_large_in_place(void) {
  const size_t page = 8192;
  for (int noscan = 0; noscan < 2; noscan++) {
    void *(*alloc)(size_t) = noscan ? cgc_alloc_noscan : cgc_alloc;
    unsigned char *x = alloc(96 * MIB);
    CHECK(x != NULL);
    /* Dirty the pages the growth below takes over: they must come back
       cleared (scanned), not as x left them. */
    memset(x + 64 * MIB, 0xA5, 16 * MIB + page);
    cgc_free(x);
    unsigned char *a = alloc(64 * MIB);
    CHECK(a != NULL);
    CHECKF(a == x, "64 MiB object at %p, not at the start of the freed 96 MiB %p", (void *)a, (void *)x);
    for (size_t i = 0; i < 64 * MIB; i += 4096) a[i] = (unsigned char)(i / 4096 + 1);
    cgc_stats_t s0, s1, s2;
    cgc_read_stats(&s0);
    uint64_t gcs = cgc_gc_count();
    unsigned char *b = cgc_realloc(a, 80 * MIB + 1); /* grows into X's pages */
    cgc_read_stats(&s1);
    CHECKF(b == a, "cgc_realloc moved a 64 MiB object with free pages after it (%p -> %p)", (void *)a, (void *)b);
    CHECK(cgc_usable_size(b) == 80 * MIB + page);
    for (size_t i = 0; i < 64 * MIB; i += 4096) CHECK(b[i] == (unsigned char)(i / 4096 + 1));
    if (!noscan) CHECK(zeroed(b + 64 * MIB, 16 * MIB + page));
    if (cgc_gc_count() == gcs) CHECK(s1.live_bytes == s0.live_bytes + 16 * MIB + page);
    if (!noscan) { /* the collector scans the grown part: what only it references lives */
      uintptr_t hidden[16];
      cgc_weak_t w[16];
      for (int i = 0; i < 16; i++) {
        void *t = cgc_alloc(64);
        w[i] = cgc_weak_make(t);
        memcpy(b + 64 * MIB + (size_t)i * MIB, &t, sizeof t);
        hidden[i] = hide_ptr(t);
      }
      clear_stack();
      cgc_collect();
      for (int i = 0; i < 16; i++)
        CHECKF(cgc_weak_value(w[i]) == (void *)~hidden[i], "object %d referenced only from the grown part died", i);
    }
    memset(b + 64 * MIB, 7, 16 * MIB + page);

    /* Shrink (more than 2x): in place, the bytes past the size cleared if
       scanned, and the tail's pages come back to the next large object. */
    unsigned char *c = cgc_realloc(b, MIB + 100);
    cgc_read_stats(&s2);
    CHECK(c == b);
    CHECK(cgc_usable_size(c) == MIB + page);
    for (size_t i = 0; i < MIB; i += 4096) CHECK(c[i] == (unsigned char)(i / 4096 + 1));
    if (!noscan) CHECK(zeroed(c + MIB + 100, page - 100));
    CHECK(s2.total_free_bytes == s1.total_free_bytes + 79 * MIB);
    unsigned char *d = alloc(60 * MIB);
    CHECKF(d == c + MIB + page, "the pages a shrink gave back were not reused (%p, expected %p)", (void *)d,
           (void *)(c + MIB + page));
    CHECK(zeroed(d, 60 * MIB)); /* noscan objects are zeroed too, over pages c's tail dirtied */
    /* d sits right after c now: c cannot grow in place, so it moves. */
    unsigned char *e = cgc_realloc(c, 2 * MIB);
    CHECK(e != c && e != NULL);
    for (size_t i = 0; i < MIB; i += 4096) CHECK(e[i] == (unsigned char)(i / 4096 + 1));
    if (!noscan) CHECK(zeroed(e + MIB + 100, MIB - 100));
    cgc_free(d);
    cgc_free(e);
  }
}

/* A string built by doubling, as a string builder does. */
static void test_realloc_doubling(void) {
  size_t cap = 8, len = 0;
  char *buf = cgc_alloc_noscan(cap);
  for (int i = 0; i < 200000; i++) {
    char c = (char)('a' + i % 26);
    if (len + 1 > cap) {
      cap *= 2;
      buf = cgc_realloc(buf, cap);
      CHECK(buf != NULL);
    }
    buf[len++] = c;
  }
  for (size_t i = 0; i < len; i++) CHECK(buf[i] == (char)('a' + i % 26));
  cgc_free(buf);
}

/* Every pair of sizes, noscan: the bytes kept are the first min(from, to),
   whichever way the move copies them (words 0 and 1 through registers, the
   rest with memcpy), and the old slot is reused by the next move into its
   class.  Collections in between mark the moved-from slots on the lists. */
static void test_realloc_noscan_grid(void) {
  static const size_t gs[] = {1, 5, 8, 9, 15, 16, 17, 24, 31, 32, 33, 48, 100, 255, 1000, 1025, 2048, 5000, 32768};
  enum { NG = sizeof gs / sizeof gs[0] };
  for (int i = 0; i < NG; i++) {
    for (int j = 0; j < NG; j++) {
      size_t from = gs[i], to = gs[j], keep = from < to ? from : to;
      uint64_t seed = (uint64_t)(i * NG + j) + 1000;
      unsigned char *p = cgc_alloc_noscan(from);
      CHECK(p != NULL);
      fill(p, from, seed);
      unsigned char *q = cgc_realloc(p, to);
      CHECKF(q != NULL && cgc_usable_size(q) >= to, "%zu -> %zu bytes", from, to);
      CHECKF(intact(q, keep, seed), "%zu -> %zu bytes: the first %zu bytes changed", from, to, keep);
      if (q != p) {
        /* p's slot went onto this thread's list of its class: a buffer of
           another class moving there takes it first. */
        size_t other = from <= 16 ? 200 : 8;
        unsigned char *r = cgc_alloc_noscan(other);
        fill(r, other, seed + 1);
        unsigned char *m = cgc_realloc(r, from);
        CHECKF(m == p, "%zu -> %zu bytes: a move into the old class got %p, not the old slot %p", from, to,
               (void *)m, (void *)p);
        CHECK(intact(m, other < from ? other : from, seed + 1));
        cgc_free(m);
      }
      cgc_free(q);
      if ((i * NG + j) % 97 == 0) cgc_collect();
    }
  }
}

/* A shrink to a multiple of 16 returns a 16-byte-aligned object, as an
   allocation of that size would (docs/heap.md), also from a slot of a class
   that is an odd multiple of 8, whose slots alternate; other shrinks stay. */
/* A large object that grows and cannot do so in place moves to the start
   of a free run of twice its pages: the next growth up to that size takes
   the rest of the run in place, so a doubling buffer never moves twice in a
   row (placed by best fit, it sat in a run just its size and moved at every
   step).  A hole of each size, made before, is where best fit would put it. */
static void test_realloc_large_room(void) {
  const size_t page = 8192;
  for (int noscan = 0; noscan < 2; noscan++) {
    void *(*alloc)(size_t) = noscan ? cgc_alloc_noscan : cgc_alloc;
    void *holes[8], *fences[8];
    for (int i = 0; i < 8; i++) {
      holes[i] = alloc((size_t)page << (i + 3));
      fences[i] = alloc(40000);
      CHECK(holes[i] && fences[i]);
    }
    for (int i = 0; i < 8; i++) cgc_free(holes[i]);
    size_t cap = 40000;
    unsigned char *buf = alloc(cap);
    CHECK(buf != NULL);
    fill(buf, cap, 20);
    int steps = 0, moves = 0;
    bool moved_last = false;
    while (cap < 8 * MIB) {
      unsigned char *n = cgc_realloc(buf, 2 * cap);
      CHECK(n != NULL && cgc_usable_size(n) >= 2 * cap);
      CHECKF(intact(n, cap, 20 + (uint64_t)steps), "%zu -> %zu bytes: the bytes kept changed", cap, 2 * cap);
      if (!noscan) CHECK(zeroed(n + cap, cgc_usable_size(n) - cap));
      bool moved = n != buf;
      CHECKF(!(moved && moved_last), "a growing large object moved twice in a row (%zu -> %zu bytes, %s)", cap,
             2 * cap, noscan ? "noscan" : "scanned");
      moves += moved;
      moved_last = moved;
      buf = n;
      cap *= 2;
      steps++;
      fill(buf, cap, 20 + (uint64_t)steps);
    }
    CHECK(moves <= (steps + 1) / 2);
    cgc_free(buf);
    for (int i = 0; i < 8; i++) cgc_free(fences[i]);
  }
}

static void test_realloc_alignment(void) {
  for (int noscan = 0; noscan < 2; noscan++) {
    for (size_t cls = 24; cls <= 120; cls += 16) {
      unsigned char *objs[8];
      int odd = 0;
      for (int k = 0; k < 8; k++) { /* consecutive slots: both alignments */
        objs[k] = noscan ? cgc_alloc_noscan(cls) : cgc_alloc(cls);
        CHECK(objs[k] != NULL && cgc_usable_size(objs[k]) == cls);
        odd += (uintptr_t)objs[k] % 16 != 0;
      }
      CHECKF(odd > 0, "no slot of the %zu-byte class is 8 bytes off 16", cls);
      for (int k = 0; k < 8; k++) {
        unsigned char *p = objs[k];
        fill(p, cls, cls + (size_t)k);
        for (size_t to = cls - 8; to * 2 > cls; to -= 8) {
          unsigned char *q = cgc_realloc(p, to);
          CHECKF(q != NULL && intact(q, to, cls + (size_t)k), "%zu -> %zu bytes", cls, to);
          if (to % 16 == 0)
            CHECKF((uintptr_t)q % 16 == 0, "%s %zu -> %zu bytes: %p is not 16-byte aligned", noscan ? "noscan" : "scanned",
                   cls, to, (void *)q);
          else
            CHECKF(q == p, "%zu -> %zu bytes moved (%p to %p)", cls, to, (void *)p, (void *)q);
          if (q != p) { /* back to a slot of the class, to try the next size */
            p = noscan ? cgc_alloc_noscan(cls) : cgc_alloc(cls);
            CHECK(p != NULL);
            memcpy(p, q, to);
            fill(p, cls, cls + (size_t)k);
            cgc_free(q);
          }
        }
        cgc_free(p);
      }
    }
  }
}

static void test_realloc_noscan_reuse(void) {
  unsigned char *x = cgc_alloc_noscan(100);
  size_t cls = cgc_usable_size(x);
  fill(x, cls, 7);
  unsigned char *y = cgc_realloc(x, 500);
  CHECK(y != x && intact(y, cls, 7));
  /* A move into x's class takes x back, with the copied bytes right. */
  unsigned char *z = cgc_alloc_noscan(40);
  fill(z, 40, 8);
  unsigned char *w = cgc_realloc(z, 100);
  CHECK(w == x);
  CHECK(intact(w, 40, 8));
  /* Scanned buffers never take such slots: their tails are zero. */
  unsigned char *sc = cgc_alloc(40);
  fill(sc, 40, 9);
  unsigned char *sw = cgc_realloc(sc, 500);
  CHECK(sw != y && intact(sw, 40, 9) && zeroed(sw + 40, cgc_usable_size(sw) - 40));

  /* A left slot that a plain allocation takes comes back zeroed: allocate
     from the class until the thread's list runs dry and the slot returns. */
  unsigned char *a = cgc_alloc_noscan(100);
  fill(a, cls, 10);
  unsigned char *b = cgc_realloc(a, 500);
  CHECK(b != a);
  bool seen = false;
  for (int i = 0; i < 100000 && !seen; i++) {
    unsigned char *c = cgc_alloc_noscan(100);
    if (c == a) seen = true;
    CHECK(zeroed(c, cls));
  }
  CHECK(seen);
  cgc_free(y);
  cgc_free(w);
  cgc_free(sw);
  cgc_free(b);

  /* A freed noscan object of a class above 1024 bytes is not cleared by
     cgc_free: a move into its class takes it with its old bytes past the
     copy (white-box), and a plain allocation gets it zeroed. */
  unsigned char *big = cgc_alloc_noscan(3000);
  size_t bcls = cgc_usable_size(big);
  fill(big, bcls, 11);
  cgc_free(big);
  unsigned char *t = cgc_alloc_noscan(16);
  fill(t, 16, 12);
  unsigned char *m = cgc_realloc(t, 3000);
  CHECKF(m == big, "move got %p, not the slot freed last %p", (void *)m, (void *)big);
  CHECK(intact(m, 16, 12));
  for (size_t i = 16; i < bcls; i++) CHECKF(m[i] == pat(11, i), "freed slot %p cleared at byte %zu", (void *)m, i);
  cgc_free(m);
  unsigned char *plain = cgc_alloc_noscan(3000);
  CHECK(plain == big && zeroed(plain, bcls));
  cgc_free(plain);
}

/* A noscan buffer of 16 bytes or less that moves leaves a clean slot (its
   link and word 1 are all of it): it goes on the free list, where the next
   allocation of its class, inline, takes it at once, whether the move went
   through the general path (no span cached for the buffer's page yet: the
   first call of a new thread) or the inline one.  Run on a new thread, whose
   lists and span cache start empty. */
static void left_small_slots(void *arg) {
  (void)arg;
  for (size_t n = 8; n <= 16; n += 8) {
    unsigned char *p = cgc_alloc_noscan(n);
    CHECK(p != NULL);
    fill(p, n, 60 + n);
    unsigned char *q = cgc_realloc(p, 100);
    CHECK(q != NULL && q != p && intact(q, n, 60 + n));
    unsigned char *r = cgc_alloc_noscan(n);
    CHECKF(r == p, "%zu bytes: the slot a move left is not the next allocation of its class (%p, not %p)", n,
           (void *)r, (void *)p);
    CHECK(zeroed(r, n));
    fill(r, n, 70 + n);
    unsigned char *q2 = cgc_realloc(r, 100); /* r's span is cached now: the inline path */
    CHECK(q2 != NULL && q2 != r && intact(q2, n, 70 + n));
    unsigned char *r2 = cgc_alloc_noscan(n);
    CHECKF(r2 == r, "%zu bytes: the slot an inline move left is not the next allocation of its class (%p, not %p)",
           n, (void *)r2, (void *)r);
    CHECK(zeroed(r2, n));
  }
}

/* A noscan buffer shrunk to 8 bytes moves into an 8-byte slot and writes
   those 8 bytes only: the object right after that slot keeps its bytes.
   The buffer's span is cached first (a call that stays in place), so the
   move takes cgc_realloc's inline path. */
static void shrink_to_word(void *arg) {
  (void)arg;
  enum { NO = 64 };
  unsigned char *o[NO];
  for (int i = 0; i < NO; i++) {
    o[i] = cgc_alloc_noscan(8);
    CHECK(o[i] != NULL);
    fill(o[i], 8, 200 + (uint64_t)i);
  }
  int k = -1;
  for (int i = 0; i + 1 < NO && k < 0; i++)
    if (o[i] + 8 == o[i + 1]) k = i;
  CHECKF(k >= 0, "no two adjacent 8-byte objects among %d", NO);
  unsigned char *p = cgc_alloc_noscan(16);
  CHECK(p != NULL);
  fill(p, 16, 300);
  cgc_free(o[k]);                 /* the next 8-byte slot: o[k + 1] follows it */
  CHECK(cgc_realloc(p, 12) == p); /* stays: caches p's span for its page */
  unsigned char *q = cgc_realloc(p, 8);
  CHECKF(q == o[k], "a move into the 8-byte class got %p, not the slot freed last %p", (void *)q, (void *)o[k]);
  CHECK(intact(q, 8, 300));
  for (int i = 0; i < NO; i++)
    if (i != k)
      CHECKF(intact(o[i], 8, 200 + (uint64_t)i), "a move of 8 bytes into %p overwrote the object at %p", (void *)q,
             (void *)o[i]);
}

static void test_realloc_small_slots(void) {
  in_thread(left_small_slots, NULL);
  in_thread(shrink_to_word, NULL);
}

/* Slots left by moves stay on the thread's list through collections (the
   collection marks them, I4; a list keeps up to 64 KiB of slots, 315 of
   this class) and are handed out once: never also by the sweep of their
   span.  White-box: a left slot keeps its bytes past the first 16 until it
   is taken again; a sweep that took it would zero them. */
#define NLEFT 300
static void test_realloc_noscan_collect(void) {
  static unsigned char *moved[NLEFT], *keep[NLEFT];
  unsigned char *left[NLEFT];
  for (int i = 0; i < NLEFT; i++) {
    keep[i] = cgc_alloc_noscan(200); /* live neighbours: the spans stay in use */
    left[i] = cgc_alloc_noscan(200);
    fill(left[i], 200, 1000 + (uint64_t)i);
  }
  /* Move them all (into another class): each leaves its slot on the list. */
  for (int i = 0; i < NLEFT; i++) moved[i] = cgc_realloc(left[i], 2000);
  for (int i = 0; i < NLEFT; i++) left[i] = (unsigned char *)(~(uintptr_t)left[i]); /* hidden */
  cgc_collect();
  cgc_collect();
  /* Moves into the class take the left slots back, last left first, with
     their old bytes past the copy. */
  enum { N = 4 * NLEFT };
  static unsigned char *got[N];
  for (int k = 0; k < NLEFT; k++) {
    unsigned char *t = cgc_alloc_noscan(16);
    fill(t, 16, (uint64_t)k);
    got[k] = cgc_realloc(t, 200);
    unsigned char *want = (unsigned char *)(~(uintptr_t)left[NLEFT - 1 - k]);
    CHECKF(got[k] == want, "move %d got %p, not the slot left last %p", k, (void *)got[k], (void *)want);
    for (size_t b = 16; b < 200; b++)
      CHECKF(got[k][b] == pat(1000 + (uint64_t)(NLEFT - 1 - k), b), "left slot %p changed at byte %zu", (void *)want, b);
  }
  /* Then plain allocations of the class: none is a slot handed out above. */
  for (int i = NLEFT; i < N; i++) got[i] = cgc_alloc_noscan(200);
  for (int i = 0; i < N; i++) fill(got[i], 200, (uint64_t)i);
  for (int i = 0; i < N; i++) CHECKF(intact(got[i], 200, (uint64_t)i), "slot %p handed out twice", (void *)got[i]);
  for (int i = 0; i < N; i++) cgc_free(got[i]);
  for (int i = 0; i < NLEFT; i++) {
    cgc_free(moved[i]);
    cgc_free(keep[i]);
  }
}

/* A move into a class whose thread list is empty refills the list without
   clearing: dead slots of a swept span (or a new span) go on the dirty list.
   Plain allocations that take such slots get them zeroed, live objects are
   never handed out, and nothing is handed out twice.  White-box: at least
   one move lands on a dead object's old bytes (a clearing refill would have
   zeroed them). */
#define NREF 600
#define REFSZ 3000
static void test_realloc_noscan_refill(void) {
  static unsigned char *keep[NREF], *got[2 * NREF];
  for (int i = 0; i < 2 * NREF; i++) {
    unsigned char *o = cgc_alloc_noscan(REFSZ);
    fill(o, REFSZ, 5000 + (uint64_t)i);
    if (i % 2 == 0) keep[i / 2] = o; /* the other half dies */
  }
  /* Then more that die, so that the span this thread allocates from, which
     cgc_collect leaves unswept, holds dead objects (the others' spans are
     swept and cleared by cgc_collect). */
  for (int i = 0; i < 64; i++) fill(cgc_alloc_noscan(REFSZ), REFSZ, 7000 + (uint64_t)i);
  clear_stack();
  cgc_collect();
  cgc_collect();
  int old_bytes = 0;
  for (int k = 0; k < NREF; k++) {
    unsigned char *t = cgc_alloc_noscan(16);
    fill(t, 16, (uint64_t)k);
    got[k] = cgc_realloc(t, REFSZ);
    CHECKF(intact(got[k], 16, (uint64_t)k), "move %d: copied bytes wrong", k);
    if (!zeroed(got[k] + 16, REFSZ - 16)) old_bytes++;
  }
  CHECKF(old_bytes > 0, "no move of %d reused a dead object's bytes uncleared", NREF);
  for (int k = NREF; k < 2 * NREF; k++) {
    got[k] = cgc_alloc_noscan(REFSZ);
    CHECKF(zeroed(got[k], cgc_usable_size(got[k])), "plain allocation %p is not zero", (void *)got[k]);
  }
  for (int i = 0; i < NREF; i++) CHECKF(intact(keep[i], REFSZ, 5000 + 2 * (uint64_t)i), "live object %p overwritten", (void *)keep[i]);
  for (int k = 0; k < 2 * NREF; k++) fill(got[k], REFSZ, (uint64_t)k);
  for (int k = 0; k < 2 * NREF; k++) CHECKF(intact(got[k], REFSZ, (uint64_t)k), "slot %p handed out twice", (void *)got[k]);
  for (int i = 0; i < NREF; i++) CHECKF(intact(keep[i], REFSZ, 5000 + 2 * (uint64_t)i), "live object %p handed out", (void *)keep[i]);
  for (int k = 0; k < 2 * NREF; k++) cgc_free(got[k]);
  for (int i = 0; i < NREF; i++) cgc_free(keep[i]);
}

/* ---- kind kept ---------------------------------------------------------------- */

#define TARGET (8 * MIB)

void *volatile g_holder; /* a root */

/* Make a buffer of the kind, grow it with cgc_realloc, and store in it the
   only pointer to a big object.  The buffer itself stays reachable from
   g_holder. */
static void make_holder(void *arg) {
  int noscan = arg != NULL;
  void **b = noscan ? cgc_alloc_noscan(24) : cgc_alloc(24);
  b = cgc_realloc(b, 3000);  /* moves */
  b = cgc_realloc(b, 2900);  /* in place */
  b = cgc_realloc(b, 40000); /* moves to a large object */
  b[100] = cgc_alloc_noscan(TARGET);
  g_holder = b;
}

/* Inlined, so that clear_stack wipes the frames of the calls made before. */
static inline __attribute__((always_inline)) uint64_t live_after_collect(void) {
  clear_stack();
  cgc_collect();
  cgc_collect();
  return stats().last_live_bytes;
}

static void test_realloc_kind(void) {
  in_thread(make_holder, (void *)1);
  uint64_t live = live_after_collect();
  CHECKF(live < TARGET / 2, "noscan buffer kept %llu bytes alive", (unsigned long long)live);
  CHECK(cgc_usable_size(g_holder) >= 40000);

  in_thread(make_holder, NULL);
  live = live_after_collect();
  CHECKF(live >= TARGET, "scanned buffer did not keep its target (%llu live)", (unsigned long long)live);
  void **b = g_holder;
  CHECK(cgc_usable_size(b[100]) >= TARGET);
  g_holder = NULL;
}

/* A thread that frees many objects does not keep them to itself: a
   collection cuts its list to 64 KiB of slots and sweeps reclaim the rest
   for every thread.  (Kept, every collection would premark them all in the
   pause and count them live, and only this thread could reuse them.)  Then
   another thread allocates as many objects: it reuses the reclaimed memory
   (the heap does not grow by their size again) and gets no slot twice. */
#define NBULK 400000
#define BULKSZ 32
static void *alloc_bulk(void *arg) {
  unsigned char **objs = arg;
  for (int i = 0; i < NBULK; i++) {
    objs[i] = cgc_alloc(BULKSZ);
    CHECK(objs[i] != NULL);
    fill(objs[i], BULKSZ, (uint64_t)i);
  }
  for (int i = 0; i < NBULK; i++)
    CHECKF(intact(objs[i], BULKSZ, (uint64_t)i), "slot %p handed out twice", (void *)objs[i]);
  return NULL;
}
static void test_bulk_free(void) {
  cgc_stats_t st;
  cgc_collect();
  cgc_read_stats(&st);
  uint64_t goal0 = st.heap_goal_bytes, mapped0 = st.mapped_bytes;
  unsigned char **objs = cgc_alloc(NBULK * sizeof *objs); /* scanned: holds them live */
  CHECK(objs != NULL);
  for (int i = 0; i < NBULK; i++) objs[i] = cgc_alloc(BULKSZ);
  for (int i = 0; i < NBULK; i++) {
    cgc_free(objs[i]);
    objs[i] = NULL;
  }
  cgc_collect();
  cgc_collect();
  cgc_read_stats(&st);
  uint64_t parked = (uint64_t)NBULK * BULKSZ, array = NBULK * sizeof *objs;
  /* The pacer counts what the collection kept: the array, not the freed
     slots (the goal is twice the live size). */
  CHECKF(st.heap_goal_bytes < goal0 + 2 * array + parked, "heap goal %llu -> %llu after freeing %llu bytes (array %llu)",
         (unsigned long long)goal0, (unsigned long long)st.heap_goal_bytes, (unsigned long long)parked,
         (unsigned long long)array);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, alloc_bulk, objs) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  /* The memory served both threads' objects in turn (kept by the first
     thread, the second would have needed as much again). */
  cgc_read_stats(&st);
  CHECKF(st.mapped_bytes < mapped0 + array + parked * 3 / 2, "the heap grew %llu -> %llu for %llu bytes twice",
         (unsigned long long)mapped0, (unsigned long long)st.mapped_bytes, (unsigned long long)parked);
  for (int i = 0; i < NBULK; i++) cgc_free(objs[i]);
  cgc_free(objs);
}

/* cgc_realloc(p, 0) frees p and returns NULL for the smallest noscan
   objects too, also when the call is served inline: p's page is one that
   this thread freed an object in just before (the free leaves a hint for
   the page), and a slot of the 8-byte class is at hand to move into. */
static void test_realloc_zero_small_noscan(void) {
  for (size_t old = 8; old <= 16; old += 8) {
    enum { N = 64 };
    unsigned char *o[N];
    for (int i = 0; i < N; i++) o[i] = cgc_alloc_noscan(old);
    consume(cgc_alloc_noscan(8)); /* the 8-byte class's list is not empty */
    cgc_free(o[0]);
    unsigned char *p = NULL;
    for (int i = 1; i < N && !p; i++)
      if ((uintptr_t)o[i] >> 12 == (uintptr_t)o[0] >> 12) p = o[i]; /* same page as the freed one */
    CHECK(p != NULL);
    memset(p, 0x5a, old);
    unsigned char *r = cgc_realloc(p, 0);
    CHECKF(r == NULL, "cgc_realloc(%p of %zu bytes, 0) returned %p", (void *)p, old, (void *)r);
    CHECKF(cgc_alloc_noscan(old) == p, "the %zu-byte object was not freed by cgc_realloc(p, 0)", old);
  }
}

int main(void) {
  test_seed();
  cgc_init();
  /* First, while no freed block's pages can have been reused by the big
     target (a stale pointer to a freed block would then retain it). */
  test_realloc_kind();
  uint64_t gc0 = cgc_gc_count();
  test_lifo();
  test_stats_large();
  test_tagged_first_word();
  test_other_thread();
  test_realloc_basic();
  test_realloc_zero_small_noscan();
  test_realloc_large();
  test_realloc_doubling();
  test_realloc_noscan_reuse();
  test_realloc_small_slots();
  /* None of this needed a collection. */
  CHECKF(cgc_gc_count() == gc0, "%llu collections", (unsigned long long)(cgc_gc_count() - gc0));
  test_realloc_noscan_collect();
  test_realloc_noscan_grid();
  test_realloc_large_room();
  test_realloc_alignment();
  test_realloc_noscan_refill();
  test_free_span_reuse();
  test_stats_threads();
  test_stats_monotonic();
  test_bulk_free();
  test_realloc_large_in_place();
  printf("free_basic: ok\n");
  return 0;
}
