/* Moving the suspend signal (cgc_set_suspend_signal, before the first
   collection) gives the old signal its default disposition back
   (docs/threads.md, section 4: "After a move the old signal has its default
   disposition again"), and collections with other threads use the new one.
   Asking for the signal already in use changes nothing: its handler stays. */
#include "core_util.h"

static atomic_int stop;

int main(void) {
  test_seed();
  cgc_init();
  int old = cgc_suspend_signal();
  int sig = SIGRTMIN + 3;
  CHECK(old != sig);
  struct sigaction sa;
  CHECK(cgc_set_suspend_signal(old) == 0);
  CHECK(cgc_suspend_signal() == old);
  CHECK(sigaction(old, NULL, &sa) == 0);
  CHECKF(sa.sa_flags & SA_SIGINFO, "signal %d lost cgc's handler when it was asked for again", old);

  CHECK(cgc_set_suspend_signal(sig) == 0);
  CHECK(cgc_suspend_signal() == sig);

  CHECK(sigaction(old, NULL, &sa) == 0);
  CHECKF(!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL,
         "signal %d still has a handler after the move to %d", old, sig);
  CHECK(sigaction(sig, NULL, &sa) == 0);
  CHECK((sa.sa_flags & SA_SIGINFO) || sa.sa_handler != SIG_DFL);

  pthread_t t;
  CHECK(pthread_create(&t, NULL, collect_until, &stop) == 0);
  for (int i = 0; i < 20; i++) cgc_collect();
  atomic_store(&stop, 1);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(cgc_set_suspend_signal(SIGRTMIN + 4) == -1); /* a collection has run */
  printf("core_signal_moved: ok\n");
  return 0;
}
