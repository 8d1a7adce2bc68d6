/* Dynamic defers (CGC_FRAME, CGC_DEFER_DYN): accumulation in loops, LIFO
   order, spilling to heap chunks, order against block defers, nesting. */
#include <pthread.h>

#include "cgc.h"
#include "testutil.h"

#define LOG_CAP 300000
#include "defer_log.h"

/* n defers in a loop: n calls, newest first, after the function's body. */
static void loop_n(int n) {
  CGC_FRAME();
  for (int i = 0; i < n; i++) {
    CGC_DEFER_DYN(rec, L(i));
    CHECK(nlog == 0);
  }
}

static void check_loop(int n) {
  nlog = 0;
  loop_n(n);
  CHECKF(nlog == n, "n=%d: %d calls", n, nlog);
  for (int i = 0; i < n; i++) CHECKF(logv[i] == n - 1 - i, "n=%d: entry %d is %d", n, i, logv[i]);
  nlog = 0;
}

/* Documented order: block defers of blocks inside the frame's scope run when
   those blocks exit; block defers declared after CGC_FRAME in the same block
   run before the dynamic ones; those declared before CGC_FRAME run after. */
static void mixed_order(void) {
  CGC_DEFER(rec, L(1000)); /* before the frame: runs last */
  CGC_FRAME();
  CGC_DEFER(rec, L(100)); /* after the frame: runs before the dynamic defers */
  for (int i = 0; i < 3; i++) {
    CGC_DEFER_DYN(rec, L(i));
    CGC_DEFER(rec, L(10 + i)); /* at the end of each iteration */
  }
  rec(L(50));
}

/* Every return path runs the frame. */
static int early_return(int stop) {
  CGC_FRAME();
  for (int i = 0; i < 20; i++) {
    CGC_DEFER_DYN(rec, L(i));
    if (i == stop) return i;
  }
  return -1;
}

/* A frame in a loop body is per iteration. */
static void frame_per_iteration(void) {
  for (int i = 0; i < 3; i++) {
    CGC_FRAME();
    CGC_DEFER_DYN(rec, L(i));
    CGC_DEFER_DYN(rec, L(10 + i));
  }
}

/* Recursion: each activation's frame runs when it returns. */
static void recurse(int n) {
  CGC_FRAME();
  CGC_DEFER_DYN(rec, L(n));
  if (n > 0) recurse(n - 1);
  CGC_DEFER_DYN(rec, L(100 + n));
}

/* Deferred calls that open frames of their own. */
static void deferred_with_frame(void *p) {
  CGC_FRAME();
  for (int i = 0; i < 12; i++) CGC_DEFER_DYN(rec, L((int)(intptr_t)p * 100 + i));
}
static void nested_frames(void) {
  CGC_FRAME();
  CGC_DEFER_DYN(deferred_with_frame, L(1));
  CGC_DEFER_DYN(deferred_with_frame, L(2));
}

/* Conditionally deferred cleanups: only the taken branches run. */
static void conditional(unsigned mask) {
  CGC_FRAME();
  for (int i = 0; i < 16; i++)
    if (mask & (1u << i)) CGC_DEFER_DYN(rec, L(i));
}

/* Distinct argument types, as long as fn(arg) is a valid call. */
struct counter {
  int n;
};
static void count(struct counter *c) { c->n++; }
static void typed(struct counter *c, int n) {
  CGC_FRAME();
  for (int i = 0; i < n; i++) CGC_DEFER_DYN(count, c);
}

/* A dynamic defer that panics on the frame's normal exit: the frame's other
   records run for the panic before the block defers declared before
   CGC_FRAME (in the same block, or in an outer block), newest first, as
   they would on a normal exit.  (In unwind mode those block defers are the
   function's landing pad, which the panic reaches first.) */
static void bomb(void *p) { cgc_panic(p); }
static void panic_on_exit(void *arg) {
  (void)arg;
  CGC_DEFER(rec, L(1000)); /* older than the frame */
  CGC_FRAME();
  CGC_DEFER_DYN(rec, L(1));
  CGC_DEFER_DYN(bomb, L(77));
  CGC_DEFER_DYN(rec, L(2));
}
static void panic_on_exit_inner(void *arg) {
  (void)arg;
  CGC_DEFER(rec, L(2000)); /* the outer block's */
  {
    CGC_DEFER(rec, L(1000));
    CGC_FRAME();
    for (int i = 0; i < 12; i++) CGC_DEFER_DYN(rec, L(i)); /* spills to a chunk */
    CGC_DEFER_DYN(bomb, L(78));
    CGC_DEFER_DYN(rec, L(100));
  }
  rec(L(5000)); /* never reached */
}

/* Each thread keeps its own spare chunks: a new thread's first frame that
   spills allocates its chunks (though the main thread keeps spares of every
   size), its next one allocates nothing. */
static void nothing(void *a) { (void)a; }
static __attribute__((noinline)) void spill_41(void) {
  CGC_FRAME();
  for (int i = 0; i < 8 + 32 + 1; i++) CGC_DEFER_DYN(nothing, NULL); /* chunks of 32 and 64 */
}
static uint64_t allocations_by(void (*fn)(void)) {
  cgc_stats_t a, b;
  cgc_read_stats(&a);
  fn();
  cgc_read_stats(&b);
  return b.total_alloc_objects - a.total_alloc_objects;
}
static void *spill_in_thread(void *a) {
  (void)a;
  uint64_t first = allocations_by(spill_41), second = allocations_by(spill_41);
  CHECKF(first == 2 && second == 0, "a new thread's spills allocated %llu, then %llu chunks",
         (unsigned long long)first, (unsigned long long)second);
  return NULL;
}
static void spares_per_thread(void) {
  for (int i = 0; i < 3; i++) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, spill_in_thread, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
  }
}

int main(void) {
  clear_stack();

  /* Segment boundaries: 8 inline, then chunks of 32, 64, ... 8192 records. */
  static const int sizes[] = {0,    1,    2,    7,     8,     9,      39,     40,    41,  104,
                              105,  1000, 1001, 8168,  8169,  16360,  16361, 100000, 250000};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) check_loop(sizes[i]);

  mixed_order();
  EXPECT(10, 11, 12, 50, 100, 2, 1, 0, 1000);

  CHECK(early_return(3) == 3);
  EXPECT(3, 2, 1, 0);
  CHECK(early_return(-5) == -1);
  CHECK(nlog == 20);
  nlog = 0;

  frame_per_iteration();
  EXPECT(10, 0, 11, 1, 12, 2);

  recurse(3);
  EXPECT(100, 0, 101, 1, 102, 2, 103, 3);

  nested_frames();
  EXPECT(211, 210, 209, 208, 207, 206, 205, 204, 203, 202, 201, 200,
         111, 110, 109, 108, 107, 106, 105, 104, 103, 102, 101, 100);

  conditional(0xA5A5);
  EXPECT(15, 13, 10, 8, 7, 5, 2, 0);

  void *v = NULL;
  CHECK(cgc_protect(panic_on_exit, NULL, &v) == 1 && v == L(77));
  EXPECT(2, 1, 1000);
  CHECK(cgc_protect(panic_on_exit_inner, NULL, &v) == 1 && v == L(78));
  EXPECT(100, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1000, 2000);

  struct counter c = {0};
  typed(&c, 77);
  CHECK(c.n == 77);

  /* Spill chunks are kept for the thread's next frame (one of each size):
     once a thread has spilled, doing it again allocates nothing. */
  cgc_stats_t before, after;
  check_loop(16360);
  cgc_read_stats(&before);
  for (int r = 0; r < 20; r++) check_loop(100 + r * 800);
  cgc_read_stats(&after);
  CHECKF(after.total_alloc_objects == before.total_alloc_objects, "%llu allocations",
         (unsigned long long)(after.total_alloc_objects - before.total_alloc_objects));

  spares_per_thread();

  CHECK(cgc__defer_chain == NULL);
  printf("defer_dyn: ok\n");
  return 0;
}
