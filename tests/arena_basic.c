/* Arenas: zeroed, aligned, non-overlapping memory of any size; big requests;
   many objects; arena_bytes; arena memory is a root while the arena lives
   (a pointer held only there keeps its target alive; noscan memory does
   not); arena objects are never collected; after cgc_arena_free the arena no
   longer keeps anything alive; a freed arena's range comes back to the heap
   outside mapped_bytes (fresh pages, nothing resident: it was counted again
   as mapped, and cgc_release_memory then "released" it), and enters it
   again as it is handed out to new objects; a range
   registered with cgc_add_roots that ends where an arena's chunk begins does
   not hold that arena's memory: the arena is freed without complaint. */
#include <errno.h>
#include "free_util.h"

static void test_shapes(void) {
  cgc_arena_t *a = cgc_arena_new();
  CHECK(a != NULL);
  for (int noscan = 0; noscan < 2; noscan++) {
    char *prev = NULL;
    size_t prev_n = 0;
    for (size_t n = 1; n <= 300; n++) {
      char *p = noscan ? cgc_arena_alloc_noscan(a, n) : cgc_arena_alloc(a, n);
      CHECK(p != NULL);
      size_t rounded = (n + 7) & ~(size_t)7;
      CHECKF((uintptr_t)p % (rounded % 16 == 0 ? 16 : 8) == 0, "size %zu at %p", n, (void *)p);
      CHECK(zeroed(p, n));
      if (prev) CHECK(p >= prev + prev_n || p + n <= prev); /* no overlap */
      memset(p, 0xee, n);
      prev = p;
      prev_n = n;
    }
  }
  /* Size 0 gives a unique pointer. */
  char *z1 = cgc_arena_alloc(a, 0), *z2 = cgc_arena_alloc(a, 0);
  CHECK(z1 && z2 && z1 != z2);
  /* Big requests (own chunks), then small ones again. */
  size_t bigs[] = {20000, 100000, 1 * MIB, 5 * MIB + 3};
  for (size_t i = 0; i < sizeof bigs / sizeof bigs[0]; i++) {
    unsigned char *b = cgc_arena_alloc(a, bigs[i]);
    CHECK(b != NULL && (uintptr_t)b % 16 == 0);
    CHECK(zeroed(b, bigs[i]));
    fill(b, bigs[i], i);
    char *s = cgc_arena_alloc(a, 24);
    CHECK(s != NULL && zeroed(s, 24));
    CHECK(intact(b, bigs[i], i));
  }
  /* Too big. */
  errno = 0;
  CHECK(cgc_arena_alloc(a, (size_t)1 << 62) == NULL && errno == ENOMEM);
  CHECK(cgc_arena_alloc_noscan(a, SIZE_MAX) == NULL);
  /* Beyond 16 times the RAM, as cgc_alloc: refused at once, not mapped
     (the page map alone would take a word per page of it). */
  long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
  if (pages > 0 && psize > 0 && (uint64_t)pages * (uint64_t)psize < ((uint64_t)1 << 42)) {
    size_t over = (size_t)1 << 63 >> __builtin_clzll((uint64_t)pages * (uint64_t)psize * 32);
    uint64_t mapped = stats().mapped_bytes;
    errno = 0;
    CHECKF(cgc_arena_alloc_noscan(a, over) == NULL && errno == ENOMEM, "an arena request of %zu GiB was served",
           over >> 30);
    CHECK(stats().mapped_bytes <= mapped + ((uint64_t)1 << 30));
  }
  cgc_arena_free(a);
  cgc_arena_free(NULL);
  cgc_arena_free(cgc_arena_new()); /* empty */
}

/* A million 32-byte list nodes; arena_bytes follows the arena. */
struct node {
  struct node *next;
  uint64_t v;
  uint64_t pad[2];
};

static void test_many(void) {
  uint64_t base = stats().arena_bytes;
  cgc_arena_t *a = cgc_arena_new();
  struct node *head = NULL;
  for (uint64_t i = 0; i < 1000000; i++) {
    struct node *n = cgc_arena_alloc(a, sizeof *n);
    CHECK(n != NULL && n->next == NULL && n->v == 0);
    n->v = i;
    n->next = head;
    head = n;
  }
  uint64_t ab = stats().arena_bytes - base;
  CHECKF(ab >= 32000000 && ab <= 40000000, "arena_bytes %llu", (unsigned long long)ab);
  cgc_collect();
  uint64_t i = 1000000;
  for (struct node *n = head; n; n = n->next) CHECK(n->v == --i);
  CHECK(i == 0);
  cgc_arena_free(a);
  CHECK(stats().arena_bytes == base);
}

/* ---- roots -------------------------------------------------------------------- */

#define TARGET (8 * MIB)
static cgc_arena_t *g_arena;
static volatile uintptr_t g_slot_hidden[8];

/* Store the only pointer to a big object in arena memory (of the kind). */
static void stash(int slot, int noscan, size_t offset_objs) {
  for (size_t k = 0; k < offset_objs; k++) consume(cgc_arena_alloc(g_arena, 48)); /* move along */
  void **o = noscan ? cgc_arena_alloc_noscan(g_arena, 64) : cgc_arena_alloc(g_arena, 64);
  unsigned char *t = cgc_alloc_noscan(TARGET);
  fill(t, 4096, (uint64_t)slot);
  o[3] = t;
  g_slot_hidden[slot] = hide_ptr(&o[3]);
}

struct stash_args {
  int slot, noscan;
  size_t offset_objs;
};
static void stash_thread(void *p) {
  struct stash_args *a = p;
  stash(a->slot, a->noscan, a->offset_objs);
}


static void stash_big(void *arg) {
  (void)arg;
  void **big = cgc_arena_alloc(g_arena, 2 * MIB);
  big[MIB / 8 + 1] = cgc_alloc_noscan(TARGET);
  g_slot_hidden[2] = hide_ptr(&big[MIB / 8 + 1]);
}

static inline __attribute__((always_inline)) uint64_t live_after_collect(void) {
  clear_stack();
  cgc_collect();
  return stats().last_live_bytes;
}

static void churn(void) {
  for (int i = 0; i < 20000; i++) memset(cgc_alloc(200), 0xdd, 200);
}

static void test_roots(void) {
  g_arena = cgc_arena_new();
  struct stash_args s0 = {0, 0, 0}, s1 = {1, 0, 5000}, s3 = {3, 1, 0};
  in_thread(stash_thread, &s0); /* in the first chunk */
  in_thread(stash_thread, &s1); /* in a later chunk */
  uint64_t live = live_after_collect();
  CHECKF(live >= 2 * TARGET, "live %llu: the arena did not keep its targets", (unsigned long long)live);
  churn();
  live = live_after_collect();
  CHECK(live >= 2 * TARGET);
  for (int s = 0; s < 2; s++) {
    unsigned char *t = *(unsigned char **)reveal_ptr(g_slot_hidden[s]);
    CHECK(cgc_base(t) == t && intact(t, 4096, (uint64_t)s));
  }
  /* Big dedicated chunk: the pointer sits past a 1 MiB object. */
  in_thread(stash_big, NULL);
  live = live_after_collect();
  CHECK(live >= 3 * TARGET);

  /* Noscan arena memory keeps nothing alive. */
  cgc_arena_t *keep = g_arena;
  g_arena = cgc_arena_new();
  in_thread(stash_thread, &s3);
  live = live_after_collect();
  CHECKF(live < 4 * TARGET - TARGET / 2, "live %llu: noscan arena memory kept its target", (unsigned long long)live);
  cgc_arena_free(g_arena);

  /* Freed, the arena keeps nothing alive. */
  g_arena = NULL;
  cgc_arena_free(keep);
  live = live_after_collect();
  /* Conservative scanning may keep one target alive through a stale word
     (seen under ASan's stack layout); before the free all of them lived. */
  CHECKF(live < 2 * TARGET, "live %llu after cgc_arena_free", (unsigned long long)live);
}

/* Arena objects are not collected even when nothing points to them. */
static __attribute__((noinline)) void fill_arena(cgc_arena_t *a, uintptr_t *hidden, int n) {
  for (int i = 0; i < n; i++) {
    size_t sz = 16 + (size_t)i * 40;
    unsigned char *p = (i & 1) ? cgc_arena_alloc_noscan(a, sz) : cgc_arena_alloc(a, sz);
    fill(p, sz, (uint64_t)i + 100);
    hidden[i] = hide_ptr(p);
  }
}

static void test_not_collected(void) {
  cgc_arena_t *a = cgc_arena_new();
  uintptr_t hidden[200];
  fill_arena(a, hidden, 200);
  clear_stack();
  cgc_collect();
  churn();
  cgc_collect();
  churn();
  for (int i = 0; i < 200; i++) CHECK(intact(reveal_ptr(hidden[i]), 16 + (size_t)i * 40, (uint64_t)i + 100));
  cgc_arena_free(a);
}

/* Many arenas alive at once, freed in another order. */
static void test_many_arenas(void) {
  enum { N = 2000 };
  static cgc_arena_t *as[N];
  static void *objs[N];
  for (int i = 0; i < N; i++) {
    as[i] = cgc_arena_new();
    CHECK(as[i] != NULL);
    uint64_t *o = cgc_arena_alloc(as[i], 64);
    o[0] = (uint64_t)i;
    o[1] = (uint64_t)(uintptr_t)cgc_strdup("x"); /* kept alive by the arena */
    objs[i] = o;
  }
  cgc_collect();
  for (int i = 0; i < N; i++) {
    uint64_t *o = objs[i];
    CHECK(o[0] == (uint64_t)i && strcmp((char *)(uintptr_t)o[1], "x") == 0);
  }
  for (int i = 1; i < N; i += 2) cgc_arena_free(as[i]);
  for (int i = 0; i < N; i += 2) cgc_arena_free(as[i]);
  memset(objs, 0, sizeof objs);
}

static cgc_arena_t *g_stale;
static void alloc_on_stale(void *arg) {
  (void)arg;
  /* Silence the expected report in the test log. */
  if (!freopen("/dev/null", "w", stderr)) _exit(3);
  consume(cgc_arena_alloc(g_stale, 32));
}

/* Handles: when every one the handle range holds is in use (about 150000
   arenas without chunks), cgc_arena_new returns NULL with ENOMEM; freed
   handles come back, the one freed longest ago first (docs/free.md section
   2), so that a handle freed recently stays freed, and a call through it is
   caught, for as long as possible: three handles freed in a known order come
   back in that order, and a call through the one not reused yet still
   reports the freed arena (child process). */
static void test_handle_capacity(void) {
  size_t cap = 1 << 20, n = 0;
  cgc_arena_t **as = malloc(cap * sizeof *as);
  CHECK(as != NULL);
  for (;;) {
    CHECKF(n < cap, "%zu arenas and no ENOMEM", n);
    errno = 0;
    cgc_arena_t *a = cgc_arena_new();
    if (!a) {
      CHECKF(errno == ENOMEM, "cgc_arena_new: NULL with errno %d", errno);
      break;
    }
    as[n++] = a;
  }
  CHECKF(n >= 100000, "only %zu arenas at once", n);
  const size_t order[3] = {500, 300, 700};
  for (int i = 0; i < 3; i++) cgc_arena_free(as[order[i]]);
  for (int i = 0; i < 3; i++) {
    cgc_arena_t *a = cgc_arena_new();
    CHECKF(a == as[order[i]], "new arena %d is %p, not the handle freed longest ago %p (freed %d-th)", i,
           (void *)a, (void *)as[order[i]], i + 1);
    CHECK(cgc_arena_alloc(a, 32) != NULL);
    if (i == 1) { /* as[order[2]] is still freed: using it aborts */
      g_stale = as[order[2]];
      CHECKF(in_child(alloc_on_stale, NULL) == SIGABRT, "allocation from a freed arena did not abort");
    }
  }
  for (size_t i = 0; i < n; i++) cgc_arena_free(as[i]);
  for (size_t i = 0; i < 1000; i++) {
    as[i] = cgc_arena_new();
    CHECKF(as[i] != NULL, "no arena after freeing %zu", n);
    CHECK(cgc_arena_alloc(as[i], 32) != NULL);
  }
  for (size_t i = 0; i < 1000; i++) cgc_arena_free(as[i]);
  free(as);
  printf("handle capacity: %zu arenas at once\n", n);
}

/* Requests between the inline path's limit (64 KiB) and a quarter of the
   chunk size go into the current chunk when they fit: an arena whose chunk
   size has grown to 4 MiB does not take a chunk per such request. */
static void test_mid_requests(void) {
  cgc_arena_t *a = cgc_arena_new();
  for (int i = 0; i < 300000; i++) { /* chunks of both kinds grow from 64 KiB to 4 MiB */
    consume(cgc_arena_alloc(a, 32));
    consume(cgc_arena_alloc_noscan(a, 32));
  }
  uint64_t before = stats().arena_bytes;
  size_t req = 0;
  for (int i = 0; i < 40; i++) {
    size_t n = ((size_t)100 << 10) + (size_t)i * 8;
    char *p = cgc_arena_alloc_noscan(a, n);
    CHECK(p != NULL);
    p[0] = p[n - 1] = 1;
    char *q = cgc_arena_alloc(a, n);
    CHECK(q != NULL);
    q[0] = q[n - 1] = 1;
    req += 2 * n;
  }
  uint64_t grew = stats().arena_bytes - before;
  /* What was asked for plus the tails dropped: at most a quarter chunk per chunk, so
     at most 4/3 of the request plus one chunk of each kind. */
  CHECKF(grew <= req / 3 * 4 + (8u << 20), "arena_bytes grew by %llu KiB for %zu KiB of requests",
         (unsigned long long)grew >> 10, req >> 10);
  cgc_arena_free(a);
}

/* A request above a quarter of the next chunk size takes a chunk of its
   own, rounded to pages, not a whole regular chunk. */
static void test_own_chunk_size(void) {
  cgc_arena_t *a = cgc_arena_new();
  uint64_t before = stats().arena_bytes;
  char *p = cgc_arena_alloc(a, 20000);
  CHECK(p != NULL);
  uint64_t grew = stats().arena_bytes - before;
  CHECKF(grew >= 20000 && grew < 65536, "a 20000-byte request grew arena_bytes by %llu", (unsigned long long)grew);
  cgc_arena_free(a);
}

/* A fresh arena whose requests each take a chunk of their own at first
   (above a quarter of the next chunk size): chunks keep doubling, so they
   soon hold many requests each, instead of one page-rounded chunk per
   request for ever (16400 bytes: a 24 KiB chunk each, 150%). */
static void test_own_chunk_growth(void) {
  cgc_arena_t *a = cgc_arena_new();
  uint64_t before = stats().arena_bytes;
  size_t req = 0;
  for (int i = 0; i < 4000; i++) {
    size_t n = 16400 + (size_t)(i % 3) * 8;
    char *p = i % 2 ? cgc_arena_alloc(a, n) : cgc_arena_alloc_noscan(a, n);
    CHECK(p != NULL);
    p[0] = p[n - 1] = 1;
    req += n;
  }
  uint64_t grew = stats().arena_bytes - before;
  CHECKF(grew <= req + req / 8 + (8u << 20), "arena_bytes grew by %llu KiB for %zu KiB of requests",
         (unsigned long long)grew >> 10, req >> 10);
  cgc_arena_free(a);
}

/* A chunk is used to its last byte: 16-byte objects that exactly fill the
   first chunk (64 KiB) all lie in it, one after the other, and the arena
   has taken that one chunk; the next object starts the second. */
static void test_chunk_filled_exactly(void) {
  cgc_arena_t *a = cgc_arena_new();
  uint64_t before = stats().arena_bytes;
  enum { N = (64 << 10) / 16 };
  char *first = cgc_arena_alloc(a, 16);
  CHECK(first != NULL);
  for (int i = 1; i < N; i++) {
    char *p = cgc_arena_alloc(a, 16);
    CHECKF(p == first + 16 * i, "object %d of %d at %p, not %p", i, N, (void *)p, (void *)(first + 16 * i));
  }
  uint64_t grew = stats().arena_bytes - before;
  CHECKF(grew == (64u << 10), "64 KiB of objects grew arena_bytes by %llu bytes", (unsigned long long)grew);
  CHECK(cgc_arena_alloc(a, 16) != NULL);
  CHECK(stats().arena_bytes - before == (64u << 10) + (128u << 10)); /* chunks double */
  cgc_arena_free(a);
}

/* Regular chunks double up to 4 MiB and no further: 48 MiB of small
   objects take chunks of 64 KiB, 128 KiB, ..., 4 MiB, then 4 MiB each, so
   the arena holds less than one 4 MiB chunk beyond what it used (a chunk of
   8 MiB, 16 MiB, 32 MiB would leave up to half of the arena unused). */
static void test_chunk_size_cap(void) {
  cgc_arena_t *a = cgc_arena_new();
  uint64_t before = stats().arena_bytes;
  size_t used = 0;
  while (used < 48 * MIB) {
    char *p = cgc_arena_alloc_noscan(a, 32);
    CHECK(p != NULL);
    used += 32;
  }
  uint64_t grew = stats().arena_bytes - before;
  CHECKF(grew >= used && grew < used + 4 * MIB, "%zu MiB of objects grew arena_bytes by %llu KiB", used >> 20,
         (unsigned long long)grew >> 10);
  cgc_arena_free(a);
}

static void test_freed_range_unmapped(void) {
  cgc_collect();
  cgc_release_memory();
  cgc_stats_t s0 = stats();
  cgc_arena_t *a = cgc_arena_new();
  for (int i = 0; i < 500; i++) memset(cgc_arena_alloc_noscan(a, 100000), 1, 100000); /* 50 MB */
  CHECK(stats().mapped_bytes >= s0.mapped_bytes + 48 * 1000 * 1000);
  cgc_arena_free(a);
  cgc_collect(); /* proves the range unreferenced: back to the page heap */
  cgc_stats_t s1 = stats();
  CHECKF(s1.mapped_bytes <= s0.mapped_bytes + (8u << 20), "mapped_bytes %llu KiB after the freed arena's range "
         "came back (%llu KiB before the arena)", (unsigned long long)s1.mapped_bytes >> 10,
         (unsigned long long)s0.mapped_bytes >> 10);
  cgc_release_memory();
  CHECKF(stats().released_bytes - s1.released_bytes <= (8u << 20), "cgc_release_memory released %llu KiB of fresh "
         "pages", (unsigned long long)(stats().released_bytes - s1.released_bytes) >> 10);
  /* Reused: counted again. */
  char *p = cgc_alloc_noscan(32u << 20);
  CHECK(p != NULL);
  memset(p, 2, 32u << 20);
  CHECK(stats().mapped_bytes >= s1.mapped_bytes + (32u << 20));
  cgc_free(p);
}

/* A freed arena's range, back in the page heap as released pages, enters
   mapped_bytes again as it is handed out and leaves it once more only when
   it is released again: with every free page released (mapped_bytes is then
   the pages in use, within the process's virtual size), 48 MiB of new large
   objects raise mapped_bytes by 48 MiB, whether they take the arena's old
   range or not. */
static void test_freed_range_counted_when_reused(void) {
  cgc_arena_t *a = cgc_arena_new();
  CHECK(a != NULL);
  for (int i = 0; i < 500; i++) memset(cgc_arena_alloc_noscan(a, 100000), 1, 100000); /* 50 MB */
  cgc_arena_free(a);
  cgc_collect(); /* the range comes back to the page heap */
  cgc_release_memory();
  uint64_t m0 = stats().mapped_bytes;
  CHECKF(m0 <= vsize_bytes(), "mapped_bytes %llu KiB after cgc_release_memory, more than the process's virtual size "
         "(%llu KiB)", (unsigned long long)m0 >> 10, (unsigned long long)vsize_bytes() >> 10);
  void *keep[8];
  for (int i = 0; i < 8; i++) {
    keep[i] = cgc_alloc_noscan(6u << 20);
    CHECK(keep[i] != NULL);
    memset(keep[i], 3, 6u << 20);
  }
  uint64_t m1 = stats().mapped_bytes;
  CHECKF(m1 + (4u << 20) >= m0 + (48u << 20),
         "48 MiB of new large objects after a freed arena's range came back: mapped_bytes %llu -> %llu KiB",
         (unsigned long long)m0 >> 10, (unsigned long long)m1 >> 10);
  for (int i = 0; i < 8; i++) cgc_free(keep[i]);
  cgc_release_memory();
  CHECKF(stats().mapped_bytes <= vsize_bytes(), "mapped_bytes %llu KiB after the objects were freed and released, more "
         "than the process's virtual size (%llu KiB)", (unsigned long long)stats().mapped_bytes >> 10,
         (unsigned long long)vsize_bytes() >> 10);
}

/* A registered range over a large object, and an arena whose chunk starts
   right at the range's end: next to each other, not overlapping. */
static void test_roots_next_to_chunk(void) {
  const size_t n = 256 << 10; /* a whole number of pages */
  int found = 0;
  for (int i = 0; i < 64 && !found; i++) {
    char *big = cgc_alloc(n);
    CHECK(big != NULL);
    cgc_add_roots(big, n);
    cgc_arena_t *a = cgc_arena_new();
    CHECK(a != NULL);
    char *p = cgc_arena_alloc_noscan(a, 60 << 10);
    CHECK(p != NULL);
    found = p == big + n;
    cgc_arena_free(a); /* the range does not cover the chunk: no abort */
    cgc_remove_roots(big);
  }
  CHECKF(found, "no arena chunk started right after a large object");
}

int main(void) {
  test_seed();
  cgc_init();
  test_roots(); /* first: a clean heap, no reused pages under stale pointers */
  test_shapes();
  test_many();
  test_not_collected();
  test_many_arenas();
  test_mid_requests();
  test_own_chunk_size();
  test_own_chunk_growth();
  test_chunk_filled_exactly();
  test_chunk_size_cap();
  test_handle_capacity();
  test_freed_range_unmapped();
  test_freed_range_counted_when_reused();
  test_roots_next_to_chunk();
  printf("arena_basic: ok\n");
  return 0;
}
