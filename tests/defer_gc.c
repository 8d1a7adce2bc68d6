/* Defer and the collector: scope-bound free keeps the heap flat with
   collections off; a pointer held only by a pending defer (block, dynamic
   inline or spilled, registered) or by a panic in flight keeps its object
   alive across collections.  Built with and without -fexceptions. */
#include <pthread.h>

#include "cgc.h"
#include "testutil.h"

#define MAGIC 0x5eedc0de12345678ULL

struct obj {
  uint64_t magic;
  uint64_t index;
  uint64_t pad[30]; /* 256 bytes */
};

static long checked;

static struct obj *new_obj(uint64_t index) {
  struct obj *o = cgc_alloc(sizeof *o);
  CHECK(o);
  o->magic = MAGIC ^ index;
  o->index = index;
  return o;
}

/* Deferred: the object must still be intact. */
static void check_obj(void *p) {
  struct obj *o = p;
  CHECKF(o->magic == (MAGIC ^ o->index), "object %p was reclaimed while a defer held it", p);
  o->magic = 0;
  checked++;
}

/* Collect, then allocate enough of the same size to reuse anything freed. */
static __attribute__((noinline)) void collect_and_churn(void) {
  clear_stack();
  cgc_collect();
  cgc_collect();
  for (int i = 0; i < 20000; i++) {
    struct obj *o = cgc_alloc(sizeof *o);
    CHECK(o);
    memset(o, 0xA5, sizeof *o);
  }
  clear_stack();
}

static uint64_t last_live(void) {
  cgc_stats_t st;
  cgc_read_stats(&st);
  return st.last_live_bytes;
}

/* ------------------------------------------------------------------------ */

static void scope_bound_free(void) {
  cgc_collect();
  int old = cgc_set_gc_percent(-1);
  cgc_stats_t a, b;
  cgc_read_stats(&a);
  const int n = 100000;
  for (int i = 0; i < n; i++) {
    char *p = cgc_alloc(4096);
    CHECK(p);
    CGC_DEFER_FREE(p);
    memset(p, i, 4096);
  }
  for (int r = 0; r < 100; r++) {
    CGC_FRAME();
    for (int i = 0; i < 1000; i++) {
      char *p = cgc_alloc(512);
      CHECK(p);
      p[0] = 1;
      CGC_DEFER_DYN(cgc_free, p);
    }
  }
  cgc_read_stats(&b);
  cgc_set_gc_percent(old);
  CHECKF(b.num_gc == a.num_gc, "%llu collections ran", (unsigned long long)(b.num_gc - a.num_gc));
  CHECKF(b.total_free_objects - a.total_free_objects >= (uint64_t)n + 100000,
         "%llu objects freed", (unsigned long long)(b.total_free_objects - a.total_free_objects));
  /* 400 MB + 50 MB were allocated: the heap stays at a few MB. */
  CHECKF(b.mapped_bytes < a.mapped_bytes + (16u << 20), "heap grew from %llu to %llu bytes",
         (unsigned long long)a.mapped_bytes, (unsigned long long)b.mapped_bytes);
  CHECKF(b.live_bytes < a.live_bytes + (1u << 20), "live bytes grew from %llu to %llu",
         (unsigned long long)a.live_bytes, (unsigned long long)b.live_bytes);
}

/* ------------------------------------------------------------------------ */

#define BIG (4u << 20)

static void check_big(void *p) {
  uint64_t *w = p;
  CHECKF(w[0] == MAGIC && w[BIG / 8 - 1] == MAGIC, "object %p was reclaimed while a defer held it", p);
  w[0] = 0;
  checked++;
}

static __attribute__((noinline)) void block_holds(void) {
  struct obj *o = new_obj(1);
  uint64_t *big = cgc_alloc_noscan(BIG);
  CHECK(big);
  big[0] = big[BIG / 8 - 1] = MAGIC;
  CGC_DEFER(check_obj, o);
  CGC_DEFER(check_big, big);
  o = NULL;
  big = NULL;
  collect_and_churn();
  CHECKF(last_live() >= BIG, "last collection found %llu live bytes", (unsigned long long)last_live());
  collect_and_churn();
}

static __attribute__((noinline)) void dyn_holds(int n) {
  CGC_FRAME();
  for (int i = 0; i < n; i++) CGC_DEFER_DYN(check_obj, new_obj((uint64_t)i + 100));
  collect_and_churn();
  /* Everything the records hold was found reachable. */
  CHECKF(last_live() >= (uint64_t)n * sizeof(struct obj), "last collection found %llu live bytes",
         (unsigned long long)last_live());
  collect_and_churn();
}

static void pending_defer_keeps_alive(void) {
  checked = 0;
  block_holds();
  CHECK(checked == 2);
  checked = 0;
  dyn_holds(5); /* inline records */
  CHECK(checked == 5);
  checked = 0;
  dyn_holds(20000); /* spilled into chunks */
  CHECK(checked == 20000);

  /* Once the defers ran, the objects can go. */
  collect_and_churn();
  CHECKF(last_live() < 10000 * sizeof(struct obj), "%llu bytes still live after the frame ended",
         (unsigned long long)last_live());
}

/* ------------------------------------------------------------------------ */

static uintptr_t hidden_value;

static void collect_during_panic(void *a) {
  (void)a;
  void *v = cgc_panic_value();
  CHECK(v != NULL);
  collect_and_churn();
  CHECK(cgc_panic_value() == v);
}

static void panic_with_object(void *a) {
  (void)a;
  CGC_FRAME();
  CGC_DEFER_DYN(collect_during_panic, NULL);
  struct obj *o = new_obj(7);
  hidden_value = hide_ptr(o);
  cgc_panic(o);
}

static void panic_with_string(void *a) {
  (void)a;
  CGC_DEFER(collect_during_panic, NULL);
  cgc_panicf("message %d kept alive", 99);
}

static void panic_value_alive(void) {
  void *v = NULL;
  CHECK(cgc_protect(panic_with_object, NULL, &v) == 1);
  CHECK(v == reveal_ptr(hidden_value));
  struct obj *o = v;
  CHECK(o->magic == (MAGIC ^ 7));
  CHECK(cgc_protect(panic_with_string, NULL, &v) == 1);
  CHECK(strcmp(v, "message 99 kept alive") == 0);
}

/* ------------------------------------------------------------------------ */

/* The spill chunks a thread keeps for its next frame hold nothing alive,
   not even a reference into the frame's older chunks: here the frame's
   first chunk is freed when the frame ends (the thread already keeps one of
   its size, from an inner frame), and the object allocated next in its
   place is garbage as soon as it is dropped. */
#define CHUNK0_BYTES (3 * sizeof(void *) + 32 * 2 * sizeof(void *)) /* a chunk of 32 records */

static void nothing(void *a) { (void)a; }
static uintptr_t first_chunk; /* hidden */

static __attribute__((noinline)) void spill_one_chunk(void) {
  CGC_FRAME();
  for (int i = 0; i < 9; i++) CGC_DEFER_DYN(nothing, NULL); /* a chunk of 32 */
}

static __attribute__((noinline)) void spill_two_chunks(void) {
  CGC_FRAME();
  for (int i = 0; i < 9; i++) CGC_DEFER_DYN(nothing, NULL);
  first_chunk = hide_ptr(cgc_base(cgc__defer_chain->top)); /* the record just made */
  CHECK(first_chunk != hide_ptr(NULL) && cgc_usable_size(reveal_ptr(first_chunk)) >= CHUNK0_BYTES);
  for (int i = 9; i < 8 + 32 + 1; i++) CGC_DEFER_DYN(nothing, NULL); /* and a chunk of 64 */
  spill_one_chunk();
}

/* A weak handle to the object allocated where the first chunk was (freed
   memory is reused by the next allocation of its class on its thread). */
static __attribute__((noinline)) cgc_weak_t alloc_in_first_chunk(void) {
  for (int i = 0; i < 64; i++) {
    void *o = cgc_alloc(CHUNK0_BYTES);
    CHECK(o);
    if (hide_ptr(o) == first_chunk) return cgc_weak_make(o);
  }
  return NULL;
}

static void *spares_hold_nothing(void *a) {
  (void)a;
  spill_two_chunks();
  cgc_weak_t w = alloc_in_first_chunk();
  CHECKF(w != NULL, "a frame's freed chunk was not reused by the next allocations of its size");
  clear_stack();
  cgc_collect();
  CHECKF(cgc_weak_value(w) == NULL,
         "an object allocated where a frame's freed chunk was survived a collection");
  return NULL;
}

static void spares_keep_nothing(void) {
  pthread_t t; /* a new thread: no spare chunks yet */
  CHECK(pthread_create(&t, NULL, spares_hold_nothing, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
}

int main(void) {
  cgc_init();
  spares_keep_nothing(); /* first: no stale word of the main thread's refers to a chunk */
  scope_bound_free();
  pending_defer_keeps_alive();
  panic_value_alive();
  CHECK(cgc__defer_chain == NULL);
  printf("defer_gc: ok (CGC_DEFER_REGISTER=%d)\n", CGC_DEFER_REGISTER);
  return 0;
}
