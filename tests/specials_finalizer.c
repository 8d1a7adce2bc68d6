/* Finalizers (cgc_set_finalizer).  Run as `specials_finalizer CASE`.
 *
 *   basic      runs once with the (intact) object, never for a live object;
 *              small and large objects; num_finalizers_run
 *   resurrect  a finalizer that stores its object keeps it alive and intact;
 *              it does not run again; its weak handles stay NULL; the object's
 *              cleanups run only once it dies again; re-arming runs it again
 *   order      if A reaches B (reaches C) and all have finalizers, A's runs at
 *              the first collection, B's at a later one, C's later still; a
 *              cleanup on B does not run with A's finalizer either
 *   both       an object with a finalizer and cleanups: the finalizer first,
 *              the cleanups only after the object died again
 *   cycle      a cycle containing a finalizer is never finalized (nor are the
 *              cleanups of its members run)
 *   noscan     a noscan object with a finalizer is not scanned while it is
 *              finalized either: an object whose address only its data holds
 *              is finalized at the same collection
 *   api        return values: 0, EEXIST for a different function, NULL removes,
 *              static storage is a no-op
 *   exit       nothing runs at exit
 */
#include <sys/wait.h>

#include "specials_util.h"

#define N 20000
#define MAGIC 0x6f626a656374ull

typedef struct obj {
  struct obj *next; /* what the object reaches */
  size_t i;
  _Atomic int *counts; /* the finalizer counters of the part that made it (a conservative survivor
                          may run its finalizer during a later part, whose counters differ) */
  uint64_t magic;
  cgc_weak_t weak;
  unsigned char pad[16];
} obj_t;

static counters_t cnt;        /* finalizer runs per object */
static _Atomic int errors;
static void *roots[N];        /* static: scanned */

static void error(const char *fmt, size_t i) {
  if (atomic_fetch_add(&errors, 1) < 10) {
    fprintf(stderr, fmt, i);
    fputc('\n', stderr);
  }
}

static void check_obj(obj_t *o) {
  if (cgc_base(o) != o) error("finalizer: %zu: not called with a live object's base", o->i);
  if (o->magic != MAGIC) error("finalizer: %zu: object contents lost", o->i);
}

static void fin_count(void *p) {
  obj_t *o = p;
  check_obj(o);
  atomic_fetch_add(&o->counts[o->i], 1);
}

static NOINLINE void make(size_t n, size_t size, size_t keep, void (*fin)(void *)) {
  for (size_t i = 0; i < n; i++) {
    obj_t *o = cgc_alloc(size);
    o->i = i;
    o->counts = cnt.v;
    o->magic = MAGIC;
    CHECK(cgc_set_finalizer(o, fin) == 0);
    if (keep && i % keep == 0) roots[i] = o;
  }
}

/* ---- basic ------------------------------------------------------------------------------- */

static void basic_one(size_t n, size_t size) {
  cnt = counters_new(n);
  memset(roots, 0, sizeof roots);
  uint64_t f0 = stats().num_finalizers_run;
  make(n, size, 9, fin_count);
  collect_rounds(2);
  size_t ran = 0, expected = 0;
  for (size_t i = 0; i < n; i++) {
    int v = atomic_load(&cnt.v[i]);
    CHECKF(v <= 1, "finalizer %zu ran %d times", i, v);
    if (roots[i]) CHECKF(v == 0, "the finalizer of the live object %zu ran", i);
    else {
      expected++;
      ran += (size_t)v;
    }
  }
  char what[64];
  snprintf(what, sizeof what, "basic size=%zu", size);
  check_death_fraction(ran, expected, what);
  uint64_t df = stats().num_finalizers_run - f0; /* plus late survivors of the previous part */
  CHECKF(df >= ran && df <= ran + 50, "num_finalizers_run went up by %llu, %zu ran", (unsigned long long)df, ran);
  memset(roots, 0, sizeof roots);
  collect_rounds(3);
  check_death_fraction(counters_count(cnt, 1, 1, what), n, what);
  CHECKF(atomic_load(&errors) == 0, "%d errors", atomic_load(&errors));
  retire(cnt.v);
}

static void test_basic(void) {
  basic_one(N, sizeof(obj_t));
  basic_one(N / 4, 1000);
  basic_one(300, 100000);
}

/* ---- resurrect --------------------------------------------------------------------------- */

static obj_t *saved[N];       /* static: the resurrected objects */
static counters_t ccnt;       /* cleanup runs */
static counters_t rearm_cnt;  /* second finalizer */
static _Atomic int weak_not_null_in_fin;

static unsigned char pb(size_t i, size_t k) { return (unsigned char)(i * 31 + k * 3 + 1) | 1; }

static void fin_rearmed(void *p) {
  obj_t *o = p;
  check_obj(o);
  atomic_fetch_add(&rearm_cnt.v[o->i], 1);
}

static void fin_resurrect(void *p) {
  obj_t *o = p;
  check_obj(o);
  if (cgc_weak_value(o->weak) != NULL) atomic_fetch_add(&weak_not_null_in_fin, 1);
  if (o->counts != cnt.v) return; /* a survivor of an earlier part */
  if (atomic_load(&ccnt.v[o->i]) != 0) error("resurrect: %zu: a cleanup ran before the finalizer", o->i);
  atomic_fetch_add(&cnt.v[o->i], 1);
  saved[o->i] = o; /* resurrection */
  if (o->i % 2 == 0) CHECK(cgc_set_finalizer(o, fin_rearmed) == 0);
}

static NOINLINE void make_resurrect(size_t n) {
  for (size_t i = 0; i < n; i++) {
    obj_t *o = cgc_alloc(sizeof *o);
    o->i = i;
    o->counts = cnt.v;
    o->magic = MAGIC;
    for (size_t k = 0; k < sizeof o->pad; k++) o->pad[k] = pb(i, k);
    o->weak = cgc_weak_make(o);
    CHECK(cgc_weak_value(o->weak) == o);
    CHECK(cgc_set_finalizer(o, fin_resurrect) == 0);
    cgc_add_cleanup(o, count_cleanup, (void *)&ccnt.v[i]);
  }
}

static NOINLINE void churn(size_t n) {
  for (size_t i = 0; i < n; i++) {
    void *g = cgc_alloc(sizeof(obj_t));
    memset(g, 0xcd, sizeof(obj_t));
    consume(g);
  }
}

static void test_resurrect(void) {
  cnt = counters_new(N);
  ccnt = counters_new(N);
  rearm_cnt = counters_new(N);
  memset(saved, 0, sizeof saved);
  make_resurrect(N);
  collect_rounds(2);
  size_t fin = 0;
  for (size_t i = 0; i < N; i++) fin += saved[i] != NULL;
  check_death_fraction(fin, N, "resurrect: finalized");
  CHECKF(atomic_load(&weak_not_null_in_fin) == 0, "%d finalizers saw a non-NULL weak handle",
         atomic_load(&weak_not_null_in_fin));
  /* Resurrected: alive, intact, weak handles NULL for ever, no cleanup, and
     (for the odd ones, not re-armed) no second finalizer. */
  for (int r = 0; r < 4; r++) {
    churn(4 * N);
    collect_wait();
    for (size_t i = 0; i < N; i++) {
      obj_t *o = saved[i];
      if (!o) continue;
      CHECKF(cgc_base(o) == o, "resurrected object %zu was freed", i);
      CHECKF(o->magic == MAGIC && o->i == i, "resurrected object %zu was overwritten", i);
      for (size_t k = 0; k < sizeof o->pad; k++) CHECKF(o->pad[k] == pb(i, k), "resurrected object %zu reused", i);
      CHECKF(cgc_weak_value(o->weak) == NULL, "weak handle of resurrected object %zu is not NULL", i);
      CHECKF(atomic_load(&ccnt.v[i]) == 0, "a cleanup of resurrected object %zu ran", i);
      CHECKF(atomic_load(&cnt.v[i]) == 1, "finalizer of %zu ran %d times", i, atomic_load(&cnt.v[i]));
      CHECKF(atomic_load(&rearm_cnt.v[i]) == 0, "re-armed finalizer of the live %zu ran", i);
    }
  }
  /* Drop them: re-armed ones (even) run their second finalizer and stay
     alive once more (the cleanups wait); odd ones die and run their cleanups. */
  memset(saved, 0, sizeof saved);
  collect_rounds(2);
  size_t rearmed = 0, cleaned_odd = 0, odd = 0, even = 0;
  for (size_t i = 0; i < N; i++) {
    CHECK(atomic_load(&cnt.v[i]) <= 1 && atomic_load(&rearm_cnt.v[i]) <= 1 && atomic_load(&ccnt.v[i]) <= 1);
    if (!atomic_load(&cnt.v[i])) continue;
    if (i % 2 == 0) {
      even++;
      rearmed += (size_t)atomic_load(&rearm_cnt.v[i]);
    } else {
      odd++;
      cleaned_odd += (size_t)atomic_load(&ccnt.v[i]);
      CHECKF(atomic_load(&rearm_cnt.v[i]) == 0, "%zu: a finalizer that was not re-armed ran again", i);
    }
  }
  check_death_fraction(rearmed, even, "resurrect: re-armed finalizers");
  check_death_fraction(cleaned_odd, odd, "resurrect: cleanups after death");
  collect_rounds(2);
  check_death_fraction(counters_count(ccnt, 1, 1, "resurrect"), N, "resurrect: all cleanups in the end");
  CHECKF(atomic_load(&errors) == 0, "%d errors", atomic_load(&errors));
  retire(cnt.v);
  retire(ccnt.v);
  retire(rearm_cnt.v);
}

/* ---- order ------------------------------------------------------------------------------- */

static _Atomic int round_no;       /* set by main before each collection */
static _Atomic int *fin_round;     /* per object (A, B, C of chain i: 3i, 3i+1, 3i+2): round it ran */
static _Atomic int *cl_round;      /* B's cleanup */

static void fin_order(void *p) {
  obj_t *o = p;
  check_obj(o);
  if (atomic_exchange(&fin_round[o->i], atomic_load(&round_no)) != 0) error("order: %zu ran twice", o->i);
}
static void cl_order(void *arg) {
  size_t i = (size_t)(uintptr_t)arg;
  if (atomic_exchange(&cl_round[i], atomic_load(&round_no)) != 0) error("order: cleanup %zu ran twice", i);
}

static NOINLINE void make_chains(size_t n) {
  for (size_t i = 0; i < n; i++) {
    obj_t *a = cgc_alloc(sizeof *a), *b = cgc_alloc(sizeof *b), *c = cgc_alloc(sizeof *c);
    a->next = b;
    b->next = c;
    a->i = 3 * i;
    b->i = 3 * i + 1;
    c->i = 3 * i + 2;
    a->magic = b->magic = c->magic = MAGIC;
    /* Registration order varies so that record order cannot matter. */
    obj_t *order[3] = {a, b, c};
    if (i % 2) {
      order[0] = c;
      order[2] = a;
    }
    for (int k = 0; k < 3; k++) CHECK(cgc_set_finalizer(order[k], fin_order) == 0);
    cgc_add_cleanup(b, cl_order, (void *)(uintptr_t)i);
  }
}

static void test_order(void) {
  const size_t n = N / 3;
  fin_round = calloc(3 * n, sizeof *fin_round);
  cl_round = calloc(n, sizeof *cl_round);
  CHECK(fin_round && cl_round);
  cgc_set_gc_percent(-1); /* only our collections: one round each */
  make_chains(n);
  for (int r = 1; r <= 6; r++) {
    atomic_store(&round_no, r);
    collect_wait();
  }
  size_t a_first = 0, all3 = 0;
  for (size_t i = 0; i < n; i++) {
    int ra = atomic_load(&fin_round[3 * i]), rb = atomic_load(&fin_round[3 * i + 1]),
        rc = atomic_load(&fin_round[3 * i + 2]), rcl = atomic_load(&cl_round[i]);
    if (rb) CHECKF(ra && ra < rb, "chain %zu: B finalized in round %d, A in round %d", i, rb, ra);
    if (rc) CHECKF(rb && rb < rc, "chain %zu: C finalized in round %d, B in round %d", i, rc, rb);
    if (rcl) CHECKF(rb && rb < rcl, "chain %zu: B's cleanup ran in round %d, B's finalizer in %d", i, rcl, rb);
    if (ra == 1) a_first++;
    if (ra == 1 && rb == 2 && rc == 3) all3++;
  }
  check_death_fraction(a_first, n, "order: A in the first round");
  check_death_fraction(all3, n, "order: A, B, C in rounds 1, 2, 3");
  CHECKF(atomic_load(&errors) == 0, "%d errors", atomic_load(&errors));
  cgc_set_gc_percent(100);
  retire(fin_round);
  retire(cl_round);
}

/* ---- both -------------------------------------------------------------------------------- */

static _Atomic int *both_fin_round, *both_cl_round;
static void fin_both(void *p) {
  obj_t *o = p;
  check_obj(o);
  if (atomic_load(&both_cl_round[o->i])) error("both: %zu: a cleanup ran before the finalizer", o->i);
  atomic_store(&both_fin_round[o->i], atomic_load(&round_no));
}
static void cl_both(void *arg) {
  size_t i = (size_t)(uintptr_t)arg;
  atomic_store(&both_cl_round[i], atomic_load(&round_no));
}
static NOINLINE void make_both(size_t n) {
  for (size_t i = 0; i < n; i++) {
    obj_t *o = cgc_alloc(sizeof *o);
    o->i = i;
    o->magic = MAGIC;
    if (i % 2) cgc_add_cleanup(o, cl_both, (void *)(uintptr_t)i); /* before or after the finalizer */
    CHECK(cgc_set_finalizer(o, fin_both) == 0);
    if (i % 2 == 0) cgc_add_cleanup((char *)o + 8, cl_both, (void *)(uintptr_t)i);
  }
}

static void test_both(void) {
  both_fin_round = calloc(N, sizeof *both_fin_round);
  both_cl_round = calloc(N, sizeof *both_cl_round);
  CHECK(both_fin_round && both_cl_round);
  cgc_set_gc_percent(-1);
  make_both(N);
  for (int r = 1; r <= 4; r++) {
    atomic_store(&round_no, r);
    collect_wait();
  }
  size_t ok = 0;
  for (size_t i = 0; i < N; i++) {
    int f = atomic_load(&both_fin_round[i]), c = atomic_load(&both_cl_round[i]);
    if (c) CHECKF(f && f < c, "object %zu: cleanup in round %d, finalizer in round %d", i, c, f);
    ok += f == 1 && c == 2;
  }
  check_death_fraction(ok, N, "both: finalizer in round 1, cleanup in round 2");
  CHECKF(atomic_load(&errors) == 0, "%d errors", atomic_load(&errors));
  cgc_set_gc_percent(100);
  retire(both_fin_round);
  retire(both_cl_round);
}

/* ---- cycle ------------------------------------------------------------------------------- */

static NOINLINE void make_fin_cycles(size_t n) {
  for (size_t i = 0; i < n; i++) {
    obj_t *a = cgc_alloc(sizeof *a);
    a->i = i;
    a->magic = MAGIC;
    switch (i % 3) {
      case 0: /* a -> a */
        a->next = a;
        break;
      case 1: { /* a <-> b, finalizer on a only, a cleanup on b */
        obj_t *b = cgc_alloc(sizeof *b);
        a->next = b;
        b->next = a;
        cgc_add_cleanup(b, count_cleanup, (void *)&cnt.v[i]);
        break;
      }
      default: { /* a -> b -> c -> a, finalizers on all three */
        obj_t *b = cgc_alloc(sizeof *b), *c = cgc_alloc(sizeof *c);
        b->i = c->i = i;
        b->magic = c->magic = MAGIC;
        a->next = b;
        b->next = c;
        c->next = a;
        CHECK(cgc_set_finalizer(b, fin_count) == 0);
        CHECK(cgc_set_finalizer(c, fin_count) == 0);
        break;
      }
    }
    CHECK(cgc_set_finalizer(a, fin_count) == 0);
  }
}

static void test_cycle(void) {
  const size_t n = 6000;
  cnt = counters_new(n);
  make_fin_cycles(n);
  collect_rounds(5);
  size_t ran = n - counters_count(cnt, 0, 1 << 20, "cycle");
  CHECKF(ran == 0, "%zu finalizers or cleanups in cycles with a finalizer ran", ran);
  retire(cnt.v);
}

/* ---- api --------------------------------------------------------------------------------- */

/* Runs counted by batch, the object's first byte (make_api's mode + 1, 4
   for static_obj): an object of an earlier batch that a stale word kept
   alive may die in a later round, which is no removed finalizer running. */
static _Atomic int fin1_ran[8], fin2_ran[8];
static void fin1(void *p) { atomic_fetch_add(&fin1_ran[*(unsigned char *)p & 7], 1); }
static void fin2(void *p) { atomic_fetch_add(&fin2_ran[*(unsigned char *)p & 7], 1); }

/* Objects whose finalizer state is set up by `mode`, then dropped. */
static NOINLINE void make_api(size_t n, int mode) {
  for (size_t i = 0; i < n; i++) {
    void *p = cgc_alloc(i % 2 ? 64 : 70000);
    *(unsigned char *)p = (unsigned char)(mode + 1);
    switch (mode) {
      case 0: /* set, set the same again, a different one fails */
        CHECK(cgc_set_finalizer(p, fin1) == 0);
        CHECK(cgc_set_finalizer(p, fin1) == 0);
        errno = 0;
        CHECK(cgc_set_finalizer(p, fin2) == -1);
        CHECK(errno == EEXIST);
        break;
      case 1: /* set then remove: nothing runs */
        CHECK(cgc_set_finalizer(p, fin1) == 0);
        CHECK(cgc_set_finalizer(p, NULL) == 0);
        CHECK(cgc_set_finalizer(p, NULL) == 0);
        break;
      case 2: /* remove, then a different one can be set */
        CHECK(cgc_set_finalizer(p, NULL) == 0);
        CHECK(cgc_set_finalizer(p, fin1) == 0);
        CHECK(cgc_set_finalizer(p, NULL) == 0);
        CHECK(cgc_set_finalizer(p, fin2) == 0);
        break;
    }
  }
}

static char static_obj[64];

static void test_api(void) {
  const size_t n = 400;
  make_api(n, 0);
  collect_rounds(3);
  int set1 = atomic_load(&fin1_ran[1]);
  CHECKF(atomic_load(&fin2_ran[1]) == 0, "the finalizer refused with EEXIST ran");
  CHECKF(set1 <= (int)n, "fin1 ran %d times for %zu objects", set1, n);
  check_death_fraction((size_t)set1, n, "api: set");
  make_api(n, 1);
  collect_rounds(3);
  CHECKF(atomic_load(&fin1_ran[2]) == 0 && atomic_load(&fin2_ran[2]) == 0, "a removed finalizer ran");
  make_api(n, 2);
  collect_rounds(3);
  CHECKF(atomic_load(&fin1_ran[3]) == 0, "a removed finalizer ran");
  check_death_fraction((size_t)atomic_load(&fin2_ran[3]), n, "api: replaced");
  CHECKF(atomic_load(&fin1_ran[1]) <= (int)n && atomic_load(&fin2_ran[1]) == 0, "batch 0 ran %d/%d finalizers",
         atomic_load(&fin1_ran[1]), atomic_load(&fin2_ran[1]));
  /* Static storage: a no-op returning 0, never runs. */
  static_obj[0] = 4;
  CHECK(cgc_set_finalizer(static_obj, fin1) == 0);
  CHECK(cgc_set_finalizer(static_obj, fin2) == 0);
  CHECK(cgc_set_finalizer(static_obj, NULL) == 0);
  CHECK(cgc_set_finalizer(static_obj, fin1) == 0);
  collect_rounds(2);
  CHECK(atomic_load(&fin1_ran[4]) == 0 && atomic_load(&fin2_ran[4]) == 0);
}

/* ---- noscan ------------------------------------------------------------------------------ */

/* Pair i: A (2i), noscan, whose data holds B's address; B (2i + 1), a
   scanned object only A's data refers to.  Both have finalizers.  What a
   finalizable object reaches is kept while it is finalized, but A's data is
   not scanned at all: both are finalized at the first collection. */
static _Atomic int *ns_round;
static void fin_ns(void *p) {
  obj_t *o = p;
  check_obj(o);
  if (atomic_exchange(&ns_round[o->i], atomic_load(&round_no)) != 0) error("noscan: %zu ran twice", o->i);
}
static NOINLINE void make_ns(size_t n) {
  for (size_t i = 0; i < n; i++) {
    obj_t *a = cgc_alloc_noscan(sizeof *a), *b = cgc_alloc(sizeof *b);
    a->next = b;
    a->i = 2 * i;
    b->i = 2 * i + 1;
    a->magic = b->magic = MAGIC;
    CHECK(cgc_set_finalizer(a, fin_ns) == 0);
    CHECK(cgc_set_finalizer(b, fin_ns) == 0);
  }
}

static void test_noscan(void) {
  const size_t n = N / 2;
  ns_round = calloc(2 * n, sizeof *ns_round);
  CHECK(ns_round);
  cgc_set_gc_percent(-1); /* only our collections: one round each */
  make_ns(n);
  for (int r = 1; r <= 3; r++) {
    atomic_store(&round_no, r);
    collect_wait();
  }
  size_t b_first = 0;
  for (size_t i = 0; i < n; i++)
    if (atomic_load(&ns_round[2 * i + 1]) == 1) b_first++;
  check_death_fraction(b_first, n, "noscan: B in the first round");
  CHECKF(atomic_load(&errors) == 0, "%d errors", atomic_load(&errors));
  cgc_set_gc_percent(100);
  retire(ns_round);
}

/* ---- exit -------------------------------------------------------------------------------- */

static int exit_pipe = -1;
static void fin_write(void *p) {
  (void)p;
  if (write(exit_pipe, "F", 1) < 0) abort();
}
static void cl_write(void *arg) {
  (void)arg;
  if (write(exit_pipe, "C", 1) < 0) abort();
}
static NOINLINE void make_exit(size_t n) {
  for (size_t i = 0; i < n; i++) {
    void *p = cgc_alloc(32);
    CHECK(cgc_set_finalizer(p, fin_write) == 0);
    cgc_add_cleanup(cgc_alloc(32), cl_write, NULL);
  }
}

static void test_exit(void) {
  int fds[2];
  CHECK(pipe(fds) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    exit_pipe = fds[1];
    cgc_set_gc_percent(-1);
    make_exit(1000);
    clear_stack();
    exit(0); /* unreachable objects, never collected: nothing may run */
  }
  close(fds[1]);
  char buf[64];
  ssize_t got = read(fds[0], buf, sizeof buf);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
  CHECKF(got == 0, "%zd finalizers or cleanups ran at exit", got);
}

/* ---- chain ------------------------------------------------------------------------------ */

/* One chain A -> B -> C, each with a finalizer, made on a thread of its own
   (no stack of the program holds them): with the cleanup thread running the
   finalizers, A's runs at the first collection, B's at a later one once A is
   gone, then C's.  (The idle cleanup thread kept a copy of the last
   finalizer's argument in a vector register, saved and scanned at every
   stop, so the chain stopped at A for ever.) */
static _Atomic int chain_at[3];
static _Atomic int chain_round;
static void chain_fin(void *p) {
  obj_t *o = p;
  check_obj(o);
  atomic_store(&chain_at[o->i], atomic_load(&chain_round));
}
static void *chain_make(void *arg) {
  (void)arg;
  obj_t *next = NULL;
  for (int i = 2; i >= 0; i--) {
    obj_t *o = cgc_alloc(sizeof *o);
    o->i = (size_t)i;
    o->magic = MAGIC;
    o->next = next;
    CHECK(cgc_set_finalizer(o, chain_fin) == 0);
    next = o;
  }
  return NULL;
}
static void test_chain(void) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, chain_make, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  for (int round = 1; round <= 8 && !atomic_load(&chain_at[2]); round++) {
    atomic_store(&chain_round, round);
    cgc_collect();
    cgc_wait_cleanups();
  }
  int a = atomic_load(&chain_at[0]), b = atomic_load(&chain_at[1]), c = atomic_load(&chain_at[2]);
  fprintf(stderr, "chain: A at collection %d, B at %d, C at %d\n", a, b, c);
  CHECKF(a && b && c, "the chain A -> B -> C was not finalized in 8 collections (A %d, B %d, C %d)", a, b, c);
  CHECKF(a < b && b < c, "finalized out of order: A %d, B %d, C %d", a, b, c);
}

int main(int argc, char **argv) {
  CHECKF(argc == 2, "usage: specials_finalizer CASE");
  const char *c = argv[1];
  cgc_init();
  if (strcmp(c, "basic") == 0) test_basic();
  else if (strcmp(c, "resurrect") == 0) test_resurrect();
  else if (strcmp(c, "noscan") == 0) test_noscan();
  else if (strcmp(c, "order") == 0) test_order();
  else if (strcmp(c, "both") == 0) test_both();
  else if (strcmp(c, "cycle") == 0) test_cycle();
  else if (strcmp(c, "api") == 0) test_api();
  else if (strcmp(c, "exit") == 0) test_exit();
  else if (strcmp(c, "chain") == 0) test_chain();
  else {
    fprintf(stderr, "unknown case %s\n", c);
    return 2;
  }
  fprintf(stderr, "%s: ok\n", c);
  return 0;
}
