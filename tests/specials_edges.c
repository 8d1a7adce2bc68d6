/* Edge cases of cleanups, finalizers and weak handles: statistics on
 * cgc_free, order on cgc_free, the static-storage table after removals, fork
 * inside a free and beside a waiter, pacing under cleanup churn.  Run as
 * `specials_edges CASE`.
 *
 *   free_weak_stats  cgc_free of objects with weak handles: num_weak_handles
 *                    drops by the handles cleared at once (exact), and a
 *                    collection afterwards leaves it there
 *   free_fin_first   cgc_free of an object with a finalizer and cleanups: the
 *                    finalizer runs before every cleanup (docs/specials.md
 *                    section 5), small and large objects
 *   static_holes     handles of static storage: after a collection dropped
 *                    some (unreferenced) handles, every kept handle is still
 *                    found: cgc_weak_make of its pointer returns it (exact,
 *                    with no new handle made in between)
 *   fork_in_free     a cleanup run by cgc_free forks: in the child the free
 *                    goes on (it is the child's own thread): the object's
 *                    other cleanups run once, and the collector and specials
 *                    keep working
 *   fork_waiter      fork while another thread sleeps in cgc_wait_cleanups
 *                    (the cleanup thread being inside a cleanup): in the child,
 *                    cgc_wait_cleanups returns, round after round
 *   churn_pacing     adding and stopping cleanups (no net records) does not
 *                    count towards the pacer: the next paced collection
 *                    comes after about the garbage the goal allows, not at once
 *   free_stop_in_finalizer  cgc_free of an object whose finalizer stops
 *                    the object's cleanup (releasing by hand): the cleanup
 *                    does not run, as when the collector runs them
 *   unregister_in_cleanup   a cleanup that registers and unregisters the
 *                    thread it runs on (as code for foreign threads does)
 *                    leaves the cleanup thread registered: later cleanups'
 *                    arguments stay on a scanned stack
 *   nested_wait      (manual) cleanups that each wait for cleanups, run from
 *                    a thread with a 256 KiB stack: the nesting stays
 *                    bounded, every cleanup runs once
 *   unregister_in_run (manual) a cleanup run by cgc_run_cleanups that
 *                    unregisters its thread: the thread stays registered
 *                    until the call returns, then is unregistered
 * A child that hangs is killed by alarm() and reported.
 */
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "specials_util.h"

#define N 2000

static void *roots[N];        /* static: scanned */
static cgc_weak_t handles[N]; /* static: keeps the handles (not the referents) alive */
static cgc_weak_t handles2[N];

/* ---- free_weak_stats ------------------------------------------------------------------------ */

static void test_free_weak_stats(void) {
  cgc_set_gc_percent(-1); /* no collection between the reads: exact counts */
  for (size_t i = 0; i < N; i++) {
    size_t size = i % 10 == 0 ? 40000 : 32;
    char *p = cgc_alloc(size);
    CHECK(p != NULL);
    roots[i] = p;
    handles[i] = cgc_weak_make(p);
    handles2[i] = cgc_weak_make(p + 8);
  }
  uint64_t before = stats().num_weak_handles;
  CHECKF(before >= 2 * N, "num_weak_handles %llu, made %d", (unsigned long long)before, 2 * N);
  for (size_t i = 0; i < N; i++) {
    cgc_free(roots[i]);
    roots[i] = NULL;
    CHECK(cgc_weak_value(handles[i]) == NULL && cgc_weak_value(handles2[i]) == NULL);
  }
  uint64_t after = stats().num_weak_handles;
  CHECKF(before - after == 2 * N,
         "num_weak_handles went from %llu to %llu after freeing %d objects with %d handles (want a drop of %d)",
         (unsigned long long)before, (unsigned long long)after, N, 2 * N, 2 * N);
  /* The handles are still referenced: a collection changes nothing. */
  collect_rounds(2);
  uint64_t later = stats().num_weak_handles;
  CHECKF(later == after, "num_weak_handles %llu after the frees, %llu after collections", (unsigned long long)after,
         (unsigned long long)later);
  for (size_t i = 0; i < N; i++) CHECK(cgc_weak_value(handles[i]) == NULL && cgc_weak_value(handles2[i]) == NULL);
  cgc_set_gc_percent(100);
}

/* ---- free_fin_first --------------------------------------------------------------------------- */

typedef struct {
  size_t i;
  char pad[24];
} fobj_t;

static _Atomic int fin_ran[N];
static _Atomic int cl_ran[N];
static _Atomic int order_errors;

static void ff_fin(void *obj) { atomic_fetch_add(&fin_ran[((fobj_t *)obj)->i], 1); }
static void ff_cleanup(void *arg) {
  size_t i = (size_t)(uintptr_t)arg;
  if (atomic_load(&fin_ran[i]) == 0 && atomic_fetch_add(&order_errors, 1) < 10)
    fprintf(stderr, "object %zu: a cleanup ran before its finalizer\n", i);
  atomic_fetch_add(&cl_ran[i], 1);
}

static void test_free_fin_first(void) {
  for (size_t i = 0; i < N; i++) {
    fobj_t *o = cgc_alloc(i % 10 == 0 ? 50000 : sizeof *o);
    CHECK(o != NULL);
    o->i = i;
    CHECK(cgc_set_finalizer(o, ff_fin) == 0);
    cgc_add_cleanup(o, ff_cleanup, (void *)(uintptr_t)i);
    cgc_add_cleanup((char *)o + 8, ff_cleanup, (void *)(uintptr_t)i);
    cgc_free(o);
    CHECKF(atomic_load(&fin_ran[i]) == 1 && atomic_load(&cl_ran[i]) == 2,
           "object %zu: finalizer ran %d times, cleanups %d times (want 1, 2)", i, atomic_load(&fin_ran[i]),
           atomic_load(&cl_ran[i]));
  }
  CHECKF(atomic_load(&order_errors) == 0, "%d cleanups ran before their object's finalizer in cgc_free",
         atomic_load(&order_errors));
}

/* ---- static_holes --------------------------------------------------------------------------- */

#define SH 600 /* well below the table's growth point: lookups must cope with holes */
static long sh_targets[SH];
static cgc_weak_t sh_h[SH];

static NOINLINE void sh_make(void) {
  for (size_t i = 0; i < SH; i++) sh_h[i] = cgc_weak_make(&sh_targets[i]);
}

static void test_static_holes(void) {
  sh_make();
  for (int round = 0; round < 4; round++) {
    /* Drop one handle in three (a different third each round) and let the
       collection take them out of the table. */
    for (size_t i = 0; i < SH; i++)
      if (i % 3 == (size_t)round % 3) sh_h[i] = NULL;
    uint64_t before = stats().num_weak_handles;
    collect_wait();
    uint64_t after = stats().num_weak_handles;
    CHECKF(before - after > SH / 4, "round %d: num_weak_handles %llu -> %llu: the dropped handles were not collected",
           round, (unsigned long long)before, (unsigned long long)after);
    /* Look up every kept handle before making any new one. */
    size_t lost = 0;
    for (size_t i = 0; i < SH; i++) {
      if (!sh_h[i]) continue;
      cgc_weak_t h = cgc_weak_make(&sh_targets[i]);
      if (h != sh_h[i] && lost++ < 5)
        fprintf(stderr, "round %d: pointer %zu (%p) got a second handle\n", round, i, (void *)&sh_targets[i]);
      CHECK(cgc_weak_value(h) == &sh_targets[i]);
    }
    CHECKF(lost == 0, "round %d: %zu kept handles of static storage were not found again", round, lost);
    for (size_t i = 0; i < SH; i++) {
      cgc_weak_t h = cgc_weak_make(&sh_targets[i]);
      CHECK(!sh_h[i] || h == sh_h[i]);
      sh_h[i] = h;
    }
  }
  memset(sh_h, 0, sizeof sh_h);
}

/* ---- fork_in_free ---------------------------------------------------------------------------- */

static _Atomic int fif_after; /* cleanups run after the forking one */
static _Atomic int fif_fin;
static pid_t fif_pid = -1;
static _Atomic int fif_count;

static void fif_count_cleanup(void *arg) {
  (void)arg;
  atomic_fetch_add(&fif_after, 1);
}
static void fif_fin_fn(void *obj) {
  (void)obj;
  atomic_fetch_add(&fif_fin, 1);
}
static void fif_fork(void *arg) {
  (void)arg;
  fif_pid = fork();
  CHECK(fif_pid >= 0);
  if (fif_pid == 0) alarm(10);
}
static void fif_later(void *arg) {
  (void)arg;
  atomic_fetch_add(&fif_count, 1);
}

static NOINLINE void fif_garbage(size_t n) {
  for (size_t i = 0; i < n; i++) cgc_add_cleanup(cgc_alloc(32), fif_later, NULL);
}

static void test_fork_in_free(void) {
  void *x = cgc_alloc(32);
  CHECK(cgc_set_finalizer(x, fif_fin_fn) == 0);
  for (int i = 0; i < 3; i++) cgc_add_cleanup(x, fif_count_cleanup, NULL); /* run after the fork (list order) */
  cgc_weak_t w = cgc_weak_make(x);
  cgc_add_cleanup(x, fif_fork, NULL); /* added last: runs first */
  cgc_free(x);
  /* Both processes get here, each with the free finished once. */
  int bad = atomic_load(&fif_after) != 3 || atomic_load(&fif_fin) != 1 || cgc_weak_value(w) != NULL;
  if (bad)
    fprintf(stderr, "%s: after cgc_free: %d of 3 cleanups, %d finalizer runs, handle %p\n",
            fif_pid == 0 ? "child" : "parent", atomic_load(&fif_after), atomic_load(&fif_fin), cgc_weak_value(w));
  /* The collector and the specials still work: objects of the same class
     with cleanups die and their cleanups run, a new object gets specials. */
  void *y = cgc_alloc(32);
  cgc_weak_t wy = cgc_weak_make(y);
  cgc_add_cleanup(y, fif_later, NULL);
  fif_garbage(1000);
  collect_rounds(2);
  int ran = atomic_load(&fif_count);
  if (ran < 900) {
    fprintf(stderr, "%s: only %d of 1000 cleanups ran\n", fif_pid == 0 ? "child" : "parent", ran);
    bad = 1;
  }
  if (cgc_weak_value(wy) != y) bad = 1;
  cgc_free(y);
  if (atomic_load(&fif_after) != 3 || atomic_load(&fif_fin) != 1) bad = 1;
  if (fif_pid == 0) _exit(bad);
  CHECK(!bad);
  expect_child_ok(fif_pid);
}

/* ---- fork_waiter ----------------------------------------------------------------------------- */

static _Atomic int fw_started, fw_release, fw_ran, fw_tid, fw_waiting;

static void fw_slow(void *arg) {
  (void)arg;
  atomic_store(&fw_started, 1);
  while (!atomic_load(&fw_release)) sched_yield();
}
static void fw_count(void *arg) {
  (void)arg;
  atomic_fetch_add(&fw_ran, 1);
}
static NOINLINE void fw_make(size_t n, void (*fn)(void *)) {
  for (size_t i = 0; i < n; i++) cgc_add_cleanup(cgc_alloc(24), fn, NULL);
}
static void *fw_waiter(void *arg) {
  (void)arg;
  atomic_store(&fw_tid, (int)syscall(SYS_gettid));
  atomic_store(&fw_waiting, 1);
  cgc_wait_cleanups(); /* sleeps until fw_slow returns */
  return NULL;
}

/* The state letter of thread tid of this process ('S': sleeping). */
static char thread_state(int tid) {
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
  FILE *f = fopen(path, "r");
  if (!f) return '?';
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  const char *p = strrchr(buf, ')');
  return p && p[1] == ' ' ? p[2] : '?';
}

static void test_fork_waiter(void) {
  fw_make(1, fw_slow);
  clear_stack();
  cgc_collect();
  while (!atomic_load(&fw_started)) sched_yield(); /* the cleanup thread is inside fw_slow */
  pthread_t t;
  CHECK(pthread_create(&t, NULL, fw_waiter, NULL) == 0);
  while (!atomic_load(&fw_waiting)) sched_yield();
  /* The waiter's only sleep from here is in cgc_wait_cleanups. */
  while (thread_state(atomic_load(&fw_tid)) != 'S') sched_yield();
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    alarm(10);
    for (int r = 0; r < 5; r++) {
      atomic_store(&fw_ran, 0);
      fw_make(200, fw_count);
      collect_wait();
      if (atomic_load(&fw_ran) < 150) {
        fprintf(stderr, "child: round %d: %d of 200 cleanups ran\n", r, atomic_load(&fw_ran));
        _exit(1);
      }
    }
    _exit(0);
  }
  atomic_store(&fw_release, 1);
  CHECK(pthread_join(t, NULL) == 0);
  expect_child_ok(pid);
}

/* ---- churn_pacing ---------------------------------------------------------------------------- */

#define CH_N 400000 /* 48-byte records: 19 MB if they were never subtracted */
static void ch_nop(void *arg) { (void)arg; }
static void *ch_obj;

static void test_churn_pacing(void) {
  ch_obj = cgc_alloc(64);
  cgc_collect();
  cgc_stats_t s = stats();
  for (size_t i = 0; i < CH_N; i++) {
    cgc_cleanup_t h = cgc_add_cleanup(ch_obj, ch_nop, NULL);
    cgc_cleanup_stop(h);
  }
  cgc_stats_t s1 = stats();
  CHECKF(s1.num_gc == s.num_gc, "a collection ran during the churn");
  CHECK(s.heap_goal_bytes > s.live_bytes);
  uint64_t expected = s.heap_goal_bytes - s.live_bytes;
  size_t bytes = 0;
  while (stats().num_gc == s.num_gc) {
    for (int k = 0; k < 1024; k++) consume(cgc_alloc(64));
    bytes += 1024 * 64;
    CHECKF(bytes <= expected + (4u << 20), "no paced collection after %zu bytes (goal %llu, live %llu)", bytes,
           (unsigned long long)s.heap_goal_bytes, (unsigned long long)s.live_bytes);
  }
  fprintf(stderr, "churn_pacing: collection after %zu KiB (goal %llu KiB, live %llu KiB)\n", bytes >> 10,
          (unsigned long long)s.heap_goal_bytes >> 10, (unsigned long long)s.live_bytes >> 10);
  CHECKF(bytes >= expected / 2,
         "a paced collection after only %zu KiB of garbage (goal %llu KiB, live %llu KiB): %d cleanups added and "
         "stopped still count towards the pacer",
         bytes >> 10, (unsigned long long)s.heap_goal_bytes >> 10, (unsigned long long)s.live_bytes >> 10, CH_N);
}

/* ---- free_stop_in_finalizer ------------------------------------------------------------- */

static cgc_cleanup_t fs_handle;
static _Atomic int fs_cleanup_ran, fs_fin_ran;
static void fs_cleanup(void *arg) {
  (void)arg;
  atomic_fetch_add(&fs_cleanup_ran, 1);
}
static void fs_fin(void *obj) {
  (void)obj;
  atomic_fetch_add(&fs_fin_ran, 1);
  cgc_cleanup_stop(fs_handle); /* released by hand after all */
}

static void test_free_stop_in_finalizer(void) {
  for (int i = 0; i < 100; i++) {
    void *o = cgc_alloc(i % 2 ? 64 : 70000);
    CHECK(o != NULL);
    CHECK(cgc_set_finalizer(o, fs_fin) == 0);
    fs_handle = cgc_add_cleanup(o, fs_cleanup, NULL);
    cgc_add_cleanup(o, fs_cleanup, (void *)1); /* not stopped: runs */
    cgc_free(o);
  }
  CHECKF(atomic_load(&fs_fin_ran) == 100 && atomic_load(&fs_cleanup_ran) == 100,
         "100 cgc_free calls whose finalizer stopped one of two cleanups: %d finalizers, %d cleanups ran (want 100, "
         "100)", atomic_load(&fs_fin_ran), atomic_load(&fs_cleanup_ran));
}

/* ---- unregister_in_cleanup, unregister_in_run ----------------------------------------------- */

static _Atomic int ur_ran;
static void ur_cleanup(void *arg) {
  (void)arg;
  CHECK(cgc_register_thread() == 0);
  cgc_unregister_thread();
  atomic_fetch_add(&ur_ran, 1);
}

#define UR_N 40
static _Atomic int ur_bad, ur_checked;
static void ur_check(void *arg) {
  unsigned char *a = arg;
  for (int k = 0; k < 200; k++)
    if (a[k] != 0x77) {
      atomic_fetch_add(&ur_bad, 1);
      break;
    }
  atomic_fetch_add(&ur_checked, 1);
}

static NOINLINE void ur_make(int n) {
  for (int i = 0; i < n; i++) {
    void *o = cgc_alloc(16);
    CHECK(o != NULL);
    cgc_add_cleanup(o, ur_cleanup, NULL);
  }
}

static NOINLINE void ur_make_checked(void) {
  for (int i = 0; i < UR_N; i++) {
    void *o = cgc_alloc(16);
    unsigned char *a = cgc_alloc_noscan(200);
    CHECK(o != NULL && a != NULL);
    memset(a, 0x77, 200);
    cgc_add_cleanup(o, ur_check, a);
  }
}

static void test_unregister_in_cleanup(void) {
  uint64_t threads0 = stats().num_threads;
  ur_make(1);
  clear_stack();
  cgc_collect();
  cgc_wait_cleanups();
  CHECK(atomic_load(&ur_ran) == 1);
  uint64_t threads1 = stats().num_threads;
  CHECKF(threads1 >= threads0 + 1, "after a cleanup unregistered the cleanup thread: num_threads %llu (before the "
         "cleanup thread started: %llu)", (unsigned long long)threads1, (unsigned long long)threads0);
  /* Later cleanups' arguments, on the cleanup thread's stack only while they
     run, survive collections made meanwhile. */
  ur_make_checked();
  clear_stack();
  cgc_collect();
  for (int i = 0; i < 20 && atomic_load(&ur_checked) < UR_N; i++) {
    for (int k = 0; k < 2000; k++) consume(cgc_alloc_noscan(200));
    cgc_collect();
  }
  cgc_wait_cleanups();
  CHECKF(atomic_load(&ur_checked) == UR_N && atomic_load(&ur_bad) == 0, "%d of %d cleanups ran, %d with a reused argument",
         atomic_load(&ur_checked), UR_N, atomic_load(&ur_bad));
}

static _Atomic int ur_registered_after;
static void ur_cleanup_then_check(void *arg) {
  (void)arg;
  cgc_unregister_thread();
  /* Still registered while its callbacks run. */
  atomic_store(&ur_registered_after, (int)stats().num_threads);
}

static void *ur_run_thread(void *arg) {
  uint64_t *counts = arg;
  CHECK(cgc_register_thread() == 0);
  counts[0] = stats().num_threads;
  CHECK(cgc_run_cleanups() >= 1);
  counts[1] = stats().num_threads;
  return NULL;
}

static NOINLINE void ur_make_unregistering(void) {
  void *o = cgc_alloc(16);
  CHECK(o != NULL);
  cgc_add_cleanup(o, ur_cleanup_then_check, NULL);
}

static void test_unregister_in_run(void) {
  ur_make_unregistering();
  clear_stack();
  cgc_collect();
  uint64_t counts[2];
  pthread_t t;
  CHECK(pthread_create(&t, NULL, ur_run_thread, counts) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  CHECKF((uint64_t)atomic_load(&ur_registered_after) == counts[0] && counts[1] == counts[0] - 1,
         "cgc_unregister_thread in a cleanup run by cgc_run_cleanups: num_threads %llu before, %d in the cleanup "
         "after the call, %llu after cgc_run_cleanups returned", (unsigned long long)counts[0],
         atomic_load(&ur_registered_after), (unsigned long long)counts[1]);
}

/* ---- nested_wait ------------------------------------------------------------------------- */

#define NW_N 20000
static _Atomic int nw_ran;
static void nw_cleanup(void *arg) {
  (void)arg;
  atomic_fetch_add(&nw_ran, 1);
  cgc_wait_cleanups(); /* from a cleanup: runs what is queued */
}

static NOINLINE void nw_make(void) {
  for (int i = 0; i < NW_N; i++) {
    void *o = cgc_alloc(16);
    CHECK(o != NULL);
    cgc_add_cleanup(o, nw_cleanup, NULL);
  }
}

static void *nw_thread(void *arg) {
  (void)arg;
  cgc_wait_cleanups();
  return NULL;
}

static void test_nested_wait(void) {
  nw_make();
  clear_stack();
  cgc_collect();
  pthread_attr_t at;
  CHECK(pthread_attr_init(&at) == 0);
  CHECK(pthread_attr_setstacksize(&at, 256 << 10) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, &at, nw_thread, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  CHECKF(atomic_load(&nw_ran) == NW_N, "%d of %d cleanups that wait for cleanups ran", atomic_load(&nw_ran), NW_N);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CASE\n", argv[0]);
    return 2;
  }
  const char *c = argv[1];
  cgc_init();
  if (strcmp(c, "free_weak_stats") == 0) test_free_weak_stats();
  else if (strcmp(c, "free_fin_first") == 0) test_free_fin_first();
  else if (strcmp(c, "static_holes") == 0) test_static_holes();
  else if (strcmp(c, "fork_in_free") == 0) test_fork_in_free();
  else if (strcmp(c, "fork_waiter") == 0) test_fork_waiter();
  else if (strcmp(c, "churn_pacing") == 0) test_churn_pacing();
  else if (strcmp(c, "free_stop_in_finalizer") == 0) test_free_stop_in_finalizer();
  else if (strcmp(c, "unregister_in_cleanup") == 0) test_unregister_in_cleanup();
  else if (strcmp(c, "unregister_in_run") == 0) test_unregister_in_run();
  else if (strcmp(c, "nested_wait") == 0) test_nested_wait();
  else {
    fprintf(stderr, "unknown case %s\n", c);
    return 2;
  }
  fprintf(stderr, "%s: ok\n", c);
  return 0;
}
