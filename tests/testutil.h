/* Small test harness shared by the tests: checks that fail loudly, a seeded RNG
   whose seed is printed (CGC_TEST_SEED overrides it), and helpers. */
#ifndef CGC_TESTUTIL_H
#define CGC_TESTUTIL_H
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/types.h>
#include <unistd.h>

#include <cgc.h>

#include "check.h"

/* xorshift64*: deterministic per seed. */
static uint64_t test_rng_state;
static inline uint64_t test_seed(void) {
  const char *s = getenv("CGC_TEST_SEED");
  uint64_t seed = s ? strtoull(s, NULL, 0)
                    : ((uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32));
  if (seed == 0) seed = 1;
  fprintf(stderr, "seed: CGC_TEST_SEED=%llu\n", (unsigned long long)seed);
  test_rng_state = seed;
  return seed;
}
static inline uint64_t rng_next(uint64_t *st) {
  uint64_t x = *st;
  x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
  *st = x;
  return x * 0x2545F4914F6CDD1DULL;
}
static inline uint64_t test_rand(void) { return rng_next(&test_rng_state); }

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Wait (yielding, at most ~10 s) until thread `tid` of this process is blocked
   in system call `nr` (or, with nr < 0 or where /proc/.../syscall cannot be
   read, merely sleeping).  Returns true once it is. */
static inline bool wait_blocked_in(pid_t tid, long nr) {
  char path[96];
  uint64_t deadline = now_ns() + 10ull * 1000000000ull;
  while (now_ns() < deadline) {
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    FILE *f = nr >= 0 ? fopen(path, "r") : NULL;
    if (f) {
      long cur = -2;
      int got = fscanf(f, "%ld", &cur);
      fclose(f);
      if (got == 1) {
        if (cur == nr) return true;
        sched_yield();
        continue;
      }
    }
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    f = fopen(path, "r");
    if (f) {
      char buf[512];
      size_t len = fread(buf, 1, sizeof buf - 1, f);
      fclose(f);
      buf[len] = 0;
      const char *rp = strrchr(buf, ')');
      if (rp && rp[1] == ' ' && (rp[2] == 'S' || rp[2] == 'D')) return true;
    }
    sched_yield();
  }
  return false;
}

/* Hide a pointer from the conservative scanner (and undo it). */
static inline uintptr_t hide_ptr(const void *p) { return ~(uintptr_t)p; }
static inline void *reveal_ptr(uintptr_t h) { return (void *)~h; }

/* Keep the compiler from dropping a value (an allocation, say). */
static inline void consume(const void *p) { __asm__ volatile("" ::"r"(p) : "memory"); }

/* Allocate objects of n bytes (dropped) until a paced collection has run.
   Unlike cgc_collect, it leaves spans unswept: the allocating thread's own
   span of another class, and every span with CGC_DEBUG=bgsweep=0. */
static __attribute__((noinline, unused)) void until_paced_collection(size_t n) {
  uint64_t gc = cgc_gc_count();
  while (cgc_gc_count() == gc) consume(cgc_alloc(n));
}

/* A thread body: collect again and again until *stop (an atomic int) is set. */
static __attribute__((unused)) void *collect_until(void *stop) {
  while (!atomic_load((_Atomic int *)stop)) cgc_collect();
  return NULL;
}

/* Resident set size in bytes (/proc/self/statm). */
static inline uint64_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  CHECK(f != NULL);
  unsigned long long size = 0, rss = 0;
  CHECK(fscanf(f, "%llu %llu", &size, &rss) == 2);
  fclose(f);
  return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Virtual size in bytes (/proc/self/statm). */
static inline uint64_t vsize_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  CHECK(f != NULL);
  unsigned long long size = 0;
  CHECK(fscanf(f, "%llu", &size) == 1);
  fclose(f);
  return (uint64_t)size * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Programs that run one case per process: main runs the case argv[1]
   names and prints "<program> <case>: ok" (what ctest's pass pattern looks
   for); an unknown or missing name fails with the list of cases. */
typedef struct {
  const char *name;
  void (*run)(void);
} test_case_t;

static __attribute__((unused)) int run_named_case(int argc, char **argv, const char *prog, const test_case_t *cases,
                                                  size_t n) {
  for (size_t i = 0; argc >= 2 && i < n; i++) {
    if (strcmp(argv[1], cases[i].name) != 0) continue;
    cases[i].run();
    printf("%s %s: ok\n", prog, cases[i].name);
    return 0;
  }
  fprintf(stderr, "usage: %s CASE, CASE one of:", prog);
  for (size_t i = 0; i < n; i++) fprintf(stderr, " %s", cases[i].name);
  fputc('\n', stderr);
  abort();
}
#define RUN_NAMED_CASE(argc, argv, prog, cases) \
  run_named_case((argc), (argv), (prog), (cases), sizeof(cases) / sizeof((cases)[0]))

/* Clobber a region of the stack below the caller so stale pointers left by
   earlier calls do not keep objects alive conservatively. */
static __attribute__((noinline, unused)) void clear_stack(void) {
  volatile char buf[16384];
  memset((char *)buf, 0, sizeof buf);
  __asm__ volatile("" ::"r"(buf) : "memory");
}
#endif
