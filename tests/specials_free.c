/* cgc_free of objects that carry specials (explicit-free issue, item 2):
 * weak handles become NULL, then the cleanups and the finalizer run on the
 * calling thread before cgc_free returns; nothing runs again later.
 * Run as `specials_free CASE`.
 *
 *   run         everything runs once, on this thread, before cgc_free returns,
 *               with the weak handles already NULL; stopped cleanups do not run;
 *               nothing more after collections; small and large objects
 *   stop        stop from inside a cleanup run by cgc_free, and stale handles
 *               stopped afterwards, do not disturb reused records
 *   reuse       an object allocated in the freed slot inherits nothing: other
 *               weak handle, no cleanups of the freed object
 *   threads     several threads free objects with specials while another
 *               collects: exact counts
 *   rearm       a finalizer run by cgc_free that registers a cleanup, a
 *               finalizer or a weak handle on its (dying) object: nothing may
 *               run later, and the handle must read NULL
 *   late_arg    a cleanup that a finalizer run by cgc_free adds to its (dying)
 *               object is dropped unrun, and its argument is released with
 *               it: the argument dies at the next collections
 *   others      cgc_free of many objects with cleanups, weak handles or
 *               finalizers leaves the finalizers of other objects armed: those
 *               objects are finalized when they die
 *   nested      a finalizer (or cleanup) that cgc_frees its own object, run by
 *               cgc_free of that object: the object is freed once (its slot
 *               is handed out once, a large object's pages are not freed
 *               twice), for small and large objects; the same finalizer run
 *               by the collector frees the object
 *   unregistered  cgc_free by a thread that unregistered: while a cleanup
 *               runs, its argument (held only by the cleanup) survives
 *               collections on another thread, and so does a finalizer's
 *               object
 */
#include "specials_util.h"

#include <semaphore.h>

#define N 5000

enum { EV_FIN = 1, EV_C1 = 2, EV_C2 = 4, EV_C3 = 8 };

typedef struct {
  _Atomic int events;       /* EV_* bits, each set once */
  _Atomic int count;        /* callbacks run */
  _Atomic int errors;
  cgc_weak_t w, wi;         /* weak handles of the object (base, interior) */
  pthread_t freer;
  cgc_cleanup_t c2;
} rec_t;

static rec_t *recs;
static _Atomic int errors;

static void err(const char *what, size_t i) {
  if (atomic_fetch_add(&errors, 1) < 10) fprintf(stderr, "%s (object %zu)\n", what, i);
}

static void check_in_callback(rec_t *r, int ev) {
  size_t i = (size_t)(r - recs);
  if (cgc_weak_value(r->w) != NULL || cgc_weak_value(r->wi) != NULL) err("weak handle not NULL in a callback", i);
  if (!pthread_equal(pthread_self(), r->freer)) err("callback not on the thread calling cgc_free", i);
  if (atomic_fetch_or(&r->events, ev) & ev) err("callback ran twice", i);
  atomic_fetch_add(&r->count, 1);
}

typedef struct {
  size_t i;
  char pad[24];
} fobj_t;

static void fin(void *obj) {
  fobj_t *o = obj;
  check_in_callback(&recs[o->i], EV_FIN);
}
static void c1(void *arg) { check_in_callback(arg, EV_C1); }
static void c2(void *arg) { check_in_callback(arg, EV_C2); }
static void c3(void *arg) { check_in_callback(arg, EV_C3); }

static fobj_t *setup(size_t i, size_t size, int with_fin) {
  fobj_t *o = cgc_alloc(size);
  o->i = i;
  rec_t *r = &recs[i];
  r->freer = pthread_self();
  r->w = cgc_weak_make(o);
  r->wi = cgc_weak_make((char *)o + 8);
  if (with_fin) CHECK(cgc_set_finalizer(o, fin) == 0);
  cgc_add_cleanup(o, c1, r);
  r->c2 = cgc_add_cleanup((char *)o + 16, c2, r);
  cgc_cleanup_t h3 = cgc_add_cleanup(o, c3, r);
  cgc_cleanup_stop(h3); /* stopped: must not run */
  return o;
}

static void test_run(void) {
  recs = calloc(N, sizeof *recs);
  CHECK(recs);
  cgc_stats_t s0 = stats();
  size_t nfin = 0;
  for (size_t i = 0; i < N; i++) {
    size_t size = i % 10 == 0 ? 50000 : 48;
    int with_fin = i % 3 != 0;
    nfin += (size_t)with_fin;
    fobj_t *o = setup(i, size, with_fin);
    CHECK(cgc_weak_value(recs[i].w) == o);
    cgc_free(o);
    int want = EV_C1 | EV_C2 | (with_fin ? EV_FIN : 0);
    CHECKF(atomic_load(&recs[i].events) == want, "object %zu: events %#x after cgc_free, want %#x", i,
           atomic_load(&recs[i].events), want);
    CHECK(cgc_weak_value(recs[i].w) == NULL && cgc_weak_value(recs[i].wi) == NULL);
  }
  cgc_stats_t s1 = stats();
  CHECK(s1.num_cleanups_run - s0.num_cleanups_run == 2 * N);
  CHECK(s1.num_finalizers_run - s0.num_finalizers_run == nfin);
  collect_rounds(3);
  for (size_t i = 0; i < N; i++) {
    int want = i % 3 != 0 ? 3 : 2;
    CHECKF(atomic_load(&recs[i].count) == want, "object %zu: %d callbacks, want %d", i, atomic_load(&recs[i].count),
           want);
    cgc_cleanup_stop(recs[i].c2); /* after it ran: harmless */
  }
  cgc_stats_t s2 = stats();
  CHECK(s2.num_cleanups_run == s1.num_cleanups_run && s2.num_finalizers_run == s1.num_finalizers_run);
  CHECKF(atomic_load(&errors) == 0, "%d errors", atomic_load(&errors));
  retire(recs);
}

/* ---- stop ------------------------------------------------------------------------------- */

typedef struct {
  cgc_cleanup_t self, sibling;
  _Atomic int ran, sibling_ran;
} sctx_t;
static void stop_self(void *arg) {
  sctx_t *c = arg;
  cgc_cleanup_stop(c->self);
  cgc_cleanup_stop(c->sibling);
  atomic_fetch_add(&c->ran, 1);
}
static void sib(void *arg) { atomic_fetch_add(&((sctx_t *)arg)->sibling_ran, 1); }
static void count_arg(void *arg) { atomic_fetch_add((_Atomic int *)arg, 1); }

static void test_stop(void) {
  sctx_t *ctx = calloc(N, sizeof *ctx);
  _Atomic int *fresh = calloc(N, sizeof *fresh);
  void **objs = calloc(N, sizeof *objs);
  CHECK(ctx && fresh && objs);
  cgc_add_roots(objs, N * sizeof *objs);
  for (size_t i = 0; i < N; i++) {
    void *p = cgc_alloc(32);
    ctx[i].sibling = cgc_add_cleanup(p, sib, &ctx[i]);
    ctx[i].self = cgc_add_cleanup(p, stop_self, &ctx[i]);
    cgc_free(p);
    CHECK(atomic_load(&ctx[i].ran) == 1);
    CHECK(atomic_load(&ctx[i].sibling_ran) <= 1);
  }
  /* New cleanups reuse the records; the old handles must not stop them. */
  for (size_t i = 0; i < N; i++) {
    objs[i] = cgc_alloc(32);
    cgc_add_cleanup(objs[i], count_arg, (void *)&fresh[i]);
  }
  for (size_t i = 0; i < N; i++) {
    cgc_cleanup_stop(ctx[i].self);
    cgc_cleanup_stop(ctx[i].sibling);
  }
  for (size_t i = 0; i < N; i++) {
    cgc_free(objs[i]);
    objs[i] = NULL;
    CHECKF(atomic_load(&fresh[i]) == 1, "cleanup %zu on a reused record did not run (stopped by a stale handle?)",
           i);
  }
  collect_rounds(2);
  for (size_t i = 0; i < N; i++)
    CHECK(atomic_load(&ctx[i].ran) == 1 && atomic_load(&ctx[i].sibling_ran) <= 1 && atomic_load(&fresh[i]) == 1);
  cgc_remove_roots(objs);
  free(objs);
  retire(ctx);
  retire((void *)fresh);
}

/* ---- reuse ------------------------------------------------------------------------------ */

static _Atomic int reuse_ran;
static void reuse_cl(void *arg) {
  (void)arg;
  atomic_fetch_add(&reuse_ran, 1);
}

static NOINLINE size_t reuse_round(size_t size) {
  size_t same = 0;
  for (size_t i = 0; i < 200; i++) {
    char *p = cgc_alloc(size);
    cgc_weak_t w = cgc_weak_make(p);
    cgc_add_cleanup(p, reuse_cl, NULL);
    cgc_free(p);
    CHECK(atomic_load(&reuse_ran) == (int)i + 1);
    char *q = cgc_alloc(size);
    same += q == p;
    cgc_weak_t wq = cgc_weak_make(q);
    CHECKF(wq != w, "the object in the freed slot got the freed object's weak handle");
    CHECK(cgc_weak_value(w) == NULL && cgc_weak_value(wq) == q);
    cgc_free(q);
    CHECK(cgc_weak_value(wq) == NULL);
  }
  return same;
}

static void test_reuse(void) {
  static const size_t sizes[] = {16, 256, 40000};
  for (size_t s = 0; s < 3; s++) {
    atomic_store(&reuse_ran, 0);
    size_t same = reuse_round(sizes[s]);
    fprintf(stderr, "reuse size=%zu: slot reused %zu of 200 times\n", sizes[s], same);
    collect_rounds(2);
    CHECKF(atomic_load(&reuse_ran) == 200, "%d cleanups ran for 200 freed objects", atomic_load(&reuse_ran));
  }
}

/* ---- threads ---------------------------------------------------------------------------- */

#define TH 3
#define TH_N 20000
static _Atomic int *th_cnt;
static _Atomic int th_stop;
static void th_fin(void *obj) { atomic_fetch_add(&th_cnt[*(size_t *)obj], 1); }
static void th_cl(void *arg) { atomic_fetch_add((_Atomic int *)arg, 1); }

static void *freer(void *arg) {
  size_t t = (size_t)arg;
  for (size_t k = 0; k < TH_N; k++) {
    size_t i = t * TH_N + k;
    size_t *o = cgc_alloc(24 + (k % 7) * 16);
    *o = i;
    if (k % 2) CHECK(cgc_set_finalizer(o, th_fin) == 0);
    cgc_add_cleanup(o, th_cl, (void *)&th_cnt[i]);
    cgc_weak_t w = cgc_weak_make(o);
    cgc_free(o);
    int want = k % 2 ? 2 : 1;
    if (atomic_load(&th_cnt[i]) != want) err("callbacks did not run in cgc_free", i);
    if (cgc_weak_value(w) != NULL) err("weak handle not NULL after cgc_free", i);
  }
  return NULL;
}

static void test_threads(void) {
  th_cnt = calloc(TH * TH_N, sizeof *th_cnt);
  CHECK(th_cnt);
  pthread_t t[TH], c;
  CHECK(pthread_create(&c, NULL, collect_until, &th_stop) == 0);
  for (size_t i = 0; i < TH; i++) CHECK(pthread_create(&t[i], NULL, freer, (void *)i) == 0);
  for (size_t i = 0; i < TH; i++) pthread_join(t[i], NULL);
  atomic_store(&th_stop, 1);
  pthread_join(c, NULL);
  collect_rounds(2);
  for (size_t i = 0; i < TH * TH_N; i++) {
    int want = (i % TH_N) % 2 ? 2 : 1;
    CHECKF(atomic_load(&th_cnt[i]) == want, "object %zu: %d callbacks, want %d", i, atomic_load(&th_cnt[i]), want);
  }
  CHECKF(atomic_load(&errors) == 0, "%d errors", atomic_load(&errors));
  retire((void *)th_cnt);
}

/* ---- rearm ------------------------------------------------------------------------------ */

static _Atomic int late;
static cgc_weak_t rearm_w[200];
static void late_cl(void *arg) {
  (void)arg;
  atomic_fetch_add(&late, 1);
}
static void late_fin(void *obj) {
  (void)obj;
  atomic_fetch_add(&late, 1);
}
static void rearm_fin(void *obj) {
  size_t i = *(size_t *)obj;
  switch (i % 3) {
    case 0: cgc_add_cleanup(obj, late_cl, NULL); break;
    case 1: cgc_set_finalizer(obj, late_fin); break;
    default: rearm_w[i] = cgc_weak_make(obj); break;
  }
}

static NOINLINE void rearm_round(void) {
  for (size_t i = 0; i < 200; i++) {
    size_t *o = cgc_alloc(32);
    *o = i;
    CHECK(cgc_set_finalizer(o, rearm_fin) == 0);
    cgc_free(o);
    if (i % 3 == 2) CHECKF(cgc_weak_value(rearm_w[i]) == NULL, "a weak handle made while the object was being "
                                                               "freed reads %p after cgc_free",
                           cgc_weak_value(rearm_w[i]));
    /* Reuse the slot with an object that then dies. */
    size_t *q = cgc_alloc(32);
    *q = 1000 + i;
    consume(q);
  }
}

static void test_rearm(void) {
  rearm_round();
  collect_rounds(3);
  CHECKF(atomic_load(&late) == 0,
         "%d cleanups/finalizers registered during cgc_free ran later (for the objects that reused the slots)",
         atomic_load(&late));
}

/* ---- late_arg: a cleanup added during cgc_free releases its argument --------------- */

/* A cleanup record dropped unrun at the end of cgc_free no longer holds its
   argument: the argument is garbage like any other object.  Each argument
   carries a cleanup of its own that counts its death. */
#define LATE_N 2000
static counters_t late_arg_dead;
static void late_arg_fin(void *obj) {
  size_t i = *(size_t *)obj;
  size_t *arg = cgc_alloc(32);
  *arg = i;
  cgc_add_cleanup(arg, count_cleanup, (void *)&late_arg_dead.v[i]);
  cgc_add_cleanup(obj, late_cl, arg); /* on the dying object: dropped unrun */
}

static NOINLINE void late_arg_round(void) {
  for (size_t i = 0; i < LATE_N; i++) {
    size_t *o = cgc_alloc(32);
    *o = i;
    CHECK(cgc_set_finalizer(o, late_arg_fin) == 0);
    cgc_free(o);
  }
}

static void test_late_arg(void) {
  late_arg_dead = counters_new(LATE_N);
  late_arg_round();
  collect_rounds(3);
  CHECKF(atomic_load(&late) == 0, "%d cleanups registered during cgc_free ran later", atomic_load(&late));
  size_t dead = counters_count(late_arg_dead, 1, 1, "late_arg");
  check_death_fraction(dead, LATE_N, "arguments of cleanups dropped at the end of cgc_free");
}

/* ---- others: frees leave the finalizers of other objects armed -------------------- */

#define OT_N 100
static _Atomic int ot_ran, ot_freed_ran;
static void ot_fin(void *obj) {
  (void)obj;
  atomic_fetch_add(&ot_ran, 1);
}
static void ot_freed_fin(void *obj) {
  (void)obj;
  atomic_fetch_add(&ot_freed_ran, 1);
}
static void ot_nop(void *arg) { (void)arg; }

static NOINLINE void ot_make(void) {
  for (int i = 0; i < OT_N; i++) CHECK(cgc_set_finalizer(cgc_alloc(32), ot_fin) == 0);
}

static void test_others(void) {
  ot_make(); /* garbage with finalizers */
  /* More objects than those, each with one kind of special, freed. */
  for (int i = 0; i < 4 * OT_N; i++) {
    void *q = cgc_alloc(32);
    switch (i % 3) {
      case 0: cgc_add_cleanup(q, ot_nop, NULL); break;
      case 1: consume(cgc_weak_make(q)); break;
      default: CHECK(cgc_set_finalizer(q, ot_freed_fin) == 0); break;
    }
    cgc_free(q);
  }
  CHECK(atomic_load(&ot_freed_ran) == (4 * OT_N) / 3);
  collect_rounds(2);
  CHECK(atomic_load(&ot_freed_ran) == (4 * OT_N) / 3);
  check_death_fraction((size_t)atomic_load(&ot_ran), OT_N, "objects with finalizers, after other objects' frees");
}

/* ---- nested: a callback frees its own object --------------------------------- */

static _Atomic int nested_runs;
static void *nested_target; /* the object a cleanup frees (cleanups do not get it) */
static void fin_frees(void *obj) {
  atomic_fetch_add(&nested_runs, 1);
  cgc_free(obj);
}
static void cleanup_frees(void *arg) {
  (void)arg;
  atomic_fetch_add(&nested_runs, 1);
  cgc_free(nested_target);
}

static void nested_one(size_t size, int by_cleanup) {
  atomic_store(&nested_runs, 0);
  void *p = cgc_alloc(size);
  CHECK(p);
  if (by_cleanup) {
    nested_target = p;
    cgc_add_cleanup(p, cleanup_frees, NULL);
  } else {
    CHECK(cgc_set_finalizer(p, fin_frees) == 0);
  }
  cgc_stats_t before = stats();
  cgc_free(p);
  nested_target = NULL;
  cgc_stats_t after = stats();
  CHECKF(atomic_load(&nested_runs) == 1, "size %zu: the callback ran %d times", size, atomic_load(&nested_runs));
  CHECKF(after.total_free_objects - before.total_free_objects == 1,
         "size %zu (%s): %llu frees counted for one object", size, by_cleanup ? "cleanup" : "finalizer",
         (unsigned long long)(after.total_free_objects - before.total_free_objects));
  CHECKF(cgc_base(p) == NULL, "size %zu: the object is still live after cgc_free", size);
  /* The slot (or the pages) went back once: two allocations of the size
     differ, and neither aliases the other's memory. */
  char *a = cgc_alloc(size), *b = cgc_alloc(size);
  CHECK(a && b);
  CHECKF(a != b, "size %zu (%s): the freed object's memory was handed out twice (%p)", size,
         by_cleanup ? "cleanup" : "finalizer", (void *)a);
  memset(a, 0x11, size);
  memset(b, 0x22, size);
  CHECK(a[size - 1] == 0x11 && b[0] == 0x22);
  cgc_free(a);
  cgc_free(b);
}

static NOINLINE void nested_drop(size_t n) {
  for (size_t i = 0; i < n; i++) CHECK(cgc_set_finalizer(cgc_alloc(48), fin_frees) == 0);
}

static void test_nested(void) {
  static const size_t sizes[] = {16, 64, 256, 1024, 4096, 32768, 100000, 1 << 20};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    nested_one(sizes[k], 0);
    nested_one(sizes[k], 1);
  }
  /* Run by the collector, the same finalizer frees its (resurrected) object. */
  atomic_store(&nested_runs, 0);
  nested_drop(1000);
  collect_rounds(3);
  CHECKF(atomic_load(&nested_runs) >= 1000 * DEATH_MIN, "only %d of 1000 finalizers ran", atomic_load(&nested_runs));
  char *x = cgc_alloc(48), *y = cgc_alloc(48);
  CHECK(x != y);
}

/* ---- unregistered ------------------------------------------------------------------------ */

#define UNREG_N 100
#define UNREG_MAGIC 0x5eed5eed5eed5eedull

typedef struct {
  uint64_t magic;
  long idx;
  char pad[40];
} unreg_arg_t;

static _Atomic int unreg_arg_dead[UNREG_N]; /* the argument's own cleanup ran */
static _Atomic int unreg_bad;               /* an argument or object died during its callback */
static void *unreg_objs[UNREG_N];           /* reachable from here until freed */
static sem_t unreg_running, unreg_collected;

static void unreg_arg_died(void *i) { atomic_store(&unreg_arg_dead[(intptr_t)i], 1); }

/* While a callback runs the main thread collects twice and reuses the
   arguments' size class; then the callback checks what it holds. */
static void unreg_handshake(void) {
  CHECK(sem_post(&unreg_running) == 0);
  while (sem_wait(&unreg_collected) != 0) CHECK(errno == EINTR);
}

static void unreg_use_arg(void *a) {
  unreg_arg_t *g = a;
  long i = g->idx;
  unreg_handshake();
  if (i < 0 || i >= UNREG_N || atomic_load(&unreg_arg_dead[i]) || g->magic != UNREG_MAGIC || g->idx != i)
    atomic_fetch_add(&unreg_bad, 1);
}

static void unreg_fin(void *obj) {
  unreg_arg_t *g = obj;
  long i = g->idx;
  unreg_handshake();
  if (g->magic != UNREG_MAGIC || g->idx != i) atomic_fetch_add(&unreg_bad, 1);
}

static NOINLINE void unreg_make(long i) {
  unreg_arg_t *g = cgc_alloc(sizeof *g);
  g->magic = UNREG_MAGIC;
  g->idx = i;
  if (i % 2 == 0) { /* a cleanup whose argument has a cleanup of its own */
    cgc_add_cleanup(g, unreg_arg_died, (void *)(intptr_t)i);
    unreg_objs[i] = cgc_alloc(48);
    cgc_add_cleanup(unreg_objs[i], unreg_use_arg, g);
  } else { /* a finalizer, whose object only the freeing call holds */
    unreg_objs[i] = g;
    CHECK(cgc_set_finalizer(g, unreg_fin) == 0);
  }
}

static void *unreg_freer(void *unused) {
  (void)unused;
  for (int i = 0; i < UNREG_N; i++) {
    cgc_unregister_thread();
    void *p = unreg_objs[i];
    unreg_objs[i] = NULL; /* the free's caller holds the only reference */
    cgc_free(p);
  }
  return NULL;
}

static NOINLINE void unreg_churn(void) {
  for (int k = 0; k < 2000; k++) {
    unreg_arg_t *z = cgc_alloc(sizeof *z);
    CHECK(z);
    z->magic = 1;
    z->idx = -1;
  }
}

static void test_unregistered(void) {
  CHECK(sem_init(&unreg_running, 0, 0) == 0 && sem_init(&unreg_collected, 0, 0) == 0);
  for (long i = 0; i < UNREG_N; i++) unreg_make(i);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, unreg_freer, NULL) == 0);
  for (int i = 0; i < UNREG_N; i++) {
    while (sem_wait(&unreg_running) != 0) CHECK(errno == EINTR);
    collect_wait();
    collect_wait();
    unreg_churn();
    CHECK(sem_post(&unreg_collected) == 0);
  }
  CHECK(pthread_join(t, NULL) == 0);
  CHECKF(atomic_load(&unreg_bad) == 0, "%d of %d arguments or objects died while their callback ran",
         atomic_load(&unreg_bad), UNREG_N);
}

int main(int argc, char **argv) {
  CHECKF(argc == 2, "usage: specials_free CASE");
  const char *c = argv[1];
  cgc_init();
  if (strcmp(c, "run") == 0) test_run();
  else if (strcmp(c, "stop") == 0) test_stop();
  else if (strcmp(c, "reuse") == 0) test_reuse();
  else if (strcmp(c, "threads") == 0) test_threads();
  else if (strcmp(c, "rearm") == 0) test_rearm();
  else if (strcmp(c, "late_arg") == 0) test_late_arg();
  else if (strcmp(c, "others") == 0) test_others();
  else if (strcmp(c, "nested") == 0) test_nested();
  else if (strcmp(c, "unregistered") == 0) test_unregistered();
  else {
    fprintf(stderr, "unknown case %s\n", c);
    return 2;
  }
  fprintf(stderr, "%s: ok\n", c);
  return 0;
}
