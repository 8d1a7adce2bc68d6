/* Moving the stop-the-world signal.
     core_signal api        cgc_set_suspend_signal before init takes effect;
                            once collections have run it returns -1 and
                            changes nothing.
     core_signal invalid    invalid signals are refused; the default stays.
     core_signal env N      with CGC_SIGNAL set, the signal in use is N.
   Each mode then collects with a blocked and a running thread holding roots. */
#include "core_util.h"

static int rd_pipe[2];
static core_event_t ev_ready = CORE_EVENT_INIT;
static atomic_int stop_spin;

static __attribute__((noinline)) void reader_body(void) {
  void *volatile slot = NULL;
  hidden_obj_t h = make_obj((void **)&slot, 900, 41);
  clear_stack();
  event_set(&ev_ready);
  char c = 0;
  ssize_t n = read(rd_pipe[0], &c, 1);
  CHECKF(n == 1, "read returned %zd (errno %d)", n, errno);
  verify_obj(h, "object on the stack of a thread blocked in read");
}

static void *reader(void *arg) {
  (void)arg;
  reader_body();
  return NULL;
}

static __attribute__((noinline)) void spinner_body(void) {
  void *volatile slot = NULL;
  hidden_obj_t h = make_obj((void **)&slot, 700, 42);
  clear_stack();
  event_set(&ev_ready);
  while (!atomic_load(&stop_spin)) {
    void *p = cgc_alloc(64);
    CHECK(p != NULL);
    consume(p);
  }
  verify_obj(h, "object on the stack of a running thread");
}

static void *spinner(void *arg) {
  (void)arg;
  spinner_body();
  return NULL;
}

static void workload(void) {
  CHECK(pipe(rd_pipe) == 0);
  pthread_t r, s;
  CHECK(pthread_create(&r, NULL, reader, NULL) == 0);
  CHECK(pthread_create(&s, NULL, spinner, NULL) == 0);
  event_wait_at_least(&ev_ready, 2);
  uint64_t gc0 = cgc_gc_count();
  for (int i = 0; i < 3; i++) {
    churn(900, 4);
    churn(700, 4);
  }
  CHECK(cgc_gc_count() >= gc0 + 9);
  CHECK(write(rd_pipe[1], "x", 1) == 1);
  atomic_store(&stop_spin, 1);
  CHECK(pthread_join(r, NULL) == 0);
  CHECK(pthread_join(s, NULL) == 0);
}

int main(int argc, char **argv) {
  CHECKF(argc >= 2, "usage: core_signal api|invalid|env N");
  if (strcmp(argv[1], "api") == 0) {
    /* Before anything touches the collector. */
    int r = cgc_set_suspend_signal(SIGUSR1);
    CHECKF(r == 0, "cgc_set_suspend_signal(SIGUSR1) before init returned %d", r);
    test_seed();
    cgc_init();
    CHECKF(cgc_suspend_signal() == SIGUSR1, "signal in use %d, set %d", cgc_suspend_signal(), SIGUSR1);
    cgc_collect();
    CHECK(cgc_set_suspend_signal(SIGUSR2) == -1);
    CHECK(cgc_suspend_signal() == SIGUSR1);
  } else if (strcmp(argv[1], "invalid") == 0) {
    CHECK(cgc_set_suspend_signal(SIGKILL) == -1);
    CHECK(cgc_set_suspend_signal(SIGSTOP) == -1);
    CHECK(cgc_set_suspend_signal(0) == -1);
    CHECK(cgc_set_suspend_signal(-3) == -1);
    CHECK(cgc_set_suspend_signal(100000) == -1);
    /* Faults and abort keep their meaning: a fault handled by cgc's handler
       would return to the faulting instruction for ever. */
    static const int faults[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT};
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
      CHECKF(cgc_set_suspend_signal(faults[i]) == -1, "signal %d accepted", faults[i]);
    test_seed();
    cgc_init();
    CHECKF(cgc_suspend_signal() == SIGPWR, "after invalid requests the signal in use is %d", cgc_suspend_signal());
  } else if (strcmp(argv[1], "env") == 0 && argc >= 3) {
    int want = atoi(argv[2]);
    test_seed();
    cgc_init();
    CHECKF(cgc_suspend_signal() == want, "CGC_SIGNAL=%s: signal in use %d, expected %d",
           getenv("CGC_SIGNAL") ? getenv("CGC_SIGNAL") : "(unset)", cgc_suspend_signal(), want);
  } else {
    CHECKF(0, "unknown mode %s", argv[1]);
  }
  workload();
  printf("core_signal %s: ok\n", argv[1]);
  return 0;
}
