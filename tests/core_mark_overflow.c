/* Mark-stack overflow that repeats during its own recovery (docs/marking.md
   section 8).  With no memory left for the mark stack to grow (RLIMIT_AS at
   the process's virtual size, the first collection; one mark worker):
   - the marking overflows on a 16384-pointer array of small objects, and the
     big array it points to half-way (well past the stack's 4096 entries, and
     not among the last few candidates, which are marked once the stack is
     empty again) stays marked but unscanned;
   - the first rescan of the heap scans that big array at once, pushing its
     20000 nodes: it overflows again, and the nodes left unscanned lie at
     lower addresses than the array, already passed by that rescan;
   - so only a second rescan marks those nodes' leaves.
   Every leaf must survive with its contents.  Recovery that rescans once
   loses most of them. */
#include "core_util.h"

#include <sys/resource.h>

#if !CORE_ASAN
#define NNODES 20000
#define NFILL 16384 /* one mark chunk of pointers (128 KiB) */
#define BIG_AT 8000

typedef struct node {
  unsigned char *leaf;
  uint64_t tag;
} node_t;

static void **g_fill; /* root: NFILL pointers, fill[BIG_AT] to the big array */

static __attribute__((noinline)) void build(void) {
  node_t **nodes = malloc(NNODES * sizeof *nodes); /* not a root */
  CHECK(nodes != NULL);
  for (int i = 0; i < NNODES; i++) {
    nodes[i] = cgc_alloc(sizeof(node_t));
    CHECK(nodes[i] != NULL);
    nodes[i]->leaf = cgc_alloc_noscan(32);
    CHECK(nodes[i]->leaf != NULL);
    memset(nodes[i]->leaf, (int)(i % 251) + 1, 32);
    nodes[i]->tag = (uint64_t)i;
  }
  void **fill = cgc_alloc(NFILL * sizeof(void *));
  CHECK(fill != NULL);
  for (int j = 0; j < NFILL; j++) CHECK(j == BIG_AT || (fill[j] = cgc_alloc(16)) != NULL);
  node_t **big = cgc_alloc(NNODES * sizeof(node_t *));
  CHECK(big != NULL);
  CHECKF((uintptr_t)nodes[NNODES - 1] < (uintptr_t)big, "the nodes (%p) are not below the array (%p)",
         (void *)nodes[NNODES - 1], (void *)big);
  for (int i = 0; i < NNODES; i++) big[i] = nodes[i];
  fill[BIG_AT] = big;
  g_fill = fill;
  free(nodes);
}

static __attribute__((noinline)) int lost_leaves(void) {
  node_t **big = g_fill[BIG_AT];
  int lost = 0;
  for (int i = 0; i < NNODES; i++) {
    node_t *n = big[i];
    CHECKF(cgc_base(n) == n && n->tag == (uint64_t)i, "node %d (%p) was collected", i, (void *)n);
    unsigned char *l = n->leaf;
    bool ok = cgc_base(l) == l;
    for (int k = 0; ok && k < 32; k++) ok = l[k] == (unsigned char)(i % 251 + 1);
    lost += !ok;
  }
  return lost;
}

int main(void) {
  cgc_init();
  cgc_set_gc_percent(-1); /* the first collection is the one under the limit */
  build();
  clear_stack();
  struct rlimit rl = {vsize_bytes(), vsize_bytes()};
  CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
  cgc_collect();
  int lost = lost_leaves();
  CHECKF(lost == 0, "%d of %d leaves reachable through nodes left unscanned by an overflow were collected", lost,
         NNODES);
  printf("core_mark_overflow: ok\n");
  return 0;
}
#else
int main(void) {
  printf("core_mark_overflow: ok (not run under AddressSanitizer: it reserves more address space than the limit "
         "leaves)\n");
  return 0;
}
#endif
