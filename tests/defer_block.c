/* Block defers (CGC_DEFER, CGC_DEFER_FREE): order and every way of leaving a
   block.  Built in each mode: with -fexceptions (unwind mode), without it
   (registered mode) and with CGC_DEFER_REGISTER=0 and no -fexceptions. */
#include "cgc.h"
#include "testutil.h"

#include "defer_log.h"
#define EXPECT_NONE() expect_log(NULL, 0, __LINE__)

/* Falling off the end: reverse order of the defer statements. */
static void fall_off(void) {
  CGC_DEFER(rec, L(1));
  CGC_DEFER(rec, L(2));
  CGC_DEFER(rec, L(3));
  rec(L(0));
}

/* Three return paths, each running exactly the defers registered before it. */
static int three_returns(int k) {
  CGC_DEFER(rec, L(1));
  if (k == 0) return 10;
  CGC_DEFER(rec, L(2));
  if (k == 1) return 11;
  CGC_DEFER(rec, L(3));
  return 12;
}

/* The return value is computed before the defers run. */
static void incr(void *p) { (*(int *)p)++; }
static int ret_then_defer(int *x) {
  CGC_DEFER(incr, x);
  return *x;
}

/* break and continue leave the loop body block. */
static void loop_exits(void) {
  for (int i = 0; i < 5; i++) {
    CGC_DEFER(rec, L(100 + i));
    if (i == 1) continue;
    if (i == 3) break;
    rec(L(i));
  }
  rec(L(-1));
}

static void while_exits(void) {
  int i = 0;
  while (1) {
    CGC_DEFER(rec, L(200 + i));
    if (++i == 3) break;
  }
  do {
    CGC_DEFER(rec, L(300));
  } while (0);
}

/* goto out of nested blocks runs the inner blocks' defers, innermost first. */
static void goto_out(int deep) {
  {
    CGC_DEFER(rec, L(1));
    {
      CGC_DEFER(rec, L(2));
      if (deep) goto out;
      rec(L(3));
    }
    rec(L(4));
  }
out:
  rec(L(5));
}

/* goto backwards out of a block leaves it: its defers run each time. */
static void goto_back(void) {
  int n = 0;
again:
  {
    CGC_DEFER(rec, L(10 + n));
    if (++n < 3) goto again;
  }
}

static void switch_cases(int k) {
  switch (k) {
  case 0: {
    CGC_DEFER(rec, L(1));
    rec(L(2));
    break;
  }
  case 1: {
    CGC_DEFER(rec, L(3));
    return;
  }
  default:
    rec(L(4));
  }
  rec(L(5));
}

/* Arguments are evaluated once, when the defer statement runs. */
static void arg_eval(void) {
  int i = 5, evals = 0;
  CGC_DEFER(rec, L(i));
  i = 6;
  CGC_DEFER(rec, L((evals++, i)));
  i = 7;
  CHECK(evals == 1);
  rec(L(i));
}

/* Any function taking one pointer; its result is ignored. */
struct res {
  int id;
  int closed;
};
static int res_close(struct res *r) {
  r->closed++;
  rec(L(r->id));
  return 0;
}
static long typed(struct res *a, struct res *b) {
  CGC_DEFER(res_close, a);
  CGC_DEFER(res_close, b);
  return 7;
}

/* Recursion: each activation runs its own defers. */
static int recurse(int n) {
  CGC_DEFER(rec, L(n));
  if (n == 0) return 0;
  return recurse(n - 1) + 1;
}

/* A deferred call can itself use defers. */
static void inner_defers(void *p) {
  CGC_DEFER(rec, L(50));
  rec(p);
}
static void defer_in_defer(void) {
  CGC_DEFER(inner_defers, L(51));
  rec(L(52));
}

static void defer_free(int n) {
  cgc_stats_t before, after;
  cgc_read_stats(&before);
  for (int i = 0; i < n; i++) {
    char *p = cgc_alloc(64);
    CHECK(p);
    CGC_DEFER_FREE(p);
    p[0] = 1;
  }
  cgc_read_stats(&after);
  CHECKF(after.total_free_objects - before.total_free_objects == (uint64_t)n,
         "%llu frees, want %d",
         (unsigned long long)(after.total_free_objects - before.total_free_objects), n);
  /* NULL is accepted, as by cgc_free. */
  {
    CGC_DEFER_FREE(NULL);
  }
}

/* cgc_panic_value in a deferred function whose own block defer is its last
   action: that defer runs on the deferred function's normal exit, so it sees
   NULL even though a panic runs the deferred function.  (A block defer's
   call is never inlined or tail-called, which would make it look like the
   deferred function itself.)  Modes where panics run block defers only. */
#if CGC_DEFER_REGISTER || defined(__EXCEPTIONS)
static void *outcome[2];
static int noutcome;
static void finish(void *tag) {
  (void)tag;
  outcome[noutcome++] = cgc_panic_value();
}
static void do_inner(void *a) {
  (void)a;
  CGC_DEFER(finish, L(1)); /* the last thing do_inner does */
}
static void panics_over_inner(void *a) {
  (void)a;
  CGC_DEFER(finish, L(2));
  CGC_DEFER(do_inner, NULL);
  cgc_panic(L(99));
}
static void nested_normal_exit(void) {
  void *v;
  CHECK(cgc_protect(panics_over_inner, NULL, &v) == 1 && v == L(99));
  CHECK(noutcome == 2);
  CHECKF(outcome[0] == NULL, "a block defer run by a normal exit saw the panic %p", outcome[0]);
  CHECK(outcome[1] == L(99));
}

/* A defer whose function or argument expression panics was never made: the
   panic runs the older defers only, and nothing runs a half-made record. */
static void *panicking_arg(void) { cgc_panic(L(98)); }
static void arg_panics(void *a) {
  (void)a;
  CGC_DEFER(rec, L(20));
  CGC_DEFER(rec, panicking_arg());
  rec(L(21));
}
static void arg_panic(void) {
  void *v;
  CHECK(cgc_protect(arg_panics, NULL, &v) == 1 && v == L(98));
  EXPECT(20);
}
#else
static void nested_normal_exit(void) {}
static void arg_panic(void) {}
#endif

int main(void) {
  clear_stack();
  nested_normal_exit();
  arg_panic();
  fall_off();
  EXPECT(0, 3, 2, 1);

  CHECK(three_returns(0) == 10);
  EXPECT(1);
  CHECK(three_returns(1) == 11);
  EXPECT(2, 1);
  CHECK(three_returns(2) == 12);
  EXPECT(3, 2, 1);

  int x = 41;
  CHECK(ret_then_defer(&x) == 41);
  CHECK(x == 42);

  loop_exits();
  EXPECT(0, 100, 101, 2, 102, 103, -1);
  while_exits();
  EXPECT(200, 201, 202, 300);

  goto_out(0);
  EXPECT(3, 2, 4, 1, 5);
  goto_out(1);
  EXPECT(2, 1, 5);
  goto_back();
  EXPECT(10, 11, 12);

  switch_cases(0);
  EXPECT(2, 1, 5);
  switch_cases(1);
  EXPECT(3);
  switch_cases(2);
  EXPECT(4, 5);

  arg_eval();
  EXPECT(7, 6, 5);

  struct res a = {1, 0}, b = {2, 0};
  CHECK(typed(&a, &b) == 7);
  CHECK(a.closed == 1 && b.closed == 1);
  EXPECT(2, 1);

  CHECK(recurse(4) == 4);
  EXPECT(0, 1, 2, 3, 4);

  defer_in_defer();
  EXPECT(52, 51, 50);

  /* Many iterations: exactly one call per defer statement executed. */
  for (int i = 0; i < 1000; i++) {
    CGC_DEFER(rec, L(i));
    CHECK(nlog == i);
  }
  CHECK(nlog == 1000);
  for (int i = 0; i < 1000; i++) CHECK(logv[i] == i);
  nlog = 0;

  defer_free(10000);

  /* Every registered defer was unlinked again. */
  CHECK(cgc__defer_chain == NULL);
  printf("defer_block: ok (CGC_DEFER_REGISTER=%d)\n", CGC_DEFER_REGISTER);
  return 0;
}
