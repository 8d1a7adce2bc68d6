/* The memory limit's steps before it collects (docs/pacing.md section 4).
   `once`: at most one memory-limit collection per collection cycle.  With
   pacing off, a 64 MiB limit and 20 MiB live, each 30 MiB object would take
   the heap past the limit; a limit collection frees the previous one, the
   next allocation finds the limit collection already done this cycle and
   goes ahead, and the one after is paced: two collections every three
   allocations, not one per allocation.
   `sweep` (run with CGC_DEBUG=bgsweep=0): garbage the last collection found
   dead, not swept yet, is swept and given back before the limit collects:
   allocating less than that garbage in another size class needs no further
   collection.
   `after` (run with CGC_DEBUG=bgsweep=0): the allocation that made a
   memory-limit collection sweeps and scavenges on its own thread before it
   maps (section 4, step 6): the small garbage that collection found dead
   makes room for it, and the heap stays at the limit (there is no sweeper
   thread to sweep it, and a large allocation sweeps only large objects).
   `keep`: after a sweep the scavenger keeps at most 90% of the limit mapped
   (section 4, "Scavenging after a sweep"), even when the heap's recent peak
   (which it otherwise keeps, plus half) was higher; and it gives back only
   down to that mark, not the whole free run it takes pages from.
   `grow`: a large object that cgc_realloc grows in place (pages mapped at
   the heap's end) takes the limit's steps as an allocation of the added
   pages does: with pacing off, a 64 MiB limit, 20 MiB live and 30 MiB of
   garbage, growing a 1 MiB object to 40 MiB collects the garbage and gives
   it back first (61 MiB live then, not 91 MiB mapped). */
#include "core_util.h"

void *g_keep[20]; /* not static: the stores must stay */

/* An object of n bytes, touched and dropped: no copy of its address is left
   in this frame (clear_stack after the call wipes the callee's). */
static __attribute__((noinline)) void alloc_drop(size_t n, int scanned) {
  uint64_t *p = (uint64_t *)(scanned ? cgc_alloc(n) : cgc_alloc_noscan(n));
  CHECK(p != NULL);
  p[0] = 1;
  consume(p);
}

static void mode_once(void) {
  for (int i = 0; i < 20; i++) g_keep[i] = cgc_alloc_noscan(CORE_MIB);
  cgc_set_gc_percent(-1);
  cgc_set_memory_limit(64 * (int64_t)CORE_MIB);
  cgc_collect();
  uint64_t g0 = cgc_gc_count();
  char seq[64];
  for (int i = 0; i < 30; i++) {
    uint64_t a = cgc_gc_count();
    alloc_drop(30 * CORE_MIB, 0);
    clear_stack();
    seq[i] = (char)('0' + (int)(cgc_gc_count() - a));
  }
  seq[30] = 0;
  uint64_t n = cgc_gc_count() - g0;
  fprintf(stderr, "collections per allocation: %s (%llu)\n", seq, (unsigned long long)n);
  if (CORE_ASAN) { /* its frames keep the last object reachable through a stale word: 80 MiB live each time */
    fprintf(stderr, "core_limit_paths once: the count is not checked under AddressSanitizer\n");
    return;
  }
  CHECKF(n <= 24, "30 allocations of 30 MiB under a 64 MiB limit made %llu collections (%s): a memory-limit "
         "collection in every cycle", (unsigned long long)n, seq);
  CHECKF(strstr(seq, "111") == NULL, "three allocations in a row collected (%s)", seq);
  for (int i = 0; i < 20; i++) CHECK(cgc_base(g_keep[i]) == g_keep[i]);
}

static void mode_sweep(void) {
  for (int i = 0; i < 10; i++) g_keep[i] = cgc_alloc_noscan(CORE_MIB);
  cgc_set_gc_percent(-1);
  cgc_set_memory_limit(64 * (int64_t)CORE_MIB);
  cgc_collect();
  /* Objects of 1 KiB until a collection: about 50 MiB of them, dead and
     (with no sweeper thread) left unswept. */
  uint64_t g = cgc_gc_count();
  while (cgc_gc_count() == g) alloc_drop(1024, 1);
  g = cgc_gc_count();
  /* 30 MiB of 64-byte objects: their spans come from the swept 1 KiB spans. */
  for (int i = 0; i < (30 << 20) / 64; i++) alloc_drop(64, 1);
  cgc_stats_t s = stats_now();
  fprintf(stderr, "collections %llu, mapped %llu MiB\n", (unsigned long long)(cgc_gc_count() - g),
          (unsigned long long)(s.mapped_bytes >> 20));
  CHECKF(cgc_gc_count() == g,
         "30 MiB allocated with ~50 MiB of unswept garbage under a 64 MiB limit: %llu more collections",
         (unsigned long long)(cgc_gc_count() - g));
  CHECKF(s.mapped_bytes <= 64 * CORE_MIB + 4 * CORE_MIB, "mapped %llu MiB over a 64 MiB limit",
         (unsigned long long)(s.mapped_bytes >> 20));
}

static void *small_garbage(void *arg) {
  (void)arg;
  for (int i = 0; i < (34 << 20) / 1024; i++) alloc_drop(1024, 0);
  return NULL;
}

static void mode_after(void) {
  for (int i = 0; i < 20; i++) g_keep[i] = cgc_alloc_noscan(CORE_MIB);
  cgc_set_gc_percent(-1);
  cgc_set_memory_limit(64 * (int64_t)CORE_MIB);
  cgc_collect();
  /* 34 MiB of small garbage (from a thread that exits: nothing sweeps its
     spans lazily), then a 24 MiB object: over the limit, and only a
     collection can free the garbage. */
  pthread_t t;
  CHECK(pthread_create(&t, NULL, small_garbage, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  uint64_t g = cgc_gc_count();
  cgc_stats_t s0 = stats_now();
  alloc_drop(24 * CORE_MIB, 0);
  cgc_stats_t s = stats_now();
  fprintf(stderr, "collections %llu, mapped %llu -> %llu MiB\n", (unsigned long long)(cgc_gc_count() - g),
          (unsigned long long)(s0.mapped_bytes >> 20), (unsigned long long)(s.mapped_bytes >> 20));
  CHECKF(cgc_gc_count() == g + 1, "%llu collections for a 24 MiB object over the limit",
         (unsigned long long)(cgc_gc_count() - g));
  CHECKF(s.mapped_bytes <= 64 * CORE_MIB + 4 * CORE_MIB,
         "mapped %llu MiB after a memory-limit collection found 34 MiB of garbage (64 MiB limit, 20 MiB live)",
         (unsigned long long)(s.mapped_bytes >> 20));
}

static void mode_keep(void) {
  cgc_set_memory_limit(128 * (int64_t)CORE_MIB);
  for (int i = 0; i < 20; i++) g_keep[i] = cgc_alloc_noscan(6 * CORE_MIB); /* 120 MiB */
  cgc_collect();
  cgc_stats_t s0 = stats_now();
  for (int i = 0; i < 20; i++) g_keep[i] = NULL;
  clear_stack();
  cgc_collect();
  cgc_stats_t s = stats_now();
  fprintf(stderr, "mapped %llu MiB with 120 MiB live, %llu MiB after it died\n",
          (unsigned long long)(s0.mapped_bytes >> 20), (unsigned long long)(s.mapped_bytes >> 20));
  CHECKF(s0.mapped_bytes > 128 * CORE_MIB / 10 * 9, "only %llu MiB mapped with 120 MiB live",
         (unsigned long long)(s0.mapped_bytes >> 20));
  CHECKF(s.mapped_bytes <= 128 * CORE_MIB / 10 * 9,
         "mapped %llu MiB after cgc_collect of a dead heap under a 128 MiB limit: more than 90%% of it",
         (unsigned long long)(s.mapped_bytes >> 20));
  CHECKF(s.mapped_bytes >= 128 * CORE_MIB / 10 * 9 - 8 * CORE_MIB,
         "mapped %llu MiB after cgc_collect of a dead heap under a 128 MiB limit: the scavenger went below 90%% of it, "
         "which the heap's recent peak of 120 MiB keeps", (unsigned long long)(s.mapped_bytes >> 20));
}

static void mode_grow(void) {
  for (int i = 0; i < 20; i++) g_keep[i] = cgc_alloc_noscan(CORE_MIB);
  cgc_set_gc_percent(-1);
  cgc_collect();
  alloc_drop(30 * CORE_MIB, 0);
  clear_stack();
  unsigned char *x = cgc_alloc_noscan(CORE_MIB); /* at the heap's end: room to grow in place */
  CHECK(x != NULL);
  memset(x, 0x5c, CORE_MIB);
  cgc_set_memory_limit(64 * (int64_t)CORE_MIB);
  uint64_t g0 = cgc_gc_count();
  unsigned char *y = cgc_realloc(x, 40 * CORE_MIB);
  CHECK(y != NULL && y[0] == 0x5c && y[CORE_MIB - 1] == 0x5c);
  cgc_stats_t s;
  cgc_read_stats(&s);
  fprintf(stderr, "grown %s; mapped %llu MiB; %llu collections\n", y == x ? "in place" : "by a move",
          (unsigned long long)(s.mapped_bytes / CORE_MIB), (unsigned long long)(cgc_gc_count() - g0));
  if (CORE_ASAN) { /* a stale word may keep the garbage alive */
    fprintf(stderr, "core_limit_paths grow: mapped bytes are not checked under AddressSanitizer\n");
    return;
  }
  CHECKF(cgc_gc_count() > g0, "growing a 1 MiB object to 40 MiB past a 64 MiB limit over 30 MiB of garbage did "
         "not collect");
  /* 61 MiB live; without the garbage given back it would be 91. */
  CHECKF(s.mapped_bytes <= 76 * CORE_MIB, "growing a 1 MiB object to 40 MiB left %llu MiB mapped under a 64 MiB "
         "limit", (unsigned long long)(s.mapped_bytes / CORE_MIB));
  for (int i = 0; i < 20; i++) CHECK(cgc_base(g_keep[i]) == g_keep[i]);
}

static const test_case_t cases[] = {
    {"once", mode_once},
    {"sweep", mode_sweep},
    {"after", mode_after},
    {"keep", mode_keep},
    {"grow", mode_grow},
};

int main(int argc, char **argv) {
  return RUN_NAMED_CASE(argc, argv, "core_limit_paths", cases);
}
