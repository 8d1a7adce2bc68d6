/* Thread free lists across collections (invariant I4, docs/marking.md §3).
 * A collection premarks every slot on every thread list; the part of a list
 * that is still the list a thread took from its span is premarked from the
 * span's bitmap, starting exactly at the list's head, after walking the
 * slots pushed in front of it.  Several threads (seeded: CGC_TEST_SEED) take
 * lists, allocate parents from them (each the only holder of a child), free
 * some objects back in front of the rest, and collect, while the others do
 * the same.  Then:
 *   - every parent's child is intact after the freed memory was reused: a
 *     parent premarked as a free slot (one slot too early a start, say) is
 *     never scanned and its child dies;
 *   - every object allocated afterwards from the lists is zero: a slot
 *     handed out twice would hold a parent's child pointer and stamp. */
#include "core_util.h"

#define NTHREADS 4
#define ROUNDS (CORE_ASAN ? 6 : 20)
#define NCLS 6
#define KEEP 48  /* parents per class, thread and round */
#define CHILD 40 /* noscan child size */

static const size_t sizes[NCLS] = {16, 32, 48, 64, 256, 1024};
static uint64_t base_seed;

typedef struct {
  uintptr_t child;
  uint64_t stamp;
} parent_t;

static uint64_t stamp_of(int t, int round, int c, int i) {
  return ((uint64_t)t << 48) ^ ((uint64_t)round << 32) ^ ((uint64_t)c << 16) ^ (uint64_t)i ^ 0x5bd1e995u;
}

/* The parents of one round, reachable from this heap block only. */
static parent_t **make_parents(uint64_t *st, int t, int round) {
  parent_t **kept = cgc_alloc(NCLS * KEEP * sizeof *kept);
  CHECK(kept != NULL);
  for (int c = 0; c < NCLS; c++) {
    /* Some garbage first, so the parents start anywhere in a span's list. */
    int g = (int)(rng_next(st) % 300);
    void *garbage[300];
    for (int i = 0; i < g; i++) garbage[i] = cgc_alloc(sizes[c]);
    for (int i = 0; i < KEEP; i++) {
      parent_t *p = cgc_alloc(sizes[c]);
      CHECK(p != NULL);
      unsigned char *ch = cgc_alloc_noscan(CHILD);
      CHECK(ch != NULL);
      fill_pattern(ch, CHILD, stamp_of(t, round, c, i));
      p->child = (uintptr_t)ch;
      p->stamp = stamp_of(t, round, c, i);
      kept[c * KEEP + i] = p;
    }
    /* Push some of the garbage back in front of the list's rest. */
    for (int i = 0; i < g; i++)
      if (rng_next(st) % 2) cgc_free(garbage[i]);
  }
  return kept;
}

static void check_parents(parent_t **kept, int t, int round) {
  for (int c = 0; c < NCLS; c++)
    for (int i = 0; i < KEEP; i++) {
      parent_t *p = kept[c * KEEP + i];
      CHECKF(p->stamp == stamp_of(t, round, c, i), "thread %d round %d: parent %d of %zu bytes lost its stamp", t,
             round, i, sizes[c]);
      size_t bad = pattern_mismatch((void *)p->child, CHILD, stamp_of(t, round, c, i));
      CHECKF(bad == (size_t)-1, "thread %d round %d: the child of parent %d (%zu bytes, %p) was freed and reused", t,
             round, i, sizes[c], (void *)p);
    }
}

static void *worker(void *arg) {
  int t = (int)(intptr_t)arg;
  uint64_t st = base_seed * 31 + (uint64_t)t + 1;
  for (int round = 0; round < ROUNDS; round++) {
    parent_t **kept = make_parents(&st, t, round);
    if (rng_next(&st) % 2) cgc_collect();
    /* Reuse what the collections freed: children of parents that were not
       scanned would be handed out here and overwritten. */
    for (int i = 0; i < 4000; i++) {
      unsigned char *x = cgc_alloc_noscan(CHILD);
      CHECKF(all_zero(x, CHILD), "thread %d: a new %d-byte object is not zero: handed out twice?", t, CHILD);
      memset(x, 0xee, CHILD);
    }
    for (int c = 0; c < NCLS; c++)
      for (int i = 0; i < 200; i++) {
        void *x = cgc_alloc(sizes[c]);
        CHECKF(all_zero(x, sizes[c]), "thread %d: a new %zu-byte object is not zero: a parent handed out twice?", t,
               sizes[c]);
      }
    check_parents(kept, t, round);
  }
  return NULL;
}

int main(void) {
  base_seed = test_seed();
  cgc_init();
  pthread_t th[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) CHECK(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) == 0);
  for (int i = 0; i < NTHREADS; i++) CHECK(pthread_join(th[i], NULL) == 0);
  /* One thread, one class, no garbage: the parents end right before the
     list's head, and a collection runs with nothing pushed. */
  for (int round = 0; round < 50; round++) {
    parent_t *kept[KEEP];
    for (int i = 0; i < KEEP; i++) {
      kept[i] = cgc_alloc(24);
      unsigned char *ch = cgc_alloc_noscan(CHILD);
      fill_pattern(ch, CHILD, (uint64_t)i + 7);
      kept[i]->child = (uintptr_t)ch;
      kept[i]->stamp = (uint64_t)round;
    }
    cgc_collect();
    for (int i = 0; i < 2000; i++) memset(cgc_alloc_noscan(CHILD), 0xee, CHILD);
    for (int i = 0; i < KEEP; i++)
      CHECKF(pattern_mismatch((void *)kept[i]->child, CHILD, (uint64_t)i + 7) == (size_t)-1,
             "round %d: the child of parent %d died", round, i);
  }
  printf("core_premark: ok (%d threads x %d rounds, seed %llu)\n", NTHREADS, ROUNDS, (unsigned long long)base_seed);
  return 0;
}
