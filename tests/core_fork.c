/* fork from a multi-threaded program: while other threads allocate and
   collect, the parent forks (from the main thread and from another thread);
   each child has exactly one registered thread, counts at least the
   allocations the parent had counted, finds the data made before the fork
   intact, allocates a lot, collects, creates threads of its own (two,
   then more at once than the parent had) and collects while they run, and
   exits 0. */
#include "core_util.h"

#include <sys/wait.h>

typedef struct item {
  struct item *next;
  uint64_t id;
  uint64_t check;
  unsigned char pad[40];
} item_t;

static uint64_t mix(uint64_t x) {
  x ^= x >> 31;
  x *= 0x9E3779B97F4A7C15ULL;
  return x ^ (x >> 29);
}

static item_t *build_list(uint64_t seed, int n) {
  item_t *head = NULL;
  for (int i = 0; i < n; i++) {
    item_t *it = (item_t *)cgc_alloc(sizeof *it);
    CHECK(it != NULL);
    it->id = seed + (uint64_t)i;
    it->check = mix(it->id);
    it->next = head;
    head = it;
  }
  return head;
}

static void check_list(const item_t *head, uint64_t seed, int n) {
  int count = 0;
  for (const item_t *it = head; it; it = it->next) {
    CHECKF(it->check == mix(it->id), "list item corrupted");
    CHECK(it->id == seed + (uint64_t)(n - 1 - count));
    count++;
  }
  CHECKF(count == n, "list has %d items, expected %d", count, n);
}

/* Data made before any fork, referenced from a global. */
static item_t *g_before;
static hidden_obj_t g_obj;
static void *g_obj_slot;

static atomic_int stop_workers;

static void *allocator(void *arg) {
  uint64_t seed = (uint64_t)(uintptr_t)arg * 1000000;
  while (!atomic_load(&stop_workers)) {
    item_t *l = build_list(seed, 2000);
    check_list(l, seed, 2000);
    seed += 7;
  }
  return NULL;
}

static void *collector(void *arg) {
  (void)arg;
  while (!atomic_load(&stop_workers)) {
    cgc_collect();
    sched_yield();
  }
  return NULL;
}

static void *child_thread(void *arg) {
  uint64_t seed = (uint64_t)(uintptr_t)arg;
  for (int i = 0; i < 20; i++) {
    item_t *l = build_list(seed + (uint64_t)i, 3000);
    cgc_collect();
    check_list(l, seed + (uint64_t)i, 3000);
  }
  return NULL;
}

static int g_parent_threads; /* other threads were running when the parent forked */

/* The parent's statistics just before it forked: the child's cumulative
   counts start from at least these (the other threads' counts stay in the
   totals when their records are dropped). */
static cgc_stats_t g_before_fork;
static pid_t counted_fork(void) {
  g_before_fork = stats_now();
  return fork();
}

/* Threads of the child alive at the same time, as many as the parent had or
   more: the registry records of the parent's other threads are reused. */
enum { NWIDE = 8 };
static atomic_int wide_started, wide_release;
static void *wide_thread(void *arg) {
  (void)arg;
  consume(cgc_alloc(64));
  atomic_fetch_add(&wide_started, 1);
  while (!atomic_load(&wide_release)) sched_yield();
  return NULL;
}

/* What a child does; returns only on success. */
static __attribute__((noinline)) void child_work(void) {
  alarm(60); /* a deadlock fails the child instead of hanging the test */
  cgc_stats_t s = stats_now();
  CHECKF(s.num_threads == 1, "the child of a fork has %llu registered threads, expected 1",
         (unsigned long long)s.num_threads);
  CHECKF(s.total_alloc_objects >= g_before_fork.total_alloc_objects &&
             s.total_alloc_bytes >= g_before_fork.total_alloc_bytes,
         "the child's cumulative allocations (%llu objects, %llu bytes) are below the parent's before the fork "
         "(%llu, %llu)", (unsigned long long)s.total_alloc_objects, (unsigned long long)s.total_alloc_bytes,
         (unsigned long long)g_before_fork.total_alloc_objects, (unsigned long long)g_before_fork.total_alloc_bytes);
  check_list(g_before, 42, 5000);
  verify_obj(g_obj, "object made before fork, in the child");
  uint64_t gc0 = cgc_gc_count();
  item_t *mine = build_list(7, 20000);
  for (int i = 0; i < 30; i++) {
    void *g = cgc_alloc(1000 + (size_t)i * 1000);
    CHECK(g != NULL);
    memset(g, 0xcc, 1000);
  }
  churn(sizeof(item_t), 16);
  cgc_collect();
  CHECK(cgc_gc_count() > gc0);
  check_list(mine, 7, 20000);
  check_list(g_before, 42, 5000);
  verify_obj(g_obj, "object made before fork, in the child after collections");
#if CORE_ASAN
  /* AddressSanitizer's allocator is not fork-safe: a lock another parent
     thread held in its calloc (thread creation uses it) stays held in the
     child, so the child's own threads could never start. */
  if (g_parent_threads) {
    cgc_collect();
    check_list(mine, 7, 20000);
    return;
  }
#endif
  pthread_t t[2];
  for (int i = 0; i < 2; i++) CHECK(pthread_create(&t[i], NULL, child_thread, (void *)(uintptr_t)(i * 100000)) == 0);
  for (int i = 0; i < 2; i++) CHECK(pthread_join(t[i], NULL) == 0);
  cgc_collect();
  check_list(mine, 7, 20000);

  /* Many threads at once, and a collection that stops each of them once. */
  pthread_t wide[NWIDE];
  atomic_store(&wide_started, 0);
  atomic_store(&wide_release, 0);
  for (int i = 0; i < NWIDE; i++) CHECK(pthread_create(&wide[i], NULL, wide_thread, NULL) == 0);
  while (atomic_load(&wide_started) < NWIDE) sched_yield();
  s = stats_now();
  CHECKF(s.num_threads == 1 + NWIDE, "the child has %llu registered threads, expected %d",
         (unsigned long long)s.num_threads, 1 + NWIDE);
  gc0 = cgc_gc_count();
  cgc_collect();
  CHECK(cgc_gc_count() > gc0);
  atomic_store(&wide_release, 1);
  for (int i = 0; i < NWIDE; i++) CHECK(pthread_join(wide[i], NULL) == 0);
  cgc_collect();
  check_list(mine, 7, 20000);
}

static void wait_child(pid_t pid, const char *who) {
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  if (WIFSIGNALED(status))
    CHECKF(0, "child forked from %s died of signal %d%s", who, WTERMSIG(status),
           WTERMSIG(status) == SIGALRM ? " (deadlock?)" : "");
  CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child forked from %s exited with status %d", who,
         WEXITSTATUS(status));
}

static void *forking_thread(void *arg) {
  (void)arg;
  for (int i = 0; i < 3; i++) {
    pid_t pid = counted_fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      child_work();
      _exit(0);
    }
    wait_child(pid, "a non-main thread");
  }
  return NULL;
}

int main(void) {
  test_seed();
  cgc_init();
  g_before = build_list(42, 5000);
  g_obj = make_obj(&g_obj_slot, 3000, 99);

  /* Single-threaded fork first. */
  pid_t pid = counted_fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    child_work();
    _exit(0);
  }
  wait_child(pid, "a single-threaded parent");

  atomic_store(&stop_workers, 0);
  g_parent_threads = 1;
  pthread_t w[3], col;
  for (int i = 0; i < 3; i++) CHECK(pthread_create(&w[i], NULL, allocator, (void *)(uintptr_t)(i + 1)) == 0);
  CHECK(pthread_create(&col, NULL, collector, NULL) == 0);
  for (int i = 0; i < 8; i++) {
    pid = counted_fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      child_work();
      _exit(0);
    }
    wait_child(pid, "the main thread while others allocate and collect");
  }
  pthread_t ft;
  CHECK(pthread_create(&ft, NULL, forking_thread, NULL) == 0);
  CHECK(pthread_join(ft, NULL) == 0);
  atomic_store(&stop_workers, 1);
  for (int i = 0; i < 3; i++) CHECK(pthread_join(w[i], NULL) == 0);
  CHECK(pthread_join(col, NULL) == 0);
  check_list(g_before, 42, 5000);
  verify_obj(g_obj, "object made before fork, in the parent");
  printf("core_fork: ok\n");
  return 0;
}
