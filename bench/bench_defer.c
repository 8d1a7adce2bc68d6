/* Defer, dynamic defer and panic costs (bench/run_defer.sh runs this under
 * callgrind and with timers; see docs/defer.md).
 *
 *   bench_defer hand N        N calls of a function with two resources and
 *   bench_defer defer N       three return paths, released by hand / by CGC_DEFER
 *   bench_defer dyn N M       N functions each making M dynamic defers
 *   bench_defer direct N M    the same loops calling the function at once
 *   bench_defer panic N       N panics through 10 frames (one defer each) to cgc_protect
 *   bench_defer time          all of the above timed: median of RUNS batches
 *                             (thread CPU time; CLOCK=wall for the monotonic clock)
 *
 * The loops are run_<mode> functions, so that callgrind's --toggle-collect
 * can count exactly them.  Built with -fexceptions (block defers run by the
 * unwinder) and without (bench_defer_reg: block defers registered). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cgc.h"

#define NOINLINE __attribute__((noinline))
#define BARRIER() __asm__ volatile("" ::: "memory")

/* ------------------------------------------------------------------------ */
/* Two resources, three return paths                                         */
/* ------------------------------------------------------------------------ */

struct res {
  int id;
  int open;
  long uses;
};

/* The resources live in another unit (this file built with
   -DBENCH_DEFER_RESOURCES), as a real program's would: the compiler cannot
   see that they never panic, so the defer version keeps its landing pads. */
struct res *res_open(int id);
void res_close(struct res *r);
int res_use(struct res *r, int k);
void note(void *p);

#ifdef BENCH_DEFER_RESOURCES
static struct res pool[2];

struct res *res_open(int id) {
  struct res *r = &pool[id & 1];
  r->id = id;
  r->open = 1;
  return r;
}

void res_close(struct res *r) { r->open = 0; }

int res_use(struct res *r, int k) {
  r->uses++;
  return r->id == k + 1 ? 0 : 1;
}

void note(void *p) { (*(long *)p)++; }
#else

/* k = 0: first return, k = 1: second, k = 2: third. */
NOINLINE int by_hand(int k) {
  struct res *a = res_open(1);
  struct res *b = res_open(2);
  if (res_use(a, k) == 0) {
    res_close(b);
    res_close(a);
    return 1;
  }
  if (res_use(b, k) == 0) {
    res_close(b);
    res_close(a);
    return 2;
  }
  res_close(b);
  res_close(a);
  return 3;
}

NOINLINE int with_defer(int k) {
  struct res *a = res_open(1);
  CGC_DEFER(res_close, a);
  struct res *b = res_open(2);
  CGC_DEFER(res_close, b);
  if (res_use(a, k) == 0) return 1;
  if (res_use(b, k) == 0) return 2;
  return 3;
}

NOINLINE long run_hand(long n) {
  long sum = 0;
  int k = 0;
  for (long i = 0; i < n; i++) {
    sum += by_hand(k);
    k = k == 2 ? 0 : k + 1;
  }
  return sum;
}

NOINLINE long run_defer(long n) {
  long sum = 0;
  int k = 0;
  for (long i = 0; i < n; i++) {
    sum += with_defer(k);
    k = k == 2 ? 0 : k + 1;
  }
  return sum;
}

/* ------------------------------------------------------------------------ */
/* Dynamic defers                                                            */
/* ------------------------------------------------------------------------ */

static long slots[1024];

NOINLINE void dyn_loop(int m) {
  CGC_FRAME();
  for (int i = 0; i < m; i++) CGC_DEFER_DYN(note, &slots[i]);
}

/* The same loop calling note at once: what the loop and the call cost
   without deferring. */
NOINLINE void direct_loop(int m) {
  for (int i = 0; i < m; i++) note(&slots[i]);
}

NOINLINE long run_dyn(long n, int m) {
  for (long i = 0; i < n; i++) dyn_loop(m);
  return slots[0];
}

NOINLINE long run_direct(long n, int m) {
  for (long i = 0; i < n; i++) direct_loop(m);
  return slots[0];
}

/* ------------------------------------------------------------------------ */
/* Panic through 10 frames                                                   */
/* ------------------------------------------------------------------------ */

static long unwound;
static void count(void *p) { (*(long *)p)++; }
static void raise_it(void *v) { cgc_panic(v); }
static void (*volatile raise_fn)(void *) = raise_it;

NOINLINE void pframe(int n) {
  CGC_DEFER(count, &unwound);
  if (n == 0)
    raise_fn(&unwound);
  else
    pframe(n - 1);
  BARRIER();
}

static void panic_body(void *a) {
  (void)a;
  pframe(9); /* frames pframe(9) ... pframe(0): 10 frames, one defer each */
}

NOINLINE long run_panic(long n) {
  void *v;
  for (long i = 0; i < n; i++)
    if (!cgc_protect(panic_body, NULL, &v) || v != &unwound) abort();
  return unwound;
}

/* ------------------------------------------------------------------------ */
/* Timing                                                                    */
/* ------------------------------------------------------------------------ */

/* The thread's CPU time: on a busy machine, time spent waiting for a core is
   not counted (CLOCK=wall in the environment uses the monotonic clock). */
static clockid_t clock_used = CLOCK_THREAD_CPUTIME_ID;

static double now_ns(void) {
  struct timespec t;
  clock_gettime(clock_used, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double last_min;

/* Median over runs of the time per operation of batch(n) / per (the fastest
   run is left in last_min). */
static double median_ns(long (*batch)(long, int), long n, int m, double per, int runs) {
  double t[101];
  if (runs > 101) runs = 101;
  if (runs < 1) runs = 1;
  batch(n / 10 + 1, m); /* warm up */
  for (int r = 0; r < runs; r++) {
    double t0 = now_ns();
    batch(n, m);
    t[r] = (now_ns() - t0) / per;
  }
  qsort(t, (size_t)runs, sizeof t[0], cmp_double);
  last_min = t[0];
  return t[runs / 2];
}

static long b_hand(long n, int m) { (void)m; return run_hand(n); }
static long b_defer(long n, int m) { (void)m; return run_defer(n); }
static long b_dyn(long n, int m) { return run_dyn(n, m); }
static long b_direct(long n, int m) { return run_direct(n, m); }
static long b_panic(long n, int m) { (void)m; return run_panic(n); }

static void time_all(int runs) {
  const long n = 2000000;
  double hand = median_ns(b_hand, n, 0, (double)n, runs);
  double defer = median_ns(b_defer, n, 0, (double)n, runs);
  printf("time %-28s %8.2f ns/call\n", "by_hand", hand);
  printf("time %-28s %8.2f ns/call (%.2fx)\n", "with_defer", defer, defer / hand);
  double f0 = median_ns(b_dyn, n, 0, (double)n, runs);
  printf("time %-28s %8.2f ns/frame\n", "dyn frame, 0 defers", f0);
  static const int ms[] = {8, 100, 1000};
  for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
    long frames = 8000000 / ms[i];
    double per = median_ns(b_dyn, frames, ms[i], (double)frames, runs);
    double direct = median_ns(b_direct, frames, ms[i], (double)frames, runs);
    printf("time dyn %4d defers/frame %13.2f ns/defer (%.2f ns more than calling at once)\n", ms[i],
           (per - f0) / ms[i], (per - f0 - direct) / ms[i]);
  }
  const long np = 2000;
  double p = median_ns(b_panic, np, 0, (double)np, runs);
  printf("time %-28s %8.3f us/panic (fastest run %.3f)\n", "panic through 10 frames", p / 1000.0,
         last_min / 1000.0);
}

/* Defers per frame for dyn and direct: 0..1024 (the slots they write; 0
   measures the frame alone). */
static int per_frame(int argc, char **argv) {
  int m = argc > 3 ? atoi(argv[3]) : 8;
  if (m < 0 || m > (int)(sizeof slots / sizeof *slots)) {
    fprintf(stderr, "bench_defer: defers per frame must be 0..%zu\n", sizeof slots / sizeof *slots);
    exit(2);
  }
  return m;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "time";
  long n = argc > 2 ? atol(argv[2]) : 1000000;
  long r = 0;
  cgc_init();
  if (!strcmp(mode, "hand")) {
    r = run_hand(n);
  } else if (!strcmp(mode, "defer")) {
    r = run_defer(n);
  } else if (!strcmp(mode, "dyn")) {
    r = run_dyn(n, per_frame(argc, argv));
  } else if (!strcmp(mode, "direct")) {
    r = run_direct(n, per_frame(argc, argv));
  } else if (!strcmp(mode, "panic")) {
    r = run_panic(n);
  } else if (!strcmp(mode, "time")) {
    const char *e = getenv("RUNS"), *c = getenv("CLOCK");
    if (c && !strcmp(c, "wall")) clock_used = CLOCK_MONOTONIC;
    printf("time (clock: %s)\n", clock_used == CLOCK_MONOTONIC ? "wall" : "thread CPU time");
    time_all(e ? atoi(e) : 21);
  } else {
    fprintf(stderr, "usage: %s hand|defer|dyn|direct|panic N [M] | time\n", argv[0]);
    return 2;
  }
  if (r < 0) printf("%ld\n", r);
  return 0;
}
#endif
