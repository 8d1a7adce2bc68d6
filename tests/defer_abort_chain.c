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
     exit) is diagnosed like one reached by a normal exit.
   - collect: the values of the chain stay alive until the report prints
     them, though a deferred call collects and reuses the heap after the
     frames that raised them are gone.
   - backtrace_top (not an abort itself): runs the backtrace case and checks
     its report: the backtrace starts at the function that raised the last
     panic (not inside cgc, nor where the first panic was raised). */
#include <sys/wait.h>

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

/* Panic values held by nothing but the uncaught panic's record: both raising
   frames are gone when churn collects and fills the heap with other strings
   of the same size. */
static void churn(void *a) {
  (void)a;
  clear_stack();
  cgc_collect();
  for (int r = 0; r < 4; r++) {
    for (int i = 0; i < 20000; i++) {
      char *s = cgc_alloc_noscan(9);
      CHECK(s);
      memcpy(s, "zzzzzzzz", 9);
      consume(s);
    }
    clear_stack();
    cgc_collect();
  }
}
static void panic_second(void *a) {
  (void)a;
  cgc_panicf("second %d", 2);
}
static __attribute__((noinline)) void collect_chain(void) {
  CGC_DEFER(churn, NULL);        /* runs for the second panic */
  CGC_DEFER(panic_second, NULL); /* supersedes the first */
  cgc_panicf("first %02d", 1);
  __asm__ volatile("" ::: "memory");
}

/* The report of the backtrace case, read from a child running it. */
static void backtrace_top(const char *self) {
  int fds[2];
  CHECK(pipe(fds) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    execl("/proc/self/exe", self, "backtrace", (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  static char out[65536];
  size_t len = 0;
  ssize_t n;
  while (len < sizeof out - 1 && (n = read(fds[0], out + len, sizeof out - 1 - len)) > 0) len += (size_t)n;
  out[len] = 0;
  close(fds[0]);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "backtrace case: status %#x; stderr:\n%s", st, out);
  const char *h = strstr(out, " [panic, deferred calls run]:\n");
  CHECKF(h, "no backtrace header; stderr:\n%s", out);
  const char *first = strchr(h, '\n') + 1;
  const char *eol = strchr(first, '\n');
  CHECKF(eol, "no backtrace; stderr:\n%s", out);
  CHECKF(memmem(first, (size_t)(eol - first), "defer_abort_chain_second_raiser+0x", 34),
         "the backtrace does not start at the last raiser; stderr:\n%s", out);
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
  } else if (!strcmp(c, "collect")) {
    collect_chain();
  } else if (!strcmp(c, "backtrace_top")) {
    backtrace_top(argv[0]);
    printf("defer_abort_chain backtrace_top: ok\n");
    return 0;
  } else {
    fprintf(stderr, "unknown case '%s'\n", c);
    return 2;
  }
  fprintf(stderr, "case '%s' did not abort\n", c);
  return 1;
}
