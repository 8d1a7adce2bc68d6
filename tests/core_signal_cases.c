/* Signals and thread lifetimes that must not stop collections for ever.
     core_signal_cases blocked_cleanup  the program blocks every signal (as for
                  sigwait or a signalfd) before cgc's cleanup thread starts:
                  that thread still lets the suspend signal in, so later
                  collections stop it
     core_signal_cases dead_registered  a thread-specific-data destructor that
                  allocates after cgc's own destructor ran leaves the thread
                  registered when it exits: collections skip it
     core_signal_cases own_handler      the program replaces the suspend
                  signal's handler: the next collection with another thread
                  aborts with a message (must-abort test) instead of waiting */
#include "core_util.h"

#include <signal.h>

static atomic_int ran;
static void count_cleanup(void *arg) {
  (void)arg;
  atomic_fetch_add(&ran, 1);
}
static __attribute__((noinline)) void make_cleanups(int n) {
  for (int i = 0; i < n; i++) cgc_add_cleanup(cgc_alloc(64), count_cleanup, NULL);
}

static void blocked_cleanup(void) {
  sigset_t all;
  sigfillset(&all);
  CHECK(pthread_sigmask(SIG_BLOCK, &all, NULL) == 0);
  for (int round = 0; round < 5; round++) {
    make_cleanups(100);
    clear_stack();
    cgc_collect(); /* round 0 starts the cleanup thread; later rounds must stop it */
    cgc_wait_cleanups();
  }
  CHECKF(atomic_load(&ran) >= 250, "only %d of 500 cleanups ran", atomic_load(&ran));
}

static pthread_key_t key;
static void rearming_destructor(void *v) {
  consume(cgc_alloc(32)); /* registers the exiting thread again */
  if ((uintptr_t)v < 4) CHECK(pthread_setspecific(key, (void *)((uintptr_t)v + 1)) == 0);
}
static void *set_key(void *a) {
  (void)a;
  CHECK(pthread_setspecific(key, (void *)1) == 0);
  return NULL;
}
static void dead_registered(void) {
  CHECK(pthread_key_create(&key, rearming_destructor) == 0);
  for (int i = 0; i < 3; i++) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, set_key, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    uint64_t gc0 = cgc_gc_count();
    cgc_collect();
    CHECK(cgc_gc_count() > gc0);
  }
}

static void other_handler(int sig) { (void)sig; }
static core_event_t ev_go = CORE_EVENT_INIT, ev_registered = CORE_EVENT_INIT;
static void *waiter(void *a) {
  (void)a;
  consume(cgc_alloc(16)); /* registered now */
  event_set(&ev_registered);
  event_wait(&ev_go);
  return NULL;
}
static void own_handler(void) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, waiter, NULL) == 0);
  event_wait(&ev_registered);
  signal(cgc_suspend_signal(), other_handler);
  cgc_collect(); /* aborts */
  event_set(&ev_go);
  CHECK(pthread_join(t, NULL) == 0);
}

int main(int argc, char **argv) {
  CHECKF(argc == 2, "usage: core_signal_cases blocked_cleanup|dead_registered|own_handler");
  test_seed();
  cgc_init();
  if (strcmp(argv[1], "blocked_cleanup") == 0) blocked_cleanup();
  else if (strcmp(argv[1], "dead_registered") == 0) dead_registered();
  else if (strcmp(argv[1], "own_handler") == 0) own_handler();
  else CHECKF(0, "unknown case %s", argv[1]);
  printf("core_signal_cases %s: ok\n", argv[1]);
  return 0;
}
