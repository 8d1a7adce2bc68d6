/* Freeing from other threads under stress (seeded: CGC_TEST_SEED).  Worker
   threads allocate objects of random sizes (some large), stamp them, keep
   some and pass others through a shared queue; whoever takes an object from
   the queue checks its stamp and frees it.  Garbage keeps collections
   running meanwhile, and short-lived threads hand over objects and exit
   before they are freed; kept objects also grow (and large ones shrink) with
   cgc_realloc, grown parts and cut tails of scanned ones zero.  Every new
   object must be zero (a slot handed out twice would not be), and every kept
   or queued object must stay intact. */
#include "free_util.h"

#define NWORKERS 4
#define QCAP 4096
#define LOCAL 64

typedef struct {
  uint64_t magic;
  uint64_t seed;
  size_t size;
} stamp_t;

#define MAGIC 0x5EEDF00DCAFEBABEull

static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static void *queue[QCAP]; /* a root: queued objects stay reachable */
static size_t qhead, qlen;
static atomic_ulong freed_cross, made, large_resized;
static uint64_t base_seed;

static bool q_push(void *p) {
  pthread_mutex_lock(&qlock);
  bool ok = qlen < QCAP;
  if (ok) {
    queue[(qhead + qlen) % QCAP] = p;
    qlen++;
  }
  pthread_mutex_unlock(&qlock);
  return ok;
}

static void *q_pop(void) {
  pthread_mutex_lock(&qlock);
  void *p = NULL;
  if (qlen) {
    p = queue[qhead];
    queue[qhead] = NULL;
    qhead = (qhead + 1) % QCAP;
    qlen--;
  }
  pthread_mutex_unlock(&qlock);
  return p;
}

static size_t pick(uint64_t *st) {
  uint64_t r = rng_next(st);
  if (r % 200 == 0) return 32768 + (r >> 16) % 300000; /* large */
  if (r % 4 == 0) return sizeof(stamp_t) + (r >> 8) % 4000;
  return sizeof(stamp_t) + (r >> 8) % 200;
}

static void *make_sized(uint64_t *st, size_t n) {
  uint64_t seed = rng_next(st);
  unsigned char *p = (seed & 1) ? cgc_alloc(n) : cgc_alloc_noscan(n);
  CHECK(p != NULL);
  CHECKF(zeroed(p, n), "new object %p (%zu bytes) is not zero: handed out twice?", (void *)p, n);
  stamp_t s = {MAGIC, seed, n};
  memcpy(p, &s, sizeof s);
  fill(p + sizeof s, n - sizeof s, seed);
  atomic_fetch_add(&made, 1);
  return p;
}

static void *make(uint64_t *st) { return make_sized(st, pick(st)); }

static void verify(const void *p) {
  stamp_t s;
  memcpy(&s, p, sizeof s);
  CHECKF(s.magic == MAGIC, "object %p lost its stamp", p);
  CHECKF(cgc_usable_size(p) >= s.size, "object %p: size", p);
  CHECKF(intact((const unsigned char *)p + sizeof s, s.size - sizeof s, s.seed), "object %p (%zu bytes) corrupted",
         p, s.size);
}

static void *worker(void *arg) {
  uint64_t st = base_seed + (uint64_t)(uintptr_t)arg * 7919 + 1;
  long ops = (long)(FREE_ASAN ? 30000 : 150000);
  void *local[LOCAL] = {0};
  for (long i = 0; i < ops; i++) {
    uint64_t r = rng_next(&st);
    switch (r % 8) {
      case 0: case 1: case 2: { /* allocate and share */
        void *p = make(&st);
        if (!q_push(p)) cgc_free(p);
        break;
      }
      case 3: case 4: { /* take one from anybody and free it */
        void *p = q_pop();
        if (p) {
          verify(p);
          cgc_free(p);
          atomic_fetch_add(&freed_cross, 1);
        }
        break;
      }
      case 5: { /* keep one locally, replacing (and freeing) an older one, or grow it */
        int k = (int)((r >> 8) % LOCAL);
        if (local[k] && (r >> 16) % 2) {
          verify(local[k]);
          stamp_t sp;
          memcpy(&sp, local[k], sizeof sp);
          size_t n2 = sp.size * 2 > 9000 ? sp.size + 8 : sp.size * 2;
          if (sp.size > 32768) /* large: shrink (its tail pages go back), or grow up to 2x */
            n2 = sp.size > 2 * MIB || (r >> 24) % 3 == 0 ? sizeof sp + (sp.size - sizeof sp) / (2 + (r >> 26) % 3)
                                                         : sp.size + 1 + (r >> 28) % sp.size;
          unsigned char *q = cgc_realloc(local[k], n2);
          CHECK(q != NULL);
          if (sp.size > 32768 && n2 > 32768) atomic_fetch_add(&large_resized, 1);
          bool scanned = sp.seed & 1;
          if (scanned && n2 > sp.size)
            CHECKF(zeroed(q + sp.size, n2 - sp.size), "%p grown from %zu to %zu bytes: new part not zero", (void *)q,
                   sp.size, n2);
          if (scanned && n2 < sp.size)
            CHECKF(zeroed(q + n2, cgc_usable_size(q) - n2), "%p shrunk from %zu to %zu bytes: tail not zero",
                   (void *)q, sp.size, n2);
          for (size_t b = sp.size; b < n2; b++) q[b] = pat(sp.seed, b - sizeof sp);
          sp.size = n2;
          memcpy(q, &sp, sizeof sp);
          local[k] = q;
          verify(q);
          break;
        }
        if (local[k]) {
          verify(local[k]);
          cgc_free(local[k]);
        }
        local[k] = (r >> 40) % 16 ? make(&st) : make_sized(&st, 32769 + (r >> 44) % 200000); /* kept: large more often */
        break;
      }
      case 6: { /* garbage: keeps the collector busy */
        for (int g = 0; g < 8; g++) consume(cgc_alloc(64 + (size_t)(r >> 20) % 512));
        break;
      }
      default:
        if ((r >> 8) % 64 == 0)
          for (int k = 0; k < LOCAL; k++)
            if (local[k]) verify(local[k]);
        break;
    }
  }
  for (int k = 0; k < LOCAL; k++)
    if (local[k]) {
      verify(local[k]);
      cgc_free(local[k]);
    }
  return NULL;
}

/* A thread that hands objects over and exits before they are freed. */
static void *short_lived(void *arg) {
  uint64_t st = base_seed ^ (uint64_t)(uintptr_t)arg;
  for (int i = 0; i < 20; i++) {
    void *p = make(&st);
    if (!q_push(p)) cgc_free(p);
  }
  return NULL;
}

int main(void) {
  base_seed = test_seed();
  uint64_t gc0 = cgc_gc_count();
  pthread_t t[NWORKERS];
  for (int i = 0; i < NWORKERS; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) == 0);
  for (int round = 0; round < 200; round++) {
    pthread_t s;
    CHECK(pthread_create(&s, NULL, short_lived, (void *)(uintptr_t)round) == 0);
    CHECK(pthread_join(s, NULL) == 0);
    void *p;
    for (int k = 0; k < 10 && (p = q_pop()) != NULL; k++) {
      verify(p);
      cgc_free(p);
      atomic_fetch_add(&freed_cross, 1);
    }
    if (round % 50 == 0) cgc_collect();
  }
  for (int i = 0; i < NWORKERS; i++) CHECK(pthread_join(t[i], NULL) == 0);
  void *p;
  while ((p = q_pop()) != NULL) {
    verify(p);
    cgc_free(p);
    atomic_fetch_add(&freed_cross, 1);
  }
  cgc_collect();
  printf("free_threads: %lu objects, %lu freed through the queue, %lu large resized, %llu collections\n",
         (unsigned long)atomic_load(&made), (unsigned long)atomic_load(&freed_cross),
         (unsigned long)atomic_load(&large_resized), (unsigned long long)(cgc_gc_count() - gc0));
  CHECK(cgc_gc_count() - gc0 >= 4);
  CHECK(atomic_load(&large_resized) > 100 / (FREE_ASAN ? 5 : 1));
  CHECK(atomic_load(&freed_cross) > 10000 / (FREE_ASAN ? 5 : 1));
  /* Everything was freed or dropped: the heap is empty again. */
  cgc_collect();
  CHECKF(stats().last_live_bytes < 4 * MIB, "%llu bytes live", (unsigned long long)stats().last_live_bytes);
  printf("free_threads: ok\n");
  return 0;
}
