/* Helpers shared by the tests of cleanups, finalizers and weak handles
 * (tests/specials_*.c).
 *
 * Making objects die: objects are made in a noinline function that keeps no
 * reference after it returns; the caller then calls collect_wait(), which
 * clobbers the stack below it (clear_stack) so stale words of earlier frames
 * retain nothing, collects and waits for the cleanups.  The scanner is
 * conservative, so where something must die the tests use many objects and
 * accept a small fraction of survivors (DEATH_MIN); where something must never
 * happen (a cleanup running twice, or for a live object) the counts are exact.
 */
#ifndef CGC_SPECIALS_UTIL_H
#define CGC_SPECIALS_UTIL_H

#include <cgc.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define NOINLINE __attribute__((noinline))
#define UNUSED __attribute__((unused))

/* At least this fraction of the objects that must die has to be seen dead. */
#define DEATH_MIN 0.90

static UNUSED NOINLINE void collect_wait(void) {
  clear_stack();
  cgc_collect();
  cgc_wait_cleanups();
}

/* Wait for child pid (which set alarm(10)): it must exit 0, not hang. */
static UNUSED void expect_child_ok(pid_t pid) {
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) {
    fprintf(stderr, "the child hung (killed by SIGALRM after 10 s)\n");
    abort();
  }
  CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
}

/* Collect `rounds` times (each followed by waiting for the cleanups). */
static UNUSED NOINLINE void collect_rounds(int rounds) {
  for (int i = 0; i < rounds; i++) collect_wait();
}

static UNUSED cgc_stats_t stats(void) {
  cgc_stats_t s;
  memset(&s, 0, sizeof s);
  cgc_read_stats(&s);
  return s;
}


/* Counters indexed by object number, incremented by the cleanups under test. */
typedef struct {
  _Atomic int *v;
  size_t n;
} counters_t;

static UNUSED counters_t counters_new(size_t n) {
  counters_t c = {(_Atomic int *)calloc(n, sizeof(_Atomic int)), n};
  CHECK(c.v != NULL);
  return c;
}

/* Number of counters equal to `want`; aborts if any counter exceeds `max`. */
static UNUSED size_t counters_count(counters_t c, int want, int max, const char *what) {
  size_t k = 0;
  for (size_t i = 0; i < c.n; i++) {
    int v = atomic_load(&c.v[i]);
    CHECKF(v <= max, "%s: counter %zu is %d (at most %d allowed)", what, i, v, max);
    if (v == want) k++;
  }
  return k;
}

/* Memory that callbacks write to is never freed: a conservative survivor of
   one part of a test may die, and run its cleanup, during a later part. */
static const volatile void *retired_[1024]; /* keeps them reachable for LeakSanitizer */
static _Atomic int nretired_;
static UNUSED void retire(const volatile void *p) {
  int i = atomic_fetch_add(&nretired_, 1);
  CHECK(i < 1024);
  retired_[i] = p;
}

/* The cleanup used by most tests: arg points to a counter. */
static UNUSED void count_cleanup(void *arg) { atomic_fetch_add((_Atomic int *)arg, 1); }

static UNUSED void check_death_fraction(size_t dead, size_t total, const char *what) {
  fprintf(stderr, "%s: %zu of %zu dead\n", what, dead, total);
  CHECKF((double)dead >= DEATH_MIN * (double)total, "%s: only %zu of %zu objects were found dead", what, dead,
         total);
}

/* Does a thread named `name` exist in this process? */
static UNUSED bool thread_named_exists(const char *name) {
  bool found = false;
  DIR *d = opendir("/proc/self/task");
  if (!d) return false;
  struct dirent *e;
  while (!found && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[300], comm[64] = {0};
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    if (fgets(comm, sizeof comm, f)) {
      comm[strcspn(comm, "\n")] = 0;
      found = strcmp(comm, name) == 0;
    }
    fclose(f);
  }
  closedir(d);
  return found;
}

#endif
