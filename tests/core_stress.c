/* Threads under stress (seeded: CGC_TEST_SEED reproduces a run's choices per
   thread).  Worker threads build, share, mutate, verify and drop linked
   structures kept in every kind of root (their stacks, __thread variables,
   globals shared under locks, objects handed to short-lived threads as the
   pthread_create argument and back through a global mailbox), while a thread
   forces collections and pacing starts others.  Every node carries a checksum
   of its payload and of a noscan blob it points to; any premature free shows up
   as a checksum, count or pattern mismatch.
   Usage: core_stress [iterations per worker] */
#include "core_util.h"

enum { NW = 6, NSLOTS = 64 };

typedef struct node {
  struct node *next;
  unsigned char *blob; /* noscan, pattern (blob_seed) */
  uint64_t id;
  uint64_t sum;
  uint64_t blob_seed;
  uint32_t len, blob_len;
  unsigned char payload[];
} node_t;

typedef struct list {
  node_t *head;
  uint64_t count;
  uint64_t xsum;
  uint64_t owner_tag;
} list_t;

static uint64_t hash_payload(uint64_t id, const unsigned char *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL ^ id;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

static node_t *new_node(uint64_t *rng, uint64_t id) {
  uint64_t r = rng_next(rng);
  uint32_t len = (r % 50 == 0) ? 33000 + (uint32_t)((r >> 8) % 70000) : (uint32_t)((r >> 8) % 512);
  node_t *n = (node_t *)cgc_alloc(sizeof(node_t) + len);
  CHECK(n != NULL);
  n->id = id;
  n->len = len;
  for (uint32_t i = 0; i < len; i++) n->payload[i] = (unsigned char)(rng_next(rng) >> 56);
  n->sum = hash_payload(id, n->payload, len);
  if (r % 3 == 0) {
    n->blob_len = 1 + (uint32_t)((r >> 20) % 3000);
    n->blob_seed = rng_next(rng);
    n->blob = (unsigned char *)cgc_alloc_noscan(n->blob_len);
    CHECK(n->blob != NULL);
    fill_pattern(n->blob, n->blob_len, n->blob_seed);
  }
  return n;
}

static void verify_node(const node_t *n) {
  CHECKF(cgc_base(n) == n, "node %p is not a live heap object", (const void *)n);
  CHECKF(cgc_usable_size(n) >= sizeof(node_t) + n->len, "node %p has a wrong size", (const void *)n);
  CHECKF(hash_payload(n->id, n->payload, n->len) == n->sum, "node %p (id %llu, %u bytes): payload checksum mismatch",
         (const void *)n, (unsigned long long)n->id, n->len);
  if (n->len > 16) CHECK(cgc_base(n->payload + n->len / 2) == n);
  if (n->blob) {
    CHECKF(cgc_base(n->blob) == n->blob, "blob of node %llu is not a live heap object", (unsigned long long)n->id);
    CHECKF(pattern_mismatch(n->blob, n->blob_len, n->blob_seed) == (size_t)-1, "blob of node %llu was overwritten",
           (unsigned long long)n->id);
  }
}

static list_t *build_list(uint64_t *rng, uint64_t tag, int count) {
  list_t *l = (list_t *)cgc_alloc(sizeof *l);
  CHECK(l != NULL);
  l->owner_tag = tag;
  for (int i = 0; i < count; i++) {
    node_t *n = new_node(rng, rng_next(rng));
    n->next = l->head;
    l->head = n;
    l->count++;
    l->xsum ^= n->sum;
  }
  return l;
}

static void verify_list(const list_t *l) {
  if (!l) return;
  CHECKF(cgc_base(l) == l, "list header %p is not a live heap object", (const void *)l);
  uint64_t c = 0, x = 0;
  for (const node_t *n = l->head; n; n = n->next) {
    verify_node(n);
    c++;
    x ^= n->sum;
    CHECKF(c <= l->count, "list %p is longer than its count %llu", (const void *)l, (unsigned long long)l->count);
  }
  CHECKF(c == l->count && x == l->xsum, "list %p: count %llu/%llu, xsum mismatch %d", (const void *)l,
         (unsigned long long)c, (unsigned long long)l->count, x != l->xsum);
}

/* Change payloads, drop some nodes, add some. */
static void mutate_list(list_t *l, uint64_t *rng) {
  node_t **pp = &l->head;
  while (*pp) {
    node_t *n = *pp;
    uint64_t r = rng_next(rng);
    if (r % 7 == 0) { /* unlink */
      *pp = n->next;
      l->count--;
      l->xsum ^= n->sum;
      continue;
    }
    if (r % 5 == 0 && n->len > 0) {
      l->xsum ^= n->sum;
      n->payload[(r >> 8) % n->len] ^= (unsigned char)((r >> 32) | 1);
      n->sum = hash_payload(n->id, n->payload, n->len);
      l->xsum ^= n->sum;
    }
    if (r % 11 == 0) { /* insert after */
      node_t *m = new_node(rng, rng_next(rng));
      m->next = n->next;
      n->next = m;
      l->count++;
      l->xsum ^= m->sum;
      pp = &m->next;
      continue;
    }
    pp = &n->next;
  }
}

/* ---- shared state ---------------------------------------------------------- */

static list_t *g_slots[NSLOTS];
static pthread_mutex_t g_slot_mu[NSLOTS];
static list_t *g_mailbox[NW];
#if CORE_ASAN
static void *g_asan_keep[NW];
#endif
static pthread_mutex_t g_mailbox_mu = PTHREAD_MUTEX_INITIALIZER;
static __thread list_t *t_list;
static atomic_int stop_collector;
static atomic_long g_children, g_collects;
static uint64_t g_seed;
static long g_iters = 600;

typedef struct {
  list_t *arg_list;
  int parent;
  uint64_t seed;
} child_arg_t;

static void *child_thread(void *p) {
  child_arg_t *a = (child_arg_t *)p;
  verify_list(a->arg_list);
  uint64_t rng = a->seed | 1;
  list_t *mine = build_list(&rng, 0xC0DE, 1 + (int)(rng_next(&rng) % 100));
  mutate_list(a->arg_list, &rng);
  verify_list(a->arg_list);
  verify_list(mine);
  pthread_mutex_lock(&g_mailbox_mu);
  CHECK(g_mailbox[a->parent] == NULL);
  g_mailbox[a->parent] = mine;
  pthread_mutex_unlock(&g_mailbox_mu);
  atomic_fetch_add(&g_children, 1);
  return NULL;
}

static __attribute__((noinline)) void garbage_burst(uint64_t *rng) {
  size_t total = 0;
  while (total < 256 * 1024) {
    uint64_t r = rng_next(rng);
    size_t n = (r % 64 == 0) ? 40000 : 8 + (r >> 8) % 2000;
    void *p = (r & 1) ? cgc_alloc(n) : cgc_alloc_noscan(n);
    CHECK(p != NULL);
    memset(p, 0xdb, n < 64 ? n : 64);
    consume(p);
    total += n;
  }
}

static void *worker(void *arg) {
  int w = (int)(intptr_t)arg;
  uint64_t rng = g_seed * 0x9E3779B97F4A7C15ULL + (uint64_t)w * 0x51ED27ULL + 1;
  list_t *local = build_list(&rng, (uint64_t)w, 50);
  for (long it = 0; it < g_iters; it++) {
    uint64_t r = rng_next(&rng) % 100;
    if (r < 28) {
      list_t *l = build_list(&rng, (uint64_t)w, 1 + (int)(rng_next(&rng) % 300));
      verify_list(l);
      if (rng_next(&rng) & 1) {
        int s = (int)(rng_next(&rng) % NSLOTS);
        pthread_mutex_lock(&g_slot_mu[s]);
        list_t *old = g_slots[s];
        g_slots[s] = l;
        pthread_mutex_unlock(&g_slot_mu[s]);
        verify_list(old);
      }
    } else if (r < 48) {
      int s = (int)(rng_next(&rng) % NSLOTS);
      pthread_mutex_lock(&g_slot_mu[s]);
      list_t *l = g_slots[s];
      g_slots[s] = NULL;
      pthread_mutex_unlock(&g_slot_mu[s]);
      if (l) {
        verify_list(l);
        mutate_list(l, &rng);
        verify_list(l);
        pthread_mutex_lock(&g_slot_mu[s]);
        if (!g_slots[s]) g_slots[s] = l;
        pthread_mutex_unlock(&g_slot_mu[s]);
      }
    } else if (r < 58) {
      verify_list(t_list);
      t_list = build_list(&rng, (uint64_t)w, 1 + (int)(rng_next(&rng) % 200));
    } else if (r < 68) {
      verify_list(local);
      mutate_list(local, &rng);
      if (local->count < 5) local = build_list(&rng, (uint64_t)w, 50);
    } else if (r < 72) {
      child_arg_t *ca = (child_arg_t *)cgc_alloc(sizeof *ca);
      CHECK(ca != NULL);
      ca->arg_list = build_list(&rng, (uint64_t)w, 1 + (int)(rng_next(&rng) % 100));
      ca->parent = w;
      ca->seed = rng_next(&rng);
      pthread_t t;
#if CORE_ASAN
      /* AddressSanitizer's pthread_create keeps the argument where no collector
         looks until the thread starts: keep a reference meanwhile. */
      g_asan_keep[w] = ca;
#endif
      CHECK(pthread_create(&t, NULL, child_thread, ca) == 0);
      ca = NULL; /* the new thread holds the only reference */
      garbage_burst(&rng);
      CHECK(pthread_join(t, NULL) == 0);
#if CORE_ASAN
      g_asan_keep[w] = NULL;
#endif
      pthread_mutex_lock(&g_mailbox_mu);
      list_t *got = g_mailbox[w];
      g_mailbox[w] = NULL;
      pthread_mutex_unlock(&g_mailbox_mu);
      CHECK(got != NULL && got->owner_tag == 0xC0DE);
      verify_list(got);
    } else if (r < 74) {
      cgc_collect();
    } else {
      garbage_burst(&rng);
    }
  }
  verify_list(local);
  verify_list(t_list);
  return NULL;
}

static void *collector(void *arg) {
  (void)arg;
  while (!atomic_load(&stop_collector)) {
    cgc_collect();
    atomic_fetch_add(&g_collects, 1);
    for (int i = 0; i < 20 && !atomic_load(&stop_collector); i++) sched_yield();
  }
  return NULL;
}

int main(int argc, char **argv) {
  g_seed = test_seed();
  if (argc > 1) g_iters = atol(argv[1]);
  for (int i = 0; i < NSLOTS; i++) pthread_mutex_init(&g_slot_mu[i], NULL);
  uint64_t t0 = now_ns();
  uint64_t gc0 = cgc_gc_count();
  pthread_t col, w[NW];
  CHECK(pthread_create(&col, NULL, collector, NULL) == 0);
  for (int i = 0; i < NW; i++) CHECK(pthread_create(&w[i], NULL, worker, (void *)(intptr_t)i) == 0);
  for (int i = 0; i < NW; i++) CHECK(pthread_join(w[i], NULL) == 0);
  atomic_store(&stop_collector, 1);
  CHECK(pthread_join(col, NULL) == 0);
  cgc_collect();
  for (int i = 0; i < NSLOTS; i++) verify_list(g_slots[i]);
  cgc_stats_t s = stats_now();
  fprintf(stderr, "%ld iterations x %d workers in %.2f s: %llu collections (%ld forced by the collector thread), %ld child threads, %llu MiB allocated, max pause %.2f ms\n",
          g_iters, NW, (double)(now_ns() - t0) / 1e9, (unsigned long long)(s.num_gc - gc0),
          atomic_load(&g_collects), atomic_load(&g_children), (unsigned long long)(s.total_alloc_bytes >> 20),
          (double)s.pause_max_ns / 1e6);
  CHECK(s.num_gc - gc0 >= 10);
  printf("core_stress: ok\n");
  return 0;
}
