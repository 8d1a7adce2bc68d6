/* Signals and thread lifetimes that must not stop collections for ever.
     core_signal_cases blocked_cleanup  the program blocks every signal (as for
                  sigwait or a signalfd) before cgc's cleanup thread starts:
                  that thread still lets the suspend signal in, so later
                  collections stop it
     core_signal_cases dead_registered  a thread-specific-data destructor that
                  allocates after cgc's own destructor ran leaves the thread
                  registered when it exits: collections skip it
     core_signal_cases dead_unmapped    the same after a collection stopped it
                  in that destructor, on a stack of its own unmapped after the
                  join: collections read nothing of it
     core_signal_cases cleanup_fault    a cleanup faults: the program's handler
                  runs (the cleanup thread leaves fault signals unblocked)
     core_signal_cases cleanup_mask     cleanups run with the program's
                  signals blocked: one sent while a cleanup runs reaches the
                  program's sigwait
     core_signal_cases main_exits       the main thread exits registered and
                  stays a zombie: collections count it as gone, and what only
                  its stack referenced is collected
     core_signal_cases own_handler      the program replaces the suspend
                  signal's handler: the next collection with another thread
                  aborts with a message (must-abort test) instead of waiting
     core_signal_cases default_handler  the same with the signal set back to
                  SIG_DFL, which would kill the process at the first stop
     core_signal_cases ignored_handler  the same with SIG_IGN */
#include "core_util.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

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

/* cleanup_mask: a cleanup waits, holding the cleanup thread, while the
   program sends itself a signal it takes with sigwait. */
static sigset_t cleanup_mask_seen;
static atomic_int cleanup_in, cleanup_go;
static void waiting_cleanup(void *arg) {
  (void)arg;
  CHECK(pthread_sigmask(SIG_BLOCK, NULL, &cleanup_mask_seen) == 0);
  if (atomic_exchange(&cleanup_in, 1) == 0) {
    uint64_t deadline = now_ns() + 30000000000ull;
    while (!atomic_load(&cleanup_go) && now_ns() < deadline) sched_yield();
  }
  atomic_fetch_add(&ran, 1);
}

/* Cleanups run with the program's signals blocked (its signals may be
   meant for sigwait or a signalfd), all but the suspend signal and the
   faults: a process-directed SIGUSR1 sent while a cleanup runs reaches the
   program's sigwait, not the cleanup thread (whose default action would
   end the process). */
static void cleanup_mask(void) {
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  CHECK(pthread_sigmask(SIG_BLOCK, &usr1, NULL) == 0);
  for (int round = 0; round < 10 && !atomic_load(&cleanup_in); round++) {
    cgc_add_cleanup(cgc_alloc(64), waiting_cleanup, NULL);
    clear_stack();
    cgc_collect();
    uint64_t deadline = now_ns() + 2000000000ull;
    while (!atomic_load(&cleanup_in) && now_ns() < deadline) sched_yield();
  }
  CHECKF(atomic_load(&cleanup_in), "no cleanup ran");
  for (int i = 0; i < 20; i++) {
    CHECK(kill(getpid(), SIGUSR1) == 0);
    int sig = 0;
    CHECK(sigwait(&usr1, &sig) == 0 && sig == SIGUSR1);
  }
  atomic_store(&cleanup_go, 1);
  cgc_wait_cleanups();
  static const int blocked[] = {SIGUSR1, SIGUSR2, SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGALRM, SIGPIPE};
  for (size_t i = 0; i < sizeof blocked / sizeof blocked[0]; i++)
    CHECKF(sigismember(&cleanup_mask_seen, blocked[i]), "signal %d is not blocked in a cleanup", blocked[i]);
  static const int open_[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP};
  for (size_t i = 0; i < sizeof open_ / sizeof open_[0]; i++)
    CHECKF(!sigismember(&cleanup_mask_seen, open_[i]), "signal %d is blocked in a cleanup", open_[i]);
  CHECKF(!sigismember(&cleanup_mask_seen, cgc_suspend_signal()), "the suspend signal is blocked in a cleanup");
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
/* dead_unmapped: a thread that exits registered after a collection stopped it
   (in its last thread-specific-data destructor, which allocates after cgc's
   own destructor ran), on a stack of the program's own that is unmapped once
   the thread is joined.  The next collection cannot signal it (it is gone):
   nothing of it is scanned, neither the stack it was stopped on nor its TLS. */
static pthread_key_t last_key;
static atomic_int last_registered, last_go;
static void last_destructor(void *v) {
  if ((uintptr_t)v < 4) { /* cgc's destructor unregisters the thread in the 4th round */
    CHECK(pthread_setspecific(last_key, (void *)((uintptr_t)v + 1)) == 0);
    return;
  }
  consume(cgc_alloc(32)); /* registers the exiting thread again */
  atomic_store(&last_registered, 1);
  while (!atomic_load(&last_go)) sched_yield(); /* a collection stops this thread here */
}
static void *set_last_key(void *a) {
  (void)a;
  CHECK(pthread_setspecific(last_key, (void *)1) == 0);
  return NULL;
}
static void dead_unmapped(void) {
  CHECK(pthread_key_create(&last_key, last_destructor) == 0);
  for (int i = 0; i < 3; i++) {
    size_t size = 1 << 20;
    void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(stack != MAP_FAILED);
    pthread_attr_t attr;
    CHECK(pthread_attr_init(&attr) == 0);
    CHECK(pthread_attr_setstack(&attr, stack, size) == 0);
    atomic_store(&last_registered, 0);
    atomic_store(&last_go, 0);
    pthread_t t;
    CHECK(pthread_create(&t, &attr, set_last_key, NULL) == 0);
    CHECK(pthread_attr_destroy(&attr) == 0);
    while (!atomic_load(&last_registered)) sched_yield();
    cgc_collect(); /* stops the thread in its destructor */
    atomic_store(&last_go, 1);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(munmap(stack, size) == 0);
    uint64_t gc0 = cgc_gc_count();
    cgc_collect();
    CHECK(cgc_gc_count() > gc0);
  }
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
/* The program's own handler for the suspend signal (own_handler), or the
   signal set to SIG_DFL (SIGPWR's default action terminates the process) or
   SIG_IGN, diagnosed before any thread is signalled: the next collection
   with another thread aborts. */
static void replaced_handler(void (*disposition)(int)) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, waiter, NULL) == 0);
  event_wait(&ev_registered);
  signal(cgc_suspend_signal(), disposition);
  cgc_collect(); /* aborts */
  event_set(&ev_go);
  CHECK(pthread_join(t, NULL) == 0);
}

/* The suspend signal set to its default action in a program with no other
   registered thread: collections have no thread to stop, so they signal
   nothing and go on (the diagnosis is for the first collection that would
   stop a thread), and what the stack holds stays alive. */
static void default_alone(void) {
  signal(cgc_suspend_signal(), SIG_DFL);
  void *volatile kept = NULL;
  hidden_obj_t h = make_obj((void **)&kept, 64, 7);
  for (int i = 0; i < 3; i++) churn(64, 1);
  verify_obj(h, "an object on the stack of a program whose suspend signal has its default action");
  CHECK(kept != NULL);
}

/* A cleanup that faults: the program's SIGSEGV handler runs (the cleanup
   thread does not block fault signals, which would kill the process
   without it). */
static void on_segv(int sig) {
  (void)sig;
  static const char msg[] = "core_signal_cases cleanup_fault: ok (the program's handler ran)\n";
  if (write(1, msg, sizeof msg - 1) < 0) _exit(3);
  _exit(0);
}
static volatile uintptr_t bad_address = 16; /* read at run time: no compiler warning */
static void faulting_cleanup(void *arg) {
  (void)arg;
  *(volatile int *)bad_address = 1;
}
static __attribute__((noinline)) void make_faulting(void) {
  for (int i = 0; i < 50; i++) cgc_add_cleanup(cgc_alloc(64), faulting_cleanup, NULL);
}
static void cleanup_fault(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_segv;
  CHECK(sigaction(SIGSEGV, &sa, NULL) == 0);
  make_faulting();
  clear_stack();
  for (int i = 0; i < 10; i++) {
    cgc_collect();
    cgc_wait_cleanups(); /* the first cleanup that runs faults */
  }
  CHECKF(0, "no cleanup ran in 10 collections");
}

/* The main thread exits (pthread_exit) registered, allocating in a
   thread-specific-data destructor after cgc's: it stays a zombie, which
   signals still reach, while a worker collects.  The collection counts it
   as gone, and scans nothing of it: an object that only main's
   thread-local variable references is collected, although a collection
   stopped main in that last destructor (main's thread-local storage stays
   allocated in the zombie). */
static pthread_key_t main_key;
static atomic_int main_last, main_stopped;
static cgc_weak_t main_weak;
static __thread void *volatile main_tls_ref;
static void main_rearming(void *v) {
  consume(cgc_alloc(32));
  if ((uintptr_t)v < 4) {
    CHECK(pthread_setspecific(main_key, (void *)((uintptr_t)v + 1)) == 0);
    return;
  }
  /* Registered again after cgc's destructor: wait here for a collection. */
  atomic_store(&main_last, 1);
  while (!atomic_load(&main_stopped)) sched_yield();
}
static bool main_is_zombie(void) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)getpid());
  FILE *f = fopen(path, "r");
  if (!f) return true;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  const char *p = strrchr(buf, ')');
  return p && (p[2] == 'Z' || p[2] == 'X');
}
static void *after_main(void *arg) {
  (void)arg;
  while (!atomic_load(&main_last)) sched_yield();
  cgc_collect(); /* stops main in its last destructor */
  atomic_store(&main_stopped, 1);
  while (!main_is_zombie()) sched_yield(); /* main has exited */
  for (int i = 0; i < 3; i++) cgc_collect();
  CHECKF(cgc_weak_value(main_weak) == NULL,
         "an object referenced only from the exited main thread's thread-local variable is still alive");
  printf("core_signal_cases main_exits: ok\n");
  fflush(stdout);
  exit(0); /* cgc's own threads never exit: returning would leave the process running */
}
static void main_exits(void) {
  CHECK(pthread_key_create(&main_key, main_rearming) == 0);
  CHECK(pthread_setspecific(main_key, (void *)1) == 0);
  main_tls_ref = cgc_alloc(64);
  CHECK(main_tls_ref != NULL);
  main_weak = cgc_weak_make(main_tls_ref);
  CHECK(main_weak != NULL);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, after_main, NULL) == 0);
  pthread_exit(NULL);
}

static void own_handler(void) { replaced_handler(other_handler); }
static void default_handler(void) { replaced_handler(SIG_DFL); }
static void ignored_handler(void) { replaced_handler(SIG_IGN); }

static const test_case_t cases[] = {
    {"blocked_cleanup", blocked_cleanup},
    {"dead_registered", dead_registered},
    {"dead_unmapped", dead_unmapped},
    {"own_handler", own_handler},
    {"default_handler", default_handler},
    {"ignored_handler", ignored_handler},
    {"cleanup_fault", cleanup_fault},
    {"main_exits", main_exits},
    {"cleanup_mask", cleanup_mask},
    {"default_alone", default_alone},
};

int main(int argc, char **argv) {
  test_seed();
  cgc_init();
  return RUN_NAMED_CASE(argc, argv, "core_signal_cases", cases);
}
