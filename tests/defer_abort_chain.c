/* Uncaught nested panics: the report (docs/defer.md, "Uncaught panics").
   Run as `defer_abort_chain CASE`; the test driver checks for SIGABRT and
   the expected stderr.
   - many: ten panics, each raised by a deferred call that the previous one
     runs.  The report keeps the newest ones of the chain, oldest first.
   - backtrace: the backtrace is captured where the last panic was raised
     (linked with -rdynamic, so that the functions are named).
   - value_chain: a pointer value superseded by a string panic is still
     printed as a pointer.
   - dyn_null_panic: a NULL dynamic defer reached by a panic (not by a normal
     exit) is diagnosed like one reached by a normal exit. */
#include "cgc.h"
#include "testutil.h"

#define NPANICS 10

static void chain_next(void *kp) {
  intptr_t k = (intptr_t)kp;
  CGC_FRAME();
  if (k + 1 < NPANICS) CGC_DEFER_DYN(chain_next, (void *)(k + 1));
  cgc_panicf("p%d", (int)k);
}

/* Called through a pointer whose type is not _Noreturn: the return address
   lies inside the raiser, which the backtrace then names. */
static void (*volatile panicf_fn)(const char *, ...) = cgc_panicf;

__attribute__((noinline, used)) void defer_abort_chain_second_raiser(void) {
  panicf_fn("second");
  __asm__ volatile("nop" ::: "memory");
}
static void second(void *a) {
  (void)a;
  defer_abort_chain_second_raiser();
  __asm__ volatile("" ::: "memory");
}
__attribute__((noinline, used)) void defer_abort_chain_first_raiser(void) {
  CGC_DEFER(second, NULL);
  panicf_fn("first");
  __asm__ volatile("nop" ::: "memory");
}

static void panic_string(void *a) {
  (void)a;
  cgc_panicf("then a string");
}
static __attribute__((noinline)) void value_chain(void) {
  CGC_DEFER(panic_string, NULL);
  cgc_panic((void *)(uintptr_t)0x1234);
}

static __attribute__((noinline)) void dyn_null_panic(void) {
  void (*volatile fn)(void *) = NULL;
  CGC_FRAME();
  CGC_DEFER_DYN(fn, NULL);
  cgc_panicf("passing a NULL defer");
}

int main(int argc, char **argv) {
  clear_stack();
  const char *c = argc > 1 ? argv[1] : "";
  if (!strcmp(c, "many")) {
    chain_next((void *)(intptr_t)0);
  } else if (!strcmp(c, "backtrace")) {
    defer_abort_chain_first_raiser();
  } else if (!strcmp(c, "value_chain")) {
    value_chain();
  } else if (!strcmp(c, "dyn_null_panic")) {
    dyn_null_panic();
  } else {
    fprintf(stderr, "unknown case '%s'\n", c);
    return 2;
  }
  fprintf(stderr, "case '%s' did not abort\n", c);
  return 1;
}
