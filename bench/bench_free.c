/*
 * Explicit free, growable buffers and arenas, measured against other
 * allocators.  Compiled once per allocator (bench/free.cmake):
 *   BACKEND_CGC       cgc_alloc / cgc_free / cgc_realloc / arenas
 *   BACKEND_GLIBC     malloc / free / realloc
 *   BACKEND_MIMALLOC  mi_malloc / mi_free / mi_realloc
 *   BACKEND_BDWGC     GC_MALLOC / GC_FREE / GC_REALLOC
 *
 * usage: free_<alloc> BENCH [options]; every measurement prints one line
 *   RESULT bench=... alloc=... variant=... <metric>=<value> ...
 *
 * Benchmarks
 *   builder -w W -n N     N strings, each made of W writes of 8-32 bytes into a
 *                         buffer that starts at 8 bytes and doubles:
 *                         variant=realloc grows with realloc (cgc_realloc:
 *                         the old block is freed at once); variant=drop (cgc,
 *                         bdwgc) allocates a new buffer, copies, and leaves the
 *                         old one to the collector.  The finished string is
 *                         read, then dropped (collected allocators) or freed;
 *                         -F (variant=realloc_free) frees it with the collected
 *                         allocators too; -l MiB keeps a live heap of that size
 *                         (param=W<W>_live<MiB>MiB) for the collector to mark.
 *   pair -s SIZE -n N     N allocate/free pairs (variant=lifo: free at once;
 *                         variant=ring: free the object allocated 64 pairs
 *                         earlier); SIZE 0 cycles through 16..256 bytes.
 *   nodes -n N -r R       R rounds of: N 32-byte list nodes, a walk, release.
 *                         cgc: variant=arena (cgc_arena_alloc, cgc_arena_free)
 *                         and variant=collected (cgc_alloc, dropped); others:
 *                         malloc+free of each node, or GC_MALLOC dropped.
 *   duel -s SIZE -n N     cgc only: the pair loops of cgc and of glibc's malloc
 *                         in one process, alternating blocks of N/101 pairs;
 *                         prints the medians and the median (and quartiles)
 *                         of the per-block ratios cgc/glibc.
 *   allocpath -n N        cgc only: cgc_alloc of 32 bytes, dropped, N times;
 *                         variant=nofree in a process that never frees,
 *                         variant=withfree after (and between measurements)
 *                         heavy cgc_free traffic on the same size classes.
 *   calls -n N            cgc only, for callgrind: N cgc_alloc calls (dropped)
 *                         in alloc_drop_loop, then N cgc_alloc + cgc_free
 *                         pairs in pair_loop, then N/10 buffers grown from 8
 *                         to 2048 bytes by cgc_realloc (8 moves each) in
 *                         grow_loop.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(BACKEND_CGC)
#include "cgc.h"
#define NAME "cgc"
#define GC 1
static void init(void) { cgc_init(); }
static void *bk_alloc(size_t n) { return cgc_alloc(n); }
static void *bk_alloc_bytes(size_t n) { return cgc_alloc_noscan(n); }
static void bk_free(void *p) { cgc_free(p); }
static void *bk_realloc(void *p, size_t n) { return cgc_realloc(p, n); }
#elif defined(BACKEND_GLIBC)
#define NAME "glibc"
#define GC 0
static void init(void) {}
static void *bk_alloc(size_t n) { return malloc(n); }
static void *bk_alloc_bytes(size_t n) { return malloc(n); }
static void bk_free(void *p) { free(p); }
static void *bk_realloc(void *p, size_t n) { return realloc(p, n); }
#elif defined(BACKEND_MIMALLOC)
#include <mimalloc.h>
#define NAME "mimalloc"
#define GC 0
static void init(void) {}
static void *bk_alloc(size_t n) { return mi_malloc(n); }
static void *bk_alloc_bytes(size_t n) { return mi_malloc(n); }
static void bk_free(void *p) { mi_free(p); }
static void *bk_realloc(void *p, size_t n) { return mi_realloc(p, n); }
#elif defined(BACKEND_BDWGC)
#include <gc/gc.h>
#define NAME "bdwgc"
#define GC 1
static void init(void) { GC_INIT(); }
static void *bk_alloc(size_t n) { return GC_MALLOC(n); }
static void *bk_alloc_bytes(size_t n) { return GC_MALLOC_ATOMIC(n); }
static void bk_free(void *p) { GC_FREE(p); }
static void *bk_realloc(void *p, size_t n) { return GC_REALLOC(p, n); }
#else
#error "define BACKEND_CGC, BACKEND_GLIBC, BACKEND_MIMALLOC or BACKEND_BDWGC"
#endif

#define NOINLINE __attribute__((noinline))

static inline void escape(const void *p) { __asm__ volatile("" ::"r"(p) : "memory"); }

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time of the whole process: the collector's helper threads count too. */
static uint64_t cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

typedef struct {
  uint64_t wall, cpu, gcs;
} meter_t;

static uint64_t gc_count(void);

static meter_t meter_start(void) { return (meter_t){now_ns(), cpu_ns(), gc_count()}; }

/* One result line: per-unit wall-clock and CPU nanoseconds. */
static void report(meter_t m, const char *bench, const char *variant, const char *param, double units) {
  uint64_t wall = now_ns() - m.wall, cpu = cpu_ns() - m.cpu, gcs = gc_count() - m.gcs;
  printf("RESULT bench=%s alloc=%s variant=%s param=%s units=%.0f wall_ns=%.2f cpu_ns=%.2f gcs=%" PRIu64 "\n", bench,
         NAME, variant, param, units, (double)wall / units, (double)cpu / units, gcs);
  fflush(stdout);
}

static void oom(size_t n) {
  fprintf(stderr, "allocation of %zu bytes failed\n", n);
  exit(3);
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static inline uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static uint64_t gc_count(void) {
#if defined(BACKEND_CGC)
  return cgc_gc_count();
#elif defined(BACKEND_BDWGC)
  return (uint64_t)GC_get_gc_no();
#else
  return 0;
#endif
}

/* ---- builder --------------------------------------------------------------------- */

static char source[128];
static unsigned char wsize[4096]; /* write sizes, 8..32, drawn once */

/* Copy 8..32 bytes with four overlapping word moves, at offsets 0,
   min(8, k-8), max(k-16, 0) and k-8 (no gap between them for any k in
   8..32), without a branch: the sizes are random, and a branch on them
   would be mispredicted about every third write, which would cost more
   than the copy and be the same in every variant (Go's builder benchmarks
   write one fixed string, so their memmove's size branches predict). */
static inline void copy_8_32(char *d, const char *s, size_t k) {
  size_t m1 = k - 8 < 8 ? k - 8 : 8, m2 = k >= 16 ? k - 16 : 0;
  uint64_t a, b, c, e;
  memcpy(&a, s, 8);
  memcpy(&b, s + m1, 8);
  memcpy(&c, s + m2, 8);
  memcpy(&e, s + k - 8, 8);
  memcpy(d, &a, 8);
  memcpy(d + m1, &b, 8);
  memcpy(d + m2, &c, 8);
  memcpy(d + k - 8, &e, 8);
}

/* drop: 0 grow with realloc, 1 allocate anew and drop the old buffer;
   free_result: the finished string is freed (else dropped, for collectors). */
static NOINLINE uint64_t build_strings(int w, long n, int drop, int free_result) {
  uint64_t check = 0;
  unsigned wi = 0;
  for (long s = 0; s < n; s++) {
    size_t cap = 8, len = 0;
    char *buf = bk_alloc_bytes(cap);
    if (!buf) oom(cap);
    for (int i = 0; i < w; i++) {
      size_t k = wsize[wi++ & 4095];
      if (len + k > cap) {
        size_t nc = cap * 2;
        while (len + k > nc) nc *= 2;
        if (drop) {
          char *nb = bk_alloc_bytes(nc);
          if (!nb) oom(nc);
          memcpy(nb, buf, len);
          buf = nb; /* the old buffer is left to the collector */
        } else {
          buf = bk_realloc(buf, nc);
          if (!buf) oom(nc);
        }
        cap = nc;
      }
      copy_8_32(buf + len, source + (i & 63), k);
      len += k;
    }
    check += (unsigned char)buf[len / 2] + len;
    escape(buf);
    if (!GC || free_result) bk_free(buf);
  }
  return check;
}

/* A live heap for the collector to mark: a scanned linked structure of
   about mib MiB in 64-byte nodes, reachable from a global. */
struct live_node {
  struct live_node *next;
  uint64_t pad[7];
};
static struct live_node *volatile live_root;

static void make_live(long mib) {
  struct live_node *h = NULL;
  for (long i = 0; i < mib * 16384; i++) {
    struct live_node *x = bk_alloc(sizeof *x);
    if (!x) oom(sizeof *x);
    x->next = h;
    h = x;
  }
  live_root = h;
}

static void bench_builder(int w, long n, int drop, int free_result, long live_mib) {
  char param[48];
  if (live_mib) snprintf(param, sizeof param, "W%d_live%ldMiB", w, live_mib);
  else snprintf(param, sizeof param, "W%d", w);
  if (live_mib) make_live(live_mib);
  build_strings(w, n / 20, drop, free_result); /* warm up */
  meter_t m = meter_start();
  uint64_t check = build_strings(w, n, drop, free_result);
  escape(&check);
  report(m, "builder", drop ? "drop" : free_result ? "realloc_free" : "realloc", param, (double)n);
}

/* ---- pairs ----------------------------------------------------------------------- */

static const size_t mixed[8] = {16, 24, 32, 48, 64, 96, 128, 256};

/* Pair i's object: allocated, its first byte written (as a program does
   before it frees), kept from the optimizer. */
static inline char *pair_object(void *(*alloc)(size_t), size_t size, long i) {
  size_t s = size ? size : mixed[i & 7];
  char *p = alloc(s);
  if (!p) oom(s);
  p[0] = (char)i;
  escape(p);
  return p;
}

/* The pair loops, for an allocator's alloc and free (the cgc program also
   has them for glibc's malloc, for the duel below). */
#define PAIR_LOOPS(lifo, ring, ALLOC, FREE)                                                      \
  static NOINLINE void lifo(size_t size, long n) {                                               \
    for (long i = 0; i < n; i++) FREE(pair_object(ALLOC, size, i));                              \
  }                                                                                              \
  static NOINLINE void ring(size_t size, long n) {                                               \
    void *r[64] = {0};                                                                           \
    for (long i = 0; i < n; i++) {                                                               \
      char *p = pair_object(ALLOC, size, i);                                                     \
      if (r[i & 63]) FREE(r[i & 63]);                                                            \
      r[i & 63] = p;                                                                             \
    }                                                                                            \
    for (int k = 0; k < 64; k++)                                                                 \
      if (r[k]) FREE(r[k]);                                                                      \
  }

PAIR_LOOPS(pairs_lifo, pairs_ring, bk_alloc, bk_free)

static void bench_pair(size_t size, long n) {
  for (int v = 0; v < 2; v++) {
    void (*f)(size_t, long) = v ? pairs_ring : pairs_lifo;
    char param[32];
    if (size) snprintf(param, sizeof param, "%zuB", size);
    else snprintf(param, sizeof param, "mixed");
    f(size, n / 10);
    meter_t m = meter_start();
    f(size, n);
    report(m, "pair", v ? "ring" : "lifo", param, (double)n);
  }
}

#if defined(BACKEND_CGC)
/* The duel: cgc's pairs and glibc's in one process, in alternating blocks
   of n / 101 pairs (101 of each), and the median of the per-block ratios.
   Both allocators see the same machine at nearly the same moment, so the
   ratio holds still on a machine whose speed drifts from run to run. */
PAIR_LOOPS(malloc_lifo, malloc_ring, malloc, free)

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void bench_duel(size_t size, long n) {
  enum { BLOCKS = 101 };
  long per = n / BLOCKS;
  for (int v = 0; v < 2; v++) {
    void (*fc)(size_t, long) = v ? pairs_ring : pairs_lifo;
    void (*fg)(size_t, long) = v ? malloc_ring : malloc_lifo;
    double r[BLOCKS], c[BLOCKS], g[BLOCKS];
    fc(size, per);
    fg(size, per);
    for (int k = 0; k < BLOCKS; k++) {
      uint64_t t0 = now_ns();
      fc(size, per);
      uint64_t t1 = now_ns();
      fg(size, per);
      uint64_t t2 = now_ns();
      c[k] = (double)(t1 - t0) / (double)per;
      g[k] = (double)(t2 - t1) / (double)per;
      r[k] = c[k] / g[k];
    }
    qsort(r, BLOCKS, sizeof r[0], cmp_double);
    qsort(c, BLOCKS, sizeof c[0], cmp_double);
    qsort(g, BLOCKS, sizeof g[0], cmp_double);
    printf("RESULT bench=duel alloc=cgc variant=%s param=%s units=%ld cgc_ns=%.2f glibc_ns=%.2f ratio=%.3f q1=%.3f "
           "q3=%.3f\n",
           v ? "ring" : "lifo", size ? (size == 32 ? "32B" : "other") : "mixed", per * BLOCKS, c[BLOCKS / 2],
           g[BLOCKS / 2], r[BLOCKS / 2], r[BLOCKS / 4], r[3 * BLOCKS / 4]);
    fflush(stdout);
  }
}
#endif

/* ---- nodes ------------------------------------------------------------------------- */

struct node {
  struct node *next;
  uint64_t a, b, c;
};

static uint64_t walk(struct node *h) {
  uint64_t s = 0;
  for (; h; h = h->next) s += h->a;
  return s;
}

static NOINLINE uint64_t round_heap(long n, int collected) {
  struct node *head = NULL;
  for (long i = 0; i < n; i++) {
    struct node *x = bk_alloc(sizeof *x);
    if (!x) oom(sizeof *x);
    x->next = head;
    x->a = (uint64_t)i;
    x->b = x->c = 0;
    head = x;
  }
  uint64_t s = walk(head);
  if (!collected) {
    while (head) {
      struct node *nx = head->next;
      bk_free(head);
      head = nx;
    }
  }
  escape(&head);
  return s;
}

#if defined(BACKEND_CGC)
static NOINLINE uint64_t round_arena(long n) {
  cgc_arena_t *a = cgc_arena_new();
  struct node *head = NULL;
  for (long i = 0; i < n; i++) {
    struct node *x = cgc_arena_alloc(a, sizeof *x); /* zeroed */
    if (!x) oom(sizeof *x);
    x->next = head;
    x->a = (uint64_t)i;
    head = x;
  }
  uint64_t s = walk(head);
  cgc_arena_free(a);
  return s;
}
#endif

static void bench_nodes(long n, int rounds) {
  int nvariants = 1;
#if defined(BACKEND_CGC)
  nvariants = 2;
#endif
  for (int v = 0; v < nvariants; v++) {
    const char *variant = GC ? "collected" : "malloc_free";
    uint64_t (*f)(long, int) = round_heap;
#if defined(BACKEND_CGC)
    if (v == 1) variant = "arena";
#endif
    uint64_t check = 0;
    meter_t m = meter_start();
    for (int r = -1; r < rounds; r++) { /* round -1 warms up */
      if (r == 0) m = meter_start();
#if defined(BACKEND_CGC)
      if (v == 1) {
        check += round_arena(n);
        continue;
      }
#endif
      check += f(n, GC);
    }
    escape(&check);
    char param[32];
    snprintf(param, sizeof param, "%ldx32B", n);
    report(m, "nodes", variant, param, (double)n * rounds);
  }
}

/* ---- the plain allocation path (cgc) --------------------------------------------------- */

#if defined(BACKEND_CGC)
static NOINLINE void alloc_drop_loop(long n) {
  for (long i = 0; i < n; i++) {
    char *p = cgc_alloc(32);
    p[0] = 1;
    escape(p);
  }
}

static NOINLINE void pair_loop(long n) {
  for (long i = 0; i < n; i++) {
    char *p = cgc_alloc(32);
    p[0] = 1;
    escape(p);
    cgc_free(p);
  }
}

/* n buffers grown with cgc_realloc from 8 to 2048 bytes by doubling (8
   moves each, noscan), then freed. */
static NOINLINE void grow_loop(long n) {
  for (long i = 0; i < n; i++) {
    char *p = cgc_alloc_noscan(8);
    p[0] = 1;
    for (size_t c = 16; c <= 2048; c *= 2) {
      p = cgc_realloc(p, c);
      p[c - 1] = 1;
    }
    escape(p);
    cgc_free(p);
  }
}

static NOINLINE void free_traffic(void) {
  void *ring[256] = {0};
  for (long i = 0; i < 2000000; i++) {
    size_t s = 16 + (size_t)(next_rand() % 64);
    int k = (int)(i & 255);
    cgc_free(ring[k]);
    ring[k] = cgc_alloc(s);
  }
  for (int k = 0; k < 256; k++) cgc_free(ring[k]);
}

static void bench_allocpath(long n, int withfree) {
  alloc_drop_loop(n / 10);
  if (withfree) free_traffic();
  meter_t m = meter_start();
  alloc_drop_loop(n);
  report(m, "allocpath", withfree ? "withfree" : "nofree", "32B", (double)n);
}
#endif

/* ---- main ------------------------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr,
          "usage: free_%s builder [-w W] [-n strings] [-d] [-F] [-l MiB]\n"
          "         (-d: drop instead of realloc; -F: free the finished strings too;\n"
          "          -l: keep a live heap of that size for the collector to mark)\n"
          "       free_%s pair [-s size] [-n pairs]\n"
          "       free_%s nodes [-n nodes] [-r rounds]\n"
          "       free_cgc allocpath [-n allocs] [-f]   (-f: with free traffic)\n"
          "       free_cgc duel [-s size] [-n pairs]      (cgc's pairs against glibc's, interleaved)\n"
          "       free_cgc calls [-n calls]\n",
          NAME, NAME, NAME);
  exit(2);
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  const char *bench = argv[1];
  long n = 0;
  int w = 100, drop = 0, rounds = 10, flag = 0, free_result = 0;
  long live_mib = 0;
  size_t size = 32;
  int opt;
  optind = 2;
  while ((opt = getopt(argc, argv, "w:n:s:r:l:dfF")) != -1) {
    switch (opt) {
      case 'w': w = atoi(optarg); break;
      case 'n': n = atol(optarg); break;
      case 's': size = (size_t)atol(optarg); break;
      case 'r': rounds = atoi(optarg); break;
      case 'd': drop = 1; break;
      case 'f': flag = 1; break;
      case 'F': free_result = 1; break;
      case 'l': live_mib = atol(optarg); break;
      default: usage();
    }
  }
  init();
  (void)flag;
  for (size_t i = 0; i < sizeof source; i++) source[i] = (char)('a' + i % 26);
  for (size_t i = 0; i < sizeof wsize; i++) wsize[i] = (unsigned char)(8 + next_rand() % 25);
  if (strcmp(bench, "builder") == 0) {
    if ((drop || free_result) && !GC) usage();
    bench_builder(w, n ? n : 50000000L / w, drop, free_result, live_mib);
  } else if (strcmp(bench, "pair") == 0) {
    bench_pair(size, n ? n : 50000000L);
  } else if (strcmp(bench, "nodes") == 0) {
    bench_nodes(n ? n : 1000000L, rounds);
#if defined(BACKEND_CGC)
  } else if (strcmp(bench, "allocpath") == 0) {
    bench_allocpath(n ? n : 20000000L, flag);
  } else if (strcmp(bench, "duel") == 0) {
    bench_duel(size, n ? n : 20200000L);
  } else if (strcmp(bench, "calls") == 0) {
    long k = n ? n : 1000000L;
    alloc_drop_loop(k);
    pair_loop(k);
    grow_loop(k / 10);
    printf("RESULT bench=calls alloc=cgc calls=%ld\n", k);
#endif
  } else {
    usage();
  }
  return 0;
}
