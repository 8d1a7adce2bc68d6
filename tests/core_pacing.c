/* Pacing and the memory limit.
     core_pacing default     GC percent 100: collections happen as garbage is
                             allocated, about once per live-heap's worth; a
                             higher percent collects less often; the goal
                             follows the percent.
     core_pacing off         (CGC_PERCENT=off) no collection happens during
                             allocation until pacing is turned back on.
     core_pacing env P L     the environment set the percent to P (or "off")
                             and the memory limit to L bytes (or "none").
     core_pacing limit       (CGC_MEMLIMIT=64MiB) with pacing off or lax, the
                             heap stays near the limit by collecting more often.
     core_pacing over        a live heap above the limit: the limit adds no
                             collections to what the same goal makes without
                             it (each paced collection was followed by a
                             "memory limit" one that found the same heap). */
#include "core_util.h"

/* A live set of `mib` MiB in 1 MiB noscan objects, referenced from a global. */
static void *g_live[1024];

static __attribute__((noinline)) void make_live(size_t mib) {
  for (size_t i = 0; i < mib; i++) {
    g_live[i] = cgc_alloc_noscan(CORE_MIB);
    CHECK(g_live[i] != NULL);
    memset(g_live[i], (int)(i + 1), CORE_MIB);
  }
}

static void check_live(size_t mib) {
  for (size_t i = 0; i < mib; i++) {
    unsigned char *p = (unsigned char *)g_live[i];
    CHECK(cgc_base(p) == p);
    CHECK(p[0] == (unsigned char)(i + 1) && p[CORE_MIB - 1] == (unsigned char)(i + 1));
  }
}

typedef struct {
  uint64_t gcs;          /* collections during the run */
  uint64_t max_mapped;   /* largest mapped_bytes seen */
} run_t;

/* Allocate `mib` MiB of garbage in 8 KiB noscan objects (touching one word
   each), sampling the stats every 1 MiB. */
static __attribute__((noinline)) run_t garbage(size_t mib) {
  run_t r = {0, 0};
  uint64_t gc0 = cgc_gc_count();
  size_t n = 8192, per_mib = CORE_MIB / n;
  for (size_t i = 0; i < mib * per_mib; i++) {
    uint64_t *p = (uint64_t *)cgc_alloc_noscan(n);
    CHECK(p != NULL);
    p[0] = i;
    consume(p);
    if (i % per_mib == 0) {
      uint64_t m = stats_now().mapped_bytes;
      if (m > r.max_mapped) r.max_mapped = m;
    }
  }
  r.gcs = cgc_gc_count() - gc0;
  return r;
}

static void mode_default(void) {
  CHECKF(cgc_set_gc_percent(100) == 100, "default GC percent is not 100");
  const size_t live = 32;
  make_live(live);
  cgc_collect();
  cgc_stats_t s = stats_now();
  CHECK(s.last_live_bytes >= live * CORE_MIB);
  CHECKF(s.heap_goal_bytes >= s.last_live_bytes * 17 / 10 && s.heap_goal_bytes <= s.last_live_bytes * 3 + 16 * CORE_MIB,
         "GC percent 100: heap goal %llu MiB with %llu MiB live", (unsigned long long)(s.heap_goal_bytes >> 20),
         (unsigned long long)(s.last_live_bytes >> 20));

  run_t r100 = garbage(512);
  fprintf(stderr, "percent 100: %llu collections, max mapped %llu MiB\n", (unsigned long long)r100.gcs,
          (unsigned long long)(r100.max_mapped >> 20));
  /* ~32 MiB of allocation per cycle: about 16 collections. */
  CHECKF(r100.gcs >= 6 && r100.gcs <= 64, "512 MiB of garbage over 32 MiB live caused %llu collections",
         (unsigned long long)r100.gcs);
  CHECKF(r100.max_mapped <= 5 * live * CORE_MIB + 32 * CORE_MIB, "mapped_bytes reached %llu MiB with 32 MiB live",
         (unsigned long long)(r100.max_mapped >> 20));

  CHECK(cgc_set_gc_percent(400) == 100);
  cgc_collect();
  s = stats_now();
  CHECKF(s.heap_goal_bytes >= s.last_live_bytes * 45 / 10 && s.heap_goal_bytes <= s.last_live_bytes * 7 + 16 * CORE_MIB,
         "GC percent 400: heap goal %llu MiB with %llu MiB live", (unsigned long long)(s.heap_goal_bytes >> 20),
         (unsigned long long)(s.last_live_bytes >> 20));
  run_t r400 = garbage(512);
  fprintf(stderr, "percent 400: %llu collections\n", (unsigned long long)r400.gcs);
  CHECKF(r400.gcs * 2 <= r100.gcs, "percent 400 collected %llu times, percent 100 %llu times",
         (unsigned long long)r400.gcs, (unsigned long long)r100.gcs);
  CHECK(r400.gcs >= 1);

  CHECK(cgc_set_gc_percent(25) == 400);
  run_t r25 = garbage(256);
  fprintf(stderr, "percent 25: %llu collections\n", (unsigned long long)r25.gcs);
  CHECKF(r25.gcs >= r100.gcs, "percent 25 collected %llu times over 256 MiB, percent 100 %llu times over 512 MiB",
         (unsigned long long)r25.gcs, (unsigned long long)r100.gcs);
  check_live(live);
}

static void mode_off(void) {
  cgc_init();
  uint64_t gc0 = cgc_gc_count();
  CHECK(gc0 == 0);
  make_live(16);
  run_t r = garbage(512);
  CHECKF(r.gcs == 0 && cgc_gc_count() == 0, "CGC_PERCENT=off: %llu collections during allocation",
         (unsigned long long)r.gcs);
  int prev = cgc_set_gc_percent(100);
  CHECKF(prev < 0, "CGC_PERCENT=off: cgc_set_gc_percent returned %d", prev);
  cgc_collect();
  CHECK(cgc_gc_count() == 1);
  r = garbage(256);
  CHECKF(r.gcs >= 3, "pacing back on (100%%): %llu collections over 256 MiB with 16 MiB live",
         (unsigned long long)r.gcs);
  CHECK(cgc_set_gc_percent(-1) == 100);
  uint64_t g = cgc_gc_count();
  r = garbage(256);
  CHECKF(r.gcs == 0 && cgc_gc_count() == g, "pacing off again: %llu collections", (unsigned long long)r.gcs);
  check_live(16);
}

static void mode_env(const char *percent, const char *limit) {
  int p = cgc_set_gc_percent(100);
  if (strcmp(percent, "off") == 0)
    CHECKF(p == -1, "CGC_PERCENT=%s: percent %d, expected -1 (off)", getenv("CGC_PERCENT"), p);
  else
    CHECKF(p == atoi(percent), "CGC_PERCENT=%s: percent %d, expected %s", getenv("CGC_PERCENT"), p, percent);
  int64_t l = cgc_set_memory_limit(-1);
  if (strcmp(limit, "none") == 0)
    CHECKF(l >= ((int64_t)1 << 60), "no CGC_MEMLIMIT: limit %lld", (long long)l);
  else
    CHECKF(l == strtoll(limit, NULL, 10), "CGC_MEMLIMIT=%s: limit %lld, expected %s", getenv("CGC_MEMLIMIT"),
           (long long)l, limit);
}

static void mode_limit(void) {
  const int64_t lim = (int64_t)64 << 20;
  CHECKF(cgc_set_memory_limit(-1) == lim, "CGC_MEMLIMIT=64MiB: limit %lld", (long long)cgc_set_memory_limit(-1));
  const size_t live = 16;
  make_live(live);

  /* Pacing off: the limit alone drives collection. */
  cgc_set_gc_percent(-1);
  run_t off = garbage(1024);
  fprintf(stderr, "off + 64 MiB limit: %llu collections, max mapped %llu MiB\n", (unsigned long long)off.gcs,
          (unsigned long long)(off.max_mapped >> 20));
  CHECKF(off.gcs >= 8, "with pacing off and a 64 MiB limit, 1 GiB of garbage caused %llu collections",
         (unsigned long long)off.gcs);
  CHECKF(off.max_mapped <= (uint64_t)lim + (uint64_t)lim / 4,
         "with pacing off and a 64 MiB limit, mapped_bytes reached %llu MiB", (unsigned long long)(off.max_mapped >> 20));

  /* A lax percent: the limit makes collections more frequent than without it. */
  cgc_set_gc_percent(1000);
  run_t lax_lim = garbage(512);
  CHECKF(lax_lim.max_mapped <= (uint64_t)lim + (uint64_t)lim / 4,
         "with percent 1000 and a 64 MiB limit, mapped_bytes reached %llu MiB",
         (unsigned long long)(lax_lim.max_mapped >> 20));
  CHECK(cgc_set_memory_limit(INT64_MAX) == lim);
  CHECK(cgc_set_memory_limit(-1) == INT64_MAX);
  run_t lax = garbage(512);
  fprintf(stderr, "percent 1000: %llu collections with the limit, %llu without (max mapped %llu MiB)\n",
          (unsigned long long)lax_lim.gcs, (unsigned long long)lax.gcs, (unsigned long long)(lax.max_mapped >> 20));
  CHECKF(lax_lim.gcs > lax.gcs, "percent 1000: %llu collections with a 64 MiB limit, %llu without",
         (unsigned long long)lax_lim.gcs, (unsigned long long)lax.gcs);
  CHECKF(lax.max_mapped > (uint64_t)lim, "without a limit, percent 1000 over 16 MiB live kept mapped at %llu MiB",
         (unsigned long long)(lax.max_mapped >> 20));
  check_live(live);
}

/* 40 MiB live and 640 MiB of garbage in 64 KiB objects: collections. */
static __attribute__((noinline)) uint64_t churn_64k(void) {
  uint64_t gc0 = cgc_gc_count();
  for (int i = 0; i < 10240; i++) {
    uint64_t *p = (uint64_t *)cgc_alloc_noscan(64 << 10);
    CHECK(p != NULL);
    p[0] = (uint64_t)i;
    consume(p);
  }
  return cgc_gc_count() - gc0;
}

static void mode_over(void) {
  make_live(40);
  cgc_collect();
  cgc_set_gc_percent(8); /* goal 43.2 MiB */
  uint64_t goal_a = stats_now().heap_goal_bytes, a = churn_64k();
  cgc_set_gc_percent(100);
  cgc_set_memory_limit((int64_t)32 << 20); /* the goal is then the floor over the live heap: 43.5 MiB */
  cgc_collect();
  uint64_t goal_b = stats_now().heap_goal_bytes, b = churn_64k();
  fprintf(stderr, "40 MiB live: %llu collections with goal %llu MiB; %llu with a 32 MiB limit and goal %llu MiB\n",
          (unsigned long long)a, (unsigned long long)(goal_a >> 20), (unsigned long long)b,
          (unsigned long long)(goal_b >> 20));
  CHECKF(goal_b >= goal_a && goal_b - goal_a < CORE_MIB, "goals %llu and %llu", (unsigned long long)goal_a,
         (unsigned long long)goal_b);
  CHECKF(b * 4 <= a * 5, "a 32 MiB limit under a 40 MiB live heap made %llu collections, %llu without it",
         (unsigned long long)b, (unsigned long long)a);
  check_live(40);
}

int main(int argc, char **argv) {
  CHECKF(argc >= 2, "usage: core_pacing default|off|limit|over|env P L");
  test_seed();
  if (strcmp(argv[1], "default") == 0)
    mode_default();
  else if (strcmp(argv[1], "off") == 0)
    mode_off();
  else if (strcmp(argv[1], "limit") == 0)
    mode_limit();
  else if (strcmp(argv[1], "over") == 0)
    mode_over();
  else if (strcmp(argv[1], "env") == 0 && argc >= 4)
    mode_env(argv[2], argv[3]);
  else
    CHECKF(0, "unknown mode %s", argv[1]);
  printf("core_pacing %s: ok\n", argv[1]);
  return 0;
}
