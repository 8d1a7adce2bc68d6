/* Thread results (docs/threads.md, "Thread results: join, detach, exit"):
   - a value handed to pthread_exit stays alive until the thread is joined,
     like a returned one (core_thread_retval);
   - once the thread is joined, or detached (at creation or after it ended),
     cgc drops its record and the value can be collected;
   - a stale reference to a dropped record (a dead frame's slot, found by a
     conservative scan) keeps neither its value nor the records dropped
     after it;
   - threads joined out of order (one whose result came in the middle of
     the others, then the one that ended just before it, twice) leave the
     results of the threads not yet joined alive. */
#include "core_util.h"

#include <sys/stat.h>

enum { NT = 8 };
#define BIG ((size_t)1 << 20)

static atomic_int tids[NT];
static uintptr_t hidden[NT];
static uintptr_t probes[NT]; /* hidden: a 32-byte object each worker allocated last */
static void *stale[NT];      /* scanned: references to dropped records */

static bool task_gone(int tid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/task/%d", tid);
  struct stat st;
  return stat(path, &st) != 0;
}

static void wait_ended(void) {
  uint64_t deadline = now_ns() + 20ull * 1000000000ull;
  for (int i = 0; i < NT; i++)
    while (atomic_load(&tids[i]) == 0 || !task_gone(atomic_load(&tids[i]))) {
      CHECKF(now_ns() < deadline, "thread %d did not end", i);
      sched_yield();
    }
}

/* Returns (or passes to pthread_exit) a 1 MiB object. */
static void *big_worker(void *arg) {
  int i = (int)((intptr_t)arg & 0xff);
  int use_exit = (int)((intptr_t)arg >> 8);
  void *slot = NULL;
  hidden_obj_t h = make_obj_at(&slot, BIG, 0, 5000 + (uint64_t)i, 1);
  hidden[i] = h.hbase;
  /* In the same heap mapping as the record of the result, most likely. */
  probes[i] = hide_ptr(cgc_alloc(32));
  atomic_store(&tids[i], (int)core_gettid());
  clear_stack();
  if (use_exit) pthread_exit(slot);
  return slot;
}

static void start_all(pthread_t *t, const pthread_attr_t *attr, int use_exit) {
  for (int i = 0; i < NT; i++) {
    atomic_store(&tids[i], 0);
    CHECK(pthread_create(&t[i], attr, big_worker, (void *)(intptr_t)(i | use_exit << 8)) == 0);
  }
  wait_ended();
}

static __attribute__((noinline)) void join_all(pthread_t *t, int verify) {
  for (int i = 0; i < NT; i++) {
    void *ret = NULL;
    CHECK(pthread_join(t[i], &ret) == 0);
    CHECK(hide_ptr(ret) == hidden[i]);
    if (verify) {
      hidden_obj_t h = {hidden[i], BIG, 5000 + (uint64_t)i};
      verify_obj(h, "value passed to pthread_exit by an ended, not yet joined thread");
    }
    ret = NULL;
  }
  clear_stack();
}

static void expect_released(uint64_t base, const char *how) {
  uint64_t live = live_after_collect();
  live = live_after_collect();
  CHECKF(live < base + NT * BIG / 2, "%s: %llu bytes live (%llu before the threads): the results were kept",
         how, (unsigned long long)live, (unsigned long long)base);
}

/* The record cgc keeps for thread i's result: a live 32-byte object holding
   the thread's id and the value, in the heap mapping that holds the probe
   (only live objects are read). */
static void *find_record(int i, pthread_t th) {
  uintptr_t probe = (uintptr_t)reveal_ptr(probes[i]), lo = 0, hi = 0;
  FILE *f = fopen("/proc/self/maps", "r");
  CHECK(f != NULL);
  char line[512];
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo <= probe && probe < hi) break;
  fclose(f);
  CHECKF(lo <= probe && probe < hi, "no mapping holds %p", (void *)probe);
  for (uintptr_t *r = (uintptr_t *)lo; r < (uintptr_t *)hi; r += 4)
    if (cgc_base(r) == r && r[3] == ~hidden[i] && r[2] == (uintptr_t)th) return r;
  CHECKF(0, "no record of thread %d's result in %lx-%lx", i, (unsigned long)lo, (unsigned long)hi);
  return NULL;
}

/* Thread i after thread i - 1 has ended: results come in that order. */
static void start_in_order(pthread_t *t) {
  for (int i = 0; i < NT; i++) {
    atomic_store(&tids[i], 0);
    CHECK(pthread_create(&t[i], NULL, big_worker, (void *)(intptr_t)i) == 0);
    uint64_t deadline = now_ns() + 20ull * 1000000000ull;
    while (atomic_load(&tids[i]) == 0 || !task_gone(atomic_load(&tids[i]))) {
      CHECKF(now_ns() < deadline, "thread %d did not end", i);
      sched_yield();
    }
  }
}

static __attribute__((noinline)) void join_one(pthread_t *t, int i, int verify) {
  void *ret = NULL;
  CHECK(pthread_join(t[i], &ret) == 0);
  CHECK(hide_ptr(ret) == hidden[i]);
  if (verify) {
    hidden_obj_t h = {hidden[i], BIG, 5000 + (uint64_t)i};
    verify_obj(h, "value returned by an ended thread, not yet joined, after other threads were joined");
  }
  ret = NULL;
  clear_stack();
}

int main(void) {
  test_seed();
  cgc_init();
  pthread_t t[NT];
  uint64_t base = live_after_collect();

  /* pthread_exit: the value survives collections until the join. */
  start_all(t, NULL, 1);
  for (int r = 0; r < 2; r++) churn(4096, 4);
  join_all(t, 1);
  expect_released(base, "joined (pthread_exit)");

  /* Returned, then joined. */
  start_all(t, NULL, 0);
  join_all(t, 0);
  expect_released(base, "joined");

  /* Detached after the threads ended. */
  start_all(t, NULL, 0);
  for (int i = 0; i < NT; i++) CHECK(pthread_detach(t[i]) == 0);
  expect_released(base, "detached after the end");

  /* Stale references to every dropped record: the records stay, the values
     do not. */
  start_all(t, NULL, 0);
  for (int i = 0; i < NT; i++) stale[i] = find_record(i, t[i]);
  for (int i = 0; i < NT; i++) CHECK(pthread_detach(t[i]) == 0);
  expect_released(base, "detached, the records referenced");
  memset(stale, 0, sizeof stale);

  /* Detached from the start. */
  pthread_attr_t attr;
  CHECK(pthread_attr_init(&attr) == 0);
  CHECK(pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0);
  start_all(t, &attr, 0);
  pthread_attr_destroy(&attr);
  expect_released(base, "created detached");

  /* Joined out of order: 2 then 1, 5 then 4; the others' results stay. */
  start_in_order(t);
  join_one(t, 2, 0);
  join_one(t, 1, 0);
  join_one(t, 5, 0);
  join_one(t, 4, 0);
  for (int r = 0; r < 2; r++) churn(4096, 4);
  join_one(t, 0, 1);
  join_one(t, 3, 1);
  for (int i = 6; i < NT; i++) join_one(t, i, 1);
  expect_released(base, "joined out of order");

  printf("core_thread_results: ok\n");
  return 0;
}
