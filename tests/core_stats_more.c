/* cgc_read_stats beyond core_basic's consistency checks:
   - num_forced_gc counts cgc_collect only, not paced collections;
   - mark_total_ns is a running total: it never goes down, and a collection
     with a short mark after one with a long mark leaves it above the long one;
   - cgc_set_gc_percent and cgc_set_memory_limit move heap_goal_bytes at once
     (docs/pacing.md section 3), not at the next collection; the goal's
     formula at gc_percent 0 and with a limit (its room); cleanup records
     count in heap_live from the end of a collection (pacing); collections
     of an unchanging heap leave the goal where it was;
   - last_live_bytes counts noscan objects (cgc_alloc_noscan), and objects
     that a finalizer keeps alive for one more cycle (marked by the specials
     phase, docs/pacing.md section 8), with everything those objects reach. */
#include "core_util.h"

static void test_forced_count(void) {
  cgc_collect();
  cgc_stats_t s0 = stats_now();
  for (int i = 0; i < 3; i++) until_paced_collection(64);
  cgc_stats_t s1 = stats_now();
  CHECKF(s1.num_gc >= s0.num_gc + 3, "3 paced collections: num_gc %llu -> %llu", (unsigned long long)s0.num_gc,
         (unsigned long long)s1.num_gc);
  CHECKF(s1.num_forced_gc == s0.num_forced_gc, "paced collections counted as forced: num_forced_gc %llu -> %llu",
         (unsigned long long)s0.num_forced_gc, (unsigned long long)s1.num_forced_gc);
  cgc_collect();
  CHECK(stats_now().num_forced_gc == s0.num_forced_gc + 1);
}

/* A chain of n nodes of 64 bytes: marking it is slow (one node at a time). */
typedef struct node {
  struct node *next;
  char pad[56];
} node_t;
static node_t *volatile g_chain;

static __attribute__((noinline)) void build_chain(size_t n) {
  node_t *head = NULL;
  for (size_t i = 0; i < n; i++) {
    node_t *x = (node_t *)cgc_alloc(sizeof *x);
    CHECK(x != NULL);
    x->next = head;
    head = x;
  }
  g_chain = head;
}

static void test_mark_total(void) {
  build_chain(500000);
  cgc_collect();
  cgc_collect();
  cgc_stats_t big = stats_now();
  CHECK(big.mark_total_ns > 0);
  g_chain = NULL;
  clear_stack();
  cgc_collect(); /* the chain dies here */
  uint64_t prev = stats_now().mark_total_ns;
  CHECKF(prev >= big.mark_total_ns, "mark_total_ns went down: %llu -> %llu", (unsigned long long)big.mark_total_ns,
         (unsigned long long)prev);
  for (int i = 0; i < 5; i++) {
    cgc_collect(); /* short marks */
    cgc_stats_t s = stats_now();
    CHECKF(s.mark_total_ns >= prev, "mark_total_ns went down: %llu -> %llu", (unsigned long long)prev,
           (unsigned long long)s.mark_total_ns);
    CHECKF(s.mark_total_ns <= s.pause_total_ns, "mark_total_ns %llu > pause_total_ns %llu",
           (unsigned long long)s.mark_total_ns, (unsigned long long)s.pause_total_ns);
    prev = s.mark_total_ns;
  }
}

static void test_goal_setters(void) {
  cgc_collect();
  int old = cgc_set_gc_percent(-1);
  CHECK(old == 100);
  CHECKF(stats_now().heap_goal_bytes == UINT64_MAX, "pacing off, no limit: heap goal %llu right after the call",
         (unsigned long long)stats_now().heap_goal_bytes);
  int64_t lim = 32 * (int64_t)CORE_MIB;
  CHECK(cgc_set_memory_limit(lim) == INT64_MAX);
  uint64_t g = stats_now().heap_goal_bytes;
  CHECKF(g <= (uint64_t)lim, "a 32 MiB limit with pacing off: heap goal %llu right after the call",
         (unsigned long long)g);
  CHECK(cgc_set_memory_limit(INT64_MAX) == lim);
  CHECKF(stats_now().heap_goal_bytes == UINT64_MAX, "limit removed, pacing off: heap goal %llu",
         (unsigned long long)stats_now().heap_goal_bytes);
  CHECK(cgc_set_gc_percent(100) == -1);
  g = stats_now().heap_goal_bytes;
  CHECKF(g != UINT64_MAX && g >= 4 * CORE_MIB, "pacing back on: heap goal %llu right after the call",
         (unsigned long long)g);
}

/* The goal's formula (docs/pacing.md section 3) at its edges:
   - gc_percent 0 is pacing on (collect when the heap reaches its live size,
     or 4 MiB), not off;
   - the memory limit's room is 95% of the limit minus cgc's metadata (at
     least the first 1 MiB chunk of it). */
static void test_goal_formula(void) {
  cgc_collect();
  int old = cgc_set_gc_percent(0);
  uint64_t g = stats_now().heap_goal_bytes;
  CHECKF(g != UINT64_MAX && g >= 4 * CORE_MIB, "gc_percent 0: heap goal %llu (pacing off?)", (unsigned long long)g);
  cgc_set_gc_percent(-1);
  int64_t lim = 32 * (int64_t)CORE_MIB;
  cgc_set_memory_limit(lim);
  g = stats_now().heap_goal_bytes;
  CHECKF(g <= (uint64_t)(lim / 20 * 19) - CORE_MIB,
         "a 32 MiB limit with pacing off: heap goal %llu KiB, not below 95%% of the limit minus the metadata",
         (unsigned long long)(g >> 10));
  cgc_set_memory_limit(INT64_MAX);
  cgc_set_gc_percent(old);
}

/* The free slots on the thread's lists count in heap_live (premarked) at each
   collection as they are then: collections of an unchanging heap, whose
   thread keeps a list in every size class, leave the goal where it was. */
#define STEADY_N 2048 /* 4 KiB noscan objects: 8 MiB live */
void **g_steady;      /* not static: the stores must stay */

/* One object of each size up to 32 KiB: the thread takes a list of every
   class. */
static __attribute__((noinline)) void touch_classes(void) {
  for (size_t sz = 16; sz <= 32768; sz = sz < 256 ? sz + 16 : sz + sz / 8) consume(cgc_alloc(sz));
}

static void test_goal_steady(void) {
  g_steady = (void **)cgc_alloc(STEADY_N * sizeof(void *));
  CHECK(g_steady != NULL);
  for (int i = 0; i < STEADY_N; i++) CHECK((g_steady[i] = cgc_alloc_noscan(4096)) != NULL);
  touch_classes();
  clear_stack();
  cgc_collect();
  uint64_t g0 = stats_now().heap_goal_bytes;
  for (int i = 0; i < 50; i++) {
    touch_classes();
    clear_stack();
    cgc_collect();
  }
  uint64_t g1 = stats_now().heap_goal_bytes;
  CHECKF(g1 <= g0 + g0 / 4, "50 collections of an unchanging 8 MiB heap moved the goal from %llu KiB to %llu KiB",
         (unsigned long long)(g0 >> 10), (unsigned long long)(g1 >> 10));
  g_steady = NULL;
}

#define NOSCAN_N 65536 /* 64-byte objects: 4 MiB */
void **g_noscan; /* not static: its stores must stay */

static void test_noscan_live(void) {
  g_noscan = (void **)cgc_alloc(NOSCAN_N * sizeof(void *)); /* 512 KiB, scanned */
  CHECK(g_noscan != NULL);
  for (int i = 0; i < NOSCAN_N; i++) {
    g_noscan[i] = cgc_alloc_noscan(64);
    CHECK(g_noscan[i] != NULL);
  }
  uint64_t live = live_after_collect();
  CHECKF(live >= (uint64_t)NOSCAN_N * 64 + NOSCAN_N * sizeof(void *),
         "%d noscan objects of 64 bytes reachable: last_live_bytes %llu", NOSCAN_N, (unsigned long long)live);
  g_noscan = NULL;
}

static _Atomic int finalized;
static void fin(void *obj) {
  (void)obj;
  atomic_fetch_add(&finalized, 1);
}

#define FIN_N 1024 /* 4 KiB objects: 4 MiB */
static __attribute__((noinline)) void make_finalizable(void) {
  for (int i = 0; i < FIN_N; i++) {
    void *p = cgc_alloc(4096);
    CHECK(p != NULL);
    CHECK(cgc_set_finalizer(p, fin) == 0);
  }
}

static void test_finalizer_live(void) {
  uint64_t base = live_after_collect();
  int pct = cgc_set_gc_percent(-1); /* no collection finds the first ones unreachable while the others are made */
  make_finalizable();
  /* The collection that finds them unreachable marks them again (their
     finalizers get them): they are live for it. */
  uint64_t live = live_after_collect();
  cgc_set_gc_percent(pct);
  CHECKF(live >= base + (uint64_t)FIN_N * 4096,
         "%d unreachable objects of 4 KiB kept for their finalizers: last_live_bytes %llu (before %llu)", FIN_N,
         (unsigned long long)live, (unsigned long long)base);
  cgc_wait_cleanups();
  /* A few may stay reachable through stale stack words (conservative). */
  CHECKF(atomic_load(&finalized) >= FIN_N - 8, "%d of %d finalizers ran", atomic_load(&finalized), FIN_N);
  live = live_after_collect();
  CHECKF(live < base + (uint64_t)FIN_N * 4096 / 2, "after their finalizers, last_live_bytes %llu (before %llu)",
         (unsigned long long)live, (unsigned long long)base);
}

/* What an unreachable finalizable object reaches is kept with it for its
   finalizer (marked by the specials phase before the object itself) and
   counts in last_live_bytes like the object. */
#define FINC_N 256          /* 64-byte objects ... */
#define FINC_CHILD 16384    /* ... each the only holder of a 16 KiB noscan child: 4 MiB */
static _Atomic int finalized_parents;
static void fin_parent(void *obj) {
  (void)obj;
  atomic_fetch_add(&finalized_parents, 1);
}

static __attribute__((noinline)) void make_finalizable_parents(void) {
  for (int i = 0; i < FINC_N; i++) {
    void **p = (void **)cgc_alloc(64);
    CHECK(p != NULL);
    p[0] = cgc_alloc_noscan(FINC_CHILD);
    CHECK(p[0] != NULL);
    memset(p[0], 0x5c, FINC_CHILD);
    CHECK(cgc_set_finalizer(p, fin_parent) == 0);
  }
}

static void test_finalizer_children_live(void) {
  cgc_wait_cleanups(); /* the earlier cases' finalized objects die at the next collection */
  (void)live_after_collect();
  uint64_t base = live_after_collect();
  int pct = cgc_set_gc_percent(-1); /* no collection finds the first ones unreachable while the others are made */
  make_finalizable_parents();
  uint64_t live = live_after_collect();
  cgc_set_gc_percent(pct);
  /* Most of the children, not all: a little of what was live at `base` may have died since. */
  CHECKF(live >= base + (uint64_t)FINC_N * FINC_CHILD * 3 / 4,
         "%d unreachable objects kept for their finalizers, each with a %d-byte child: last_live_bytes %llu KiB "
         "(before %llu KiB; the children are %llu KiB)", FINC_N, FINC_CHILD, (unsigned long long)(live >> 10),
         (unsigned long long)(base >> 10), (unsigned long long)((uint64_t)FINC_N * FINC_CHILD >> 10));
  cgc_wait_cleanups();
  CHECKF(atomic_load(&finalized_parents) >= FINC_N - 8, "%d of %d finalizers ran", atomic_load(&finalized_parents),
         FINC_N);
}

/* The cleanup records of live objects count in heap_live from the end of
   the collection on (docs/pacing.md sections 2-3), as in the goal: 100000
   objects of 16 bytes with a cleanup each (48-byte records) start the cycle
   at half the goal, so the next paced collection comes after about half the
   goal of allocation, not half the goal plus the records. */
#define REC_N 100000
void **g_rec_objs; /* not static: the stores must stay */
static void rec_nop(void *arg) { (void)arg; }

static void test_records_pace(void) {
  g_rec_objs = (void **)cgc_alloc(REC_N * sizeof(void *));
  CHECK(g_rec_objs != NULL);
  for (int i = 0; i < REC_N; i++) {
    g_rec_objs[i] = cgc_alloc(16);
    CHECK(g_rec_objs[i] != NULL);
    cgc_add_cleanup(g_rec_objs[i], rec_nop, NULL);
  }
  cgc_collect();
  cgc_stats_t s = stats_now();
  uint64_t n0 = cgc_gc_count();
  for (long i = 0; cgc_gc_count() == n0; i++) {
    CHECKF(i < 100000000L, "no paced collection after 100M allocations");
    CHECK(cgc_alloc_noscan(1024) != NULL);
  }
  uint64_t allocated = stats_now().total_alloc_bytes - s.total_alloc_bytes;
  CHECKF(allocated <= s.heap_goal_bytes / 8 * 5,
         "%llu KiB allocated before the paced collection, for a goal of %llu KiB (%llu KiB of objects live, with "
         "%d cleanup records)", (unsigned long long)(allocated >> 10), (unsigned long long)(s.heap_goal_bytes >> 10),
         (unsigned long long)(s.last_live_bytes >> 10), REC_N);
  g_rec_objs = NULL;
}

int main(void) {
  test_forced_count();
  test_mark_total();
  test_goal_setters();
  test_goal_formula();
  test_noscan_live();
  test_finalizer_live();
  test_finalizer_children_live();
  test_records_pace();
  test_goal_steady(); /* last: it leaves the thread a list in every class, which counts in heap_live */
  printf("core_stats_more: ok\n");
  return 0;
}
