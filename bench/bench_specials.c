/*
 * Cleanups, finalizers and weak handles: what they cost (see docs/specials.md).
 *
 * Built twice from this file:
 *   bench_specials        (cgc)    release free|cleanup|finalizer, attach, weak
 *   bench_specials_bdwgc  (bdwgc, -DBENCH_BDWGC)  release free|bdwgc_finalizer
 * bench/run_specials.sh runs both several times, interleaved, and prints
 * medians and the ratios against the targets.  Every measurement prints one
 * machine-readable line:
 *
 *   RESULT bench=release variant=cleanup ns_per_op=123.4 cpu_ns_per_op=150.2 ops=1000000 survivors=0
 *
 * release: the benchmark from Go's slow-AddCleanup report.  Each op malloc()s
 *   a 100-byte "foreign" object and releases it
 *     free            by free() at once;
 *     xfree           (reference) by free() on another thread, handed over in
 *                     batches of 64K: the floor for any release that happens
 *                     on a cleanup thread, with no collector involved;
 *     cleanup         by a cleanup on an 8-byte cgc_alloc wrapper holding it
 *                     (cgc_add_cleanup(w, free_fn, w->c)), the wrapper dropped;
 *     finalizer       by a finalizer on the wrapper (frees w->c);
 *     bdwgc_finalizer the same with GC_MALLOC and GC_register_finalizer.
 *   Time runs until every foreign object has been freed: the loop, then
 *   collections (and waiting for the cleanups) until the count is complete.
 *   Collections run paced during the loop, as in a real program.  ns_per_op
 *   is wall-clock time; cpu_ns_per_op the CPU time of every thread of the
 *   process (cleanup thread, mark workers) per op, which is what a loaded
 *   machine cannot distort.
 *
 * attach: ns per cgc_add_cleanup on objects kept alive, for 16-byte objects
 *   (512 per 8 KiB span) and 1 KiB objects (32 per 32 KiB span), attaching to
 *   every object in allocation order or in reverse, or to one object per
 *   8 KiB page (one per span of 16-byte objects, four per span of 1 KiB); and
 *   ns per cgc_cleanup_stop of the same cleanups.  Collections are off while
 *   this is timed (records count towards the heap and would otherwise start
 *   collections inside the timed loop).
 *
 * weak: ns per cgc_weak_make making a new handle, returning an existing one,
 *   per cgc_weak_value, and the collector's pause time per live weak handle
 *   (pause with N live handles minus pause without them, divided by N).
 *
 * live: the collector's pause time per live object carrying a cleanup.
 *
 * release_here (not part of "all"; run with CGC_DEBUG=cleanups=manual): the
 *   cleanup variant with the cleanups run on the program's thread by
 *   cgc_run_cleanups() every 1024 ops (variant=cleanup_here), and (a) again.
 *
 * Usage: bench_specials [release|release_here|attach|weak|live ...] (default: all)
 * Environment: OPS (release ops, default 1000000), ATTACH_N (objects, 200000),
 *   WEAK_N (handles, 200000).
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#ifdef BENCH_BDWGC
#define GC_THREADS 1
#include <gc/gc.h>
#else
#include <cgc.h>
#endif
#include <pthread.h>
#include <sched.h>

#define NOINLINE __attribute__((noinline))

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time of the whole process (every thread: cleanup thread, markers). */
static uint64_t cpu_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000u +
         (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;
}

static size_t env_size(const char *name, size_t def) {
  const char *s = getenv(name);
  return s && *s ? (size_t)strtoull(s, NULL, 0) : def;
}

static NOINLINE void clear_stack(void) {
  volatile char buf[16384];
  memset((char *)buf, 0, sizeof buf);
  __asm__ volatile("" ::"r"(buf) : "memory");
}

static void sink(const void *p) { __asm__ volatile("" ::"r"(p) : "memory"); }

/* ---- release ------------------------------------------------------------------------ */

typedef struct {
  void *c; /* the foreign (malloc) object */
} wrapper_t;

static _Atomic size_t freed;

static NOINLINE void release_free(size_t ops) {
  for (size_t i = 0; i < ops; i++) {
    void *c = malloc(100);
    if (!c) abort();
    memset(c, 1, 8);
    sink(c);
    free(c);
    atomic_fetch_add_explicit(&freed, 1, memory_order_relaxed);
  }
}

/* The floor for releasing on another thread: malloc here, free() on a helper
   thread in batches of 64K pointers (no collector involved). */
#define XB 65536
static void *xbatch[2][XB];
static _Atomic int xready[2];
static void *xfree_main(void *arg) {
  size_t n = (size_t)(uintptr_t)arg;
  for (size_t k = 0; k < n; k++) {
    int b = (int)(k % 2);
    while (!atomic_load(&xready[b])) sched_yield();
    for (int i = 0; i < XB; i++) free(xbatch[b][i]);
    atomic_fetch_add_explicit(&freed, XB, memory_order_relaxed);
    atomic_store(&xready[b], 0);
  }
  return NULL;
}
static NOINLINE void release_xfree(size_t ops) {
  size_t n = ops / XB;
  pthread_t t;
  if (pthread_create(&t, NULL, xfree_main, (void *)(uintptr_t)n) != 0) abort();
  for (size_t k = 0; k < n; k++) {
    int b = (int)(k % 2);
    while (atomic_load(&xready[b])) sched_yield();
    for (int i = 0; i < XB; i++) {
      xbatch[b][i] = malloc(100);
      if (!xbatch[b][i]) abort();
      memset(xbatch[b][i], 1, 8);
    }
    atomic_store(&xready[b], 1);
  }
  pthread_join(t, NULL);
  for (size_t i = n * XB; i < ops; i++) { /* the remainder, here */
    void *c = malloc(100);
    sink(c);
    free(c);
    atomic_fetch_add_explicit(&freed, 1, memory_order_relaxed);
  }
}

#ifndef BENCH_BDWGC
static void free_fn(void *arg) {
  free(arg);
  atomic_fetch_add_explicit(&freed, 1, memory_order_relaxed);
}

static void fin_fn(void *obj) {
  wrapper_t *w = obj;
  free(w->c);
  w->c = NULL;
  atomic_fetch_add_explicit(&freed, 1, memory_order_relaxed);
}

/* An 8-byte wrapper holding a new foreign object. */
static inline wrapper_t *new_wrapper(void) {
  wrapper_t *w = cgc_alloc(sizeof *w);
  w->c = malloc(100);
  if (!w->c) abort();
  memset(w->c, 1, 8);
  return w;
}

static NOINLINE void release_cleanup(size_t ops) {
  for (size_t i = 0; i < ops; i++) {
    wrapper_t *w = new_wrapper();
    cgc_add_cleanup(w, free_fn, w->c);
  }
}

/* The cleanup variant with the cleanups run on the program's own thread:
   run with CGC_DEBUG=cleanups=manual, the loop calls cgc_run_cleanups()
   every 1024 ops.  glibc then frees each foreign object on the thread that
   allocated it, so what remains beyond (a) is cgc's work and the cost of
   freeing in a collection's batches. */
static NOINLINE void release_cleanup_here(size_t ops) {
  for (size_t i = 0; i < ops; i++) {
    wrapper_t *w = new_wrapper();
    cgc_add_cleanup(w, free_fn, w->c);
    if ((i & 1023) == 1023) cgc_run_cleanups();
  }
}

static NOINLINE void release_finalizer(size_t ops) {
  for (size_t i = 0; i < ops; i++) {
    wrapper_t *w = new_wrapper();
    cgc_set_finalizer(w, fin_fn);
  }
}

/* Collect until every foreign object is freed (at most `rounds` collections). */
static NOINLINE size_t finish(size_t ops, int rounds) {
  for (int r = 0; r < rounds && atomic_load(&freed) < ops; r++) {
    clear_stack();
    cgc_collect();
    cgc_wait_cleanups();
  }
  return ops - atomic_load(&freed);
}
#else
static void bdwgc_fin(void *obj, void *cd) {
  (void)cd;
  wrapper_t *w = obj;
  free(w->c);
  w->c = NULL;
  atomic_fetch_add_explicit(&freed, 1, memory_order_relaxed);
}

static NOINLINE void release_bdwgc(size_t ops) {
  for (size_t i = 0; i < ops; i++) {
    wrapper_t *w = GC_MALLOC(sizeof *w);
    w->c = malloc(100);
    if (!w->c) abort();
    memset(w->c, 1, 8);
    GC_register_finalizer(w, bdwgc_fin, NULL, NULL, NULL);
  }
}

static NOINLINE size_t finish(size_t ops, int rounds) {
  for (int r = 0; r < rounds && atomic_load(&freed) < ops; r++) {
    clear_stack();
    GC_gcollect();
    GC_invoke_finalizers();
  }
  return ops - atomic_load(&freed);
}
#endif

static void run_release(const char *variant, void (*loop)(size_t), size_t ops, int gc) {
  atomic_store(&freed, 0);
  uint64_t t0 = now_ns(), c0 = cpu_ns();
  loop(ops);
  size_t survivors = gc ? finish(ops, 10) : 0;
  uint64_t t1 = now_ns(), c1 = cpu_ns();
  printf("RESULT bench=release variant=%s ns_per_op=%.1f cpu_ns_per_op=%.1f ops=%zu survivors=%zu\n", variant,
         (double)(t1 - t0) / (double)ops, (double)(c1 - c0) / (double)ops, ops, survivors);
  fflush(stdout);
}

static void bench_release(void) {
  size_t ops = env_size("OPS", 1000000);
  /* Warm up malloc and the collector with a tenth of the work. */
#ifdef BENCH_BDWGC
  run_release("warmup", release_bdwgc, ops / 10, 1);
  run_release("free", release_free, ops, 0);
  run_release("xfree", release_xfree, ops, 0);
  run_release("bdwgc_finalizer", release_bdwgc, ops, 1);
#else
  run_release("warmup", release_cleanup, ops / 10, 1);
  run_release("free", release_free, ops, 0);
  run_release("xfree", release_xfree, ops, 0);
  run_release("cleanup", release_cleanup, ops, 1);
  run_release("finalizer", release_finalizer, ops, 1);
#endif
}

#ifndef BENCH_BDWGC
/* Run with CGC_DEBUG=cleanups=manual (see release_cleanup_here). */
static void bench_release_here(void) {
  size_t ops = env_size("OPS", 1000000);
  run_release("warmup", release_cleanup_here, ops / 10, 1);
  run_release("free", release_free, ops, 0);
  run_release("cleanup_here", release_cleanup_here, ops, 1);
}
#endif

#ifndef BENCH_BDWGC
/* ---- attach ------------------------------------------------------------------------- */

static void nop_fn(void *arg) { (void)arg; }

static void **objs;               /* a cgc object: keeps the objects alive */
static cgc_cleanup_t *handles;    /* malloc: ids and record addresses only */

static void bench_attach_one(size_t size, size_t n, const char *order) {
  objs = cgc_alloc(n * sizeof *objs);
  handles = malloc(n * sizeof *handles);
  if (!objs || !handles) abort();
  for (size_t i = 0; i < n; i++) objs[i] = cgc_alloc(size);
  /* The objects to attach to, in the order wanted. */
  size_t *pick = malloc(n * sizeof *pick), m = 0;
  if (!pick) abort();
  if (strcmp(order, "alloc") == 0) {
    for (size_t i = 0; i < n; i++) pick[m++] = i;
  } else if (strcmp(order, "reverse") == 0) {
    for (size_t i = n; i-- > 0;) pick[m++] = i;
  } else { /* one per page: the object starting each 8 KiB page */
    for (size_t i = 0; i < n; i++)
      if (((uintptr_t)objs[i] & 8191) == 0) pick[m++] = i;
  }
  int old = cgc_set_gc_percent(-1);
  uint64_t t0 = now_ns();
  for (size_t k = 0; k < m; k++) handles[k] = cgc_add_cleanup(objs[pick[k]], nop_fn, NULL);
  uint64_t t1 = now_ns();
  for (size_t k = 0; k < m; k++) cgc_cleanup_stop(handles[k]);
  uint64_t t2 = now_ns();
  cgc_set_gc_percent(old);
  printf("RESULT bench=attach size=%zu order=%s attached=%zu add_ns=%.1f stop_ns=%.1f\n", size, order, m,
         (double)(t1 - t0) / (double)m, (double)(t2 - t1) / (double)m);
  fflush(stdout);
  free(pick);
  free(handles);
  objs = NULL;
  clear_stack();
  cgc_collect();
}

static void bench_attach(void) {
  size_t n = env_size("ATTACH_N", 200000);
  static const size_t sizes[] = {16, 1024};
  static const char *const orders[] = {"alloc", "reverse", "one_per_page"};
  /* Warm up the record pools once. */
  bench_attach_one(16, n, "alloc");
  for (size_t s = 0; s < 2; s++)
    for (size_t o = 0; o < 3; o++) bench_attach_one(sizes[s], sizes[s] == 1024 ? n / 4 : n, orders[o]);
}

/* ---- weak --------------------------------------------------------------------------- */

static cgc_weak_t *weaks; /* a cgc object */

static NOINLINE uint64_t timed_collect(void) {
  clear_stack();
  cgc_collect();
  cgc_stats_t st;
  cgc_read_stats(&st);
  return st.last_pause_ns;
}

static uint64_t median_pause(int reps) {
  uint64_t v[16];
  for (int i = 0; i < reps; i++) v[i] = timed_collect();
  for (int i = 1; i < reps; i++)
    for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
      uint64_t t = v[j];
      v[j] = v[j - 1];
      v[j - 1] = t;
    }
  return v[reps / 2];
}

static void bench_weak(void) {
  size_t n = env_size("WEAK_N", 200000);
  objs = cgc_alloc(n * sizeof *objs);
  weaks = cgc_alloc(n * sizeof *weaks);
  if (!objs || !weaks) abort();
  for (size_t i = 0; i < n; i++) objs[i] = cgc_alloc(32);
  uint64_t pause0 = median_pause(7);
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i++) weaks[i] = cgc_weak_make(objs[i]);
  uint64_t t1 = now_ns();
  for (size_t i = 0; i < n; i++)
    if (cgc_weak_make(objs[i]) != weaks[i]) abort();
  uint64_t t2 = now_ns();
  uintptr_t acc = 0;
  for (int r = 0; r < 10; r++)
    for (size_t i = 0; i < n; i++) acc += (uintptr_t)cgc_weak_value(weaks[i]);
  uint64_t t3 = now_ns();
  sink((void *)acc);
  uint64_t pause1 = median_pause(7);
  cgc_stats_t st;
  cgc_read_stats(&st);
  printf("RESULT bench=weak n=%zu make_new_ns=%.1f make_existing_ns=%.1f value_ns=%.2f pause_without_us=%.1f "
         "pause_with_us=%.1f gc_ns_per_handle=%.2f live_handles=%" PRIu64 "\n",
         n, (double)(t1 - t0) / (double)n, (double)(t2 - t1) / (double)n, (double)(t3 - t2) / (double)n / 10,
         (double)pause0 / 1e3, (double)pause1 / 1e3, ((double)pause1 - (double)pause0) / (double)n,
         st.num_weak_handles);
  fflush(stdout);
  objs = NULL;
  weaks = NULL;
  clear_stack();
  cgc_collect();
}

/* The collector's time per live object carrying a cleanup (it walks every
   record at every collection). */
static void bench_live(void) {
  size_t n = env_size("WEAK_N", 200000);
  objs = cgc_alloc(n * sizeof *objs);
  if (!objs) abort();
  for (size_t i = 0; i < n; i++) objs[i] = cgc_alloc(32);
  uint64_t pause0 = median_pause(7);
  for (size_t i = 0; i < n; i++) cgc_add_cleanup(objs[i], nop_fn, NULL);
  uint64_t pause1 = median_pause(7);
  printf("RESULT bench=live n=%zu pause_without_us=%.1f pause_with_us=%.1f gc_ns_per_cleanup=%.2f\n", n,
         (double)pause0 / 1e3, (double)pause1 / 1e3, ((double)pause1 - (double)pause0) / (double)n);
  fflush(stdout);
  objs = NULL;
  clear_stack();
  cgc_collect();
  cgc_wait_cleanups();
}
#endif

int main(int argc, char **argv) {
#ifdef BENCH_BDWGC
  GC_INIT();
  GC_allow_register_threads();
  GC_start_mark_threads();
  printf("INFO impl=bdwgc version=%u.%u.%u markers=%d\n", GC_get_version() >> 16, (GC_get_version() >> 8) & 0xff,
         GC_get_version() & 0xff, GC_get_parallel() + 1);
#else
  cgc_init();
  printf("INFO impl=cgc\n");
#endif
  for (int i = 1; i <= (argc > 1 ? argc - 1 : 1); i++) {
    const char *what = argc > 1 ? argv[i] : "all";
    int all = strcmp(what, "all") == 0;
    if (all || strcmp(what, "release") == 0) bench_release();
#ifndef BENCH_BDWGC
    if (strcmp(what, "release_here") == 0) bench_release_here();
    if (all || strcmp(what, "attach") == 0) bench_attach();
    if (all || strcmp(what, "weak") == 0) bench_weak();
    if (all || strcmp(what, "live") == 0) bench_live();
#endif
  }
  return 0;
}
