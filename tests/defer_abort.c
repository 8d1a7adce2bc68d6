/* Programs that must abort: uncaught panics (message, chain, backtrace,
   deferred calls run first) and misuse.  Run as `defer_abort CASE`; the test
   driver checks for SIGABRT and the expected stderr. */
#include <pthread.h>

#include "cgc.h"
#include "testutil.h"

static void say(void *msg) { fprintf(stderr, "deferred: %s\n", (const char *)msg); }

static void say_value(void *msg) {
  const char *v = cgc_panic_value();
  fprintf(stderr, "deferred: %s (panic value: %s)\n", (const char *)msg, v ? v : "none");
}

static __attribute__((noinline)) void uncaught_leaf(int n) {
  CGC_DEFER(say_value, "leaf block");
  cgc_panicf("boom %d", n);
}

static __attribute__((noinline)) void uncaught_mid(void) {
  CGC_FRAME();
  CGC_DEFER_DYN(say, "mid dynamic");
  uncaught_leaf(42);
  __asm__ volatile("" ::: "memory");
}

static void second(void *a) {
  (void)a;
  cgc_panicf("second");
}

static __attribute__((noinline)) void nested(void) {
  CGC_DEFER(say, "outer");
  CGC_DEFER(second, NULL);
  cgc_panicf("first");
}

static void *thread_panics(void *a) {
  (void)a;
  CGC_DEFER(say, "thread");
  cgc_panicf("in thread %d", 7);
}

static void panics_on_exit(void *a) {
  (void)a;
  cgc_panicf("from a deferred call");
}

static void dyn_null(void) {
  void (*volatile fn)(void *) = NULL;
  CGC_FRAME();
  CGC_DEFER_DYN(fn, NULL);
}

int main(int argc, char **argv) {
  clear_stack();
  const char *c = argc > 1 ? argv[1] : "";
  if (!strcmp(c, "uncaught")) {
    uncaught_mid();
  } else if (!strcmp(c, "uncaught_value")) {
    cgc_panic((void *)(uintptr_t)0x1234);
  } else if (!strcmp(c, "nested")) {
    nested();
  } else if (!strcmp(c, "thread")) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, thread_panics, NULL) == 0);
    pthread_join(t, NULL);
  } else if (!strcmp(c, "in_defer")) {
    CGC_DEFER(panics_on_exit, NULL);
  } else if (!strcmp(c, "in_protected_defer")) {
    /* Recovered, then raised again outside any protect. */
    void *v;
    CHECK(cgc_protect(panics_on_exit, NULL, &v) == 1);
    cgc_panicf("again: %s", (const char *)v);
  } else if (!strcmp(c, "protect_null")) {
    void (*volatile fn)(void *) = NULL;
    cgc_protect(fn, NULL, NULL);
  } else if (!strcmp(c, "panicf_null")) {
    const char *volatile fmt = NULL;
    cgc_panicf(fmt, 1);
  } else if (!strcmp(c, "dyn_null")) {
    dyn_null();
  } else {
    fprintf(stderr, "unknown case '%s'\n", c);
    return 2;
  }
  fprintf(stderr, "case '%s' did not abort\n", c);
  return 1;
}
