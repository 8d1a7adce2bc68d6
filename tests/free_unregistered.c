/* cgc_free from a thread that collections do not stop (it called
   cgc_unregister_thread) while another thread collects in a loop.  The
   freed objects are live: reachable only through the tail of a long list,
   so a marking reaches their span late, and they sit in a span the main
   thread owns, which no sweep touches.  A free that looks at the span's
   marks in the middle of a marking must not take the object for one the
   last collection found dead (it would abort with "unreachable at the last
   collection").  Seeded delays (CGC_TEST_SEED) spread the frees over the
   collections' phases. */
#include "free_util.h"

#define CHAIN (FREE_ASAN ? 100000 : 500000)
#define LEAVES (FREE_ASAN ? 60 : 150) /* one free each */

typedef struct node {
  struct node *next;
  void *leaf;
} node_t;

static node_t *volatile chain; /* the only root of the list */
static node_t **tail;          /* malloc memory: not scanned */
static atomic_int stop;
static uint64_t seed;


static void *freer(void *arg) {
  (void)arg;
  uint64_t st = seed;
  for (int k = 0; k < LEAVES; k++) {
    node_t *n = tail[k];
    void *leaf = n->leaf;
    cgc_unregister_thread(); /* waits for a collection in progress */
    uint64_t spin = rng_next(&st) % 2000000u, t0 = now_ns();
    while (now_ns() - t0 < spin) {
    }
    cgc_free(leaf); /* still reachable: the list points to it */
    n->leaf = NULL;
  }
  return NULL;
}

int main(void) {
  seed = test_seed();
  /* The list first, then the leaves: 8-byte noscan objects, a class nothing
     else here uses, so that all of them are in spans of the main thread. */
  node_t *head = NULL;
  tail = calloc(LEAVES, sizeof *tail);
  CHECK(tail);
  for (int i = 0; i < CHAIN; i++) {
    node_t *n = cgc_alloc(sizeof *n);
    CHECK(n);
    n->next = head;
    head = n;
    if (i < LEAVES) tail[i] = n; /* the first made are the list's tail */
  }
  for (int i = 0; i < LEAVES; i++) {
    tail[i]->leaf = cgc_alloc_noscan(8);
    CHECK(tail[i]->leaf);
  }
  chain = head;
  head = NULL;
  pthread_t c, f;
  CHECK(pthread_create(&c, NULL, collect_until, &stop) == 0);
  CHECK(pthread_create(&f, NULL, freer, NULL) == 0);
  CHECK(pthread_join(f, NULL) == 0);
  atomic_store(&stop, 1);
  CHECK(pthread_join(c, NULL) == 0);
  int left = 0;
  for (int i = 0; i < LEAVES; i++) left += tail[i]->leaf != NULL;
  CHECKF(left == 0, "%d leaves not freed", left);
  printf("free_unregistered: %d frees, %llu collections: ok\n", LEAVES, (unsigned long long)cgc_gc_count());
  return 0;
}
