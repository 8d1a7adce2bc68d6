/* fork and the cleanup queue.  Run as `specials_fork CASE`.
 *
 *   child     a child of a program whose cleanup thread has run: its own
 *             cleanups run (a new cleanup thread) and cgc_wait_cleanups returns
 *   inflight  fork while the cleanup thread is inside a cleanup: in the child,
 *             cgc_wait_cleanups must still return (the batch the parent's
 *             cleanup thread had taken does not exist in the child), and once
 *             everything ran there cleanups_queued is 0 (that batch counts as
 *             done in the child, not as queued for ever)
 *   inflight_counts  fork while the cleanup thread blocks in the tenth
 *             cleanup of its batch: in the child num_cleanups_run counts the
 *             nine it finished (the batch's counts are added at its end,
 *             which the child never sees)
 *   inside    (CGC_DEBUG=cleanups=manual) a cleanup run by cgc_run_cleanups on
 *             the main thread forks: in the child the rest of that batch runs
 *             on (it is the child's own thread), and every count stays right
 *             (cleanups_queued 0, not negative)
 *   onfree    fork while another thread is inside cgc_free running an object's
 *             cleanups: in the child that free never finishes, so its records
 *             must be dropped there; the arguments they held (objects with
 *             cleanups of their own) are then collected and their cleanups run
 * A child that hangs is killed by alarm() and reported.
 */
#include <signal.h>
#include <sys/wait.h>

#include "specials_util.h"

static _Atomic int ran, started, release_it;

static NOINLINE void make(size_t n, void (*fn)(void *)) {
  for (size_t i = 0; i < n; i++) cgc_add_cleanup(cgc_alloc(24), fn, NULL);
}

static void count(void *arg) {
  (void)arg;
  atomic_fetch_add(&ran, 1);
}

static void slow(void *arg) {
  (void)arg;
  atomic_store(&started, 1);
  while (!atomic_load(&release_it)) usleep(1000);
  atomic_fetch_add(&ran, 1);
}

/* inflight_counts: the tenth blocks, the nine before it finished. */
static _Atomic int finished;
static void count_then_block(void *arg) {
  (void)arg;
  if (atomic_fetch_add(&ran, 1) + 1 == 10) {
    atomic_store(&started, 1);
    while (!atomic_load(&release_it)) usleep(1000);
  }
  atomic_fetch_add(&finished, 1);
}

/* 200 unreachable objects with cleanup fn, collected; returns once the
   cleanup thread is inside the one that blocks until release_it. */
static void start_blocking(void (*fn)(void *)) {
  make(200, fn);
  clear_stack();
  cgc_collect();
  uint64_t t0 = now_ns();
  while (!atomic_load(&started)) {
    CHECKF(now_ns() - t0 < 10000000000ull, "no cleanup started");
    usleep(1000);
  }
}

static pid_t forked = -1;
static int inside_runs;
static void fork_in_cleanup(void *arg) {
  (void)arg;
  if (++inside_runs == 3) {
    forked = fork();
    CHECK(forked >= 0);
    if (forked == 0) alarm(10);
  }
}

/* ---- onfree ---- */

#define OF_N 200
static _Atomic int of_in_slow, of_release, of_y_ran;
static void of_slow(void *a) {
  (void)a;
  atomic_store(&of_in_slow, 1);
  while (!atomic_load(&of_release)) sched_yield();
}
static void of_uses(void *a) { (void)a; }
static void of_y_cleanup(void *a) {
  (void)a;
  atomic_fetch_add(&of_y_ran, 1);
}

/* x carries OF_N cleanups whose arguments are objects y (alive only through
   them) with cleanups of their own, and one that blocks (added last: runs
   first). */
static NOINLINE void *of_make(void) {
  void *x = cgc_alloc(32);
  for (int i = 0; i < OF_N; i++) {
    void *y = cgc_alloc(32);
    cgc_add_cleanup(y, of_y_cleanup, NULL);
    cgc_add_cleanup(x, of_uses, y);
  }
  cgc_add_cleanup(x, of_slow, NULL);
  return x;
}
static void *of_freer(void *a) {
  (void)a;
  cgc_free(of_make());
  return NULL;
}

static void test_onfree(void) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, of_freer, NULL) == 0);
  while (!atomic_load(&of_in_slow)) sched_yield();
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    alarm(10);
    collect_rounds(4);
    int n = atomic_load(&of_y_ran);
    if (n < OF_N * DEATH_MIN) {
      fprintf(stderr, "child: only %d of %d cleanups of the objects held by the interrupted free ran\n", n, OF_N);
      _exit(1);
    }
    _exit(0);
  }
  atomic_store(&of_release, 1);
  CHECK(pthread_join(t, NULL) == 0);
  collect_rounds(4);
  CHECKF(atomic_load(&of_y_ran) >= OF_N * DEATH_MIN, "parent: only %d of %d ran", atomic_load(&of_y_ran), OF_N);
  expect_child_ok(pid);
}

int main(int argc, char **argv) {
  CHECKF(argc == 2, "usage: specials_fork CASE");
  const char *c = argv[1];
  cgc_init();
  if (strcmp(c, "child") == 0) {
    make(1000, count);
    collect_wait();
    CHECK(atomic_load(&ran) >= 900);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      alarm(10);
      atomic_store(&ran, 0);
      make(1000, count);
      collect_rounds(2);
      CHECKF(atomic_load(&ran) >= 900, "child: %d of 1000 cleanups ran", atomic_load(&ran));
      CHECK(thread_named_exists("cgc-cleanup"));
      _exit(0);
    }
    expect_child_ok(pid);
  } else if (strcmp(c, "inflight") == 0) {
    start_blocking(slow);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      alarm(10);
      atomic_store(&release_it, 1);
      cgc_wait_cleanups();
      make(100, count);
      collect_wait();
      cgc_stats_t s = stats();
      if (s.cleanups_queued != 0) {
        fprintf(stderr, "child: cleanups_queued is %llu after everything ran\n", (unsigned long long)s.cleanups_queued);
        _exit(1);
      }
      _exit(0);
    }
    atomic_store(&release_it, 1);
    cgc_wait_cleanups();
    expect_child_ok(pid);
    CHECK(atomic_load(&ran) >= 180);
  } else if (strcmp(c, "inflight_counts") == 0) {
    start_blocking(count_then_block);
    uint64_t run0 = stats().num_cleanups_run;
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      alarm(10);
      /* The parent's cleanup thread had finished 9 cleanups of the batch it
         was in: they ran, and count in the child too. */
      cgc_stats_t s = stats();
      if (s.num_cleanups_run != run0 + 9 || atomic_load(&finished) != 9) {
        fprintf(stderr, "child: num_cleanups_run %llu (before the fork %llu), %d cleanups had finished\n",
                (unsigned long long)s.num_cleanups_run, (unsigned long long)run0, atomic_load(&finished));
        _exit(1);
      }
      _exit(0);
    }
    atomic_store(&release_it, 1);
    cgc_wait_cleanups();
    expect_child_ok(pid);
    CHECK(atomic_load(&finished) == 200);
  } else if (strcmp(c, "onfree") == 0) {
    test_onfree();
  } else if (strcmp(c, "inside") == 0) {
    const char *dbg = getenv("CGC_DEBUG");
    CHECKF(dbg && strstr(dbg, "cleanups=manual"), "run with CGC_DEBUG=cleanups=manual");
    make(10, fork_in_cleanup);
    clear_stack();
    cgc_collect();
    size_t n = cgc_run_cleanups();
    cgc_stats_t s = stats();
    CHECKF(s.cleanups_queued == 0, "%s: cleanups_queued is %llu after everything ran", forked == 0 ? "child" : "parent",
           (unsigned long long)s.cleanups_queued);
    cgc_wait_cleanups();
    if (forked == 0) _exit(n == 10 ? 0 : 1);
    CHECK(n == 10);
    expect_child_ok(forked);
  } else {
    fprintf(stderr, "unknown case %s\n", c);
    return 2;
  }
  fprintf(stderr, "%s: ok\n", c);
  return 0;
}
