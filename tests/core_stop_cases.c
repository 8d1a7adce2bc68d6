/* Stopping threads and thread exit, in situations a program can put cgc in.
 * Run as `core_stop_cases CASE`:
 *
 *   sigpending  with a real-time suspend signal (CGC_SIGNAL=RTMIN, set by
 *               tests/core.cmake) and the queued-signal limit at 0, tgkill
 *               fails with EAGAIN: the collector must keep trying (until a
 *               thread of the program raises the limit again), never take the
 *               running thread for an exited one and skip its stack
 *   tsd         a thread's own TSD destructor (its key created after cgc's)
 *               uses an object held only in a __thread variable while another
 *               thread collects: the exiting thread is still registered then
 *   cancel_wait a thread cancelled inside cgc_wait_cleanups does not leave
 *               cgc's cleanup queue locked: later collections and cleanups run
 *   chain_slow  a handler that chains to cgc's, and a thread that blocks the
 *               suspend signal for 500 ms: the collection waits, it does not
 *               abort as if the handler swallowed the signal
 *   sigqueue_refused  a seccomp filter makes rt_tgsigqueueinfo fail with
 *               EPERM (as a sandbox may): threads are still stopped (with a
 *               plain tgkill) and their stacks scanned
 */
#include <semaphore.h>
#include <sys/resource.h>

#include "core_util.h"

static void sem_wait_intr(sem_t *s) {
  while (sem_wait(s) != 0) CHECK(errno == EINTR);
}

/* Tell the other thread we are here, then wait for its answer. */
static void post_then_wait(sem_t *post, sem_t *wait) {
  CHECK(sem_post(post) == 0);
  sem_wait_intr(wait);
}

/* ---- sigpending ---------------------------------------------------------------------- */

enum { SP_N = 256, SP_SZ = 200 };
static atomic_int sp_ready, sp_done;
static struct rlimit sp_saved;

static void *sp_worker(void *unused) {
  (void)unused;
  unsigned char *volatile objs[SP_N];
  for (int i = 0; i < SP_N; i++) {
    unsigned char *p = cgc_alloc_noscan(SP_SZ);
    CHECK(p);
    memset(p, i % 250 + 1, SP_SZ);
    objs[i] = p;
  }
  atomic_store(&sp_ready, 1);
  while (!atomic_load(&sp_done)) sched_yield(); /* running, not blocked */
  int bad = 0;
  for (int i = 0; i < SP_N; i++) {
    unsigned char *p = objs[i];
    if (cgc_base(p) != p || p[0] != i % 250 + 1 || p[SP_SZ - 1] != i % 250 + 1) bad++;
  }
  return (void *)(intptr_t)bad;
}

/* The program's own thread that lets signals be queued again.  It is
   registered before the limit drops (a thread registering during the stop
   would wait for the collector, which waits for the limit to rise). */
static sem_t sp_lifter_ready, sp_lift;
static void *sp_lifter(void *unused) {
  (void)unused;
  post_then_wait(&sp_lifter_ready, &sp_lift);
  struct timespec ts = {0, 100 * 1000 * 1000};
  while (nanosleep(&ts, &ts) != 0) CHECK(errno == EINTR);
  CHECK(setrlimit(RLIMIT_SIGPENDING, &sp_saved) == 0);
  return NULL;
}

static void case_sigpending(void) {
  CHECKF(cgc_suspend_signal() >= SIGRTMIN, "run with CGC_SIGNAL=RTMIN (signal %d)", cgc_suspend_signal());
  pthread_t w, l;
  CHECK(pthread_create(&w, NULL, sp_worker, NULL) == 0);
  while (!atomic_load(&sp_ready)) sched_yield();
  CHECK(sem_init(&sp_lifter_ready, 0, 0) == 0 && sem_init(&sp_lift, 0, 0) == 0);
  CHECK(pthread_create(&l, NULL, sp_lifter, NULL) == 0);
  sem_wait_intr(&sp_lifter_ready);
  CHECK(getrlimit(RLIMIT_SIGPENDING, &sp_saved) == 0);
  struct rlimit none = {0, sp_saved.rlim_max};
  CHECK(setrlimit(RLIMIT_SIGPENDING, &none) == 0);
  CHECK(sem_post(&sp_lift) == 0);
  cgc_collect(); /* the worker's signal cannot be queued until the lifter ran */
  for (int i = 0; i < 20000; i++) memset(cgc_alloc_noscan(SP_SZ), 0xEE, SP_SZ);
  CHECK(pthread_join(l, NULL) == 0);
  cgc_collect();
  atomic_store(&sp_done, 1);
  void *bad;
  CHECK(pthread_join(w, &bad) == 0);
  CHECKF(bad == NULL, "%d of %d objects held by a running thread's stack were lost", (int)(intptr_t)bad, SP_N);
}

/* ---- tsd ------------------------------------------------------------------------------- */

enum { TSD_SZ = 4000 };
static pthread_key_t tsd_key;
static __thread unsigned char *tsd_mine;
static sem_t tsd_in_dtor, tsd_collected;
static atomic_int tsd_lost;

static void tsd_dtor(void *v) {
  (void)v;
  post_then_wait(&tsd_in_dtor, &tsd_collected);
  unsigned char *p = tsd_mine;
  if (cgc_base(p) != p || p[0] != 0x5A || p[TSD_SZ - 1] != 0x5A) atomic_store(&tsd_lost, 1);
}

static __attribute__((noinline)) void tsd_fill(void) {
  tsd_mine = cgc_alloc_noscan(TSD_SZ);
  CHECK(tsd_mine);
  memset(tsd_mine, 0x5A, TSD_SZ);
}

static void *tsd_worker(void *unused) {
  (void)unused;
  tsd_fill();
  CHECK(pthread_setspecific(tsd_key, (void *)1) == 0);
  return NULL;
}

static void case_tsd(void) {
  CHECK(sem_init(&tsd_in_dtor, 0, 0) == 0 && sem_init(&tsd_collected, 0, 0) == 0);
  CHECK(pthread_key_create(&tsd_key, tsd_dtor) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, tsd_worker, NULL) == 0);
  sem_wait_intr(&tsd_in_dtor);
  for (int r = 0; r < 4; r++) {
    cgc_collect();
    for (int i = 0; i < 5000; i++) memset(cgc_alloc_noscan(TSD_SZ), 0x11, TSD_SZ);
  }
  CHECK(sem_post(&tsd_collected) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  CHECKF(!atomic_load(&tsd_lost), "the object in the exiting thread's __thread variable was collected while "
                                  "its TSD destructor ran");
}

/* ---- cancel_wait ------------------------------------------------------------------------ */

static sem_t cw_slow_started, cw_release;
static atomic_int cw_quick;

static void cw_slow(void *arg) {
  (void)arg;
  post_then_wait(&cw_slow_started, &cw_release);
}
static void cw_quick_cleanup(void *arg) {
  (void)arg;
  atomic_fetch_add(&cw_quick, 1);
}
static __attribute__((noinline)) void cw_garbage(void (*fn)(void *), int n) {
  for (int i = 0; i < n; i++) cgc_add_cleanup(cgc_alloc(32), fn, NULL);
}
static void *cw_waiter(void *unused) {
  (void)unused;
  cgc_wait_cleanups(); /* waits for cw_slow: cancelled in there (deferred cancellation) */
  return NULL;
}

static void case_cancel_wait(void) {
  CHECK(sem_init(&cw_slow_started, 0, 0) == 0 && sem_init(&cw_release, 0, 0) == 0);
  cw_garbage(cw_slow, 1);
  clear_stack();
  cgc_collect(); /* queues cw_slow; the cleanup thread runs it and blocks */
  sem_wait_intr(&cw_slow_started);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, cw_waiter, NULL) == 0);
  CHECK(pthread_cancel(t) == 0);
  void *r;
  CHECK(pthread_join(t, &r) == 0);
  CHECK(r == PTHREAD_CANCELED);
  CHECK(sem_post(&cw_release) == 0);
  watchdog_start(30, "core_stop_cases cancel_wait: cgc did not return within 30 s after a cancelled "
                     "cgc_wait_cleanups");
  cw_garbage(cw_quick_cleanup, 100);
  clear_stack();
  cgc_collect();
  cgc_wait_cleanups();
  watchdog_stop();
  CHECKF(atomic_load(&cw_quick) >= 50, "only %d of 100 cleanups ran", atomic_load(&cw_quick));
}

/* ---- chain_slow ------------------------------------------------------------------------- */

static struct sigaction cs_prev;
static atomic_long cs_chained;
static sem_t cs_started, cs_go, cs_blocked;

static void cs_handler(int sig, siginfo_t *si, void *uc) {
  atomic_fetch_add(&cs_chained, 1);
  if (cs_prev.sa_flags & SA_SIGINFO) cs_prev.sa_sigaction(sig, si, uc);
  else if (cs_prev.sa_handler != SIG_DFL && cs_prev.sa_handler != SIG_IGN) cs_prev.sa_handler(sig);
}

static void *cs_worker(void *unused) {
  (void)unused;
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, cgc_suspend_signal());
  CHECK(sem_post(&cs_started) == 0); /* registered: the first collection stops it */
  sem_wait_intr(&cs_go);
  CHECK(pthread_sigmask(SIG_BLOCK, &s, NULL) == 0);
  CHECK(sem_post(&cs_blocked) == 0);
  struct timespec ts = {0, 500 * 1000 * 1000}; /* a critical section longer than the 200 ms check */
  while (nanosleep(&ts, &ts) != 0) CHECK(errno == EINTR);
  CHECK(pthread_sigmask(SIG_UNBLOCK, &s, NULL) == 0);
  return NULL;
}

static void case_chain_slow(void) {
  CHECK(sem_init(&cs_started, 0, 0) == 0 && sem_init(&cs_go, 0, 0) == 0 && sem_init(&cs_blocked, 0, 0) == 0);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = cs_handler;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&sa.sa_mask);
  CHECK(sigaction(cgc_suspend_signal(), &sa, &cs_prev) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, cs_worker, NULL) == 0);
  sem_wait_intr(&cs_started);
  cgc_collect(); /* the chaining handler acknowledges */
  CHECK(atomic_load(&cs_chained) >= 1);
  CHECK(sem_post(&cs_go) == 0);
  sem_wait_intr(&cs_blocked);
  cgc_collect(); /* waits for the worker's critical section */
  CHECK(pthread_join(t, NULL) == 0);
}

/* ---- sigqueue_refused -------------------------------------------------------------------- */

static sem_t sq_ready, sq_done;

static void *sq_worker(void *unused) {
  (void)unused;
  unsigned char *volatile obj = cgc_alloc(48); /* held by this stack only */
  memset(obj, 0x5a, 48);
  CHECK(sem_post(&sq_ready) == 0);
  sem_wait_intr(&sq_done);
  for (int i = 0; i < 48; i++) CHECKF(obj[i] == 0x5a, "byte %d of an object this thread held is %#x", i, obj[i]);
  return NULL;
}

static void case_sigqueue_refused(void) {
  refuse_sigqueueinfo();
  CHECK(sem_init(&sq_ready, 0, 0) == 0 && sem_init(&sq_done, 0, 0) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, sq_worker, NULL) == 0);
  sem_wait_intr(&sq_ready);
  watchdog_start(30, "a collection did not end in 30 s with rt_tgsigqueueinfo refused");
  for (int round = 0; round < 3; round++) {
    cgc_collect();
    for (int i = 0; i < 20000; i++) memset(cgc_alloc(48), 0xa5, 48); /* reuses the object's slot if freed */
  }
  watchdog_stop();
  CHECK(sem_post(&sq_done) == 0);
  CHECK(pthread_join(t, NULL) == 0);
}

static const test_case_t cases[] = {{"sigpending", case_sigpending},   {"tsd", case_tsd},
                                    {"cancel_wait", case_cancel_wait}, {"chain_slow", case_chain_slow},
                                    {"sigqueue_refused", case_sigqueue_refused}};

int main(int argc, char **argv) {
  cgc_init();
  return RUN_NAMED_CASE(argc, argv, "core_stop_cases", cases);
}
