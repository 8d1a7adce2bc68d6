/* Panics and cleanups: a panic recovered inside a cleanup or finalizer
 * leaves cgc's bookkeeping whole, wherever the callback ran; a panic that
 * leaves one is fatal, with a message naming the call, the callback and
 * the panic (docs/specials.md).  Run as `specials_panic CASE`.
 *
 *   recovered      callbacks that panic and recover inside: on the cleanup
 *                  thread, in cgc_run_cleanups, in cgc_free and in a moving
 *                  cgc_realloc; each runs once, everything queued runs,
 *                  cgc_wait_cleanups returns, freed slots are reused
 *   checkfree_arg  (checkfree) a cleanup run by cgc_free that frees its own
 *                  argument and collects: no use-after-free report (the
 *                  argument is not left in cgc's records)
 * Must abort (tests/specials.cmake checks the message):
 *   thread         a panic leaves a cleanup on the cleanup thread
 *   run_cleanups   (manual) ... run by cgc_run_cleanups inside cgc_protect
 *   free_finalizer ... a finalizer run by cgc_free inside cgc_protect
 *   free_cleanup   ... a cleanup run by cgc_free
 *   realloc_cleanup ... a cleanup run by a moving cgc_realloc
 */
#include "specials_util.h"

#define N 64

static _Atomic int runs;

/* ---- recovered ----------------------------------------------------------- */

static void boom(void *arg) { cgc_panicf("boom %p", arg); }

static void cleanup_recovering(void *arg) {
  void *v = NULL;
  CHECK(cgc_protect(boom, arg, &v) == 1);
  CHECK(v != NULL && strncmp((const char *)v, "boom ", 5) == 0);
  atomic_fetch_add(&runs, 1);
}

static void finalizer_recovering(void *obj) { cleanup_recovering(obj); }

static NOINLINE void drop_with_cleanups(int n) {
  for (int i = 0; i < n; i++) {
    void *p = cgc_alloc(32);
    CHECK(p != NULL);
    cgc_add_cleanup(p, cleanup_recovering, cgc_alloc(8));
  }
}

static void test_recovered(void) {
  /* The cleanup thread. */
  atomic_store(&runs, 0);
  drop_with_cleanups(N);
  for (int round = 0; round < 10 && atomic_load(&runs) < N * 9 / 10; round++) collect_wait();
  CHECKF(atomic_load(&runs) >= N * 9 / 10, "%d of %d cleanups ran on the cleanup thread", atomic_load(&runs), N);
  int before = atomic_load(&runs);
  collect_rounds(2);
  CHECKF(atomic_load(&runs) <= N, "cleanups ran more than once: %d runs for %d", atomic_load(&runs), N);
  (void)before;

  /* cgc_free: finalizer and cleanups, small and large; the slot is reused. */
  for (size_t size = 32; size <= (1u << 20); size *= 32) {
    atomic_store(&runs, 0);
    void *p = cgc_alloc(size);
    CHECK(p != NULL);
    CHECK(cgc_set_finalizer(p, finalizer_recovering) == 0);
    cgc_add_cleanup(p, cleanup_recovering, cgc_alloc(8));
    cgc_add_cleanup(p, cleanup_recovering, cgc_alloc(8));
    cgc_free(p);
    CHECKF(atomic_load(&runs) == 3, "cgc_free of %zu bytes: %d callbacks ran, want 3", size, atomic_load(&runs));
    if (size <= 1024) {
      void *q = cgc_alloc(size);
      CHECKF(q == p, "cgc_free of %zu bytes: the slot was not reused (%p, then %p)", size, p, q);
      cgc_free(q);
    }
  }

  /* A moving cgc_realloc. */
  atomic_store(&runs, 0);
  char *b = cgc_alloc_noscan(16);
  CHECK(b != NULL);
  memcpy(b, "0123456789abcde", 16);
  cgc_add_cleanup(b, cleanup_recovering, cgc_alloc(8));
  char *nb = cgc_realloc(b, 4096);
  CHECK(nb != NULL && nb != b && memcmp(nb, "0123456789abcde", 16) == 0);
  CHECKF(atomic_load(&runs) == 1, "cgc_realloc: %d cleanups ran, want 1", atomic_load(&runs));
  cgc_free(nb);
}

static void test_recovered_manual(void) {
  atomic_store(&runs, 0);
  drop_with_cleanups(N);
  size_t ran = 0;
  for (int round = 0; round < 10 && ran < N * 9 / 10; round++) {
    clear_stack();
    cgc_collect();
    ran += cgc_run_cleanups();
  }
  CHECKF(ran >= N * 9 / 10 && (int)ran == atomic_load(&runs), "cgc_run_cleanups ran %zu (counted %d) of %d", ran,
         atomic_load(&runs), N);
  cgc_wait_cleanups(); /* returns: nothing is left in flight */
  cgc_stats_t s = stats();
  CHECKF(s.num_cleanups_run >= ran, "stats count %llu cleanups run, want at least %zu",
         (unsigned long long)s.num_cleanups_run, ran);
}

/* ---- checkfree_arg --------------------------------------------------------- */

static void free_arg_and_collect(void *arg) {
  cgc_free(arg);
  cgc_collect();
  atomic_fetch_add(&runs, 1);
}

static void test_checkfree_arg(void) {
  atomic_store(&runs, 0);
  for (int i = 0; i < 16; i++) {
    void *p = cgc_alloc(64);
    CHECK(p != NULL);
    void *arg = cgc_alloc(128);
    CHECK(arg != NULL);
    cgc_add_cleanup(p, free_arg_and_collect, arg);
    arg = NULL;
    cgc_free(p);
  }
  CHECK(atomic_load(&runs) == 16);
  cgc_collect();
}

/* ---- must abort -------------------------------------------------------------- */

static void cleanup_panics(void *arg) {
  (void)arg;
  cgc_panicf("escaped");
}

static void finalizer_panics(void *obj) { cleanup_panics(obj); }

static void wait_cleanups_protected(void *arg) {
  (void)arg;
  for (int round = 0; round < 10; round++) {
    clear_stack();
    cgc_collect();
    cgc_wait_cleanups();
  }
}

static void run_cleanups_protected(void *arg) {
  (void)arg;
  for (int round = 0; round < 10; round++) {
    clear_stack();
    cgc_collect();
    cgc_run_cleanups();
  }
}

static void free_protected(void *p) { cgc_free(p); }

static NOINLINE void drop_with_panicking(int n) {
  for (int i = 0; i < n; i++) cgc_add_cleanup(cgc_alloc(32), cleanup_panics, cgc_alloc(8));
}

/* A thread exit (a forced unwind, as a C++ exception is an unwind) out of a
   cleanup: cgc's bookkeeping around the call would be skipped. */
static void cleanup_exits(void *arg) {
  (void)arg;
  pthread_exit(NULL);
}

static void *free_exiting(void *arg) {
  (void)arg;
  void *p = cgc_alloc(32);
  cgc_add_cleanup(p, cleanup_exits, NULL);
  cgc_free(p);
  return NULL;
}

static NOINLINE void drop_with_exiting(int n) {
  for (int i = 0; i < n; i++) cgc_add_cleanup(cgc_alloc(32), cleanup_exits, NULL);
}

int main(int argc, char **argv) {
  CHECKF(argc == 2, "usage: specials_panic CASE");
  const char *c = argv[1];
  cgc_init();
  if (strcmp(c, "recovered") == 0) {
    if (getenv("CGC_DEBUG") && strstr(getenv("CGC_DEBUG"), "cleanups=manual")) test_recovered_manual();
    else test_recovered();
  } else if (strcmp(c, "checkfree_arg") == 0) {
    test_checkfree_arg();
  } else if (strcmp(c, "thread") == 0) {
    drop_with_panicking(N);
    for (int round = 0; round < 10; round++) collect_wait();
  } else if (strcmp(c, "run_cleanups") == 0) {
    drop_with_panicking(N);
    cgc_protect(run_cleanups_protected, NULL, NULL);
  } else if (strcmp(c, "wait_cleanups") == 0) {
    drop_with_panicking(N);
    cgc_protect(wait_cleanups_protected, NULL, NULL);
  } else if (strcmp(c, "free_finalizer") == 0) {
    void *p = cgc_alloc(32);
    CHECK(cgc_set_finalizer(p, finalizer_panics) == 0);
    cgc_protect(free_protected, p, NULL);
  } else if (strcmp(c, "free_cleanup") == 0) {
    void *p = cgc_alloc(32);
    cgc_add_cleanup(p, cleanup_panics, cgc_alloc(8));
    cgc_protect(free_protected, p, NULL);
  } else if (strcmp(c, "exit_free_cleanup") == 0) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, free_exiting, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
  } else if (strcmp(c, "exit_thread") == 0) {
    drop_with_exiting(N);
    for (int round = 0; round < 10; round++) collect_wait();
  } else if (strcmp(c, "realloc_cleanup") == 0) {
    void *p = cgc_alloc_noscan(16);
    cgc_add_cleanup(p, cleanup_panics, cgc_alloc(8));
    cgc_realloc(p, 4096);
  } else {
    fprintf(stderr, "unknown case %s\n", c);
    return 2;
  }
  if (strcmp(c, "recovered") != 0 && strcmp(c, "checkfree_arg") != 0) {
    fprintf(stderr, "specials_panic: case %s: no abort\n", c);
    return 1;
  }
  printf("specials_panic %s: ok\n", c);
  fflush(stdout);
  return 0;
}
