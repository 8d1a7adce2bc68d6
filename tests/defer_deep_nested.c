/* Panic bookkeeping must not keep pointers into stack frames that are gone.
   Two cases where a later panic is raised from deeper in the stack than a
   frame the runtime used before:
   - runner: a panic ran a frame's dynamic defers (a defer runner on the
     stack), then a block defer further up, run by its landing pad, calls
     deeply and panics again: the new panic supersedes the first (Go's rule)
     and must come back to that landing pad, not to the runner that is gone;
   - protect: a cgc_protect recovered a panic, then the same function panics
     again from deeper down: the panic must reach the enclosing cgc_protect,
     not the one that already returned.
   Built with -fexceptions (block defers run by landing pads) and without. */
#include "cgc.h"
#include "testutil.h"

static void *const FIRST = (void *)"first";
static void *const SECOND = (void *)"second";

#define LOG_MAX 16
static int log_id[LOG_MAX];
static void *log_pv[LOG_MAX];
static int nlog;
__attribute__((noinline)) static void logrec(void *id) {
  CHECK(nlog < LOG_MAX);
  log_pv[nlog] = cgc_panic_value();
  log_id[nlog++] = (int)(intptr_t)id;
}

/* Uses about 4 KiB of stack per level, then panics with SECOND. */
static void (*volatile panic_fn)(void *) = cgc_panic;
static __attribute__((noinline)) void deep_then_panic(int n) {
  volatile char pad[4096];
  memset((char *)pad, n, sizeof pad);
  if (n > 0) deep_then_panic(n - 1);
  else panic_fn(SECOND);
  consume((const void *)pad);
}

static __attribute__((noinline)) void dyn_then_panic(void *a) {
  (void)a;
  CGC_FRAME();
  CGC_DEFER_DYN(logrec, (void *)(intptr_t)1);
  cgc_panic(FIRST);
}

static void deep_panic_defer(void *a) {
  (void)a;
  CHECK(cgc_panic_value() == FIRST);
  logrec((void *)(intptr_t)2);
  deep_then_panic(32);
}

static void runner_case(void *a) {
  (void)a;
  CGC_DEFER(logrec, (void *)(intptr_t)3);   /* runs for the second panic */
  CGC_DEFER(deep_panic_defer, NULL);         /* supersedes the first panic */
  dyn_then_panic(NULL);
  __asm__ volatile("" ::: "memory");
}

static void protect_case(void *a) {
  (void)a;
  CGC_DEFER(logrec, (void *)(intptr_t)4);
  void *v = NULL;
  CHECK(cgc_protect(dyn_then_panic, NULL, &v) == 1 && v == FIRST);
  deep_then_panic(32); /* to the enclosing cgc_protect */
  __asm__ volatile("" ::: "memory");
}

static void expect(int k, int id, void *pv) {
  CHECKF(k < nlog, "only %d entries, want entry %d", nlog, k);
  CHECKF(log_id[k] == id && log_pv[k] == pv, "entry %d is %d (pv %p), want %d (pv %p)", k, log_id[k],
         log_pv[k], id, pv);
}

int main(void) {
  cgc_init();
  clear_stack();
  void *v = NULL;
  for (int r = 0; r < 3; r++) {
    nlog = 0;
    CHECK(cgc_protect(runner_case, NULL, &v) == 1);
    CHECKF(v == SECOND, "runner case: recovered %p, want SECOND", v);
    expect(0, 1, FIRST);
    expect(1, 2, NULL); /* logrec is a plain call from the deferred function */
    expect(2, 3, SECOND);
    CHECK(nlog == 3);
    CHECK(cgc__defer_chain == NULL);

    nlog = 0;
    CHECK(cgc_protect(protect_case, NULL, &v) == 1);
    CHECKF(v == SECOND, "protect case: recovered %p, want SECOND", v);
    expect(0, 1, FIRST);
    expect(1, 4, SECOND);
    CHECK(nlog == 2);
    CHECK(cgc__defer_chain == NULL);
    CHECK(cgc_panic_value() == NULL);
  }
  printf("defer_deep_nested: ok (CGC_DEFER_REGISTER=%d)\n", CGC_DEFER_REGISTER);
  return 0;
}
