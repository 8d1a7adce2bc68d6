/* demo.c — a tour of cgc: a collected heap, cleanups for C resources, weak
 * handles, explicit free and growable buffers, arenas, defer/panic/recover,
 * and the statistics.  Build: cc demo.c $(pkg-config --cflags --libs cgc)
 */
#include <cgc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* 1. A heap you never free: trees built and dropped. */
typedef struct node {
  struct node *left, *right;
  long value;
} node_t;

static node_t *tree(int depth) {
  node_t *n = cgc_alloc(sizeof *n);
  n->value = depth;
  if (depth > 0) {
    n->left = tree(depth - 1);
    n->right = tree(depth - 1);
  }
  return n;
}

static long count(const node_t *n) { return n ? 1 + count(n->left) + count(n->right) : 0; }

/* 2. A C resource (malloc'd) owned by a collected wrapper: the cleanup
   releases it if the program forgets to. */
typedef struct {
  char *buffer; /* malloc'd: invisible to the collector */
} handle_t;

static long released;
static void release_buffer(void *buffer) {
  free(buffer);
  __atomic_add_fetch(&released, 1, __ATOMIC_RELAXED);
}

static __attribute__((noinline)) void open_and_forget(int n) {
  for (int i = 0; i < n; i++) {
    handle_t *h = cgc_alloc(sizeof *h);
    h->buffer = malloc(100);
    cgc_add_cleanup(h, release_buffer, h->buffer);
  }
}

/* 5. defer/panic/recover. */
static void close_file(void *f) { fclose(f); }
static void parse(void *path) {
  FILE *f = fopen(path, "r");
  if (!f) cgc_panicf("cannot open %s", (const char *)path);
  CGC_DEFER(close_file, f);
  char *line = cgc_alloc_noscan(256);
  CGC_DEFER_FREE(line); /* scope-bound free */
  if (!fgets(line, 256, f)) cgc_panicf("%s is empty", (const char *)path);
}

int main(void) {
  double t0 = now();

  node_t *keep = tree(16);
  for (int i = 0; i < 50; i++) (void)tree(14);
  printf("1. heap:     kept a tree of %ld nodes while building and dropping 50 more\n", count(keep));

  open_and_forget(100000);
  cgc_collect();
  cgc_wait_cleanups();
  printf("2. cleanups: %ld of 100000 forgotten C buffers released by their cleanups\n", released);

  char *word = cgc_strdup("canonical");
  cgc_weak_t w = cgc_weak_make(word);
  printf("3. weak:     handle %p -> %s while the string is reachable\n", (void *)w, (char *)cgc_weak_value(w));
  cgc_keep_alive(word);

  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (int i = 0; i < 100000; i++) {
    if (len + 16 > cap) {
      cap = cap ? cap * 2 : 16;
      buf = cgc_realloc(buf, cap); /* the old buffer is reused at once, not left to the collector */
    }
    len += (size_t)snprintf(buf + len, cap - len, "%d,", i % 10);
  }
  cgc_free(buf);
  printf("4. free:     built a %zu-byte string with cgc_realloc and freed it explicitly\n", len);

  cgc_arena_t *a = cgc_arena_new();
  for (int i = 0; i < 100000; i++) {
    node_t *n = cgc_arena_alloc(a, sizeof *n);
    n->value = i;
  }
  cgc_arena_free(a); /* every address in it now faults instead of corrupting */
  printf("   arenas:   100000 nodes bump-allocated and released at once\n");

  void *value = NULL;
  int panicked = cgc_protect(parse, "/nonexistent/file", &value);
  printf("5. panic:    cgc_protect caught a panic: %d, value \"%s\"\n", panicked, panicked ? (char *)value : "");

  cgc_stats_t st;
  cgc_read_stats(&st);
  printf("\n%llu collections, longest pause %.2f ms, total pause %.2f ms, %.1f MiB mapped, %.1f MiB allocated in "
         "%.2f s\n",
         (unsigned long long)st.num_gc, (double)st.pause_max_ns / 1e6, (double)st.pause_total_ns / 1e6,
         (double)st.mapped_bytes / (1 << 20), (double)st.total_alloc_bytes / (1 << 20), now() - t0);
  cgc_keep_alive(keep);
  return 0;
}
