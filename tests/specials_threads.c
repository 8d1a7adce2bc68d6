/* Cleanups, finalizers and weak handles from several threads at once, while
 * another thread collects.  Nothing may be lost or doubled.  Prints its seed
 * (CGC_TEST_SEED=... reproduces the random choices of every thread).
 * Run as `specials_threads CASE`.
 *
 *   register  each thread makes objects with 1-3 cleanups (some stopped at
 *             once, some later), some with finalizers and weak handles, keeps
 *             some alive for a while; all threads also add cleanups to the
 *             same shared objects.  Stopped: never run (exact); others: at
 *             most once (exact), and almost all once everything is dropped
 *   stop_race threads drop objects and stop their cleanups while another
 *             thread collects: stopped before the object was dropped: never
 *             runs (exact); dropped, then stopped: at most once; not stopped:
 *             runs
 */
#include "specials_util.h"

#define THREADS 4
#define PER_THREAD 50000
#define SHARED 2000
#define SHARED_PER_THREAD 4 /* cleanups each thread adds to each shared object */

typedef struct {
  _Atomic int ran[3];
  _Atomic int fin_ran;
  bool stopped[3];
  int ncleanups;
  bool has_fin;
  cgc_weak_t weak;
  uintptr_t hidden;
} oinfo_t;

static oinfo_t *info;                  /* [THREADS * PER_THREAD] */
static void *shared[SHARED];           /* static: scanned */
static _Atomic int shared_ran[SHARED][THREADS * SHARED_PER_THREAD];
static _Atomic int stop_collector, errors;
static uint64_t seed;
static void **keep_slots[THREADS];     /* per thread, registered roots */

static void err(const char *msg, size_t i) {
  if (atomic_fetch_add(&errors, 1) < 10) fprintf(stderr, "%s (%zu)\n", msg, i);
}

static void cl_ran(void *arg) { atomic_fetch_add((_Atomic int *)arg, 1); }
static void fin_ran(void *obj) {
  size_t i = *(size_t *)obj;
  atomic_fetch_add(&info[i].fin_ran, 1);
  for (int k = 0; k < 3; k++)
    if (atomic_load(&info[i].ran[k])) err("a cleanup ran before the finalizer", i);
}

static void *worker(void *arg) {
  size_t t = (size_t)arg;
  uint64_t st = seed * (t + 1) + 0x9E37;
  void **keep = keep_slots[t];
  cgc_cleanup_t pending[3 * 64];
  void *pending_obj[3 * 64]; /* on this stack: keeps their objects alive until stopped */
  size_t npending = 0;
  for (size_t k = 0; k < PER_THREAD; k++) {
    size_t i = t * PER_THREAD + k;
    oinfo_t *in = &info[i];
    size_t size = 16 + rng_next(&st) % 300;
    size_t *o = rng_next(&st) % 4 ? cgc_alloc(size) : cgc_alloc_noscan(size);
    *o = i;
    in->ncleanups = 1 + (int)(rng_next(&st) % 3);
    in->has_fin = rng_next(&st) % 5 == 0;
    if (in->has_fin) CHECK(cgc_set_finalizer(o, fin_ran) == 0);
    for (int c = 0; c < in->ncleanups; c++) {
      cgc_cleanup_t h = cgc_add_cleanup((char *)o + (rng_next(&st) % size), cl_ran, (void *)&in->ran[c]);
      uint64_t r = rng_next(&st) % 8;
      if (r == 0) { /* stopped at once */
        cgc_cleanup_stop(h);
        in->stopped[c] = true;
      } else if (r == 1 && npending < 3 * 64) { /* stopped a little later (object still alive) */
        pending_obj[npending] = o;
        pending[npending++] = h;
        in->stopped[c] = true;
      }
    }
    if (rng_next(&st) % 4 == 0) {
      in->weak = cgc_weak_make(o);
      in->hidden = hide_ptr(o);
    }
    /* Keep some alive for a while in a registered root slot. */
    keep[k % 64] = (rng_next(&st) % 3 == 0) ? o : NULL;
    if (npending && (k % 64 == 63 || npending == 3 * 64)) {
      for (size_t p = 0; p < npending; p++) {
        cgc_cleanup_stop(pending[p]);
        pending_obj[p] = NULL;
      }
      npending = 0;
    }
    /* The shared objects: every thread adds cleanups to each of them. */
    if (k < SHARED * SHARED_PER_THREAD) {
      size_t s = k % SHARED, slot = t * SHARED_PER_THREAD + k / SHARED;
      cgc_add_cleanup(shared[s], cl_ran, (void *)&shared_ran[s][slot]);
    }
  }
  for (size_t p = 0; p < npending; p++) cgc_cleanup_stop(pending[p]);
  consume(pending_obj);
  return NULL;
}

static void *collector(void *arg) {
  (void)arg;
  while (!atomic_load(&stop_collector)) {
    cgc_collect();
    usleep(1000);
  }
  return NULL;
}

static NOINLINE void make_shared(void) {
  for (size_t s = 0; s < SHARED; s++) shared[s] = cgc_alloc(64);
}

static void test_register(void) {
  seed = test_seed();
  info = calloc((size_t)THREADS * PER_THREAD, sizeof *info);
  CHECK(info);
  /* Scanned, so that the weak handles stored here stay alive (the referents'
     addresses are hidden). */
  cgc_add_roots(info, (size_t)THREADS * PER_THREAD * sizeof *info);
  for (int t = 0; t < THREADS; t++) {
    keep_slots[t] = calloc(64, sizeof(void *));
    CHECK(keep_slots[t]);
    cgc_add_roots(keep_slots[t], 64 * sizeof(void *));
  }
  make_shared();
  cgc_stats_t s0 = stats();
  pthread_t th[THREADS], coll;
  CHECK(pthread_create(&coll, NULL, collector, NULL) == 0);
  for (size_t t = 0; t < THREADS; t++) CHECK(pthread_create(&th[t], NULL, worker, (void *)t) == 0);
  for (size_t t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
  atomic_store(&stop_collector, 1);
  pthread_join(coll, NULL);
  /* Shared objects are alive: none of their cleanups may have run. */
  for (size_t s = 0; s < SHARED; s++)
    for (size_t k = 0; k < THREADS * SHARED_PER_THREAD; k++)
      CHECKF(atomic_load(&shared_ran[s][k]) == 0, "a cleanup of live shared object %zu ran", s);
  /* Drop everything. */
  memset(shared, 0, sizeof shared);
  for (int t = 0; t < THREADS; t++) memset(keep_slots[t], 0, 64 * sizeof(void *));
  collect_rounds(4);
  size_t total = (size_t)THREADS * PER_THREAD, expected = 0, ran = 0, fins = 0, fin_expected = 0;
  uint64_t cleanups_seen = 0, fins_seen = 0;
  for (size_t i = 0; i < total; i++) {
    oinfo_t *in = &info[i];
    int f = atomic_load(&in->fin_ran);
    CHECKF(f <= 1, "finalizer %zu ran %d times", i, f);
    if (!in->has_fin) CHECKF(f == 0, "object %zu has no finalizer but one ran", i);
    else {
      fin_expected++;
      fins += (size_t)f;
    }
    fins_seen += (uint64_t)f;
    for (int c = 0; c < 3; c++) {
      int v = atomic_load(&in->ran[c]);
      cleanups_seen += (uint64_t)v;
      CHECKF(v <= 1, "cleanup %d of object %zu ran %d times", c, i, v);
      if (c >= in->ncleanups) CHECKF(v == 0, "a cleanup never added ran (%zu/%d)", i, c);
      else if (in->stopped[c]) CHECKF(v == 0, "stopped cleanup %d of object %zu ran", c, i);
      else {
        expected++;
        ran += (size_t)v;
      }
    }
    if (in->weak) {
      void *v = cgc_weak_value(in->weak);
      CHECKF(v == NULL || v == reveal_ptr(in->hidden), "weak handle %zu has a wrong value", i);
    }
  }
  check_death_fraction(ran, expected, "register: cleanups");
  check_death_fraction(fins, fin_expected, "register: finalizers");
  size_t shared_ok = 0;
  for (size_t s = 0; s < SHARED; s++) {
    int first = atomic_load(&shared_ran[s][0]);
    for (size_t k = 0; k < THREADS * SHARED_PER_THREAD; k++) {
      int v = atomic_load(&shared_ran[s][k]);
      CHECKF(v == first, "shared object %zu: cleanup %zu ran %d times, cleanup 0 %d times (lost or doubled)", s, k,
             v, first);
      cleanups_seen += (uint64_t)v;
    }
    shared_ok += first == 1;
  }
  check_death_fraction(shared_ok, SHARED, "register: shared objects");
  cgc_stats_t s1 = stats();
  CHECKF(s1.num_cleanups_run - s0.num_cleanups_run == cleanups_seen, "num_cleanups_run %llu, counted %llu",
         (unsigned long long)(s1.num_cleanups_run - s0.num_cleanups_run), (unsigned long long)cleanups_seen);
  CHECK(s1.num_finalizers_run - s0.num_finalizers_run == fins_seen);
  CHECKF(atomic_load(&errors) == 0, "%d errors", atomic_load(&errors));
  for (int t = 0; t < THREADS; t++) {
    cgc_remove_roots(keep_slots[t]);
    free(keep_slots[t]);
  }
  cgc_remove_roots(info);
  retire(info);
}

/* ---- stop_race ------------------------------------------------------------------------------ */

#define RACE_N 60000
static cgc_cleanup_t *race_h;
static _Atomic int *race_ran;
static void **race_objs;          /* registered roots */
static uint8_t *race_action;      /* 0: stop, then drop; 1: drop, then stop; 2: drop only */

static void *race_stopper(void *arg) {
  size_t t = (size_t)arg;
  for (size_t i = t; i < RACE_N; i += 3) {
    switch (race_action[i]) {
      case 0:
        cgc_cleanup_stop(race_h[i]);
        __atomic_store_n(&race_objs[i], NULL, __ATOMIC_RELEASE);
        cgc_cleanup_stop(race_h[i]);
        break;
      case 1:
        __atomic_store_n(&race_objs[i], NULL, __ATOMIC_RELEASE);
        cgc_cleanup_stop(race_h[i]);
        break;
      default:
        __atomic_store_n(&race_objs[i], NULL, __ATOMIC_RELEASE);
        break;
    }
    if (i % 512 == t) sched_yield();
  }
  return NULL;
}

static NOINLINE void make_race(void) {
  for (size_t i = 0; i < RACE_N; i++) {
    race_objs[i] = cgc_alloc(16 + (i % 4) * 16);
    race_h[i] = cgc_add_cleanup(race_objs[i], cl_ran, (void *)&race_ran[i]);
    race_action[i] = (uint8_t)(rng_next(&seed) % 3);
  }
}

static void test_stop_race(void) {
  seed = test_seed();
  race_h = calloc(RACE_N, sizeof *race_h);
  race_ran = calloc(RACE_N, sizeof *race_ran);
  race_objs = calloc(RACE_N, sizeof *race_objs);
  race_action = calloc(RACE_N, 1);
  CHECK(race_h && race_ran && race_objs && race_action);
  cgc_add_roots(race_objs, RACE_N * sizeof *race_objs);
  make_race();
  clear_stack();
  pthread_t t[3], c;
  CHECK(pthread_create(&c, NULL, collector, NULL) == 0);
  for (uintptr_t i = 0; i < 3; i++) CHECK(pthread_create(&t[i], NULL, race_stopper, (void *)i) == 0);
  for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
  atomic_store(&stop_collector, 1);
  pthread_join(c, NULL);
  collect_rounds(3);
  size_t ran[3] = {0, 0, 0}, n[3] = {0, 0, 0};
  for (size_t i = 0; i < RACE_N; i++) {
    int v = atomic_load(&race_ran[i]);
    CHECKF(v <= 1, "cleanup %zu ran %d times", i, v);
    if (race_action[i] == 0) CHECKF(v == 0, "cleanup %zu was stopped while its object was reachable, but ran", i);
    ran[race_action[i]] += (size_t)v;
    n[race_action[i]]++;
  }
  fprintf(stderr, "stop_race: ran %zu/%zu stopped first, %zu/%zu dropped first, %zu/%zu not stopped\n", ran[0],
          n[0], ran[1], n[1], ran[2], n[2]);
  check_death_fraction(ran[2], n[2], "stop_race: not stopped");
  /* Stop again after everything: harmless. */
  for (size_t i = 0; i < RACE_N; i++) cgc_cleanup_stop(race_h[i]);
  cgc_remove_roots(race_objs);
  free(race_objs);
  free(race_action);
  free(race_h);
  retire((void *)race_ran);
}

int main(int argc, char **argv) {
  CHECKF(argc == 2, "usage: specials_threads CASE");
  const char *c = argv[1];
  cgc_init();
  if (strcmp(c, "register") == 0) test_register();
  else if (strcmp(c, "stop_race") == 0) test_stop_race();
  else {
    fprintf(stderr, "unknown case %s\n", c);
    return 2;
  }
  fprintf(stderr, "%s: ok\n", c);
  return 0;
}
