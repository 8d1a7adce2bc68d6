/* The defer tests' log: deferred calls append their argument (rec), and
   EXPECT(...) checks the log against a list of values, then empties it.
   LOG_CAP entries at most (a test defines it before including this file
   to hold more). */
#ifndef CGC_TEST_DEFER_LOG_H
#define CGC_TEST_DEFER_LOG_H

#include "testutil.h"

#ifndef LOG_CAP
#define LOG_CAP 4096
#endif

static int logv[LOG_CAP];
static int nlog;

static void rec(void *p) {
  CHECK(nlog < LOG_CAP);
  logv[nlog++] = (int)(intptr_t)p;
}
#define L(x) ((void *)(intptr_t)(x))

static void expect_log(const int *want, int n, int line) {
  if (nlog != n) {
    fprintf(stderr, "line %d: %d entries, want %d:", line, nlog, n);
    for (int i = 0; i < nlog && i < 64; i++) fprintf(stderr, " %d", logv[i]);
    fputc('\n', stderr);
    abort();
  }
  for (int i = 0; i < n; i++)
    CHECKF(logv[i] == want[i], "line %d: entry %d is %d, want %d", line, i, logv[i], want[i]);
  nlog = 0;
}
#define EXPECT(...)                                                                \
  do {                                                                             \
    static const int w_[] = {__VA_ARGS__};                                         \
    expect_log(w_, (int)(sizeof w_ / sizeof *w_), __LINE__);                       \
  } while (0)

#endif
