/* heap_live and a freed (or shrunk) large object: the bytes leave heap_live
   once.  They left it after the heap lock was released, so a collection that
   woke on that unlock and reset heap_live (without those pages) had them
   subtracted again: heap_live went negative by the object's size and the
   next collection came that much late.  One thread allocates and frees (or
   shrinks, then frees) a 64 MiB object in a loop; this thread allocates
   1 KiB pieces and measures what it alone allocated between consecutive
   collections: never more than the goal and 8 MiB.  Run as
   `core_pacing_race free|shrink`. */
#include "core_util.h"

static atomic_int stop;
static int shrink;

static void *big_loop(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    void *p = cgc_alloc_noscan((size_t)64 << 20);
    CHECK(p != NULL);
    if (shrink) p = cgc_realloc(p, 40000);
    cgc_free(p);
  }
  return NULL;
}

int main(int argc, char **argv) {
  CHECKF(argc == 2 && (strcmp(argv[1], "free") == 0 || strcmp(argv[1], "shrink") == 0), "usage: core_pacing_race free|shrink");
  test_seed();
  shrink = strcmp(argv[1], "shrink") == 0;
  pthread_t t;
  CHECK(pthread_create(&t, NULL, big_loop, NULL) == 0);
  cgc_stats_t s;
  cgc_read_stats(&s);
  uint64_t last = s.num_gc, goal = s.heap_goal_bytes, since = 0, worst = 0;
  int intervals = 0, over = 0;
  static void *keep[16];
  for (long i = 0; i < 8000000 && intervals < 400; i++) {
    keep[i & 15] = cgc_alloc_noscan(1024);
    since += 1024;
    uint64_t g = cgc_gc_count();
    if (g == last) continue;
    if (g == last + 1) {
      intervals++;
      if (since > worst) worst = since;
      if (since > goal + ((uint64_t)8 << 20)) over++;
    }
    cgc_read_stats(&s);
    goal = s.heap_goal_bytes;
    last = s.num_gc;
    since = 0;
  }
  consume(keep[3]);
  atomic_store(&stop, 1);
  CHECK(pthread_join(t, NULL) == 0);
  CHECKF(over == 0, "%d of %d intervals between collections allocated more than the goal + 8 MiB (worst %llu MiB)",
         over, intervals, (unsigned long long)(worst >> 20));
  printf("core_pacing_race %s: ok (%d intervals, worst %llu KiB)\n", argv[1], intervals,
         (unsigned long long)(worst >> 10));
  return 0;
}
