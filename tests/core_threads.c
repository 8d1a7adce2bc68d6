/* Threads made with plain pthread_create: registered automatically (and
   unregistered when they end), their stacks and registers are roots whether
   they are blocked or running, an object passed as the start argument stays
   alive, and thread creation/exit churn while collections run is clean. */
#include "core_util.h"

static uint64_t nthreads_now(void) { return stats_now().num_threads; }

/* Wait (yielding, bounded) until the registered thread count is `want`. */
static bool wait_nthreads(uint64_t want) {
  uint64_t deadline = now_ns() + 20ull * 1000000000ull;
  while (now_ns() < deadline) {
    if (nthreads_now() == want) return true;
    sched_yield();
  }
  return false;
}

/* ---- registration count ------------------------------------------------- */

static core_event_t ev_ready = CORE_EVENT_INIT, ev_go = CORE_EVENT_INIT;

static void *parked(void *arg) {
  (void)arg;
  void *p = cgc_alloc(100);
  CHECK(p != NULL);
  event_set(&ev_ready);
  event_wait(&ev_go);
  CHECK(cgc_base(p) == p);
  return NULL;
}

static void test_registration(uint64_t base) {
  pthread_t t[3];
  ev_ready.value = ev_go.value = 0;
  for (int i = 0; i < 3; i++) CHECK(pthread_create(&t[i], NULL, parked, NULL) == 0);
  event_wait_at_least(&ev_ready, 3);
  uint64_t n = nthreads_now();
  CHECKF(n == base + 3, "with 3 threads created by pthread_create running, num_threads is %llu (base %llu)",
         (unsigned long long)n, (unsigned long long)base);
  cgc_collect();
  event_set(&ev_go);
  for (int i = 0; i < 3; i++) CHECK(pthread_join(t[i], NULL) == 0);
  n = nthreads_now();
  CHECKF(n == base, "after joining, num_threads is %llu (base %llu)", (unsigned long long)n,
         (unsigned long long)base);
}

/* ---- a blocked thread's stack ------------------------------------------- */

static core_event_t ev_b_ready = CORE_EVENT_INIT, ev_b_go = CORE_EVENT_INIT;

static __attribute__((noinline)) void blocked_body(void) {
  void *volatile slots[4] = {0};
  hidden_obj_t h[4];
  static const size_t sizes[4] = {48, 1000, 20000, 70000};
  for (int i = 0; i < 4; i++) h[i] = make_obj((void **)&slots[i], sizes[i], 500 + (uint64_t)i);
  clear_stack();
  event_set(&ev_b_ready);
  event_wait(&ev_b_go);
  for (int i = 0; i < 4; i++) {
    verify_obj(h[i], "object referenced from the stack of a thread blocked in pthread_cond_wait");
    CHECK(slots[i] == reveal_ptr(h[i].hbase));
  }
}

static void *blocked_thread(void *arg) {
  (void)arg;
  blocked_body();
  return NULL;
}

static void test_blocked_stack(void) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, blocked_thread, NULL) == 0);
  event_wait(&ev_b_ready);
  for (int i = 0; i < 2; i++) {
    churn(48, 4);
    churn(1000, 8);
    churn(20000, 8);
    churn(70000, 16);
  }
  event_set(&ev_b_go);
  CHECK(pthread_join(t, NULL) == 0);
}

/* ---- a running thread's registers ---------------------------------------- */

static atomic_int spin_stop;
static atomic_int spin_started;
static uintptr_t spin_hidden;

static __attribute__((noinline)) uintptr_t spin_with_pointer(uintptr_t hidden) {
#if defined(__x86_64__)
  register void *r __asm__("r12") = reveal_ptr(hidden);
#else
  void *r = reveal_ptr(hidden);
#endif
  __asm__ volatile("" : "+r"(r));
  atomic_store(&spin_started, 1);
  while (!atomic_load_explicit(&spin_stop, memory_order_relaxed)) __asm__ volatile("" : "+r"(r));
  return hide_ptr(r);
}

static void *spinner(void *arg) {
  (void)arg;
  clear_stack();
  uintptr_t back = spin_with_pointer(spin_hidden);
  return (void *)back; /* hidden: not a pointer to the object */
}

static void test_running_registers(void) {
  void *tmp = NULL;
  hidden_obj_t h = make_obj(&tmp, 640, 600);
  tmp = NULL;
  spin_hidden = h.hbase;
  atomic_store(&spin_stop, 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, spinner, NULL) == 0);
  while (!atomic_load(&spin_started)) sched_yield();
  for (int i = 0; i < 3; i++) churn(640, 8);
  atomic_store(&spin_stop, 1);
  void *ret = NULL;
  CHECK(pthread_join(t, &ret) == 0);
  CHECK((uintptr_t)ret == h.hbase);
  verify_obj(h, "object referenced only from a register of a running thread");
}

/* ---- start argument and creation/exit churn ------------------------------ */

static atomic_int collector_stop;

static void *collector(void *arg) {
  (void)arg;
  while (!atomic_load(&collector_stop)) {
    cgc_collect();
    sched_yield();
  }
  return NULL;
}

typedef struct {
  uint64_t seed;
  int may_exit; /* end the thread with pthread_exit from a nested call */
  size_t len;
  unsigned char data[];
} arg_obj_t;

static __attribute__((noinline)) arg_obj_t *make_arg(uint64_t seed, int may_exit) {
  size_t len = 16 + seed % 2000;
  arg_obj_t *a = (arg_obj_t *)cgc_alloc(sizeof(arg_obj_t) + len);
  CHECK(a != NULL);
  a->seed = seed;
  a->may_exit = may_exit;
  a->len = len;
  fill_pattern(a->data, len, seed);
  return a;
}

typedef struct node {
  struct node *next;
  uint64_t v;
} node_t;

static __attribute__((noinline)) void alloc_some(uint64_t seed) {
  node_t *head = NULL;
  for (uint64_t i = 0; i < 2000; i++) {
    node_t *n = (node_t *)cgc_alloc(sizeof *n + (seed + i) % 200);
    CHECK(n != NULL);
    n->v = seed * 1000003 + i;
    n->next = head;
    head = n;
  }
  uint64_t i = 2000;
  for (node_t *n = head; n; n = n->next) {
    i--;
    CHECKF(n->v == seed * 1000003 + i, "list node corrupted in a short-lived thread");
  }
  CHECK(i == 0);
}

static atomic_int churn_ok;

#if CORE_ASAN
/* AddressSanitizer's pthread_create interceptor keeps the start argument in the
   sanitizer's own memory until the thread starts, out of any collector's
   sight; under it, keep another reference meanwhile. */
static void *g_asan_args[256];
#define KEEP_ARG(i, p) (g_asan_args[(i) % 256] = (p))
#else
#define KEEP_ARG(i, p) ((void)(i), (p))
#endif

static volatile int never_set;

static __attribute__((noinline)) int exit_from_nested(int depth) {
  if (depth <= 0) {
    if (!never_set) pthread_exit(NULL);
    return 0;
  }
  return exit_from_nested(depth - 1) + 1;
}

static void *short_lived(void *arg) {
  arg_obj_t *a = (arg_obj_t *)arg;
  uint64_t seed = a->seed;
  alloc_some(seed);
  CHECKF(pattern_mismatch(a->data, a->len, a->seed) == (size_t)-1 && cgc_base(a) == a,
         "object passed as the pthread_create argument was freed");
  atomic_fetch_add(&churn_ok, 1);
  if (a->may_exit && seed % 3 == 0) exit_from_nested(5);
  return NULL;
}

static core_event_t ev_detached = CORE_EVENT_INIT;

static void *detached_thread(void *arg) {
  short_lived(arg);
  event_set(&ev_detached);
  return NULL;
}

static void test_churn(uint64_t base) {
  atomic_store(&collector_stop, 0);
  pthread_t col;
  CHECK(pthread_create(&col, NULL, collector, NULL) == 0);
  atomic_store(&churn_ok, 0);
  int joinable = 0, nargs = 0;
  for (int round = 0; round < 8; round++) {
    pthread_t t[24];
    for (int i = 0; i < 24; i++) {
      CHECK(pthread_create(&t[i], NULL, short_lived, KEEP_ARG(nargs++, make_arg(test_rand(), 1))) == 0);
      joinable++;
    }
    for (int i = 0; i < 24; i++) CHECK(pthread_join(t[i], NULL) == 0);
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  ev_detached.value = 0;
  for (int i = 0; i < 40; i++) {
    pthread_t t;
    CHECK(pthread_create(&t, &attr, detached_thread, KEEP_ARG(nargs++, make_arg(test_rand(), 0))) == 0);
  }
  pthread_attr_destroy(&attr);
  event_wait_at_least(&ev_detached, 40);
  atomic_store(&collector_stop, 1);
  CHECK(pthread_join(col, NULL) == 0);
  CHECK(atomic_load(&churn_ok) == joinable + 40);
  CHECKF(wait_nthreads(base), "num_threads is %llu after every thread ended (base %llu)",
         (unsigned long long)nthreads_now(), (unsigned long long)base);
  cgc_collect();
}

/* ---- cancellation ------------------------------------------------------- */

static int cancel_pipe[2];
static core_event_t ev_cancel_ready = CORE_EVENT_INIT;

CORE_NO_ASAN_FRAME static void *cancel_victim(void *arg) {
  (void)arg;
  void *p = cgc_alloc(5000);
  CHECK(p != NULL);
  consume(p);
  event_set(&ev_cancel_ready);
  char c;
  for (;;) {
    ssize_t r = read(cancel_pipe[0], &c, 1);
    consume(&r);
  }
  return NULL;
}

static void test_cancel(uint64_t base) {
  CHECK(pipe(cancel_pipe) == 0);
  pthread_t t[4];
  for (int i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, cancel_victim, NULL) == 0);
  event_wait_at_least(&ev_cancel_ready, 4);
  cgc_collect();
  for (int i = 0; i < 4; i++) CHECK(pthread_cancel(t[i]) == 0);
  for (int i = 0; i < 4; i++) {
    void *r = NULL;
    CHECK(pthread_join(t[i], &r) == 0);
    CHECK(r == PTHREAD_CANCELED);
  }
  uint64_t n = nthreads_now();
  CHECKF(n == base, "after cancelled threads were joined, num_threads is %llu (base %llu)",
         (unsigned long long)n, (unsigned long long)base);
  churn(5000, 8);
  close(cancel_pipe[0]);
  close(cancel_pipe[1]);
}

/* Once a thread has started, cgc no longer keeps its start argument alive:
   an argument the thread drops is collected after the thread is joined. */
enum { NARG = 8 };
static cgc_weak_t g_arg_weak[NARG];

static void *drop_arg(void *arg) {
  CHECK(((unsigned char *)arg)[0] == 0x42);
  return NULL;
}

static __attribute__((noinline)) void start_with_args(pthread_t *t) {
  for (int i = 0; i < NARG; i++) {
    unsigned char *a = (unsigned char *)cgc_alloc(256);
    CHECK(a != NULL);
    a[0] = 0x42;
    g_arg_weak[i] = cgc_weak_make(a);
    CHECK(pthread_create(&t[i], NULL, drop_arg, a) == 0);
  }
}

static __attribute__((noinline)) void test_start_arg_released(void) {
  pthread_t t[NARG];
  start_with_args(t);
  for (int i = 0; i < NARG; i++) CHECK(pthread_join(t[i], NULL) == 0);
  clear_stack();
  cgc_collect();
  cgc_collect();
  int alive = 0;
  for (int i = 0; i < NARG; i++) alive += cgc_weak_value(g_arg_weak[i]) != NULL;
  /* A stale word can keep one alive (conservative scanning); not most. */
  CHECKF(alive <= (CORE_ASAN ? NARG - 1 : NARG / 2),
         "%d of %d start arguments dropped by their joined threads are still alive", alive, NARG);
}

/* A thread's registry entry is reused by later threads once it has exited:
   creating and joining thousands of threads one after another keeps cgc's
   memory flat. */
static void *alloc_once(void *arg) {
  (void)arg;
  consume(cgc_alloc(64));
  return NULL;
}

static void run_threads_in_turn(int n) {
  for (int i = 0; i < n; i++) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, alloc_once, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
  }
}

static void test_registry_reused(void) {
  run_threads_in_turn(200); /* warm up: stacks cached, registry entries made */
  uint64_t v0 = vsize_bytes(), r0 = rss_bytes();
  run_threads_in_turn(4000);
  uint64_t v1 = vsize_bytes(), r1 = rss_bytes();
  fprintf(stderr, "4000 threads in turn: virtual size %+lld KiB, resident %+lld KiB\n",
          (long long)(v1 - v0) / 1024, (long long)(r1 - r0) / 1024);
  if (CORE_ASAN) return; /* the sanitizer's own per-thread memory */
  CHECKF(v1 <= v0 + 16 * CORE_MIB && r1 <= r0 + 16 * CORE_MIB,
         "4000 threads created and joined in turn grew the virtual size by %lld KiB, the resident size by %lld KiB",
         (long long)(v1 - v0) / 1024, (long long)(r1 - r0) / 1024);
}

int main(void) {
  test_seed();
  cgc_init();
  cgc_collect();
  uint64_t base = nthreads_now();
  CHECK(base >= 1);
  test_registration(base);
  test_blocked_stack();
  test_running_registers();
  test_churn(base);
  test_cancel(base);
  test_start_arg_released();
  test_registry_reused();
  CHECK(nthreads_now() == base);
  printf("core_threads: ok\n");
  return 0;
}
