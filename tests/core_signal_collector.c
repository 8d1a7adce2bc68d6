/* The stop signal reaching the collecting thread itself (sent from outside,
   e.g. with kill or pthread_kill) is ignored by the handler (docs/threads.md,
   section 3: "one that reaches the collecting thread itself ... returns at
   once without acknowledging"): the collection goes on.  A handler that
   took it for a stop would wait for a restart that only the collector, now
   stuck in the handler, could do. */
#include "core_util.h"

static atomic_int stop;
static pthread_t main_thread;

static void *pester(void *arg) {
  (void)arg;
  int sig = cgc_suspend_signal();
  while (!atomic_load(&stop)) {
    CHECK(pthread_kill(main_thread, sig) == 0);
    sched_yield();
  }
  return NULL;
}

int main(void) {
  test_seed();
  cgc_init();
  main_thread = pthread_self();
  /* Something to mark, so that collections take a while. */
  void **keep = cgc_alloc(4096 * sizeof(void *));
  CHECK(keep);
  for (int i = 0; i < 4096; i++) keep[i] = cgc_alloc(64);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, pester, NULL) == 0);
  for (int i = 0; i < 2000; i++) cgc_collect();
  atomic_store(&stop, 1);
  CHECK(pthread_join(t, NULL) == 0);
  consume(keep);
  printf("core_signal_collector: ok\n");
  return 0;
}
