/* A panic whose unwinder stops early, at a frame without unwind information
   (docs/defer.md: "the panic still reaches the cgc_protect"), leaves the
   thread's state as any recovered panic does: cgc_protect restores the
   protect stack and the panic in flight, so that
   - a later panic from deeper in the stack reaches the enclosing
     cgc_protect, not the one that already returned;
   - inside a deferred call that a panic runs, cgc_panic_value() still
     reports that panic after a cgc_protect in the deferred call recovered
     its own panic through such a frame.
   The hole frame is defer_hole_n.c; this unit is built with -fexceptions. */
#include <unwind.h>

#include "cgc.h"
#include "testutil.h"

void hole_call(void (*fn)(void *), void *arg);

static void *const FIRST = (void *)"first";
static void *const SECOND = (void *)"second";
static void *const INNER = (void *)"inner";

static void (*volatile panic_fn)(void *) = cgc_panic;

static void panic_with(void *v) { panic_fn(v); }
static void through_hole(void *v) {
  hole_call(panic_with, v);
  __asm__ volatile("" ::: "memory");
}

/* Uses about 4 KiB of stack per level, then panics with SECOND. */
static __attribute__((noinline)) void deep_then_panic(int n) {
  volatile char pad[4096];
  memset((char *)pad, n, sizeof pad);
  if (n > 0) deep_then_panic(n - 1);
  else panic_fn(SECOND);
  consume((const void *)pad);
}

static int ran;
static void mark_ran(void *a) {
  CHECK(cgc_panic_value() == SECOND);
  ran += (int)(intptr_t)a;
}

static void outer_body(void *a) {
  (void)a;
  CGC_DEFER(mark_ran, (void *)(intptr_t)1);
  void *v = NULL;
  CHECK(cgc_protect(through_hole, FIRST, &v) == 1 && v == FIRST);
  deep_then_panic(32); /* to the enclosing cgc_protect */
  __asm__ volatile("" ::: "memory");
}

static void recover_in_defer(void *a) {
  (void)a;
  CHECK(cgc_panic_value() == FIRST);
  void *v = NULL;
  CHECK(cgc_protect(through_hole, INNER, &v) == 1 && v == INNER);
  CHECKF(cgc_panic_value() == FIRST, "after the inner recovery cgc_panic_value() is %p, want FIRST",
         cgc_panic_value());
  ran += 10;
  __asm__ volatile("" ::: "memory");
}
static void defer_body(void *a) {
  (void)a;
  CGC_DEFER(recover_in_defer, NULL);
  panic_fn(FIRST);
  __asm__ volatile("" ::: "memory");
}

/* Does the unwinder stop at the hole frame? */
static _Unwind_Reason_Code count_cb(struct _Unwind_Context *ctx, void *arg) {
  (void)ctx;
  (*(int *)arg)++;
  return _URC_NO_REASON;
}
static void count_frames(void *out) {
  int n = 0;
  _Unwind_Backtrace(count_cb, &n);
  *(int *)out = n;
}
static __attribute__((noinline)) void direct_call(void (*fn)(void *), void *arg) {
  fn(arg);
  __asm__ volatile("" ::: "memory");
}

int main(void) {
  cgc_init();
  clear_stack();
  int with_hole = 0, without = 0;
  hole_call(count_frames, &with_hole);
  direct_call(count_frames, &without);
  if (with_hole >= without) {
    printf("defer_hole_protect: skipped (the frame has unwind information)\n");
    return 0;
  }
  void *v = NULL;
  for (int r = 0; r < 3; r++) {
    ran = 0;
    CHECK(cgc_protect(outer_body, NULL, &v) == 1);
    CHECKF(v == SECOND, "recovered %p, want SECOND", v);
    CHECK(ran == 1);
    CHECK(cgc_panic_value() == NULL);

    ran = 0;
    CHECK(cgc_protect(defer_body, NULL, &v) == 1 && v == FIRST);
    CHECK(ran == 10);
    CHECK(cgc__defer_chain == NULL);
    CHECK(cgc_panic_value() == NULL);
  }
  printf("defer_hole_protect: ok\n");
  return 0;
}
