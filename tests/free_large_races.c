/* Large objects against other threads.
 *
 *   live_bytes          one thread allocates and frees 1 MiB objects while
 *                       another collects without pause: live_bytes is always
 *                       the objects held, never one more or one less (the
 *                       counts move under the lock a collection takes its
 *                       totals under).
 *   realloc_free_race   cgc_realloc shrinking a 4 MiB object in place races a
 *                       cgc_free of it on another thread, in forked children:
 *                       either both succeed in turn, or the process aborts
 *                       with a `cgc: cgc_realloc: ... not an allocated object`
 *                       message; the page heap is never corrupted (the next
 *                       large objects do not overlap, nothing crashes).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "free_util.h"

static atomic_int stop;

static void *collector(void *arg) {
  while (!atomic_load(&stop)) cgc_collect();
  return arg;
}

static void case_live_bytes(void) {
  enum { N = 16 };
  const size_t obj = MIB;
  void *keep[N] = {0};
  cgc_set_gc_percent(-1);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, collector, NULL) == 0);
  int rounds = FREE_ASAN ? 3000 : 20000;
  for (int r = 0; r < rounds; r++) {
    int i = r % N;
    if (keep[i]) {
      cgc_free(keep[i]);
      keep[i] = NULL;
    } else {
      keep[i] = cgc_alloc_noscan(obj);
      CHECK(keep[i] != NULL);
    }
    long expect = 0;
    for (int j = 0; j < N; j++) expect += keep[j] ? (long)obj : 0;
    cgc_stats_t st;
    cgc_read_stats(&st);
    long diff = (long)st.live_bytes - expect;
    /* Small objects (thread records, the collector's own) are far below
       half an object; a large object counted twice or not at all is not. */
    CHECKF(diff < (long)obj / 2 && diff > -(long)obj / 2,
           "round %d: live_bytes %llu with %ld bytes of large objects held (off by %+ld)", r,
           (unsigned long long)st.live_bytes, expect, diff);
  }
  atomic_store(&stop, 1);
  pthread_join(t, NULL);
  for (int j = 0; j < N; j++) cgc_free(keep[j]);
}

static void *_Atomic shared;
static atomic_int handed;

static void *freer(void *arg) {
  for (;;) {
    void *p;
    while (!(p = atomic_load(&shared)))
      if (atomic_load(&stop)) return arg;
    cgc_free(p);
    atomic_store(&shared, NULL);
    atomic_fetch_add(&handed, 1);
  }
}

static void race_child(int trials, uint64_t seed) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, freer, NULL) == 0);
  for (int i = 0; i < trials; i++) {
    char *p = cgc_alloc_noscan(4 * MIB);
    CHECK(p != NULL);
    int h = atomic_load(&handed);
    atomic_store(&shared, p);
    for (volatile unsigned k = 0; k < (unsigned)((seed + (uint64_t)i) % 64) * 8; k++) {
    }
    (void)cgc_realloc(p, MIB); /* in place, or a diagnosed double free */
    while (atomic_load(&handed) == h) {
    }
    char *a = cgc_alloc_noscan(3 * MIB), *b = cgc_alloc_noscan(3 * MIB);
    CHECK(a != NULL && b != NULL);
    CHECKF(a + 3 * MIB <= b || b + 3 * MIB <= a, "trial %d: two live 3 MiB objects overlap: %p and %p", i,
           (void *)a, (void *)b);
    cgc_free(a);
    cgc_free(b);
  }
  atomic_store(&stop, 1);
  pthread_join(t, NULL);
}

static void case_realloc_free_race(void) {
  uint64_t seed = test_seed();
  int children = FREE_ASAN ? 20 : 40, trials = FREE_ASAN ? 60 : 150, aborted = 0;
  for (int c = 0; c < children; c++) {
    int fds[2];
    CHECK(pipe(fds) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      dup2(fds[1], 2);
      close(fds[0]);
      race_child(trials, seed + (uint64_t)c);
      _exit(0);
    }
    close(fds[1]);
    char err[4096];
    size_t len = 0;
    ssize_t k;
    while ((k = read(fds[0], err + len, sizeof err - 1 - len)) > 0) len += (size_t)k;
    err[len] = 0;
    close(fds[0]);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) continue;
    CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "child %d: %s %d; stderr: %s", c,
           WIFSIGNALED(st) ? "killed by signal" : "exit status", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st),
           err);
    CHECKF(strstr(err, "cgc: cgc_realloc: 0x") && strstr(err, "is not an allocated object (freed already"),
           "child %d aborted without the double-free diagnosis: %s", c, err);
    aborted++;
  }
  printf("%d of %d children aborted with the diagnosis, the others ran clean\n", aborted, children);
}

int main(int argc, char **argv) {
  static const test_case_t cases[] = {
      {"live_bytes", case_live_bytes},
      {"realloc_free_race", case_realloc_free_race},
  };
  return RUN_NAMED_CASE(argc, argv, "free_large_races", cases);
}
