/* Out of memory under RLIMIT_AS (in a child process): allocation collects once
   more, then returns NULL with errno ENOMEM and never aborts; the heap keeps
   working, and once the memory is free again allocations succeed.  Large
   objects, small objects, threads, and arenas only (no collection before
   the limit), each in a child of its own. */
#include "core_util.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#if !CORE_ASAN
#define LIMIT_EXTRA (256 * CORE_MIB)

/* Scanned holder blocks chaining the allocated objects. */
typedef struct holder {
  struct holder *next;
  size_t n;
  void *items[510];
} holder_t;

static holder_t *g_holders;

/* collect_first: one collection before the limit (else the first one runs
   under it, out of memory). */
static void set_limit_after(bool collect_first) {
  cgc_init();
  if (collect_first) {
    void *warm = cgc_alloc(1000);
    CHECK(warm != NULL);
    cgc_collect();
  }
  uint64_t vs = vsize_bytes();
  struct rlimit rl;
  rl.rlim_cur = rl.rlim_max = (rlim_t)(vs + LIMIT_EXTRA);
  CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
  fprintf(stderr, "RLIMIT_AS = %llu MiB (virtual size %llu MiB + %llu MiB)\n",
          (unsigned long long)(rl.rlim_cur >> 20), (unsigned long long)(vs >> 20),
          (unsigned long long)(LIMIT_EXTRA >> 20));
}

static void set_limit(void) { set_limit_after(true); }

/* One allocation that may fail: on failure, there was a collection during
   the call, errno is ENOMEM, and NULL is returned. */
static void *try_alloc(size_t n, int noscan, bool *failed) {
  uint64_t gc0 = cgc_gc_count();
  errno = 0;
  void *p = noscan ? cgc_alloc_noscan(n) : cgc_alloc(n);
  if (p == NULL) {
    CHECKF(errno == ENOMEM, "allocation of %zu bytes returned NULL with errno %d, expected ENOMEM", n, errno);
    CHECKF(cgc_gc_count() > gc0, "allocation of %zu bytes returned NULL without collecting first", n);
    *failed = true;
  }
  return p;
}

/* Fill memory with objects of n bytes until allocation fails; returns bytes. */
static __attribute__((noinline)) size_t fill_until_oom(size_t n, int noscan) {
  size_t total = 0;
  bool failed = false;
  g_holders = NULL;
  holder_t *h = NULL;
  for (;;) {
    if (!h || h->n == sizeof h->items / sizeof h->items[0]) {
      holder_t *nh = (holder_t *)try_alloc(sizeof(holder_t), 0, &failed);
      if (failed) break;
      nh->next = g_holders;
      g_holders = nh;
      h = nh;
    }
    void *p = try_alloc(n, noscan, &failed);
    if (failed) break;
    memset(p, 0x77, n < 4096 ? n : 4096); /* touch */
    h->items[h->n++] = p;
    total += n;
  }
  return total;
}

static __attribute__((noinline)) void drop_all(void) {
  g_holders = NULL;
  clear_stack();
  cgc_collect();
  cgc_collect();
}

/* After the memory is free again, `bytes` worth of objects of n bytes must be
   allocatable. */
static __attribute__((noinline)) void alloc_again(size_t n, size_t bytes) {
  holder_t *keep = NULL;
  size_t total = 0;
  size_t in_block = 510;
  while (total < bytes) {
    if (in_block == 510) {
      holder_t *nh = (holder_t *)cgc_alloc(sizeof(holder_t));
      CHECKF(nh != NULL, "holder allocation failed after memory was freed (errno %d)", errno);
      nh->next = keep;
      keep = nh;
      in_block = 0;
    }
    void *p = cgc_alloc_noscan(n);
    CHECKF(p != NULL, "allocation of %zu bytes failed after memory was freed (%zu of %zu MiB done)", n,
           total >> 20, bytes >> 20);
    CHECK(all_zero(p, n < 4096 ? n : 4096));
    keep->items[in_block++] = p;
    keep->n = in_block;
    total += n;
  }
  consume(keep);
}

static void child_large(void) {
  set_limit();
  size_t got = fill_until_oom(CORE_MIB, 1);
  fprintf(stderr, "large: %zu MiB before ENOMEM\n", got >> 20);
  CHECKF(got >= 64 * CORE_MIB, "only %zu MiB could be allocated under a %zu MiB allowance", got >> 20,
         (size_t)(LIMIT_EXTRA >> 20));
  /* The heap keeps working while full. */
  cgc_collect();
  drop_all();
  alloc_again(CORE_MIB, got / 2);
  alloc_again(512, 16 * CORE_MIB);
  drop_all();
  /* A second round, to check the state after the first failure is sane. */
  size_t got2 = fill_until_oom(CORE_MIB, 1);
  CHECKF(got2 >= got / 2, "second fill got %zu MiB, first %zu MiB", got2 >> 20, got >> 20);
  drop_all();
  alloc_again(CORE_MIB, got / 2);
}

static void child_small(void) {
  set_limit();
  size_t got = fill_until_oom(256, 0);
  fprintf(stderr, "small: %zu MiB before ENOMEM\n", got >> 20);
  CHECKF(got >= 32 * CORE_MIB, "only %zu MiB of small objects under a %zu MiB allowance", got >> 20,
         (size_t)(LIMIT_EXTRA >> 20));
  cgc_collect();
  drop_all();
  alloc_again(256, got / 2);
  alloc_again(16 * CORE_MIB, 32 * CORE_MIB);
}

/* A program that only uses arenas runs out of memory: arena allocation
   brings on no collection, so the first one is the one the exhausted page
   heap asks for, and it needs its mark workers' memory at once (mapped at
   init, not then).  NULL and ENOMEM, no abort; after the arenas are freed
   and a collection recycles their ranges, arenas work again. */
static void child_arenas(void) {
  set_limit_after(false);
  static cgc_arena_t *arenas[4096];
  size_t n = 0, got = 0;
  for (;;) {
    CHECK(n < sizeof arenas / sizeof arenas[0]);
    cgc_arena_t *a = cgc_arena_new();
    if (!a) {
      CHECKF(errno == ENOMEM, "cgc_arena_new returned NULL with errno %d", errno);
      break;
    }
    arenas[n++] = a;
    errno = 0;
    void *p = cgc_arena_alloc(a, 1000000);
    if (!p) {
      CHECKF(errno == ENOMEM, "cgc_arena_alloc returned NULL with errno %d, expected ENOMEM", errno);
      break;
    }
    memset(p, 0x33, 4096);
    got += 1000000;
  }
  fprintf(stderr, "arenas: %zu MiB in %zu arenas before ENOMEM\n", got >> 20, n);
  CHECKF(got >= 64 * CORE_MIB, "only %zu MiB of arena memory under a %zu MiB allowance", got >> 20,
         (size_t)(LIMIT_EXTRA >> 20));
  for (size_t i = 0; i < n; i++) cgc_arena_free(arenas[i]);
  cgc_collect();
  cgc_arena_t *a = cgc_arena_new();
  CHECK(a != NULL);
  for (size_t i = 0; i < got / 2 / 1000000; i++) {
    void *p = cgc_arena_alloc(a, 1000000);
    CHECKF(p != NULL, "arena allocation failed after the arenas were freed (errno %d)", errno);
    CHECK(all_zero(p, 4096));
  }
  cgc_arena_free(a);
}

/* Several threads run out of memory at the same time. */
static holder_t *g_thr_holders[3];
static core_event_t ev_go = CORE_EVENT_INIT;
static atomic_size_t thr_bytes;

static void *oom_thread(void *arg) {
  int i = (int)(intptr_t)arg;
  static const size_t sizes[3] = {CORE_MIB, 4096, 100 * 1024};
  event_wait(&ev_go);
  bool failed = false;
  holder_t *h = NULL;
  size_t total = 0;
  for (;;) {
    if (!h || h->n == sizeof h->items / sizeof h->items[0]) {
      holder_t *nh = (holder_t *)try_alloc(sizeof(holder_t), 0, &failed);
      if (failed) break;
      nh->next = g_thr_holders[i];
      g_thr_holders[i] = nh;
      h = nh;
    }
    void *p = try_alloc(sizes[i], i == 2 ? 0 : 1, &failed);
    if (failed) break;
    memset(p, 0x55, 4096 < sizes[i] ? 4096 : sizes[i]);
    h->items[h->n++] = p;
    total += sizes[i];
  }
  atomic_fetch_add(&thr_bytes, total);
  return NULL;
}

static void child_threads(void) {
  pthread_t t[3];
  for (int i = 0; i < 3; i++) CHECK(pthread_create(&t[i], NULL, oom_thread, (void *)(intptr_t)i) == 0);
  set_limit();
  event_set(&ev_go);
  for (int i = 0; i < 3; i++) CHECK(pthread_join(t[i], NULL) == 0);
  size_t got = atomic_load(&thr_bytes);
  fprintf(stderr, "threads: %zu MiB before ENOMEM\n", got >> 20);
  CHECK(got >= 32 * CORE_MIB);
  for (int i = 0; i < 3; i++) g_thr_holders[i] = NULL;
  drop_all();
  alloc_again(CORE_MIB, got / 2);
}

/* Threads started while cgc's metadata cannot grow: pthread_create fails
   with EAGAIN, or the thread is registered; never does a thread run
   unregistered (unscanned), its argument freed under it once its start
   record is unlinked (the registry struct used to be allocated by the new
   thread, which went on without it). */
#define START_N 400
#define START_STACK (64 << 10)
static char (*start_stacks)[START_STACK + 4096]; /* mmap'ed: not a root */
static atomic_int start_seen[START_N], start_bad;

static void *check_arg_thread(void *arg) {
  unsigned char *o = (unsigned char *)arg;
  int i = *(int *)o;
  atomic_store(&start_seen[i], 1);
  event_wait(&ev_go);
  for (int k = 8; k < 256; k++)
    if (o[k] != (unsigned char)(k ^ 0x5a)) atomic_store(&start_bad, 1000 + i);
  return NULL;
}

static __attribute__((noinline)) int start_one(int i, pthread_t *t) {
  unsigned char *o = (unsigned char *)cgc_alloc(256);
  if (!o) return ENOMEM;
  *(int *)o = i;
  for (int k = 8; k < 256; k++) o[k] = (unsigned char)(k ^ 0x5a);
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstack(&a, start_stacks[i], START_STACK);
  int rc = pthread_create(t, &a, check_arg_thread, o);
  pthread_attr_destroy(&a);
  return rc;
}

static void child_thread_starts(void) {
  cgc_init();
  start_stacks = mmap(NULL, (size_t)START_N * (START_STACK + 4096), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(start_stacks != MAP_FAILED);
  for (int i = 0; i < START_N; i++) CHECK(mprotect(start_stacks[i] + START_STACK, 4096, PROT_NONE) == 0);
  CHECK(cgc_alloc(1000) != NULL);
  cgc_collect();
  for (int i = 0; i < 2000; i++) cgc_free(cgc_alloc(256)); /* slots for the arguments */
  struct rlimit rl = {vsize_bytes() + CORE_MIB, vsize_bytes() + CORE_MIB};
  CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
  for (size_t sz = CORE_MIB; sz >= 4096; sz /= 2) /* use up the address space */
    while (mmap(NULL, sz, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) != MAP_FAILED) {
    }
  pthread_t t[START_N];
  int n = 0, rc = 0;
  for (; n < START_N; n++) {
    uint64_t before = stats_now().num_threads;
    if ((rc = start_one(n, &t[n])) != 0) break;
    while (!atomic_load(&start_seen[n])) sched_yield();
    CHECKF(stats_now().num_threads == before + 1, "thread %d started unregistered", n);
  }
  fprintf(stderr, "thread starts: %d threads, then pthread_create returned %d\n", n, rc);
  CHECKF(rc == 0 || rc == EAGAIN || rc == ENOMEM, "pthread_create returned %d", rc);
  clear_stack();
  cgc_collect();
  for (int i = 0; i < 20000; i++) { /* reuse what the collection freed (NULL once nothing is left) */
    void *p = cgc_alloc(256);
    if (p) memset(p, 0xee, 256);
  }
  event_set(&ev_go);
  for (int i = 0; i < n; i++) CHECK(pthread_join(t[i], NULL) == 0);
  CHECKF(!atomic_load(&start_bad), "thread %d's argument was freed and reused", atomic_load(&start_bad) - 1000);
}

/* A collection with no address space left for the cleanup queue: the
   cleanups of unreachable objects wait (their objects kept) instead of the
   process aborting, and run once memory is back. */
static atomic_int cq_ran;
static void cq_count(void *arg) {
  (void)arg;
  atomic_fetch_add(&cq_ran, 1);
}
static __attribute__((noinline)) void cq_garbage(int n) {
  for (int i = 0; i < n; i++) {
    void *p = cgc_alloc(32);
    CHECK(p != NULL);
    cgc_add_cleanup(p, cq_count, NULL);
  }
}
static struct {
  void *p;
  size_t n;
} cq_fill[8192];

static void child_cleanup_queue(void) {
  set_limit();
  cq_garbage(20000); /* several queue chunks' worth */
  clear_stack();
  size_t nfill = 0;
  for (size_t sz = (size_t)1 << 30; sz >= 4096; sz /= 2) /* use up the address space */
    for (void *q; nfill < 8192 && (q = mmap(NULL, sz, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
                                            0)) != MAP_FAILED;)
      cq_fill[nfill].p = q, cq_fill[nfill++].n = sz;
  cgc_collect(); /* aborted: "out of memory for the cleanup queue" */
  cgc_collect();
  for (size_t i = 0; i < nfill; i++) CHECK(munmap(cq_fill[i].p, cq_fill[i].n) == 0);
  for (int round = 0; round < 3 && atomic_load(&cq_ran) < 20000; round++) {
    clear_stack();
    cgc_collect();
    cgc_wait_cleanups();
  }
  fprintf(stderr, "cleanup queue: %d of 20000 cleanups ran once memory was back\n", atomic_load(&cq_ran));
  CHECK(atomic_load(&cq_ran) >= 19990); /* a few may stay conservatively reachable */
}

/* The first collection runs with no address space left for its mark stack:
   a list whose nodes lie at descending addresses, each with one more
   pointer, is marked in linear time (the stack was mapped at that
   collection; every push overflowed, and recovery advanced one node per
   rescan of the heap: 32000 nodes took a minute, 200000 would outlast the
   child's two-minute alarm).  All nodes survive. */
typedef struct chain_node {
  void *leaf;
  struct chain_node *next;
} chain_node_t;
static chain_node_t *chain_head;

static __attribute__((noinline)) void chain_build(unsigned n) {
  chain_node_t **v = (chain_node_t **)malloc(n * sizeof *v); /* not a root */
  CHECK(v != NULL);
  for (unsigned i = 0; i < n; i++) CHECK((v[i] = (chain_node_t *)cgc_alloc(sizeof(chain_node_t))) != NULL);
  for (unsigned i = 0; i < n; i++) {
    CHECK((v[i]->leaf = cgc_alloc(32)) != NULL);
    v[i]->next = i ? v[i - 1] : NULL;
  }
  chain_head = v[n - 1]; /* the highest address first */
  free(v);
}

static void child_mark_chain(void) {
  cgc_init();
  cgc_set_gc_percent(-1); /* no collection before the limit */
  chain_build(200000);
  struct rlimit rl = {vsize_bytes(), vsize_bytes()};
  CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
  cgc_collect();
  unsigned k = 0;
  for (chain_node_t *p = chain_head; p; p = p->next, k++) CHECK(cgc_base(p) == p && cgc_base(p->leaf) == p->leaf);
  CHECK(k == 200000);
}

static void run_child(void (*fn)(void), const char *name) {
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    alarm(120);
    fn();
    fflush(NULL);
    _exit(0);
  }
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  if (WIFSIGNALED(status)) CHECKF(0, "%s: child died of signal %d", name, WTERMSIG(status));
  CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: child exited with %d", name, WEXITSTATUS(status));
  fprintf(stderr, "%s: ok\n", name);
}

#endif

int main(void) {
#if CORE_ASAN
  printf("skipped: RLIMIT_AS cannot be used under AddressSanitizer (its shadow memory is reserved address space)\n");
  return 0;
#else
  test_seed();
  run_child(child_large, "large objects");
  run_child(child_small, "small objects");
  run_child(child_threads, "threads");
  run_child(child_thread_starts, "thread starts");
  run_child(child_cleanup_queue, "cleanup queue");
  run_child(child_mark_chain, "mark stack");
  run_child(child_arenas, "arenas only");
  printf("core_oom: ok\n");
  return 0;
#endif
}
