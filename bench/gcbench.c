/*
 * Binary trees in the manner of GCBench (Ellis, Kovac, Boehm).
 *
 *   - a stretch tree of depth 18 is built and dropped;
 *   - a long-lived tree of depth 16 and a 500000-double array (noscan) stay
 *     live for the whole run;
 *   - for depths 4, 6, ..., 16, short-lived trees are built top-down
 *     (allocate a node, then populate its children) and bottom-up (children
 *     first), enough of them that each depth allocates about as many nodes
 *     as two stretch trees.
 *
 * Nodes are two pointers and two ints (24 bytes).  The collected backends
 * drop the short-lived trees; the malloc backends walk them and free every
 * node, as GCBench's manual-memory variants do.
 *
 * Output: RESULT bench=gcbench alloc=<name> time_ms=<total> ...
 */
#include "backend.h"

enum {
  kStretchTreeDepth   = 18,
  kLongLivedTreeDepth = 16,
  kArraySize          = 500000,
  kMinTreeDepth       = 4,
  kMaxTreeDepth       = 16,
};

typedef struct Node0 *Node;
struct Node0 {
  Node left;
  Node right;
  int i, j;
};

static Node new_node(Node l, Node r)
{
  Node n = bk_alloc(sizeof *n);
  n->left = l;
  n->right = r;
  n->i = 0;
  n->j = 0;
  return n;
}

static void free_tree(Node n)
{
#if BK_MANUAL
  while (n) {
    free_tree(n->left);
    Node r = n->right;
    bk_free(n);
    n = r;
  }
#else
  (void)n;
#endif
}

/* Nodes in a complete tree of depth i. */
static long tree_size(int i) { return (1L << (i + 1)) - 1; }

/* Number of trees of depth i to build so each depth does the same work. */
static long num_iters(int i) { return 2 * tree_size(kStretchTreeDepth) / tree_size(i); }

/* Top-down: the node exists before its children. */
static void populate(int depth, Node n)
{
  if (depth <= 0) return;
  depth--;
  n->left = new_node(NULL, NULL);
  n->right = new_node(NULL, NULL);
  populate(depth, n->left);
  populate(depth, n->right);
}

/* Bottom-up: children exist before the node. */
static Node make_tree(int depth)
{
  if (depth <= 0) return new_node(NULL, NULL);
  Node l = make_tree(depth - 1);
  Node r = make_tree(depth - 1);
  return new_node(l, r);
}

static long count_nodes(Node n)
{
  long c = 0;
  while (n) {
    c += 1 + count_nodes(n->left);
    n = n->right;
  }
  return c;
}

static int verbose;

static void time_construction(int depth)
{
  long iters = num_iters(depth);
  uint64_t t0 = bk_now_ns();
  for (long i = 0; i < iters; i++) {
    Node t = new_node(NULL, NULL);
    populate(depth, t);
    if (i == 0 && count_nodes(t) != tree_size(depth)) {
      fprintf(stderr, "gcbench: top-down tree of depth %d has wrong size\n", depth);
      exit(1);
    }
    free_tree(t);
  }
  uint64_t t1 = bk_now_ns();
  for (long i = 0; i < iters; i++) {
    Node t = make_tree(depth);
    if (i == 0 && count_nodes(t) != tree_size(depth)) {
      fprintf(stderr, "gcbench: bottom-up tree of depth %d has wrong size\n", depth);
      exit(1);
    }
    free_tree(t);
  }
  uint64_t t2 = bk_now_ns();
  if (verbose)
    fprintf(stderr, "  depth %2d: %6ld trees, top-down %7.1f ms, bottom-up %7.1f ms\n",
            depth, iters, (t1 - t0) / 1e6, (t2 - t1) / 1e6);
}

int main(void)
{
  verbose = getenv("BENCH_VERBOSE") != NULL;
  bk_init();
  bk_describe(stdout);

  uint64_t gc0 = bk_gc_count();
  uint64_t c0 = bk_cpu_ns();
  uint64_t t0 = bk_now_ns();

  /* Stretch the heap. */
  Node temp = make_tree(kStretchTreeDepth);
  free_tree(temp);
  temp = NULL;

  /* Long-lived data. */
  Node long_lived = new_node(NULL, NULL);
  populate(kLongLivedTreeDepth, long_lived);
  double *array = bk_alloc_noscan(kArraySize * sizeof(double));
  for (int i = 0; i < kArraySize / 2; i++)
    array[i] = 1.0 / i;
  uint64_t t_setup = bk_now_ns();

  for (int d = kMinTreeDepth; d <= kMaxTreeDepth; d += 2)
    time_construction(d);

  /* The long-lived data must have survived. */
  if (long_lived == NULL || array[1000] != 1.0 / 1000 ||
      count_nodes(long_lived) != tree_size(kLongLivedTreeDepth)) {
    fprintf(stderr, "gcbench: long-lived data damaged\n");
    return 1;
  }
  uint64_t t1 = bk_now_ns();
  uint64_t c1 = bk_cpu_ns();

  printf("RESULT bench=gcbench alloc=%s time_ms=%.1f setup_ms=%.1f cpu_ms=%.1f gcs=%" PRIu64
         " maxrss_kib=%ld\n",
         BK_NAME, (t1 - t0) / 1e6, (t_setup - t0) / 1e6, (c1 - c0) / 1e6, bk_gc_count() - gc0,
         bk_maxrss_kib());

  free_tree(long_lived);
  bk_free(array);
  return 0;
}
