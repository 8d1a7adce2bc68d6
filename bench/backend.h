/*
 * One allocator interface for the collector-core benchmarks.
 *
 * Each benchmark source is compiled once per allocator with exactly one of
 *   BACKEND_CGC       cgc_alloc / cgc_alloc_noscan / cgc_collect
 *   BACKEND_BDWGC     GC_MALLOC / GC_MALLOC_ATOMIC / GC_gcollect (GC_THREADS)
 *   BACKEND_GLIBC     malloc / free
 *   BACKEND_MIMALLOC  mi_malloc / mi_free
 *   BACKEND_JEMALLOC  malloc / free resolved to libjemalloc at link time
 * defined.  The collected backends drop objects; the manual ones free them
 * (BK_MANUAL is 1 and bk_free really frees).
 *
 * Only cgc zeroes every allocation (bdwgc zeroes bk_alloc but not
 * bk_alloc_noscan; malloc zeroes nothing), so benchmarks initialise every
 * field they read.
 */
#ifndef CGC_BENCH_BACKEND_H
#define CGC_BENCH_BACKEND_H

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#if defined(BACKEND_CGC)
#  include "cgc.h"
#elif defined(BACKEND_BDWGC)
#  define GC_THREADS 1           /* redirect pthread_create so threads get registered */
#  include <gc/gc.h>
#elif defined(BACKEND_MIMALLOC)
#  include <mimalloc.h>
#elif defined(BACKEND_JEMALLOC)
#  include <dlfcn.h>
#  include <jemalloc/jemalloc.h>
#elif defined(BACKEND_GLIBC)
#  include <dlfcn.h>
#  include <gnu/libc-version.h>
#else
#  error "define one of BACKEND_CGC, BACKEND_BDWGC, BACKEND_GLIBC, BACKEND_MIMALLOC, BACKEND_JEMALLOC"
#endif

#include <pthread.h>   /* after gc.h, so bdwgc's redirection applies */

#if defined(__GNUC__)
#  define BK_NOINLINE __attribute__((noinline))
#  define BK_UNLIKELY(x) __builtin_expect(!!(x), 0)
#  define BK_COLD __attribute__((cold, noinline, noreturn))
#else
#  define BK_NOINLINE
#  define BK_UNLIKELY(x) (x)
#  define BK_COLD
#endif

BK_COLD static void bk_oom(size_t n)
{
  fprintf(stderr, "allocation of %zu bytes failed\n", n);
  abort();
}

/* ---------------------------------------------------------------------- */

#if defined(BACKEND_CGC)

#define BK_NAME   "cgc"
#define BK_MANUAL 0
#define BK_GC     1

static int bk_saved_percent = 100;

static inline void bk_init(void) { cgc_init(); }
static inline void *bk_alloc(size_t n)
{
  void *p = cgc_alloc(n);
  if (BK_UNLIKELY(!p)) bk_oom(n);
  return p;
}
static inline void *bk_alloc_noscan(size_t n)
{
  void *p = cgc_alloc_noscan(n);
  if (BK_UNLIKELY(!p)) bk_oom(n);
  return p;
}
static inline void bk_free(void *p) { (void)p; }
static inline void bk_collect(void) { cgc_collect(); }
static inline void bk_gc_disable(void) { bk_saved_percent = cgc_set_gc_percent(-1); }
static inline void bk_gc_enable(void) { (void)cgc_set_gc_percent(bk_saved_percent); }
static inline uint64_t bk_gc_count(void) { return cgc_gc_count(); }
/* The collector's own account of the last collection's stop-the-world time. */
static inline int bk_last_pause_ns(uint64_t *ns)
{
  cgc_stats_t s;
  cgc_read_stats(&s);
  *ns = s.last_pause_ns;
  return 1;
}
static inline uint64_t bk_heap_bytes(void)
{
  cgc_stats_t s;
  cgc_read_stats(&s);
  return s.mapped_bytes;
}
static inline void bk_describe(FILE *f)
{
  cgc_stats_t s;
  cgc_read_stats(&s);
  fprintf(f, "INFO alloc=cgc mark_workers=%" PRIu64 "\n", s.mark_workers);
}

#elif defined(BACKEND_BDWGC)

#define BK_NAME   "bdwgc"
#define BK_MANUAL 0
#define BK_GC     1

static inline void bk_init(void)
{
  GC_INIT();
  /* Parallel marker threads are otherwise started only with the first
     extra thread; start them so single-threaded programs mark in parallel
     too (the library's default marker count: one per core). */
  GC_start_mark_threads();
  GC_start_performance_measurement();
}
static inline void *bk_alloc(size_t n)
{
  void *p = GC_MALLOC(n);
  if (BK_UNLIKELY(!p)) bk_oom(n);
  return p;
}
static inline void *bk_alloc_noscan(size_t n)
{
  void *p = GC_MALLOC_ATOMIC(n);
  if (BK_UNLIKELY(!p)) bk_oom(n);
  return p;
}
static inline void bk_free(void *p) { (void)p; }
static inline void bk_collect(void) { GC_gcollect(); }
static inline void bk_gc_disable(void) { GC_disable(); }
static inline void bk_gc_enable(void) { GC_enable(); }
static inline uint64_t bk_gc_count(void) { return (uint64_t)GC_get_gc_no(); }
static inline int bk_last_pause_ns(uint64_t *ns) { *ns = 0; return 0; }
static inline uint64_t bk_heap_bytes(void) { return (uint64_t)GC_get_heap_size(); }
static inline void bk_describe(FILE *f)
{
  unsigned v = GC_get_version();
  fprintf(f, "INFO alloc=bdwgc version=%u.%u.%u parallel_markers=%d\n",
          v >> 16, (v >> 8) & 0xff, v & 0xff, GC_get_parallel() + 1);
}

#else /* manual backends */

#define BK_MANUAL 1
#define BK_GC     0

#if defined(BACKEND_MIMALLOC)
#  define BK_NAME "mimalloc"
#  define bk_raw_malloc mi_malloc
#  define bk_raw_free   mi_free
#elif defined(BACKEND_JEMALLOC)
#  define BK_NAME "jemalloc"
#  define bk_raw_malloc malloc   /* jemalloc's unprefixed symbols interpose libc's */
#  define bk_raw_free   free
#else
#  define BK_NAME "glibc"
#  define bk_raw_malloc malloc
#  define bk_raw_free   free
#endif

static inline void bk_init(void) {}
static inline void *bk_alloc(size_t n)
{
  void *p = bk_raw_malloc(n);
  if (BK_UNLIKELY(!p)) bk_oom(n);
  return p;
}
static inline void *bk_alloc_noscan(size_t n)
{
  void *p = bk_raw_malloc(n);
  if (BK_UNLIKELY(!p)) bk_oom(n);
  return p;
}
static inline void bk_free(void *p) { bk_raw_free(p); }
static inline void bk_collect(void) {}
static inline void bk_gc_disable(void) {}
static inline void bk_gc_enable(void) {}
static inline uint64_t bk_gc_count(void) { return 0; }
static inline int bk_last_pause_ns(uint64_t *ns) { *ns = 0; return 0; }
static inline uint64_t bk_heap_bytes(void) { return 0; }
static inline void bk_describe(FILE *f)
{
#if defined(BACKEND_MIMALLOC)
  int v = mi_version();
  fprintf(f, "INFO alloc=mimalloc version=%d.%d.%d\n", v / 100, (v / 10) % 10, v % 10);
#else
  /* Which library does the program's malloc come from? */
  Dl_info di;
  void *m = dlsym(RTLD_DEFAULT, "malloc");
  const char *lib = (m && dladdr(m, &di) && di.dli_fname) ? di.dli_fname : "?";
#  if defined(BACKEND_JEMALLOC)
  const char *v = "?";
  size_t sz = sizeof v;
  if (mallctl("version", &v, &sz, NULL, 0) != 0 || !strstr(lib, "jemalloc")) {
    fprintf(stderr, "jemalloc is not the active allocator (malloc from %s)\n", lib);
    exit(2);
  }
  fprintf(f, "INFO alloc=jemalloc version=%s malloc_from=%s\n", v, lib);
#  else
  fprintf(f, "INFO alloc=glibc version=%s malloc_from=%s\n", gnu_get_libc_version(), lib);
#  endif
#endif
}

#endif

/* ---------------------------------------------------------------------- */
/* Timing and process statistics                                           */

static inline uint64_t bk_now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time of the whole process (every thread, including collector helpers). */
static inline uint64_t bk_cpu_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline long bk_maxrss_kib(void)
{
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
  return ru.ru_maxrss;
}

static inline int bk_cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Median of n values (sorts v in place). */
static inline uint64_t bk_median_u64(uint64_t *v, size_t n)
{
  if (n == 0) return 0;
  qsort(v, n, sizeof *v, bk_cmp_u64);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#endif /* CGC_BENCH_BACKEND_H */
