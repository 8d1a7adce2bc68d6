/* Large objects made while another thread collects without pause: none may
   be freed before cgc_alloc has returned it.  The window was the end of the
   large-object path, after the span was published and before the address
   was returned, when the address lived only in the span struct (metadata,
   not scanned): a collection stopping the thread there (typically in the
   heap lock's wake-up, with the collector waiting for that lock) found no
   reference, and the sweep freed the object the caller was about to get.
   Four threads keep their last 64 objects, each word stamped from a
   per-object tag, and check them: a freed object is no longer live for
   cgc_base, and a reused one shows a stamp from another object (seeded:
   CGC_TEST_SEED).  With the library built Release (-O3) this failed in
   every run before the fix; other builds keep the address in a register
   by chance. */
#include "core_util.h"

enum { NTHR = 4, KEEP = 64, ITERS = 3000 };
static atomic_int done;
static atomic_long bad;
static uint64_t base_seed;

static void *worker(void *arg) {
  uint64_t r = base_seed ^ ((uintptr_t)arg + 1) * 0x9E3779B97F4A7C15ull;
  uint64_t *keep[KEEP] = {0}, tags[KEEP] = {0};
  size_t sizes[KEEP] = {0};
  for (int it = 0; it < ITERS; it++) {
    int i = it % KEEP;
    if (keep[i] && cgc_base(keep[i]) != keep[i]) { /* freed: no longer a live object */
      if (atomic_fetch_add(&bad, 1) < 5)
        fprintf(stderr, "object %p (%zu bytes), reachable, is not a live object\n", (void *)keep[i], sizes[i]);
    } else if (keep[i])
      for (size_t k = 1; k < sizes[i] / 8; k += 61)
        if (keep[i][k] != (tags[i] ^ k)) {
          if (atomic_fetch_add(&bad, 1) < 5)
            fprintf(stderr, "object %p (%zu bytes), reachable, was freed and reused: word %zu changed\n",
                    (void *)keep[i], sizes[i], k);
          break;
        }
    size_t size = 33000 + rng_next(&r) % 100000;
    uint64_t tag = rng_next(&r);
    uint64_t *p = (it & 1) ? cgc_alloc(size) : cgc_alloc_noscan(size);
    CHECK(p != NULL);
    for (size_t k = 1; k < size / 8; k++) p[k] = tag ^ k;
    keep[i] = p;
    tags[i] = tag;
    sizes[i] = size;
  }
  atomic_fetch_add(&done, 1);
  return NULL;
}

int main(void) {
  base_seed = test_seed();
  cgc_init();
  pthread_t t[NTHR];
  for (long i = 0; i < NTHR; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)i) == 0);
  uint64_t gcs = 0;
  while (atomic_load(&done) < NTHR) {
    cgc_collect();
    gcs++;
  }
  for (int i = 0; i < NTHR; i++) CHECK(pthread_join(t[i], NULL) == 0);
  CHECKF(atomic_load(&bad) == 0, "%ld reachable large objects were freed (%llu collections)", atomic_load(&bad),
         (unsigned long long)gcs);
  printf("core_large_race: ok (%llu collections)\n", (unsigned long long)gcs);
  return 0;
}
