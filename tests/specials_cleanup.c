/* Cleanups (cgc_add_cleanup, cgc_cleanup_stop, the cleanup thread, manual mode).
 * Run as `specials_cleanup CASE`; tests/specials.cmake registers every case.
 *
 *   basic        every size (16 B .. large), base and interior pointers, scan and
 *                noscan objects, several cleanups per object: each runs exactly
 *                once after the object dies, never while it lives
 *   cycle        objects in rings, self-references and long lists are collected
 *   arg          the argument is kept alive (and intact) until its cleanup ran
 *   static       a pointer to static storage is a silent no-op
 *   stop         stop cancels exactly that cleanup, is idempotent and harmless
 *                after the cleanup ran, also for records recycled since
 *   stop_inside  stop from inside a cleanup: its own, a sibling's, another
 *                object's
 *   thread       cleanups run on the thread "cgc-cleanup", started when first
 *                needed, after cgc_collect returned; they may allocate, add
 *                cleanups, collect and call cgc_wait_cleanups
 *   live         cleanups never run while the object is reachable from the
 *                stack of a blocked thread, static data, registered roots, the
 *                heap, or another cleanup's argument (exact, over many
 *                collections with garbage)
 *   manual       CGC_DEBUG=cleanups=manual: nothing runs and no thread starts
 *                until cgc_run_cleanups / cgc_wait_cleanups, which run them on
 *                the calling thread
 *   unregistered (manual mode) cgc_run_cleanups on a thread that unregistered
 *                itself: the arguments of the batch it took stay alive through
 *                collections while the batch runs
 *   wait_order   (manual mode) cgc_wait_cleanups waits for the cleanups queued
 *                before it by position: a batch another thread holds keeps it
 *                waiting even when more cleanups queued after it finish first
 *   wait_later   (manual mode) cgc_wait_cleanups does not wait for cleanups
 *                queued after it began, even when another thread took them
 *                while the wait slept: a waiter whose earlier cleanups finished
 *                returns although such a later batch (which waits for it) is
 *                still running
 *   running      while a cleanup or finalizer runs on the cleanup thread, its
 *                argument (or object), held by nothing else, stays alive
 *                through collections made by another thread
 *   pacing       cleanup records count like heap objects: stopping many
 *                cleanups after a collection does not push the next paced
 *                collection past the goal the statistics report
 *   nothread     the cleanup thread cannot be started (threads' default
 *                stack cannot be mapped): a thread looping on
 *                cgc_wait_cleanups while collections queue cleanups runs them
 *                itself and never sleeps for a runner that failed to start
 */
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "specials_util.h"

#define N 20000

static counters_t cnt;
static void *roots[N]; /* static storage: scanned */

/* ---- basic ------------------------------------------------------------------------------ */

/* Objects i in [0, n): `per` cleanups each on counters cnt[i*per + k]; every
   keep-th object is also stored in roots[] (keep 0: none). */
static NOINLINE void make_objs(size_t size, size_t n, int interior, int per, int noscan, size_t keep) {
  for (size_t i = 0; i < n; i++) {
    char *p = noscan ? cgc_alloc_noscan(size) : cgc_alloc(size);
    CHECK(p != NULL);
    memset(p, 0x5a, size < 64 ? size : 64);
    char *ref = interior ? p + size / 2 + 1 : p;
    for (int k = 0; k < per; k++) {
      cgc_cleanup_t h = cgc_add_cleanup(ref, count_cleanup, (void *)&cnt.v[i * (size_t)per + (size_t)k]);
      CHECK(h.id != 0);
    }
    if (keep && i % keep == 0) roots[i] = p;
  }
}

static void basic_one(size_t size, size_t n, int interior, int per, int noscan) {
  const size_t keep = 7;
  char what[128];
  snprintf(what, sizeof what, "basic size=%zu interior=%d per=%d noscan=%d", size, interior, per, noscan);
  cnt = counters_new(n * (size_t)per);
  memset(roots, 0, sizeof roots);
  uint64_t run0 = stats().num_cleanups_run;
  make_objs(size, n, interior, per, noscan, keep);
  collect_rounds(2);
  size_t dead = 0, expected_dead = 0;
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) {
    int first = atomic_load(&cnt.v[i * (size_t)per]);
    for (int k = 0; k < per; k++) {
      int v = atomic_load(&cnt.v[i * (size_t)per + (size_t)k]);
      CHECKF(v <= 1, "%s: a cleanup of object %zu ran %d times", what, i, v);
      /* All of an object's cleanups are queued by the same collection and we waited. */
      CHECKF(v == first, "%s: object %zu: cleanup %d ran %d times, cleanup 0 %d times", what, i, k, v, first);
      sum += (uint64_t)v;
    }
    if (roots[i]) {
      CHECKF(first == 0, "%s: a cleanup of the live object %zu (%p) ran", what, i, roots[i]);
    } else {
      expected_dead++;
      if (first) dead++;
    }
  }
  check_death_fraction(dead, expected_dead, what);
  /* The statistic counts them (plus, possibly, a few late survivors of the
     previous part of this test). */
  uint64_t run1 = stats().num_cleanups_run;
  CHECKF(run1 - run0 >= sum && run1 - run0 <= sum + 50, "%s: num_cleanups_run went up by %llu, %llu cleanups ran",
         what, (unsigned long long)(run1 - run0), (unsigned long long)sum);
  /* Now the kept objects die too; nothing runs twice. */
  memset(roots, 0, sizeof roots);
  collect_rounds(3);
  size_t all = counters_count(cnt, 1, 1, what);
  fprintf(stderr, "%s: %zu of %zu cleanups ran in the end\n", what, all, cnt.n);
  CHECKF((double)all >= DEATH_MIN * (double)cnt.n, "%s: only %zu of %zu cleanups ran", what, all, cnt.n);
  retire(cnt.v);
}

static void test_basic(void) {
  static const size_t sizes[] = {8, 16, 48, 100, 1024, 4000, 32768, 100000};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    size_t size = sizes[s];
    size_t n = size >= 32768 ? 300 : size >= 4000 ? 2000 : N;
    basic_one(size, n, 0, 1, 0);
    basic_one(size, n, 1, 1, 0);
  }
  basic_one(64, N, 0, 1, 1);
  basic_one(64, N / 4, 1, 5, 0);
  basic_one(200000, 50, 1, 3, 1);
}

/* ---- cycle ------------------------------------------------------------------------------ */

typedef struct node {
  struct node *next;
  struct node *self;
  char pad[16];
} node_t;

static NOINLINE void make_cycles(size_t rings, size_t ring_len) {
  for (size_t r = 0; r < rings; r++) {
    node_t *first = cgc_alloc(sizeof(node_t)), *prev = first;
    first->self = first;
    cgc_add_cleanup(first, count_cleanup, (void *)&cnt.v[r * ring_len]);
    for (size_t k = 1; k < ring_len; k++) {
      node_t *n = cgc_alloc(sizeof(node_t));
      n->self = n;
      prev->next = n;
      cgc_add_cleanup(n, count_cleanup, (void *)&cnt.v[r * ring_len + k]);
      prev = n;
    }
    prev->next = first; /* close the ring (ring_len 1: points to itself) */
  }
}

static void test_cycle(void) {
  static const size_t lens[] = {1, 2, 3, 10, 1000};
  for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
    size_t len = lens[l], rings = N / len;
    cnt = counters_new(rings * len);
    make_cycles(rings, len);
    collect_rounds(2);
    char what[64];
    snprintf(what, sizeof what, "cycle len=%zu", len);
    check_death_fraction(counters_count(cnt, 1, 1, what), cnt.n, what);
    retire(cnt.v);
  }
}

/* ---- arg ------------------------------------------------------------------------------- */

#define ARG_SIZE 96
typedef struct {
  size_t i;
  unsigned char pattern[ARG_SIZE - sizeof(size_t)];
} arg_obj_t;

static counters_t ycnt;             /* the argument objects' own cleanups */
static _Atomic int arg_errors;

static unsigned char pat(size_t i, size_t k) { return (unsigned char)((i * 131 + k * 7) % 251 + 1); }

static void x_cleanup(void *arg) {
  arg_obj_t *y = arg;
  size_t i = y->i;
  if (cgc_base(y) != y) {
    fprintf(stderr, "arg %zu: %p is not a live object inside the cleanup\n", i, (void *)y);
    atomic_fetch_add(&arg_errors, 1);
  }
  for (size_t k = 0; k < sizeof y->pattern; k++)
    if (y->pattern[k] != pat(i, k)) {
      fprintf(stderr, "arg %zu: byte %zu changed (freed and reused?)\n", i, k);
      atomic_fetch_add(&arg_errors, 1);
      break;
    }
  if (atomic_load(&ycnt.v[i]) != 0) {
    fprintf(stderr, "arg %zu: the argument's own cleanup ran before the cleanup holding it\n", i);
    atomic_fetch_add(&arg_errors, 1);
  }
  atomic_fetch_add(&cnt.v[i], 1);
}

static NOINLINE void make_args(size_t n, size_t keep) {
  for (size_t i = 0; i < n; i++) {
    arg_obj_t *y = cgc_alloc_noscan(sizeof *y);
    y->i = i;
    for (size_t k = 0; k < sizeof y->pattern; k++) y->pattern[k] = pat(i, k);
    cgc_add_cleanup(y, count_cleanup, (void *)&ycnt.v[i]);
    void *x = cgc_alloc(24);
    cgc_add_cleanup(x, x_cleanup, y); /* only the cleanup references y */
    if (keep && i % keep == 0) roots[i] = x;
  }
}

/* Garbage of the arguments' size, so that a freed argument would be reused. */
static NOINLINE void churn(size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char *g = cgc_alloc_noscan(sizeof(arg_obj_t));
    memset(g, 0xee, sizeof(arg_obj_t));
    consume(g);
  }
}

static void test_arg(void) {
  cnt = counters_new(N);
  ycnt = counters_new(N);
  memset(roots, 0, sizeof roots);
  make_args(N, 5);
  /* The arguments must survive collections with garbage of their size. */
  for (int r = 0; r < 3; r++) {
    churn(N * 4);
    collect_wait();
  }
  CHECKF(atomic_load(&arg_errors) == 0, "%d errors", atomic_load(&arg_errors));
  size_t xdead = 0, expected = 0;
  for (size_t i = 0; i < N; i++) {
    int x = atomic_load(&cnt.v[i]), y = atomic_load(&ycnt.v[i]);
    CHECK(x <= 1 && y <= 1);
    if (roots[i]) {
      CHECKF(x == 0, "the live object %zu's cleanup ran", i);
      CHECKF(y == 0, "argument %zu of a live object's cleanup died", i);
    } else {
      expected++;
      xdead += (size_t)x;
    }
  }
  check_death_fraction(xdead, expected, "arg: objects");
  /* Once their cleanups ran, the arguments die too. */
  memset(roots, 0, sizeof roots);
  collect_rounds(3);
  CHECKF(atomic_load(&arg_errors) == 0, "%d errors", atomic_load(&arg_errors));
  check_death_fraction(counters_count(ycnt, 1, 1, "arg"), N, "arg: arguments");
  retire(cnt.v);
  retire(ycnt.v);
}

/* ---- static ---------------------------------------------------------------------------- */

static char static_bss[128];
static int static_data[4] = {1, 2, 3, 4};
static const char static_ro[] = "read-only data";

static void test_static(void) {
  cnt = counters_new(8);
  void *ptrs[] = {static_bss, static_bss + 100, static_data, (void *)static_ro, (void *)stdout, (void *)&cnt};
  size_t np = sizeof ptrs / sizeof ptrs[0];
  cgc_cleanup_t h[8];
  for (size_t i = 0; i < np; i++) h[i] = cgc_add_cleanup(ptrs[i], count_cleanup, (void *)&cnt.v[i]);
  collect_rounds(3);
  for (size_t i = 0; i < np; i++) {
    cgc_cleanup_stop(h[i]);
    cgc_cleanup_stop(h[i]);
  }
  collect_rounds(1);
  CHECKF(counters_count(cnt, 0, 0, "static") == cnt.n, "a cleanup on static storage ran");
  /* Finalizers and weak handles on static storage: no-op / never cleared. */
  CHECK(cgc_set_finalizer(static_bss, (void (*)(void *))free) == 0);
  CHECK(cgc_set_finalizer(static_bss, NULL) == 0);
  /* The zero handle is harmless. */
  cgc_cleanup_t zero;
  memset(&zero, 0, sizeof zero);
  cgc_cleanup_stop(zero);
  retire(cnt.v);
}

/* ---- stop ------------------------------------------------------------------------------ */

static counters_t acnt, bcnt;
static cgc_cleanup_t *ha, *hb;

static NOINLINE void make_stop_objs(size_t n) {
  for (size_t i = 0; i < n; i++) {
    void *p = cgc_alloc(32);
    ha[i] = cgc_add_cleanup(p, count_cleanup, (void *)&acnt.v[i]);
    hb[i] = cgc_add_cleanup((char *)p + 8, count_cleanup, (void *)&bcnt.v[i]);
    CHECK(ha[i].id != hb[i].id);
    if (i % 2 == 0) {
      cgc_cleanup_stop(ha[i]);
      cgc_cleanup_stop(ha[i]); /* idempotent */
    }
    if (i % 4 == 1) cgc_cleanup_stop(hb[i]);
    if (i % 8 == 3) { /* both stopped: the object has no cleanup left */
      cgc_cleanup_stop(ha[i]);
      cgc_cleanup_stop(hb[i]);
    }
  }
}

static counters_t ncnt;
static NOINLINE void make_fresh(size_t n, void **keep) {
  for (size_t i = 0; i < n; i++) {
    keep[i] = cgc_alloc(32);
    cgc_add_cleanup(keep[i], count_cleanup, (void *)&ncnt.v[i]);
  }
}

static void test_stop(void) {
  acnt = counters_new(N);
  bcnt = counters_new(N);
  ha = calloc(N, sizeof *ha);
  hb = calloc(N, sizeof *hb);
  CHECK(ha && hb);
  make_stop_objs(N);
  collect_rounds(2);
  size_t adead = 0, bdead = 0, aexp = 0, bexp = 0;
  for (size_t i = 0; i < N; i++) {
    int a = atomic_load(&acnt.v[i]), b = atomic_load(&bcnt.v[i]);
    CHECK(a <= 1 && b <= 1);
    bool astopped = i % 2 == 0 || i % 8 == 3, bstopped = i % 4 == 1 || i % 8 == 3;
    if (astopped) CHECKF(a == 0, "stopped cleanup A of object %zu ran", i);
    else {
      aexp++;
      adead += (size_t)a;
    }
    if (bstopped) CHECKF(b == 0, "stopped cleanup B of object %zu ran", i);
    else {
      bexp++;
      bdead += (size_t)b;
    }
  }
  check_death_fraction(adead, aexp, "stop: cleanups A not stopped");
  check_death_fraction(bdead, bexp, "stop: cleanups B not stopped");
  /* Stop after the cleanups ran: harmless, and must not touch the records
     reused since by new cleanups.  The new objects are kept alive and then
     freed explicitly, so that their cleanups run at once: exact counts. */
  ncnt = counters_new(N);
  void **keep = calloc(N, sizeof *keep);
  CHECK(keep);
  cgc_add_roots(keep, N * sizeof *keep);
  make_fresh(N, keep);
  for (size_t i = 0; i < N; i++) {
    cgc_cleanup_stop(ha[i]);
    cgc_cleanup_stop(hb[i]);
  }
  collect_rounds(1);
  CHECKF(counters_count(ncnt, 0, 0, "stop: fresh") == N, "a cleanup of a live object ran");
  for (size_t i = 0; i < N; i++) {
    cgc_free(keep[i]);
    keep[i] = NULL;
  }
  size_t ran = counters_count(ncnt, 1, 1, "stop: fresh");
  CHECKF(ran == N, "stop: %zu of %zu cleanups of freed objects ran: a stale handle stopped a reused record",
         ran, (size_t)N);
  collect_rounds(1);
  CHECK(counters_count(ncnt, 1, 1, "stop: fresh") == N);
  cgc_remove_roots(keep);
  free(keep);
  free(ha);
  free(hb);
  retire(acnt.v);
  retire(bcnt.v);
  retire(ncnt.v);
}

/* ---- stop inside ----------------------------------------------------------------------- */

typedef struct {
  cgc_cleanup_t self, sibling, other;
  _Atomic int ran, sibling_ran, other_ran;
} ctx_t;
static ctx_t *ctx;

static void inside_cleanup(void *arg) {
  ctx_t *c = arg;
  cgc_cleanup_stop(c->self); /* itself, while it runs */
  cgc_cleanup_stop(c->self);
  cgc_cleanup_stop(c->sibling); /* queued by the same collection: at most once either way */
  cgc_cleanup_stop(c->other);   /* a live object's cleanup: cancelled */
  atomic_fetch_add(&c->ran, 1);
}
static void sibling_cleanup(void *arg) { atomic_fetch_add(&((ctx_t *)arg)->sibling_ran, 1); }
static void other_cleanup(void *arg) { atomic_fetch_add(&((ctx_t *)arg)->other_ran, 1); }

static NOINLINE void make_inside(size_t n) {
  for (size_t i = 0; i < n; i++) {
    void *x = cgc_alloc(40);
    void *z = cgc_alloc(40);
    roots[i] = z;
    ctx[i].other = cgc_add_cleanup(z, other_cleanup, &ctx[i]);
    ctx[i].sibling = cgc_add_cleanup(x, sibling_cleanup, &ctx[i]);
    ctx[i].self = cgc_add_cleanup(x, inside_cleanup, &ctx[i]);
  }
}

static void test_stop_inside(void) {
  ctx = calloc(N, sizeof *ctx);
  CHECK(ctx);
  memset(roots, 0, sizeof roots);
  make_inside(N);
  collect_rounds(2);
  size_t ran = 0;
  for (size_t i = 0; i < N; i++) {
    CHECK(atomic_load(&ctx[i].ran) <= 1 && atomic_load(&ctx[i].sibling_ran) <= 1);
    CHECKF(atomic_load(&ctx[i].other_ran) == 0, "the live object's cleanup %zu ran", i);
    ran += (size_t)atomic_load(&ctx[i].ran);
  }
  check_death_fraction(ran, N, "stop_inside");
  /* The other objects die; the cleanups stopped from inside must not run. */
  memset(roots, 0, sizeof roots);
  collect_rounds(3);
  size_t other = 0, expected = 0;
  for (size_t i = 0; i < N; i++) {
    int o = atomic_load(&ctx[i].other_ran);
    CHECK(o <= 1);
    if (atomic_load(&ctx[i].ran)) CHECKF(o == 0, "cleanup %zu stopped from inside a cleanup ran", i);
    else {
      expected++;
      other += (size_t)o;
    }
    CHECK(atomic_load(&ctx[i].ran) <= 1 && atomic_load(&ctx[i].sibling_ran) <= 1);
  }
  fprintf(stderr, "stop_inside: %zu of %zu cleanups not stopped ran\n", other, expected);
  retire(ctx);
}

/* ---- thread ---------------------------------------------------------------------------- */

static pthread_t main_thread;
static _Atomic int collect_returned, waited_too_long, wrong_thread, wrong_name, thread_ran;
static counters_t chain_cnt;

static void thread_cleanup(void *arg) {
  (void)arg;
  if (pthread_equal(pthread_self(), main_thread)) atomic_fetch_add(&wrong_thread, 1);
  char name[32] = {0};
  prctl(PR_GET_NAME, name, 0, 0, 0);
  if (strcmp(name, "cgc-cleanup") != 0) {
    if (atomic_fetch_add(&wrong_name, 1) == 0) fprintf(stderr, "cleanup thread is named '%s'\n", name);
  }
  /* The cleanup runs only after cgc_collect returned: wait for main to say so.
     If cgc_collect ran cleanups itself this would never end. */
  uint64_t t0 = now_ns();
  while (!atomic_load(&collect_returned)) {
    if (now_ns() - t0 > 10000000000ull) {
      atomic_fetch_add(&waited_too_long, 1);
      break;
    }
    sched_yield();
  }
  atomic_fetch_add(&thread_ran, 1);
}

/* A cleanup that allocates: a new object with a cleanup one level deeper. */
#define CHAIN_DEPTH 4
static void chain_cleanup(void *arg) {
  uintptr_t v = (uintptr_t)arg, i = v >> 8, depth = v & 0xff;
  atomic_fetch_add(&chain_cnt.v[i * CHAIN_DEPTH + depth], 1);
  if (depth + 1 < CHAIN_DEPTH) {
    void *p = cgc_alloc(64);
    cgc_add_cleanup(p, chain_cleanup, (void *)((i << 8) | (depth + 1)));
  }
  if (i % 1000 == 0) {
    cgc_wait_cleanups(); /* from inside a cleanup: runs what is queued and returns */
    if (i % 4000 == 0) cgc_collect();
  }
}

static NOINLINE void make_thread_objs(size_t n) {
  for (size_t i = 0; i < n; i++) cgc_add_cleanup(cgc_alloc(16), thread_cleanup, NULL);
}
static NOINLINE void make_chain(size_t n) {
  for (size_t i = 0; i < n; i++) cgc_add_cleanup(cgc_alloc(64), chain_cleanup, (void *)(i << 8));
}

static void test_thread(void) {
  main_thread = pthread_self();
  CHECKF(!thread_named_exists("cgc-cleanup"), "the cleanup thread exists before any cleanup was queued");
  collect_rounds(2); /* nothing queued: still no thread */
  CHECKF(!thread_named_exists("cgc-cleanup"), "the cleanup thread started with nothing to run");
  make_thread_objs(2000);
  clear_stack();
  cgc_collect();
  atomic_store(&collect_returned, 1);
  cgc_wait_cleanups();
  CHECKF(atomic_load(&waited_too_long) == 0, "a cleanup ran inside cgc_collect (it waited for cgc_collect to return)");
  CHECKF(atomic_load(&wrong_thread) == 0, "%d cleanups ran on the main thread", atomic_load(&wrong_thread));
  CHECKF(atomic_load(&wrong_name) == 0, "%d cleanups ran on a thread not named cgc-cleanup",
         atomic_load(&wrong_name));
  CHECKF(atomic_load(&thread_ran) >= 1800, "only %d of 2000 cleanups ran", atomic_load(&thread_ran));
  CHECKF(thread_named_exists("cgc-cleanup"), "no thread named cgc-cleanup");
  /* Cleanups that allocate, add cleanups, wait and collect. */
  chain_cnt = counters_new((size_t)5000 * CHAIN_DEPTH);
  make_chain(5000);
  collect_rounds(CHAIN_DEPTH + 2);
  size_t last = 0;
  for (size_t i = 0; i < 5000; i++) last += atomic_load(&chain_cnt.v[i * CHAIN_DEPTH + CHAIN_DEPTH - 1]) == 1;
  counters_count(chain_cnt, 1, 1, "chain");
  check_death_fraction(last, 5000, "thread: chains reaching the last level");
  retire(chain_cnt.v);
}

/* ---- live ------------------------------------------------------------------------------ */

typedef struct list {
  struct list *next;
  void *obj;
} list_t;

static list_t *list_head;            /* static: the head of a heap list */
static void **reg_roots;             /* malloc'd, registered with cgc_add_roots */
static pthread_barrier_t bar;
static _Atomic int holder_go;

static void *holder(void *arg) {
  /* The objects are referenced only from this thread's stack while it blocks. */
  void *local[64];
  void **src = arg;
  for (int i = 0; i < 64; i++) local[i] = src[i];
  memset(src, 0, 64 * sizeof *src);
  pthread_barrier_wait(&bar);
  while (!atomic_load(&holder_go)) usleep(1000);
  for (int i = 0; i < 64; i++) consume(local[i]);
  return NULL;
}

#define LIVE_N 4000
static void *holder_src[64];

static void nop_cleanup(void *arg) { (void)arg; }

static NOINLINE void make_live(void) {
  /* 0..999: static roots; 1000..1999: heap list; 2000..2999: registered roots;
     3000..3063: another thread's stack; 3064..3999: arguments of other live
     objects' cleanups. */
  for (size_t i = 0; i < LIVE_N; i++) {
    void *p = cgc_alloc(48);
    cgc_add_cleanup(p, count_cleanup, (void *)&cnt.v[i]);
    if (i < 1000) roots[i] = p;
    else if (i < 2000) {
      list_t *l = cgc_alloc(sizeof *l);
      l->next = list_head;
      l->obj = p;
      list_head = l;
    } else if (i < 3000) reg_roots[i - 2000] = p;
    else if (i < 3064) holder_src[i - 3000] = p;
    else {
      void *owner = cgc_alloc(16);
      roots[i] = owner;
      cgc_add_cleanup(owner, nop_cleanup, p); /* p is the argument: kept alive */
    }
  }
}

static NOINLINE void garbage(size_t n) {
  for (size_t i = 0; i < n; i++) {
    void *g = cgc_alloc(48);
    memset(g, 0xab, 48);
    consume(g);
  }
}

static void test_live(void) {
  cnt = counters_new(LIVE_N);
  memset(roots, 0, sizeof roots);
  reg_roots = calloc(1000, sizeof *reg_roots);
  CHECK(reg_roots);
  cgc_add_roots(reg_roots, 1000 * sizeof *reg_roots);
  pthread_barrier_init(&bar, NULL, 2);
  make_live();
  pthread_t t;
  CHECK(pthread_create(&t, NULL, holder, holder_src) == 0);
  pthread_barrier_wait(&bar);
  for (int r = 0; r < 8; r++) {
    garbage(50000);
    collect_wait();
  }
  /* The owners of 3064..3999 had cleanups whose argument is the object: the
     owners are live, so nothing may have run at all. */
  size_t zero = counters_count(cnt, 0, 0, "live");
  CHECKF(zero == LIVE_N, "%zu cleanups of live objects ran", LIVE_N - zero);
  /* Release everything. */
  atomic_store(&holder_go, 1);
  pthread_join(t, NULL);
  memset(roots, 0, sizeof roots);
  list_head = NULL;
  memset(reg_roots, 0, 1000 * sizeof *reg_roots);
  collect_rounds(3);
  /* 3064..3999 are the arguments of the owners' cleanups: they die one
     collection after their owners. */
  check_death_fraction(counters_count(cnt, 1, 1, "live"), LIVE_N, "live: released");
  cgc_remove_roots(reg_roots);
  free(reg_roots);
  retire(cnt.v);
}

/* ---- manual ---------------------------------------------------------------------------- */

static _Atomic int manual_wrong_thread;
static void manual_cleanup(void *arg) {
  if (!pthread_equal(pthread_self(), main_thread)) atomic_fetch_add(&manual_wrong_thread, 1);
  count_cleanup(arg);
}
static NOINLINE void make_manual(size_t n) {
  for (size_t i = 0; i < n; i++) cgc_add_cleanup(cgc_alloc(24), manual_cleanup, (void *)&cnt.v[i]);
}

static void test_manual(void) {
  const char *dbg = getenv("CGC_DEBUG");
  CHECKF(dbg && strstr(dbg, "cleanups=manual"), "run with CGC_DEBUG=cleanups=manual");
  main_thread = pthread_self();
  cnt = counters_new(N);
  make_manual(N);
  clear_stack();
  cgc_collect();
  cgc_collect();
  usleep(100000); /* not a wait for anything: gives a wrongly started thread time to run */
  cgc_stats_t s = stats();
  CHECKF(counters_count(cnt, 0, 0, "manual") == N, "cleanups ran without cgc_run_cleanups");
  CHECKF(!thread_named_exists("cgc-cleanup"), "a cleanup thread was started in manual mode");
  fprintf(stderr, "manual: %llu queued\n", (unsigned long long)s.cleanups_queued);
  CHECKF((double)s.cleanups_queued >= DEATH_MIN * N, "only %llu queued", (unsigned long long)s.cleanups_queued);
  size_t n = cgc_run_cleanups();
  CHECKF(n == s.cleanups_queued, "cgc_run_cleanups ran %zu, %llu were queued", n,
         (unsigned long long)s.cleanups_queued);
  CHECK(counters_count(cnt, 1, 1, "manual") == n);
  CHECK(stats().cleanups_queued == 0);
  CHECK(cgc_run_cleanups() == 0);
  /* cgc_wait_cleanups runs them too, on this thread. */
  retire(cnt.v);
  cnt = counters_new(N);
  make_manual(N);
  collect_wait();
  CHECK(stats().cleanups_queued == 0);
  check_death_fraction(counters_count(cnt, 1, 1, "manual"), N, "manual: wait");
  CHECKF(atomic_load(&manual_wrong_thread) == 0, "cleanups ran on another thread in manual mode");
  CHECK(!thread_named_exists("cgc-cleanup"));
  retire(cnt.v);
}

/* ---- unregistered ------------------------------------------------------------------------ */

#define UR_N 60 /* one batch (64) */
#define UR_MAGIC 0x5ca1ab1e5ca1ab1eull
typedef struct {
  uint64_t magic;
  uint64_t pad[3];
} ur_arg_t;
static _Atomic int ur_blocked, ur_go, ur_bad, ur_ran;

static void ur_cleanup(void *a) {
  if (atomic_exchange(&ur_blocked, 1) == 0) /* the first to run waits for the collections */
    while (!atomic_load(&ur_go)) sched_yield();
  if (((ur_arg_t *)a)->magic != UR_MAGIC) atomic_fetch_add(&ur_bad, 1);
  atomic_fetch_add(&ur_ran, 1);
}

static NOINLINE void ur_make(void) {
  for (int i = 0; i < UR_N; i++) {
    ur_arg_t *a = cgc_alloc(sizeof *a); /* alive only through its cleanup */
    a->magic = UR_MAGIC;
    cgc_add_cleanup(cgc_alloc(48), ur_cleanup, a);
  }
}

static void *ur_runner(void *arg) {
  (void)arg;
  cgc_unregister_thread();
  return (void *)cgc_run_cleanups();
}

static void test_unregistered(void) {
  const char *dbg = getenv("CGC_DEBUG");
  CHECKF(dbg && strstr(dbg, "cleanups=manual"), "run with CGC_DEBUG=cleanups=manual");
  ur_make();
  clear_stack();
  cgc_collect(); /* queues the cleanups; nothing runs in manual mode */
  size_t queued = stats().cleanups_queued;
  CHECKF(queued >= UR_N * DEATH_MIN, "only %zu of %d cleanups queued", queued, UR_N);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, ur_runner, NULL) == 0);
  while (!atomic_load(&ur_blocked)) sched_yield();
  /* The batch's arguments are now only on the runner's stack. */
  cgc_collect();
  cgc_collect();
  for (int i = 0; i < 4000; i++) { /* reuse any freed slot of their size */
    ur_arg_t *g = cgc_alloc(sizeof *g);
    g->magic = 0xdeadbeef;
    consume(g);
  }
  atomic_store(&ur_go, 1);
  void *ran;
  CHECK(pthread_join(t, &ran) == 0);
  CHECKF((size_t)ran == queued, "the unregistered thread ran %zu of %zu", (size_t)ran, queued);
  CHECKF(atomic_load(&ur_bad) == 0, "%d cleanups ran with an argument that had been collected",
         atomic_load(&ur_bad));
}

/* ---- pacing ----------------------------------------------------------------------------- */

#define PC_N 200000
static void **pc_objs;
static void pc_nop(void *a) { (void)a; }

static void test_pacing(void) {
  pc_objs = cgc_alloc(PC_N * sizeof *pc_objs);
  cgc_cleanup_t *h = malloc(PC_N * sizeof *h);
  CHECK(pc_objs && h);
  for (size_t i = 0; i < PC_N; i++) {
    pc_objs[i] = cgc_alloc(16);
    h[i] = cgc_add_cleanup(pc_objs[i], pc_nop, NULL);
  }
  cgc_collect();
  for (size_t i = 0; i < PC_N; i++) cgc_cleanup_stop(h[i]);
  cgc_stats_t s = stats();
  uint64_t allowed = s.heap_goal_bytes - s.live_bytes + (4u << 20);
  size_t bytes = 0;
  while (stats().num_gc == s.num_gc) {
    for (int k = 0; k < 1024; k++) consume(cgc_alloc(64));
    bytes += 1024 * 64;
    CHECKF(bytes <= allowed,
           "no paced collection after %zu bytes of garbage (goal %llu, live %llu): stopped cleanups were "
           "subtracted from the pacer's count twice",
           bytes, (unsigned long long)s.heap_goal_bytes, (unsigned long long)s.live_bytes);
  }
  fprintf(stderr, "pacing: collection after %zu KiB (goal %llu KiB, live %llu KiB)\n", bytes >> 10,
          (unsigned long long)s.heap_goal_bytes >> 10, (unsigned long long)s.live_bytes >> 10);
  free(h);
}

/* ---- wait_order: cgc_wait_cleanups waits for what was queued before it --------------- */

/* Manual mode.  A runner thread takes the X cleanups (one batch) and holds
   them: the first blocks.  The main thread then waits; its wait runs G (queued
   after the X batch was taken, before the wait began), and G queues and runs
   many Y cleanups, pushed after the wait began.  The wait must not return
   before the X batch finishes: the Ys finishing first must not count.  The
   X batch is let go (by a watcher thread) only once the main thread has gone
   back to waiting after G, or has returned. */
#define WO_X 32
#define WO_Y 200
static _Atomic int wo_x_blocked, wo_x_go, wo_x_finished, wo_g_once, wo_y_ran, wo_y_done, wo_returned;
static _Atomic pid_t wo_main_tid;

static void wo_x(void *a) {
  (void)a;
  if (atomic_exchange(&wo_x_blocked, 1) == 0)
    while (!atomic_load(&wo_x_go)) sched_yield();
  atomic_fetch_add(&wo_x_finished, 1);
}
static void wo_y(void *a) {
  (void)a;
  atomic_fetch_add(&wo_y_ran, 1);
}
static NOINLINE void wo_make(int n, void (*fn)(void *)) {
  for (int i = 0; i < n; i++) cgc_add_cleanup(cgc_alloc(32), fn, NULL);
}
static void wo_g(void *a) {
  (void)a;
  if (atomic_exchange(&wo_g_once, 1)) return;
  wo_make(WO_Y, wo_y);
  clear_stack();
  cgc_collect(); /* queues the Ys, after the wait took its snapshot */
  cgc_run_cleanups();
  atomic_store(&wo_y_done, 1);
}
/* A thread that runs what is queued (manual mode); returns how many ran. */
static void *run_queued(void *arg) {
  (void)arg;
  return (void *)cgc_run_cleanups();
}
/* Manual mode: queue n cleanups of fn (one batch); returns how many are queued. */
static uint64_t queue_batch(int n, void (*fn)(void *)) {
  const char *dbg = getenv("CGC_DEBUG");
  CHECKF(dbg && strstr(dbg, "cleanups=manual"), "run with CGC_DEBUG=cleanups=manual");
  wo_make(n, fn);
  clear_stack();
  cgc_collect();
  cgc_collect();
  uint64_t nq = stats().cleanups_queued;
  CHECKF(nq >= 1 && nq <= 64, "%llu cleanups queued", (unsigned long long)nq);
  return nq;
}
/* Queue a few cleanups of fn, beyond the nq queued (collecting until one is). */
static void queue_more(uint64_t nq, void (*fn)(void *), const char *what) {
  for (int round = 0; stats().cleanups_queued == nq; round++) {
    CHECKF(round < 20, "no %s cleanup got queued", what);
    wo_make(4, fn);
    clear_stack();
    cgc_collect();
  }
}
static void *wo_watcher(void *arg) {
  (void)arg;
  while (!atomic_load(&wo_y_done)) sched_yield();
  CHECK(atomic_load(&wo_returned) || wait_blocked_in(atomic_load(&wo_main_tid), SYS_futex));
  atomic_store(&wo_x_go, 1);
  return NULL;
}

static void test_wait_order(void) {
  atomic_store(&wo_main_tid, (pid_t)syscall(SYS_gettid));
  uint64_t nx = queue_batch(WO_X, wo_x);
  pthread_t runner, watcher;
  CHECK(pthread_create(&runner, NULL, run_queued, NULL) == 0);
  while (!atomic_load(&wo_x_blocked)) sched_yield(); /* the runner holds the X batch */
  CHECK(stats().cleanups_queued == nx);              /* taken, not finished */
  queue_more(nx, wo_g, "G");
  CHECK(pthread_create(&watcher, NULL, wo_watcher, NULL) == 0);
  cgc_wait_cleanups();
  int finished = atomic_load(&wo_x_finished);
  atomic_store(&wo_returned, 1);
  void *ran;
  CHECK(pthread_join(watcher, NULL) == 0);
  CHECK(pthread_join(runner, &ran) == 0);
  CHECK(atomic_load(&wo_y_done) && atomic_load(&wo_y_ran) >= 1);
  CHECKF((uint64_t)finished == nx, "cgc_wait_cleanups returned with %d of the %llu cleanups queued before it run",
         finished, (unsigned long long)nx);
  CHECK((uint64_t)(uintptr_t)ran == nx);
}

/* ---- wait_later: a wait ignores batches queued after it began ------------------------ */

/* Manual mode.  Runner 1 takes the X cleanups of wait_order (one batch): the
   first blocks.  A waiter thread calls cgc_wait_cleanups and sleeps.  Then Z
   cleanups are queued (after the wait began) and runner 2 takes them: the
   first Z waits until the waiter has returned (for at most 30 s).  X is let
   go: the waiter must return now; had it waited for the Z batch too, the two
   would wait for each other. */
#define WL_X 8
static _Atomic int wl_z_blocked, wl_z_gave_up, wl_returned;
static _Atomic pid_t wl_waiter_tid;

static void wl_z(void *a) {
  (void)a;
  if (atomic_exchange(&wl_z_blocked, 1)) return;
  uint64_t t0 = now_ns();
  while (!atomic_load(&wl_returned))
    if (now_ns() - t0 > 30000000000ull) {
      atomic_store(&wl_z_gave_up, 1);
      return;
    } else {
      sched_yield();
    }
}
static void *wl_waiter(void *arg) {
  (void)arg;
  atomic_store(&wl_waiter_tid, (pid_t)syscall(SYS_gettid));
  cgc_wait_cleanups();
  atomic_store(&wl_returned, 1);
  return NULL;
}

static void test_wait_later(void) {
  uint64_t nx = queue_batch(WL_X, wo_x);
  pthread_t r1, r2, w;
  CHECK(pthread_create(&r1, NULL, run_queued, NULL) == 0);
  while (!atomic_load(&wo_x_blocked)) sched_yield(); /* runner 1 holds the X batch */
  CHECK(pthread_create(&w, NULL, wl_waiter, NULL) == 0);
  while (!atomic_load(&wl_waiter_tid)) sched_yield();
  CHECK(wait_blocked_in(atomic_load(&wl_waiter_tid), SYS_futex)); /* the waiter sleeps */
  queue_more(nx, wl_z, "Z");
  CHECK(pthread_create(&r2, NULL, run_queued, NULL) == 0);
  while (!atomic_load(&wl_z_blocked)) sched_yield(); /* runner 2 holds the Z batch */
  atomic_store(&wo_x_go, 1);
  CHECK(pthread_join(r1, NULL) == 0 && pthread_join(r2, NULL) == 0 && pthread_join(w, NULL) == 0);
  CHECKF(!atomic_load(&wl_z_gave_up),
         "cgc_wait_cleanups did not return after the cleanups queued before it finished: it waited for a batch "
         "queued later");
  cgc_wait_cleanups();
  CHECK(stats().cleanups_queued == 0);
}

/* ---- running: what a callback holds stays alive while it runs ------------------------------- */

/* Each round makes RN_PER objects whose callbacks (cleanups with an argument
   object, or finalizers) hold an object with a weak handle, reachable only
   through the callback; the first callback of the round to run on the
   cleanup thread stops there while the main thread collects twice, then
   checks that its handle still reads the object.  Then the round's rest runs. */
#define RN_ROUNDS 8
#define RN_PER 16
typedef struct rn_obj {
  size_t j;              /* index of this object's weak handle */
  struct rn_obj *child;  /* a finalizer's object: the object it holds */
} rn_obj_t;
static cgc_weak_t rn_w[RN_ROUNDS * RN_PER]; /* static: keeps the handles, not the objects */
static _Atomic int rn_running, rn_collected, rn_bad, rn_first[RN_ROUNDS];

static void rn_check(int round, size_t j) {
  if (atomic_exchange(&rn_first[round], 1)) return;
  atomic_store(&rn_running, round + 1);
  while (atomic_load(&rn_collected) != round + 1) sched_yield();
  if (cgc_weak_value(rn_w[j]) == NULL) atomic_fetch_add(&rn_bad, 1);
}
static void rn_cleanup(void *arg) {
  rn_obj_t *a = arg;
  rn_check((int)(a->j / RN_PER), a->j);
}
static void rn_fin(void *obj) {
  rn_obj_t *o = obj;
  rn_check((int)(o->child->j / RN_PER), o->child->j);
}
static NOINLINE void rn_make(int round, int fin) {
  for (size_t k = 0; k < RN_PER; k++) {
    size_t j = (size_t)round * RN_PER + k;
    rn_obj_t *held = cgc_alloc(sizeof *held);
    held->j = j;
    rn_w[j] = cgc_weak_make(held);
    rn_obj_t *o = cgc_alloc(sizeof *o);
    if (fin) {
      o->child = held;
      CHECK(cgc_set_finalizer(o, rn_fin) == 0);
    } else {
      cgc_add_cleanup(o, rn_cleanup, held);
    }
  }
}

static void test_running(void) {
  for (int round = 0; round < RN_ROUNDS; round++) {
    rn_make(round, round % 2);
    for (int i = 0; atomic_load(&rn_running) != round + 1; i++) {
      CHECKF(i < 50, "round %d: no callback ran after %d collections", round, i);
      clear_stack();
      cgc_collect();
      uint64_t t0 = now_ns();
      while (atomic_load(&rn_running) != round + 1 && now_ns() - t0 < 1000000000ull) sched_yield();
    }
    clear_stack();
    cgc_collect();
    cgc_collect();
    atomic_store(&rn_collected, round + 1);
    cgc_wait_cleanups();
  }
  CHECKF(atomic_load(&rn_bad) == 0, "%d of %d callbacks found what they hold collected while they ran",
         atomic_load(&rn_bad), RN_ROUNDS);
}

/* ---- nothread ------------------------------------------------------------------------------ */

static _Atomic int nt_ran, nt_stop;
static _Atomic long nt_waits;
static pthread_mutex_t nt_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t nt_cond = PTHREAD_COND_INITIALIZER;

static void nt_cleanup(void *a) {
  (void)a;
  atomic_fetch_add(&nt_ran, 1);
}

static NOINLINE void nt_drop(int n) {
  for (int i = 0; i < n; i++) cgc_add_cleanup(cgc_alloc(16), nt_cleanup, NULL);
}

static void *nt_waiter(void *unused) {
  (void)unused;
  while (!atomic_load(&nt_stop)) {
    cgc_wait_cleanups();
    pthread_mutex_lock(&nt_lock);
    atomic_fetch_add(&nt_waits, 1);
    pthread_cond_broadcast(&nt_cond);
    pthread_mutex_unlock(&nt_lock);
  }
  return NULL;
}

static void test_nothread(void) {
  /* Threads made with default attributes (the cleanup thread, the mark
     workers) now ask for a stack no machine can map. */
  pthread_attr_t big, small;
  CHECK(pthread_attr_init(&big) == 0 && pthread_attr_setstacksize(&big, (size_t)1 << 46) == 0);
  CHECK(pthread_setattr_default_np(&big) == 0);
  CHECK(pthread_attr_init(&small) == 0 && pthread_attr_setstacksize(&small, 1 << 20) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, &small, nt_waiter, NULL) == 0);
  const int rounds = 3000;
  for (int r = 0; r < rounds; r++) {
    nt_drop(2);
    clear_stack();
    cgc_collect(); /* queues the cleanups and tries to start the cleanup thread */
    pthread_mutex_lock(&nt_lock);
    long before = atomic_load(&nt_waits);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 30;
    while (atomic_load(&nt_waits) < before + 2) /* a whole wait begun after the collection */
      CHECKF(pthread_cond_timedwait(&nt_cond, &nt_lock, &dl) != ETIMEDOUT,
             "round %d: cgc_wait_cleanups has not returned for 30 s (%llu cleanups queued)", r,
             (unsigned long long)stats().cleanups_queued);
    pthread_mutex_unlock(&nt_lock);
  }
  atomic_store(&nt_stop, 1);
  CHECK(pthread_join(t, NULL) == 0);
  cgc_wait_cleanups();
  CHECKF(atomic_load(&nt_ran) >= 2 * rounds * DEATH_MIN, "%d of %d cleanups ran", atomic_load(&nt_ran),
         2 * rounds);
}

int main(int argc, char **argv) {
  CHECKF(argc == 2, "usage: specials_cleanup CASE");
  const char *c = argv[1];
  cgc_init();
  if (strcmp(c, "basic") == 0) test_basic();
  else if (strcmp(c, "cycle") == 0) test_cycle();
  else if (strcmp(c, "arg") == 0) test_arg();
  else if (strcmp(c, "static") == 0) test_static();
  else if (strcmp(c, "stop") == 0) test_stop();
  else if (strcmp(c, "stop_inside") == 0) test_stop_inside();
  else if (strcmp(c, "thread") == 0) test_thread();
  else if (strcmp(c, "live") == 0) test_live();
  else if (strcmp(c, "manual") == 0) test_manual();
  else if (strcmp(c, "unregistered") == 0) test_unregistered();
  else if (strcmp(c, "wait_order") == 0) test_wait_order();
  else if (strcmp(c, "wait_later") == 0) test_wait_later();
  else if (strcmp(c, "running") == 0) test_running();
  else if (strcmp(c, "pacing") == 0) test_pacing();
  else if (strcmp(c, "nothread") == 0) test_nothread();
  else {
    fprintf(stderr, "unknown case %s\n", c);
    return 2;
  }
  fprintf(stderr, "%s: ok\n", c);
  return 0;
}
