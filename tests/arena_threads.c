/* Arenas on many threads at once, under collections (seeded: CGC_TEST_SEED).
   Each worker builds lists of arena nodes that point to stamped heap
   objects (reachable only through the arena), checks them after churning
   garbage, and hands finished arenas to another thread, which checks them
   once more and frees them.  The heap objects must survive while their arena
   lives; memory freed with its arena is recycled. */
#include "free_util.h"

#define NWORKERS 4
#define QCAP 64

struct node {
  struct node *next;
  unsigned char *obj; /* stamped heap object, reachable only from here */
  size_t size;
  uint64_t seed;
};

typedef struct {
  cgc_arena_t *arena;
  uintptr_t head; /* hidden: the arena keeps everything */
  int count;
} job_t;

static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static job_t queue[QCAP];
static int qlen;
static uint64_t base_seed;
static atomic_int checked, freed_other;

static void verify_list(uintptr_t hidden_head, int count) {
  int n = 0;
  for (struct node *p = reveal_ptr(hidden_head); p; p = p->next, n++) {
    CHECKF(cgc_base(p->obj) == p->obj, "object %p held by an arena was collected", (void *)p->obj);
    CHECKF(intact(p->obj, p->size, p->seed), "object %p held by an arena was reused", (void *)p->obj);
  }
  CHECK(n == count);
  atomic_fetch_add(&checked, 1);
}

static __attribute__((noinline)) job_t build(uint64_t *st) {
  job_t j = {cgc_arena_new(), 0, 0};
  CHECK(j.arena != NULL);
  struct node *head = NULL;
  int n = 50 + (int)(rng_next(st) % 500);
  for (int i = 0; i < n; i++) {
    struct node *p = cgc_arena_alloc(j.arena, sizeof *p);
    p->size = 8 + (size_t)(rng_next(st) % 600);
    p->seed = rng_next(st);
    p->obj = cgc_alloc_noscan(p->size);
    fill(p->obj, p->size, p->seed);
    if (rng_next(st) % 8 == 0) consume(cgc_arena_alloc_noscan(j.arena, 1000)); /* noscan neighbours */
    p->next = head;
    head = p;
  }
  j.head = hide_ptr(head);
  j.count = n;
  return j;
}

static bool q_put(job_t j) {
  pthread_mutex_lock(&qlock);
  bool ok = qlen < QCAP;
  if (ok) queue[qlen++] = j;
  pthread_mutex_unlock(&qlock);
  return ok;
}

static bool q_take(job_t *j) {
  pthread_mutex_lock(&qlock);
  bool ok = qlen > 0;
  if (ok) *j = queue[--qlen];
  pthread_mutex_unlock(&qlock);
  return ok;
}

static void *worker(void *arg) {
  uint64_t st = base_seed + (uint64_t)(uintptr_t)arg * 104729 + 3;
  int rounds = FREE_ASAN ? 60 : 300;
  for (int r = 0; r < rounds; r++) {
    volatile job_t j = build(&st);
    clear_stack();
    for (int g = 0; g < 300; g++) consume(cgc_alloc(64 + (size_t)(rng_next(&st) % 2000))); /* garbage */
    verify_list(j.head, j.count);
    job_t done = {j.arena, j.head, j.count};
    if (!q_put(done)) cgc_arena_free(done.arena);
    job_t other;
    if (q_take(&other)) {
      verify_list(other.head, other.count);
      cgc_arena_free(other.arena);
      atomic_fetch_add(&freed_other, 1);
    }
  }
  return NULL;
}

int main(void) {
  base_seed = test_seed();
  uint64_t gc0 = cgc_gc_count();
  pthread_t t[NWORKERS];
  for (int i = 0; i < NWORKERS; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) == 0);
  for (int i = 0; i < NWORKERS; i++) CHECK(pthread_join(t[i], NULL) == 0);
  job_t j;
  while (q_take(&j)) {
    verify_list(j.head, j.count);
    cgc_arena_free(j.arena);
  }
  CHECK(stats().arena_bytes == 0);
  clear_stack();
  cgc_collect();
  cgc_stats_t s = stats();
  printf("arena_threads: %d lists checked, %d arenas freed by another thread, %llu collections, %llu MiB mapped\n",
         atomic_load(&checked), atomic_load(&freed_other), (unsigned long long)(s.num_gc - gc0),
         (unsigned long long)(s.mapped_bytes >> 20));
  CHECK(s.num_gc - gc0 >= 5);
  CHECK(s.mapped_bytes < 128 * MIB);
  printf("arena_threads: ok\n");
  return 0;
}
