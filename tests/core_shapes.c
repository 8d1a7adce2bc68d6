/* Marking follows every shape of object graph: long singly and doubly
   linked lists (which the marker follows object to object without queueing
   them), lists through interior pointers, lists alternating small and large
   objects, combs whose teeth are noscan leaves, a wide binary tree, and a
   cycle.  Each structure is reachable only from a global; after
   collections, garbage is allocated and filled so that any slot the
   collector wrongly freed is overwritten, and every node's stamp is
   checked.  Run twice by ctest: plainly and with CGC_DEBUG=checkmark=1. */
#include "core_util.h"

#define N_LIST 200000
#define N_DLIST 100000
#define N_MIXED 400
#define N_COMB 50000
#define TREE_DEPTH 16

struct snode {
  struct snode *next;
  uint64_t stamp;
  uint64_t pad[2];
};
struct dnode {
  struct dnode *next, *prev;
  uint64_t stamp;
};
/* Linked through a pointer to the next node's middle. */
struct inode {
  uint64_t stamp;
  char *next_mid; /* points at the next node's 'mid' field */
  uint64_t mid;
  uint64_t pad;
};
struct tnode {
  struct tnode *l, *r;
  uint64_t stamp;
};

static struct snode *g_list;
static struct dnode *g_dlist;
static struct inode *g_ilist;
static struct snode *g_mixed;
static struct snode *g_comb; /* each node's pad[0] holds a noscan leaf */
static struct tnode *g_tree;
static struct snode *g_cycle;

static uint64_t stamp_of(uint64_t kind, uint64_t i) { return (kind << 40) ^ (i * 0x9E3779B97F4A7C15ull >> 8); }

static struct tnode *make_tree(int depth, uint64_t *next) {
  if (depth == 0) return NULL;
  struct tnode *t = cgc_alloc(sizeof *t);
  CHECK(t != NULL);
  t->stamp = stamp_of(6, (*next)++);
  t->l = make_tree(depth - 1, next);
  t->r = make_tree(depth - 1, next);
  return t;
}

static uint64_t check_tree(const struct tnode *t, uint64_t *next) {
  if (!t) return 0;
  CHECKF(t->stamp == stamp_of(6, *next), "tree node %p: stamp %#llx", (const void *)t, (unsigned long long)t->stamp);
  (*next)++;
  return 1 + check_tree(t->l, next) + check_tree(t->r, next);
}

/* A singly linked list of n nodes stamped with kind, newest first (the
   marker walks memory downwards): every odd node of big bytes if big, and
   each node holding a noscan leaf in pad[0] if leaves. */
static struct snode *make_slist(uint64_t kind, uint64_t n, size_t big, bool leaves) {
  struct snode *h = NULL;
  for (uint64_t i = 0; i < n; i++) {
    struct snode *x = cgc_alloc(big && i % 2 ? big : sizeof *x);
    CHECK(x != NULL);
    x->next = h;
    x->stamp = stamp_of(kind, i);
    if (leaves) {
      uint64_t *leaf = cgc_alloc_noscan(24);
      CHECK(leaf != NULL);
      leaf[0] = leaf[2] = stamp_of(kind, i);
      x->pad[0] = (uint64_t)(uintptr_t)leaf;
    }
    h = x;
  }
  return h;
}

static void check_slist(const struct snode *h, uint64_t kind, uint64_t n, bool leaves) {
  uint64_t i = n;
  for (const struct snode *x = h; x; x = x->next) {
    CHECKF(i > 0, "list %llu is longer than %llu", (unsigned long long)kind, (unsigned long long)n);
    i--;
    CHECKF(x->stamp == stamp_of(kind, i), "list %llu: node %llu at %p: stamp %#llx", (unsigned long long)kind,
           (unsigned long long)i, (const void *)x, (unsigned long long)x->stamp);
    if (leaves) {
      const uint64_t *leaf = (const uint64_t *)(uintptr_t)x->pad[0];
      CHECKF(leaf[0] == stamp_of(kind, i) && leaf[2] == stamp_of(kind, i) && leaf[1] == 0,
             "list %llu: the leaf %p of node %llu lost its stamp", (unsigned long long)kind, (const void *)leaf,
             (unsigned long long)i);
    }
  }
  CHECK(i == 0);
}

static __attribute__((noinline)) void build(void) {
  g_list = make_slist(1, N_LIST, 0, false);
  /* Doubly linked: every node's prev is already marked when it is reached. */
  struct dnode *d = NULL;
  for (uint64_t i = 0; i < N_DLIST; i++) {
    struct dnode *x = cgc_alloc(sizeof *x);
    CHECK(x != NULL);
    x->next = d;
    x->stamp = stamp_of(2, i);
    if (d) d->prev = x;
    d = x;
  }
  g_dlist = d;
  /* Through interior pointers. */
  struct inode *in = NULL;
  for (uint64_t i = 0; i < N_DLIST; i++) {
    struct inode *x = cgc_alloc(sizeof *x);
    CHECK(x != NULL);
    x->stamp = stamp_of(3, i);
    x->next_mid = in ? (char *)&in->mid : NULL;
    in = x;
  }
  g_ilist = in;
  /* Small and large (40 KiB) nodes in turn. */
  g_mixed = make_slist(4, N_MIXED, 40 * 1024, false);
  /* A comb: each node holds a noscan leaf. */
  g_comb = make_slist(5, N_COMB, 0, true);
  uint64_t next = 0;
  g_tree = make_tree(TREE_DEPTH, &next);
  /* A cycle of 1000 nodes, reachable from one of them. */
  struct snode *first = cgc_alloc(sizeof *first), *prev = first;
  CHECK(first != NULL);
  first->stamp = stamp_of(7, 0);
  for (uint64_t i = 1; i < 1000; i++) {
    struct snode *x = cgc_alloc(sizeof *x);
    CHECK(x != NULL);
    x->stamp = stamp_of(7, i);
    prev->next = x;
    prev = x;
  }
  prev->next = first;
  g_cycle = first;
}

/* Garbage filled with ones: a wrongly freed slot that is reused loses its
   stamp (allocations come back zeroed, the fill overwrites them). */
static __attribute__((noinline)) void churn_garbage(void) {
  for (int i = 0; i < 200000; i++) {
    size_t n = (size_t)(16 + (test_rand() % 200) * 8);
    void *p = cgc_alloc(n);
    CHECK(p != NULL);
    memset(p, 0xff, n);
  }
  for (int i = 0; i < 200; i++) {
    void *p = cgc_alloc(40 * 1024);
    CHECK(p != NULL);
    memset(p, 0xff, 40 * 1024);
  }
}

static void verify(void) {
  check_slist(g_list, 1, N_LIST, false);
  check_slist(g_mixed, 4, N_MIXED, false);
  check_slist(g_comb, 5, N_COMB, true);
  uint64_t i = N_DLIST;
  struct dnode *after = NULL;
  for (struct dnode *x = g_dlist; x; x = x->next) {
    i--;
    CHECKF(x->stamp == stamp_of(2, i), "doubly linked node %llu at %p: stamp %#llx", (unsigned long long)i,
           (void *)x, (unsigned long long)x->stamp);
    CHECK(x->prev == after);
    after = x;
  }
  CHECK(i == 0);
  i = N_DLIST;
  for (struct inode *x = g_ilist; x; x = x->next_mid ? (struct inode *)(x->next_mid - offsetof(struct inode, mid)) : NULL) {
    i--;
    CHECKF(x->stamp == stamp_of(3, i), "interior-linked node %llu at %p: stamp %#llx", (unsigned long long)i,
           (void *)x, (unsigned long long)x->stamp);
  }
  CHECK(i == 0);
  uint64_t next = 0;
  CHECK(check_tree(g_tree, &next) == (1u << TREE_DEPTH) - 1);
  struct snode *x = g_cycle;
  for (uint64_t k = 0; k < 2000; k++, x = x->next)
    CHECKF(x->stamp == stamp_of(7, k % 1000), "cycle node %llu at %p: stamp %#llx", (unsigned long long)(k % 1000),
           (void *)x, (unsigned long long)x->stamp);
  CHECK(x == g_cycle);
}

int main(void) {
  cgc_init();
  test_seed();
  build();
  for (int round = 0; round < 3; round++) {
    cgc_collect();
    churn_garbage();
    cgc_collect();
    churn_garbage();
    verify();
  }
  /* Everything is reachable: the live heap holds at least all of it. */
  cgc_collect();
  cgc_stats_t st = stats_now();
  size_t want = N_LIST * sizeof(struct snode) + N_DLIST * (sizeof(struct dnode) + sizeof(struct inode)) +
                N_MIXED / 2 * (40 * 1024 + sizeof(struct snode)) + N_COMB * (sizeof(struct snode) + 24) +
                (((size_t)1 << TREE_DEPTH) - 1) * sizeof(struct tnode) + 1000 * sizeof(struct snode);
  CHECKF(st.last_live_bytes >= want, "live bytes %zu < %zu", (size_t)st.last_live_bytes, want);
  printf("core_shapes: ok (%zu live bytes)\n", (size_t)st.last_live_bytes);
  return 0;
}
