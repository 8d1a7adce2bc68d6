/* Weak handles (cgc_weak_make, cgc_weak_value).  Run as `specials_weak CASE`.
 *
 *   identity    same pointer -> same handle; other objects and other fields ->
 *               other handles; NULL -> NULL; interior pointers; from threads
 *   death       the value is p while the object lives (exact) and NULL once it
 *               died, for ever; all handles of an object clear together
 *   callbacks   NULL inside the object's cleanups and finalizer
 *   before      (CGC_DEBUG=cleanups=manual) NULL as soon as the collection
 *               that found the object unreachable returns, before its
 *               cleanups run
 *   collected   unreferenced handles are collected (num_weak_handles); a
 *               handle never keeps its referent alive, even when the referent
 *               holds the handle
 *   static      handles of static storage never clear, and count in
 *               num_weak_handles
 *   concurrent  readers and cgc_weak_make on several threads while another
 *               thread collects and others allocate (prints its seed)
 *   handle_fin  a handle that nobody references but that carries a finalizer
 *               (which keeps it) is still tracked: once its referent dies it
 *               reads NULL (exact), also for handles of static storage
 */
#include "specials_util.h"

#define N 20000

static void *roots[N];          /* static: scanned */
static cgc_weak_t handles[N];   /* static: keeps the handles (not the referents) alive */
static cgc_weak_t handles2[N];

/* ---- identity ------------------------------------------------------------------------------- */

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
  return x < y ? -1 : x > y;
}

static cgc_weak_t shared_handle;
static void *shared_obj;
static _Atomic int thread_mismatch;
static void *make_from_thread(void *arg) {
  (void)arg;
  for (int i = 0; i < 1000; i++)
    if (cgc_weak_make(shared_obj) != shared_handle) atomic_fetch_add(&thread_mismatch, 1);
  return NULL;
}

static void test_identity(void) {
  CHECK(cgc_weak_make(NULL) == NULL);
  CHECK(cgc_weak_value(NULL) == NULL);
  static const size_t sizes[] = {8, 64, 1024, 32768, 100000};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    size_t size = sizes[s];
    char *p = s % 2 ? cgc_alloc(size) : cgc_alloc_noscan(size);
    roots[0] = p;
    cgc_weak_t w = cgc_weak_make(p);
    CHECK(w != NULL);
    CHECK(cgc_weak_make(p) == w);
    CHECK(cgc_weak_value(w) == p);
    if (size >= 16) {
      cgc_weak_t f = cgc_weak_make(p + 8), l = cgc_weak_make(p + size - 1);
      CHECK(f != w && l != w && f != l);
      CHECK(cgc_weak_make(p + 8) == f && cgc_weak_make(p + size - 1) == l);
      CHECK(cgc_weak_value(f) == p + 8 && cgc_weak_value(l) == p + size - 1);
      handles2[0] = f;
    }
    handles[0] = w;
    collect_rounds(2); /* still alive: same handles, same values */
    CHECK(cgc_weak_make(p) == w && cgc_weak_value(w) == p);
    if (size >= 16) CHECK(cgc_weak_make(p + 8) == handles2[0]);
  }
  /* Asking again for a handle that exists allocates and frees nothing (the
     explicit-free statistics count the program's cgc_free calls only). */
  {
    static int static_target;
    char *p = cgc_alloc(64);
    roots[0] = p;
    cgc_weak_t w = cgc_weak_make(p), ws = cgc_weak_make(&static_target);
    cgc_stats_t a = stats();
    for (int i = 0; i < 1000; i++) CHECK(cgc_weak_make(p) == w && cgc_weak_make(&static_target) == ws);
    cgc_stats_t b = stats();
    CHECKF(b.total_free_objects == a.total_free_objects && b.total_alloc_objects == a.total_alloc_objects,
           "2000 cgc_weak_make calls for existing handles: %llu frees, %llu allocations",
           (unsigned long long)(b.total_free_objects - a.total_free_objects),
           (unsigned long long)(b.total_alloc_objects - a.total_alloc_objects));
  }
  /* Many objects: all handles distinct, stable. */
  for (size_t i = 0; i < N; i++) {
    roots[i] = cgc_alloc(16 + (i % 5) * 16);
    handles[i] = cgc_weak_make(roots[i]);
    handles2[i] = cgc_weak_make((char *)roots[i] + 8);
  }
  uintptr_t *all = malloc(2 * N * sizeof *all);
  CHECK(all);
  for (size_t i = 0; i < N; i++) {
    all[2 * i] = (uintptr_t)handles[i];
    all[2 * i + 1] = (uintptr_t)handles2[i];
  }
  qsort(all, 2 * N, sizeof *all, cmp_ptr);
  for (size_t i = 1; i < 2 * N; i++) CHECKF(all[i] != all[i - 1], "two pointers share a handle");
  free(all);
  collect_wait();
  for (size_t i = 0; i < N; i++) {
    CHECK(cgc_weak_make(roots[i]) == handles[i]);
    CHECK(cgc_weak_value(handles[i]) == roots[i]);
    CHECK(cgc_weak_value(handles2[i]) == (char *)roots[i] + 8);
  }
  /* The same handle from other threads. */
  shared_obj = cgc_alloc(40);
  shared_handle = cgc_weak_make(shared_obj);
  pthread_t t[3];
  for (int i = 0; i < 3; i++) CHECK(pthread_create(&t[i], NULL, make_from_thread, NULL) == 0);
  for (int i = 0; i < 1000; i++) CHECK(cgc_weak_make(shared_obj) == shared_handle);
  for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
  CHECK(atomic_load(&thread_mismatch) == 0);
  memset(roots, 0, sizeof roots);
}

/* ---- death ---------------------------------------------------------------------------------- */

static uintptr_t hidden[N];

static NOINLINE void make_weak(size_t n, size_t keep, size_t size) {
  for (size_t i = 0; i < n; i++) {
    char *p = cgc_alloc(size);
    handles[i] = cgc_weak_make(p);
    handles2[i] = cgc_weak_make(p + size / 2);
    hidden[i] = hide_ptr(p);
    if (keep && i % keep == 0) roots[i] = p;
  }
}

static void death_one(size_t n, size_t size) {
  memset(roots, 0, sizeof roots);
  make_weak(n, 7, size);
  bool *was_null = calloc(n, sizeof *was_null);
  CHECK(was_null);
  size_t nulls = 0, expected = 0;
  for (int r = 0; r < 4; r++) {
    collect_wait();
    nulls = expected = 0;
    for (size_t i = 0; i < n; i++) {
      char *p = reveal_ptr(hidden[i]);
      void *v = cgc_weak_value(handles[i]), *v2 = cgc_weak_value(handles2[i]);
      CHECKF(v == NULL || v == p, "handle %zu: value %p, made for %p", i, v, (void *)p);
      CHECKF((v == NULL) == (v2 == NULL), "object %zu: one handle cleared, the other not", i);
      if (v2) CHECK(v2 == p + size / 2);
      if (roots[i]) CHECKF(v == p, "handle %zu of a live object is %p", i, v);
      else expected++;
      if (was_null[i]) CHECKF(v == NULL, "handle %zu came back after being NULL", i);
      if (!v) {
        was_null[i] = true;
        nulls++;
      }
    }
  }
  char what[64];
  snprintf(what, sizeof what, "death size=%zu", size);
  check_death_fraction(nulls, expected, what);
  free(was_null);
}

static void test_death(void) {
  death_one(N, 16);
  death_one(N, 200);
  death_one(300, 80000);
}

/* ---- callbacks ------------------------------------------------------------------------------ */

static _Atomic int cb_not_null, cb_ran, fin_ran;
static void cl_check(void *arg) {
  if (cgc_weak_value((cgc_weak_t)arg) != NULL) atomic_fetch_add(&cb_not_null, 1);
  atomic_fetch_add(&cb_ran, 1);
}
static void fin_check(void *obj) {
  cgc_weak_t w = *(cgc_weak_t *)obj; /* the object holds its own weak handle */
  if (cgc_weak_value(w) != NULL) atomic_fetch_add(&cb_not_null, 1);
  atomic_fetch_add(&fin_ran, 1);
}

static NOINLINE void make_cb(size_t n) {
  for (size_t i = 0; i < n; i++) {
    cgc_weak_t *p = cgc_alloc(32);
    cgc_weak_t w = cgc_weak_make(p), w2 = cgc_weak_make(p + 1);
    /* The handle as a cleanup argument (it is not inside the object). */
    cgc_add_cleanup(p, cl_check, w);
    cgc_add_cleanup(p, cl_check, w2);
    if (i % 2) {
      *p = w;
      CHECK(cgc_set_finalizer(p, fin_check) == 0);
    }
  }
}

static void test_callbacks(void) {
  make_cb(N);
  collect_rounds(3);
  CHECKF(atomic_load(&cb_not_null) == 0, "%d cleanups or finalizers saw their object's weak handle non-NULL",
         atomic_load(&cb_not_null));
  check_death_fraction((size_t)atomic_load(&cb_ran), 2 * N, "callbacks: cleanups");
  check_death_fraction((size_t)atomic_load(&fin_ran), N / 2, "callbacks: finalizers");
}

/* ---- before (manual mode) ------------------------------------------------------------------- */

static _Atomic int *before_ran;
static void cl_before(void *arg) { atomic_fetch_add(&before_ran[(uintptr_t)arg], 1); }
static NOINLINE void make_before(size_t n) {
  for (size_t i = 0; i < n; i++) {
    void *p = cgc_alloc(24);
    handles[i] = cgc_weak_make(p);
    cgc_add_cleanup(p, cl_before, (void *)(uintptr_t)i);
  }
}

static void test_before(void) {
  const char *dbg = getenv("CGC_DEBUG");
  CHECKF(dbg && strstr(dbg, "cleanups=manual"), "run with CGC_DEBUG=cleanups=manual");
  before_ran = calloc(N, sizeof *before_ran);
  bool *null_after_collect = calloc(N, sizeof *null_after_collect);
  CHECK(before_ran && null_after_collect);
  make_before(N);
  clear_stack();
  cgc_collect();
  for (size_t i = 0; i < N; i++) null_after_collect[i] = cgc_weak_value(handles[i]) == NULL;
  size_t ran = cgc_run_cleanups();
  size_t nulls = 0;
  for (size_t i = 0; i < N; i++) {
    CHECK(atomic_load(&before_ran[i]) <= 1);
    if (atomic_load(&before_ran[i]))
      CHECKF(null_after_collect[i], "object %zu: queued for its cleanup but its weak handle was not NULL", i);
    nulls += null_after_collect[i];
  }
  CHECKF(nulls == ran, "%zu handles NULL, %zu cleanups ran", nulls, ran);
  check_death_fraction(ran, N, "before");
  retire(before_ran);
  free(null_after_collect);
}

/* ---- collected ------------------------------------------------------------------------------ */

static _Atomic int self_dead;
static void cl_self(void *arg) {
  (void)arg;
  atomic_fetch_add(&self_dead, 1);
}

static NOINLINE void make_handles_only(size_t n) {
  for (size_t i = 0; i < n; i++) consume(cgc_weak_make(roots[i]));
}

static NOINLINE void make_self_holders(size_t n) {
  for (size_t i = 0; i < n; i++) {
    cgc_weak_t *p = cgc_alloc(16);
    p[0] = cgc_weak_make(p); /* the object holds its own handle */
    cgc_add_cleanup(p, cl_self, NULL);
  }
}

static void test_collected(void) {
  collect_wait();
  uint64_t base = stats().num_weak_handles;
  for (size_t i = 0; i < N; i++) roots[i] = cgc_alloc(32);
  make_handles_only(N); /* handles made and dropped at once */
  uint64_t made = stats().num_weak_handles;
  CHECKF(made - base == N, "num_weak_handles went from %llu to %llu for %d handles", (unsigned long long)base,
         (unsigned long long)made, N);
  collect_rounds(2);
  uint64_t left = stats().num_weak_handles - base;
  fprintf(stderr, "collected: %llu of %d unreferenced handles left\n", (unsigned long long)left, N);
  CHECKF((double)left <= (1 - DEATH_MIN) * N, "%llu of %d unreferenced handles were not collected",
         (unsigned long long)left, N);
  /* New handles for the same objects work. */
  for (size_t i = 0; i < N; i++) {
    handles[i] = cgc_weak_make(roots[i]);
    CHECK(cgc_weak_value(handles[i]) == roots[i]);
  }
  collect_wait();
  for (size_t i = 0; i < N; i++) CHECK(cgc_weak_value(handles[i]) == roots[i] && cgc_weak_make(roots[i]) == handles[i]);
  /* Referents die though their handles are referenced: their count drops. */
  memset(roots, 0, sizeof roots);
  uint64_t before = stats().num_weak_handles;
  collect_rounds(2);
  uint64_t after = stats().num_weak_handles;
  CHECKF((double)(before - after) >= DEATH_MIN * N, "num_weak_handles %llu -> %llu", (unsigned long long)before,
         (unsigned long long)after);
  /* An object holding its own weak handle still dies. */
  make_self_holders(N);
  collect_rounds(2);
  check_death_fraction((size_t)atomic_load(&self_dead), N, "collected: objects holding their own handle");
  memset(handles, 0, sizeof handles);
}

/* ---- static --------------------------------------------------------------------------------- */

static long static_var;
static char static_arr[256];
static const char static_ro[] = "constant";

static NOINLINE void make_static_handles(void) {
  consume(cgc_weak_make(&static_var));
  consume(cgc_weak_make(static_arr + 3));
}

static void test_static(void) {
  uint64_t n0 = stats().num_weak_handles;
  cgc_weak_t a = cgc_weak_make(&static_var), b = cgc_weak_make(static_arr), c = cgc_weak_make(static_arr + 1),
             d = cgc_weak_make((void *)static_ro);
  CHECK(a && b && c && d && a != b && b != c && c != d);
  /* Handles of static storage count in num_weak_handles (their referents
     are alive for ever). */
  uint64_t n1 = stats().num_weak_handles;
  CHECKF(n1 - n0 == 4, "num_weak_handles went from %llu to %llu for 4 handles of static storage",
         (unsigned long long)n0, (unsigned long long)n1);
  CHECK(cgc_weak_make(&static_var) == a && cgc_weak_make(static_arr) == b);
  handles[0] = a;
  handles[1] = b;
  handles[2] = c;
  handles[3] = d;
  /* Handles for other static pointers come and go meanwhile. */
  for (int r = 0; r < 5; r++) {
    for (size_t i = 0; i < 200; i++) consume(cgc_weak_make(static_arr + 4 + i % 200));
    make_static_handles();
    collect_wait();
    CHECK(cgc_weak_value(handles[0]) == &static_var);
    CHECK(cgc_weak_value(handles[1]) == static_arr);
    CHECK(cgc_weak_value(handles[2]) == static_arr + 1);
    CHECK(cgc_weak_value(handles[3]) == static_ro);
    CHECK(cgc_weak_make(&static_var) == handles[0]);
    CHECK(cgc_weak_make(static_arr + 1) == handles[2]);
  }
  /* Dropped and made again: still the pointer. */
  memset(handles, 0, sizeof handles);
  collect_rounds(2);
  cgc_weak_t e = cgc_weak_make(&static_var);
  CHECK(cgc_weak_value(e) == &static_var);
}

/* Many handles of static pointers, half of them dropped at random and made
   again across collections: the table of static handles closes the holes
   that removals leave, so a pointer whose handle lives always gets that
   handle back, and never a second one. */
#define SM 3000
static long static_many[SM];
static cgc_weak_t static_many_h[SM];
static void test_static_many(void) {
  uint64_t st = test_seed();
  for (size_t i = 0; i < SM; i++) static_many_h[i] = cgc_weak_make(&static_many[i]);
  for (int r = 0; r < 8; r++) {
    cgc_stats_t before, after;
    cgc_read_stats(&before);
    for (size_t i = 0; i < SM; i++)
      if (rng_next(&st) % 2) static_many_h[i] = NULL;
    collect_wait();
    cgc_read_stats(&after);
    /* The dropped handles left the table (a few may be held by stale words). */
    CHECKF(before.num_weak_handles - after.num_weak_handles > SM / 4, "round %d: %llu -> %llu handles", r,
           (unsigned long long)before.num_weak_handles, (unsigned long long)after.num_weak_handles);
    for (size_t i = 0; i < SM; i++) {
      cgc_weak_t h = cgc_weak_make(&static_many[i]);
      CHECKF(!static_many_h[i] || h == static_many_h[i], "round %d: pointer %zu got a second handle", r, i);
      CHECK(cgc_weak_value(h) == &static_many[i]);
      static_many_h[i] = h;
    }
    for (size_t i = 0; i < SM; i++) CHECK(cgc_weak_make(&static_many[i]) == static_many_h[i]);
  }
  memset(static_many_h, 0, sizeof static_many_h);
}

/* ---- concurrent ----------------------------------------------------------------------------- */

#define CN_LIVE 2000
#define CN_DYING 20000
static void *live_objs[CN_LIVE];
static cgc_weak_t live_h[CN_LIVE];
static cgc_weak_t dying_h[CN_DYING];
static uintptr_t dying_hidden[CN_DYING];
static _Atomic int stop_flag, conc_errors;
static uint64_t seed;

static void conc_error(const char *msg, size_t i) {
  if (atomic_fetch_add(&conc_errors, 1) < 10) fprintf(stderr, "concurrent: %s (%zu)\n", msg, i);
}

static void *reader(void *arg) {
  uint64_t st = seed + (uintptr_t)arg * 7919;
  bool *seen_null = calloc(CN_DYING, sizeof *seen_null);
  CHECK(seen_null);
  size_t iters = 0;
  while (!atomic_load(&stop_flag)) {
    for (int k = 0; k < 1000; k++) {
      size_t i = rng_next(&st) % CN_LIVE;
      if (cgc_weak_value(live_h[i]) != live_objs[i]) conc_error("live handle has a wrong value", i);
      if ((k & 15) == 0 && cgc_weak_make(live_objs[i]) != live_h[i])
        conc_error("cgc_weak_make of a live object gave another handle", i);
      size_t j = rng_next(&st) % CN_DYING;
      void *v = cgc_weak_value(dying_h[j]);
      if (v == NULL) seen_null[j] = true;
      else if (seen_null[j]) conc_error("a cleared handle came back", j);
      else if (v != reveal_ptr(dying_hidden[j])) conc_error("handle of a dying object has a wrong value", j);
    }
    iters++;
  }
  free(seen_null);
  return (void *)iters;
}

static void *collector(void *arg) {
  (void)arg;
  size_t n = 0;
  while (!atomic_load(&stop_flag)) {
    cgc_collect();
    n++;
  }
  return (void *)n;
}

/* Allocates garbage with weak handles and cleanups, and drops it. */
static void *churner(void *arg) {
  uint64_t st = seed ^ (uintptr_t)arg;
  while (!atomic_load(&stop_flag)) {
    for (int k = 0; k < 2000; k++) {
      char *p = cgc_alloc(16 + rng_next(&st) % 200);
      cgc_weak_t w = cgc_weak_make(p + (rng_next(&st) % 2) * 8);
      if (cgc_weak_value(w) == NULL) conc_error("new handle of a reachable object is NULL", (size_t)k);
      consume(w);
      consume(p);
    }
  }
  return NULL;
}

static NOINLINE void make_conc(void) {
  for (size_t i = 0; i < CN_LIVE; i++) {
    live_objs[i] = cgc_alloc(24 + i % 100);
    live_h[i] = cgc_weak_make(live_objs[i]);
  }
  for (size_t j = 0; j < CN_DYING; j++) {
    void *p = cgc_alloc(32);
    dying_h[j] = cgc_weak_make(p);
    dying_hidden[j] = hide_ptr(p);
  }
}

static void test_concurrent(void) {
  seed = test_seed();
  make_conc();
  clear_stack();
  pthread_t r[2], c, ch;
  for (uintptr_t i = 0; i < 2; i++) CHECK(pthread_create(&r[i], NULL, reader, (void *)i) == 0);
  CHECK(pthread_create(&c, NULL, collector, NULL) == 0);
  CHECK(pthread_create(&ch, NULL, churner, (void *)1) == 0);
  uint64_t t0 = now_ns();
  while (now_ns() - t0 < 3000000000ull && atomic_load(&conc_errors) == 0) usleep(20000);
  atomic_store(&stop_flag, 1);
  void *ret;
  size_t reads = 0, collections;
  for (int i = 0; i < 2; i++) {
    pthread_join(r[i], &ret);
    reads += (size_t)ret;
  }
  pthread_join(c, &ret);
  collections = (size_t)ret;
  pthread_join(ch, NULL);
  fprintf(stderr, "concurrent: %zu thousand reads, %zu collections\n", reads, collections);
  CHECKF(atomic_load(&conc_errors) == 0, "%d errors", atomic_load(&conc_errors));
  CHECK(collections >= 3);
  collect_wait();
  size_t nulls = 0;
  for (size_t j = 0; j < CN_DYING; j++) nulls += cgc_weak_value(dying_h[j]) == NULL;
  check_death_fraction(nulls, CN_DYING, "concurrent: dying objects");
  for (size_t i = 0; i < CN_LIVE; i++) CHECK(cgc_weak_value(live_h[i]) == live_objs[i]);
}

/* ---- handle_fin ------------------------------------------------------------------------ */

#define HF_N 400
static cgc_weak_t hf_saved[HF_N + 1];  /* static: the handles once their finalizers ran */
static _Atomic int hf_nsaved;
static _Atomic int hf_died[HF_N];
static void *hf_refs[HF_N];         /* static: the referents, until dropped */
static int hf_static_target;

static void hf_keep(void *h) { /* resurrects the handle */
  int k = atomic_fetch_add(&hf_nsaved, 1);
  CHECK(k < HF_N + 1);
  hf_saved[k] = h;
}
static void hf_death(void *a) { atomic_store(&hf_died[(intptr_t)a - 1], 1); }

static NOINLINE void hf_setup(void) {
  for (int i = 0; i < HF_N; i++) {
    hf_refs[i] = cgc_alloc(64);
    cgc_add_cleanup(hf_refs[i], hf_death, (void *)(intptr_t)(i + 1));
    /* The handle is dropped at once: only its finalizer will keep it. */
    CHECK(cgc_set_finalizer(cgc_weak_make(hf_refs[i]), hf_keep) == 0);
  }
}

static NOINLINE void hf_static_setup(void) {
  CHECK(cgc_set_finalizer(cgc_weak_make(&hf_static_target), hf_keep) == 0);
}

static void test_handle_fin(void) {
  hf_setup();
  hf_static_setup();
  collect_rounds(3);
  int saved = atomic_load(&hf_nsaved);
  CHECKF(saved >= (HF_N + 1) * DEATH_MIN, "only %d of %d handle finalizers ran", saved, HF_N + 1);
  /* Kept by their finalizers, the handles still read their referents: note
     which referent each one has (-1: the static one). */
  static int which[HF_N + 1];
  for (int i = 0; i < saved; i++) {
    void *v = cgc_weak_value(hf_saved[i]);
    CHECKF(v != NULL, "a resurrected handle reads NULL while its referent lives");
    which[i] = -2;
    if (v == &hf_static_target) which[i] = -1;
    for (int k = 0; k < HF_N && which[i] == -2; k++)
      if (hf_refs[k] == v) which[i] = k;
    CHECKF(which[i] != -2, "a resurrected handle reads %p, which is none of the referents", v);
  }
  for (int i = 0; i < HF_N; i++) hf_refs[i] = NULL; /* the referents die now */
  collect_rounds(3);
  int dead = 0;
  for (int i = 0; i < HF_N; i++) dead += atomic_load(&hf_died[i]);
  CHECKF(dead >= HF_N * DEATH_MIN, "only %d of %d referents died", dead, HF_N);
  int stale = 0, checked = 0;
  for (int i = 0; i < saved; i++) {
    void *v = cgc_weak_value(hf_saved[i]);
    if (which[i] == -1) {
      CHECKF(v == &hf_static_target, "the handle of static storage changed to %p", v);
    } else if (atomic_load(&hf_died[which[i]])) { /* collected: its cleanup ran */
      checked++;
      if (v) stale++;
    }
  }
  CHECKF(stale == 0, "%d of %d resurrected handles still read a referent that was collected", stale, checked);
  CHECKF(checked >= saved * DEATH_MIN - 1, "only %d handles of collected referents checked", checked);
}

int main(int argc, char **argv) {
  CHECKF(argc == 2, "usage: specials_weak CASE");
  const char *c = argv[1];
  cgc_init();
  if (strcmp(c, "identity") == 0) test_identity();
  else if (strcmp(c, "death") == 0) test_death();
  else if (strcmp(c, "callbacks") == 0) test_callbacks();
  else if (strcmp(c, "before") == 0) test_before();
  else if (strcmp(c, "collected") == 0) test_collected();
  else if (strcmp(c, "static") == 0) test_static();
  else if (strcmp(c, "static_many") == 0) test_static_many();
  else if (strcmp(c, "concurrent") == 0) test_concurrent();
  else if (strcmp(c, "handle_fin") == 0) test_handle_fin();
  else {
    fprintf(stderr, "unknown case %s\n", c);
    return 2;
  }
  fprintf(stderr, "%s: ok\n", c);
  return 0;
}
