/*
 * Pause of a forced full collection with a large live heap of small objects.
 *
 * The live data is a forest of complete binary trees (16 levels, 65535
 * nodes each) hanging off one scanned root array.  Node sizes are 16, 32,
 * 48 and 64 bytes, chosen by a hash of the node's place in the forest (40
 * bytes on average); every node starts with its two child pointers and the
 * rest holds odd, non-pointer tags.  Trees are added until the bytes
 * requested reach each target size (default 512 MiB, then 1024 MiB, in one
 * process).  Collections are disabled while building (unless -G), so the
 * timed collections are the only ones that see the whole heap.
 *
 * Layouts (-l):
 *   shuffled  (default) the nodes added for one size are allocated in a
 *             random order, so almost every pointer leads somewhere far
 *             away: marking is bound by memory latency, as in a heap built
 *             up over a long time;
 *   tree      children are allocated just before their parent, so marking
 *             walks memory in allocation order (the cache-friendly case).
 *
 * At each size: one warm-up collection (first_*), then R timed collections
 * (default 3), reported as medians:
 *   pause_ms  the stop-the-world pause: cgc's own last_pause_ns; for bdwgc,
 *             the wall time of GC_gcollect (it holds the allocation lock
 *             throughout and keeps the world stopped while marking)
 *   wall_ms   wall time of the collect call
 * At the end every tree is walked and every node's tags checked.
 *
 *   pause [-s MiB[,MiB...]] [-r REPEATS] [-l shuffled|tree] [-G]
 *
 * Output: RESULT bench=pause alloc=<name> layout=<l> live_mib=<size> pause_ms=<x> ...
 */
#include "backend.h"

#include <unistd.h>

#if !BK_GC
#  error "the pause benchmark needs a collected backend"
#endif

#define TREE_DEPTH 15                              /* levels 0..15 */
#define TREE_NODES ((1u << (TREE_DEPTH + 1)) - 1)  /* 65535 nodes, about 2.5 MiB */
#define MAX_SIZES  16
#define MAX_REPS   64

typedef struct node node_t;
struct node {
  node_t *left;
  node_t *right;
  uint64_t tag[];      /* 0, 2, 4 or 6 words */
};

static const size_t node_sizes[4] = { 16, 32, 48, 64 };

static node_t **roots;          /* the forest; a scanned heap object */
static size_t nroots, roots_cap;
static uint64_t nodes_built;
static uint64_t bytes_built;    /* bytes requested so far */
static int gc_while_building;
static int shuffled = 1;

/* Every node has a slot: tree * TREE_NODES + position, the position
   numbering a complete binary tree (children of i are 2i+1 and 2i+2).
   The slot fixes the node's size and the tags it holds. */
static inline size_t size_of_slot(uint64_t slot)
{
  return node_sizes[(slot * 0x9e3779b97f4a7c15ull) >> 62];
}
static inline unsigned tag_words(uint64_t slot) { return (unsigned)(size_of_slot(slot) / 8 - 2); }
static inline uint64_t tag_of(uint64_t slot, unsigned w) { return ((slot * 8 + w) << 1) | 1; }

static node_t *new_node(uint64_t slot, node_t *l, node_t *r)
{
  size_t size = size_of_slot(slot);
  node_t *n = bk_alloc(size);
  n->left = l;
  n->right = r;
  unsigned words = tag_words(slot);
  for (unsigned w = 0; w < words; w++)
    n->tag[w] = tag_of(slot, w);
  nodes_built++;
  bytes_built += size;
  return n;
}

/* Layout "tree": children are allocated just before their parent, so the
   marking order follows the allocation order (the cache-friendly case). */
static node_t *build_tree(uint64_t base, uint64_t pos, int depth)
{
  node_t *l = NULL, *r = NULL;
  if (depth > 0) {
    l = build_tree(base, 2 * pos + 1, depth - 1);
    r = build_tree(base, 2 * pos + 2, depth - 1);
  }
  return new_node(base + pos, l, r);
}

/* Layout "shuffled": the nodes of all the trees added for one size are
   allocated in a random order of their slots, so each pointer lands on a
   random place in the whole new part of the heap (marking is bound by
   memory latency, as in a heap built up over a long time). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static inline uint64_t rng(void)
{
  uint64_t x = rng_state;   /* xorshift64* */
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng_state = x;
  return x * 0x2545f4914f6cdd1dull;
}

static void build_shuffled(size_t first_tree, size_t ntrees)
{
  size_t n = ntrees * TREE_NODES;
  uint64_t base = (uint64_t)first_tree * TREE_NODES;
  uint32_t *order = malloc(n * sizeof *order);
  /* While collections are off, a plain malloc'd array may hold the only
     pointers to the new nodes; otherwise it must be a scanned object. */
  node_t **a = gc_while_building ? bk_alloc(n * sizeof *a) : malloc(n * sizeof *a);
  if (!order || !a) bk_oom(n * sizeof *a);
  for (size_t i = 0; i < n; i++)
    order[i] = (uint32_t)i;
  for (size_t i = n - 1; i > 0; i--) {
    size_t j = (size_t)(rng() % (i + 1));
    uint32_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  for (size_t k = 0; k < n; k++)
    a[order[k]] = new_node(base + order[k], NULL, NULL);
  free(order);
  for (size_t t = 0; t < ntrees; t++) {
    node_t **b = a + t * TREE_NODES;
    for (size_t i = 0; 2 * i + 2 < TREE_NODES; i++) {
      b[i]->left = b[2 * i + 1];
      b[i]->right = b[2 * i + 2];
    }
    roots[first_tree + t] = b[0];
  }
  if (gc_while_building) {
    memset(a, 0, n * sizeof *a);
  } else {
    free(a);
  }
}

/* Walks a tree: the shape must be complete and every node's tags intact. */
static long check(const node_t *n, uint64_t base, uint64_t pos, int depth)
{
  long c = 0;
  if (depth > 0) {
    if (!n->left || !n->right) return -1;
    long a = check(n->left, base, 2 * pos + 1, depth - 1);
    if (a < 0) return -1;
    long b = check(n->right, base, 2 * pos + 2, depth - 1);
    if (b < 0) return -1;
    c = a + b;
  } else if (n->left || n->right) {
    return -1;
  }
  unsigned words = tag_words(base + pos);
  for (unsigned w = 0; w < words; w++)
    if (n->tag[w] != tag_of(base + pos, w)) return -1;
  return c + 1;
}

static uint64_t bytes_of_tree(size_t tree)
{
  uint64_t b = 0, base = (uint64_t)tree * TREE_NODES;
  for (uint64_t pos = 0; pos < TREE_NODES; pos++)
    b += size_of_slot(base + pos);
  return b;
}

/* Adds whole trees until the bytes requested reach the target. */
static void build_until(uint64_t target_bytes)
{
  size_t ntrees = 0;
  uint64_t b = bytes_built;
  while (b < target_bytes) {
    if (nroots + ntrees == roots_cap) {
      fprintf(stderr, "pause: root array too small\n");
      exit(1);
    }
    b += bytes_of_tree(nroots + ntrees);
    ntrees++;
  }
  if (shuffled) {
    if (ntrees) build_shuffled(nroots, ntrees);
  } else {
    for (size_t i = 0; i < ntrees; i++)
      roots[nroots + i] = build_tree((uint64_t)(nroots + i) * TREE_NODES, 0, TREE_DEPTH);
  }
  nroots += ntrees;
}

static size_t parse_sizes(const char *s, unsigned long *out)
{
  size_t n = 0;
  while (*s && n < MAX_SIZES) {
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || v == 0 || (n && v <= out[n - 1])) {
      fprintf(stderr, "pause: -s wants ascending MiB sizes, e.g. 512,1024\n");
      exit(2);
    }
    out[n++] = v;
    s = *end == ',' ? end + 1 : end;
  }
  return n;
}

static double ms(uint64_t ns) { return (double)ns / 1e6; }

int main(int argc, char **argv)
{
  unsigned long sizes[MAX_SIZES];
  size_t nsizes = parse_sizes("512,1024", sizes);
  int reps = 3, opt;
  while ((opt = getopt(argc, argv, "s:r:l:G")) != -1) {
    switch (opt) {
    case 's': nsizes = parse_sizes(optarg, sizes); break;
    case 'r': reps = atoi(optarg); break;
    case 'G': gc_while_building = 1; break;
    case 'l':
      if (strcmp(optarg, "shuffled") == 0) {
        shuffled = 1;
      } else if (strcmp(optarg, "tree") == 0) {
        shuffled = 0;
      } else {
        fprintf(stderr, "pause: -l shuffled|tree\n");
        return 2;
      }
      break;
    default:
      fprintf(stderr, "usage: %s [-s MiB[,MiB...]] [-r repeats] [-l shuffled|tree] [-G]\n", argv[0]);
      return 2;
    }
  }
  if (reps < 1 || reps > MAX_REPS) {
    fprintf(stderr, "pause: 1 <= repeats <= %d\n", MAX_REPS);
    return 2;
  }

  bk_init();

  /* Room for the largest size (nodes average 40 bytes; 32 leaves slack). */
  uint64_t tree_bytes_min = (uint64_t)TREE_NODES * 32;
  roots_cap = (size_t)(((uint64_t)sizes[nsizes - 1] << 20) / tree_bytes_min) + 4;
  roots = bk_alloc(roots_cap * sizeof *roots);
  for (size_t i = 0; i < roots_cap; i++)
    roots[i] = NULL;

  for (size_t si = 0; si < nsizes; si++) {
    uint64_t target = (uint64_t)sizes[si] << 20;
    uint64_t gc_before_build = bk_gc_count();
    if (!gc_while_building) bk_gc_disable();
    uint64_t b0 = bk_now_ns();
    build_until(target);
    uint64_t b1 = bk_now_ns();
    if (!gc_while_building) bk_gc_enable();
    uint64_t build_gcs = bk_gc_count() - gc_before_build;

    uint64_t pause[MAX_REPS], wall[MAX_REPS], first_ns = 0, first_pause = 0;
#if defined(BACKEND_BDWGC)
    unsigned long full0 = 0;
#endif
    for (int r = -1; r < reps; r++) {
#if defined(BACKEND_BDWGC)
      if (r == 0) full0 = GC_get_full_gc_total_time();
#endif
      uint64_t t0 = bk_now_ns();
      bk_collect();
      uint64_t t1 = bk_now_ns(), p;
      if (!bk_last_pause_ns(&p)) p = t1 - t0;
      if (r < 0) {
        first_ns = t1 - t0;
        first_pause = p;
      } else {
        wall[r] = t1 - t0;
        pause[r] = p;
      }
    }
    uint64_t pmax = pause[0], pmin = pause[0];
    for (int r = 1; r < reps; r++) {
      if (pause[r] > pmax) pmax = pause[r];
      if (pause[r] < pmin) pmin = pause[r];
    }

    printf("RESULT bench=pause alloc=%s layout=%s live_mib=%lu pause_ms=%.1f wall_ms=%.1f"
           " pause_min_ms=%.1f pause_max_ms=%.1f first_pause_ms=%.1f first_wall_ms=%.1f"
           " objects=%" PRIu64 " live_bytes=%" PRIu64 " heap_mib=%.0f build_ms=%.0f"
           " build_gcs=%" PRIu64,
           BK_NAME, shuffled ? "shuffled" : "tree", sizes[si], ms(bk_median_u64(pause, (size_t)reps)),
           ms(bk_median_u64(wall, (size_t)reps)), ms(pmin), ms(pmax), ms(first_pause),
           ms(first_ns), nodes_built, bytes_built, (double)bk_heap_bytes() / (1 << 20),
           ms(b1 - b0), build_gcs);
#if defined(BACKEND_BDWGC)
    printf(" full_gc_avg_ms=%.1f markers=%d", (double)(GC_get_full_gc_total_time() - full0) / reps,
           GC_get_parallel() + 1);
#elif defined(BACKEND_CGC)
    {
      cgc_stats_t s;
      cgc_read_stats(&s);
      printf(" found_live_bytes=%" PRIu64 " mark_workers=%" PRIu64 " stats_pause_max_ms=%.1f",
             s.last_live_bytes, s.mark_workers, ms(s.pause_max_ns));
    }
#endif
    printf(" maxrss_kib=%ld\n", bk_maxrss_kib());
    fflush(stdout);
  }

  /* Every node must have survived intact. */
  long total = 0;
  for (size_t i = 0; i < nroots; i++) {
    long c = check(roots[i], (uint64_t)i * TREE_NODES, 0, TREE_DEPTH);
    if (c < 0) {
      fprintf(stderr, "pause: tree %zu damaged after collection\n", i);
      return 1;
    }
    total += c;
  }
  if ((uint64_t)total != nodes_built) {
    fprintf(stderr, "pause: %ld nodes reachable, %" PRIu64 " built\n", total, nodes_built);
    return 1;
  }
  bk_describe(stdout);
  return 0;
}
