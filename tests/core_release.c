/* Memory goes back to the OS: after a big heap dies, mapped_bytes falls within
   a few collections, and the resident set with it; cgc_release_memory does it
   at once; memory allocated again afterwards is zeroed; a steady program
   that builds and drops a big buffer keeps its pages.
   (The resident-set checks are skipped under AddressSanitizer, whose shadow
   memory is part of the resident set; the mapped_bytes checks are not.) */
#include "core_util.h"

#include <dirent.h>
#include <sys/wait.h>

#define SMALL_N 65536   /* 2 KiB objects: 128 MiB */
#define SMALL_SZ 2048
#define LARGE_N 64      /* 2 MiB objects: 128 MiB */
#define LARGE_SZ (2 * CORE_MIB)
#define HEAP_BYTES ((uint64_t)SMALL_N * SMALL_SZ + (uint64_t)LARGE_N * LARGE_SZ)

static void **g_small, **g_large;

static __attribute__((noinline)) void build(void) {
  g_small = (void **)cgc_alloc(SMALL_N * sizeof(void *));
  g_large = (void **)cgc_alloc(LARGE_N * sizeof(void *));
  CHECK(g_small && g_large);
  for (size_t i = 0; i < SMALL_N; i++) {
    unsigned char *p = (unsigned char *)cgc_alloc_noscan(SMALL_SZ);
    CHECK(p != NULL);
    CHECKF(all_zero(p, SMALL_SZ), "fresh small object not zeroed");
    memset(p, 0xa5, SMALL_SZ);
    g_small[i] = p;
  }
  for (size_t i = 0; i < LARGE_N; i++) {
    unsigned char *p = (unsigned char *)cgc_alloc_noscan(LARGE_SZ);
    CHECK(p != NULL);
    CHECKF(all_zero(p, LARGE_SZ), "fresh large object not zeroed");
    memset(p, 0x5a, LARGE_SZ);
    g_large[i] = p;
  }
}

static __attribute__((noinline)) void drop(void) {
  g_small = g_large = NULL;
  clear_stack();
}

static void report(const char *what, cgc_stats_t s) {
  fprintf(stderr, "%-34s mapped %5llu MiB  released(total) %5llu MiB  rss %5llu MiB  gcs %llu\n", what,
          (unsigned long long)(s.mapped_bytes >> 20), (unsigned long long)(s.released_bytes >> 20),
          (unsigned long long)(rss_bytes() >> 20), (unsigned long long)s.num_gc);
}

/* Garbage in a size class of its own until one more collection ran. */
static __attribute__((noinline)) void garbage_until_gc(void) {
  uint64_t n0 = cgc_gc_count();
  for (long i = 0; cgc_gc_count() == n0; i++) {
    CHECKF(i < 100000000L, "no paced collection after 100M allocations");
    CHECK(cgc_alloc(48) != NULL);
  }
}

/* Build the heap, drop it, then run `collection` up to `rounds` times: by
   then at most a quarter of the peak may stay mapped. */
static void dead_heap_returns(const char *what, int rounds, void (*collection)(void)) {
  build();
  cgc_collect();
  cgc_stats_t peak = stats_now();
  report("built", peak);
  drop();
  cgc_stats_t s = peak;
  for (int n = 1; n <= rounds && s.mapped_bytes > peak.mapped_bytes / 4; n++) {
    collection();
    s = stats_now();
    report(what, s);
  }
  CHECKF(s.mapped_bytes <= peak.mapped_bytes / 4,
         "%s: mapped_bytes %llu MiB after %d collections of a dead %llu MiB heap (peak %llu MiB)", what,
         (unsigned long long)(s.mapped_bytes >> 20), rounds, (unsigned long long)(HEAP_BYTES >> 20),
         (unsigned long long)(peak.mapped_bytes >> 20));
}

/* Only paced collections (run with CGC_DEBUG=bgsweep=0 too, where no
   sweeper thread sweeps the classes the program stopped using). */
static void paced_only(void) { dead_heap_returns("after dropping, paced collection", 12, garbage_until_gc); }

/* A 32 MiB buffer needed once every seven forced collections stays mapped:
   the scavenger keeps the peak of the last eight collections.  (Each
   cgc_collect counted as two periods when the sweeper it woke swept and
   scavenged again, and the buffer went back and was faulted in each time.) */
static char *volatile window_buf;
static void window(void) {
  cgc_stats_t s0 = stats_now(), s;
  for (int round = 0; round < 8; round++) {
    window_buf = cgc_alloc_noscan(32 * CORE_MIB);
    CHECK(window_buf != NULL);
    memset(window_buf, round + 1, 32 * CORE_MIB);
    window_buf = NULL;
    if (round == 1) s0 = stats_now();
    for (int k = 0; k < 7; k++) {
      clear_stack();
      cgc_collect();
      cgc_wait_cleanups(); /* nothing queued: a pause between collections, as a program has */
    }
  }
  s = stats_now();
  CHECKF(s.released_bytes - s0.released_bytes < 8 * CORE_MIB,
         "%llu MiB released (and faulted back in) over 6 rounds of a buffer needed every 7 collections",
         (unsigned long long)((s.released_bytes - s0.released_bytes) >> 20));
}

/* cgc_release_memory gives back every free page, single free pages too:
   the one-page spans of dead 256-byte objects, each between two live large
   objects (so no free neighbour to merge with), go back to the OS. */
#define HOLES_N 2000
#define HOLES_LARGE (5 * 8192) /* 5 pages */
static void **g_holes_large;

static __attribute__((noinline)) void holes_build(void) {
  g_holes_large = (void **)cgc_alloc(HOLES_N * sizeof(void *));
  CHECK(g_holes_large != NULL);
  for (int i = 0; i < HOLES_N; i++) {
    for (int k = 0; k < 32; k++) CHECK(cgc_alloc_noscan(256) != NULL); /* a page of them, dead at once */
    g_holes_large[i] = cgc_alloc_noscan(HOLES_LARGE);
    CHECK(g_holes_large[i] != NULL);
  }
}

static void holes(void) {
  cgc_set_gc_percent(-1); /* the small objects are swept only by the collection below */
  holes_build();
  clear_stack();
  cgc_collect();
  cgc_release_memory();
  cgc_stats_t s = stats_now();
  uint64_t large = (uint64_t)HOLES_N * HOLES_LARGE;
  report("one-page holes released", s);
  CHECKF(s.mapped_bytes <= large + 8 * CORE_MIB,
         "mapped_bytes %llu KiB after cgc_release_memory, with %llu KiB of live large objects and %d free "
         "single pages between them",
         (unsigned long long)(s.mapped_bytes >> 10), (unsigned long long)(large >> 10), HOLES_N);
  for (int i = 0; i < HOLES_N; i++) CHECK(cgc_base(g_holes_large[i]) == g_holes_large[i]);
  g_holes_large = NULL;
}

/* Pacing off (no goal): collections still give a dead heap's memory back,
   keeping what the live heap needs (plus half) instead of a goal's worth. */
static void forced_collection(void) {
  clear_stack();
  cgc_collect();
}

static void pacing_off(void) {
  cgc_set_gc_percent(-1);
  dead_heap_returns("pacing off, after dropping", 10, forced_collection);
}

/* Run with CGC_DEBUG=scavenge=0: collections give nothing back, however
   much of the heap died; cgc_release_memory still does, when asked. */
static void no_scavenge(void) {
  build();
  cgc_collect();
  cgc_stats_t peak = stats_now();
  drop();
  for (int n = 0; n < 10; n++) forced_collection();
  cgc_stats_t s = stats_now();
  report("scavenge=0, after 10 collections", s);
  CHECKF(s.released_bytes == peak.released_bytes && s.mapped_bytes >= peak.mapped_bytes,
         "scavenge=0: collections of a dead heap released %llu MiB (mapped %llu -> %llu MiB)",
         (unsigned long long)((s.released_bytes - peak.released_bytes) >> 20),
         (unsigned long long)(peak.mapped_bytes >> 20), (unsigned long long)(s.mapped_bytes >> 20));
  cgc_release_memory();
  s = stats_now();
  CHECKF(s.mapped_bytes <= peak.mapped_bytes / 4, "scavenge=0: mapped_bytes %llu MiB after cgc_release_memory",
         (unsigned long long)(s.mapped_bytes >> 20));
}

/* Run with CGC_DEBUG=bgsweep=0: cgc_release_memory sweeps before it gives
   pages back, so the garbage a paced collection found (left unswept: no
   sweeper thread, and the heap is within what the scavenger keeps for the
   goal) goes back too.  The live heap is 96 MiB of large objects. */
static void *garbage_until_paced(void *arg) {
  (void)arg;
  uint64_t n0 = cgc_gc_count();
  for (long i = 0; cgc_gc_count() == n0; i++) {
    CHECKF(i < 100000000L, "no paced collection after 100M allocations");
    CHECK(cgc_alloc_noscan(1024) != NULL);
  }
  return NULL;
}

static void release_unswept(void) {
  g_large = (void **)cgc_alloc(LARGE_N * sizeof(void *));
  CHECK(g_large != NULL);
  for (size_t i = 0; i < 48; i++) CHECK((g_large[i] = cgc_alloc_noscan(LARGE_SZ)) != NULL);
  cgc_collect();
  pthread_t t;
  CHECK(pthread_create(&t, NULL, garbage_until_paced, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  cgc_stats_t s0 = stats_now();
  cgc_release_memory();
  cgc_stats_t s = stats_now();
  report("paced, then cgc_release_memory", s);
  CHECKF(s.mapped_bytes <= 96 * CORE_MIB + 16 * CORE_MIB,
         "mapped_bytes %llu MiB after cgc_release_memory (%llu MiB before), with 96 MiB live",
         (unsigned long long)(s.mapped_bytes >> 20), (unsigned long long)(s0.mapped_bytes >> 20));
  g_large = NULL;
}

/* Whether a thread of this process is named cgc-sweeper. */
static bool sweeper_running(void) {
  for (uint64_t t0 = now_ns(); now_ns() - t0 < 10000000000u;) { /* it names itself once it runs: 10 s */
    DIR *d = opendir("/proc/self/task");
    CHECK(d != NULL);
    bool found = false;
    for (struct dirent *e; !found && (e = readdir(d)) != NULL;) {
      char path[300], name[32];
      if (e->d_name[0] == '.') continue;
      snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
      FILE *f = fopen(path, "r");
      if (!f) continue;
      if (fgets(name, sizeof name, f) && strncmp(name, "cgc-sweeper", 11) == 0) found = true;
      fclose(f);
    }
    closedir(d);
    if (found) return true;
    sched_yield();
  }
  return false;
}

/* A child forked after the parent's sweeper thread started has none (fork
   copies only the calling thread): its first collection starts its own. */
static void fork_sweeper(void) {
  cgc_collect(); /* the parent's sweeper runs */
  CHECK(sweeper_running());
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    cgc_collect();
    CHECKF(sweeper_running(), "no cgc-sweeper thread in a forked child after a collection");
    _exit(0);
  }
  int status;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the forked child failed (status 0x%x)", status);
}

int main(int argc, char **argv) {
  test_seed();
  cgc_init();
  static const struct {
    const char *name;
    void (*run)(void);
  } modes[] = {{"paced", paced_only},     {"fork_sweeper", fork_sweeper}, {"pacing_off", pacing_off},
               {"release_unswept", release_unswept}, {"noscavenge", no_scavenge}, {"holes", holes},
               {"window", window}};
  for (size_t i = 0; argc > 1 && i < sizeof modes / sizeof modes[0]; i++)
    if (strcmp(argv[1], modes[i].name) == 0) {
      modes[i].run();
      printf("core_release %s: ok\n", modes[i].name);
      return 0;
    }
  cgc_collect();
  uint64_t rss_base = rss_bytes();

  /* Round 1: collections alone bring mapped_bytes (and RSS) down. */
  build();
  cgc_collect();
  cgc_stats_t peak = stats_now();
  uint64_t rss_peak = rss_bytes();
  report("built", peak);
  CHECK(peak.mapped_bytes >= HEAP_BYTES);
  CHECK(peak.last_live_bytes >= HEAP_BYTES);
  drop();
  cgc_stats_t s = peak;
  int n = 0;
  for (n = 1; n <= 10; n++) {
    clear_stack();
    cgc_collect();
    s = stats_now();
    report("after dropping, collection", s);
    if (s.mapped_bytes <= peak.mapped_bytes / 4) break;
  }
  CHECKF(s.mapped_bytes <= peak.mapped_bytes / 4,
         "mapped_bytes %llu MiB after 10 collections of a dead %llu MiB heap (peak %llu MiB)",
         (unsigned long long)(s.mapped_bytes >> 20), (unsigned long long)(HEAP_BYTES >> 20),
         (unsigned long long)(peak.mapped_bytes >> 20));
  CHECKF(s.released_bytes - peak.released_bytes >= (peak.mapped_bytes - s.mapped_bytes) / 2,
         "released_bytes grew by %llu MiB while mapped_bytes fell by %llu MiB",
         (unsigned long long)((s.released_bytes - peak.released_bytes) >> 20),
         (unsigned long long)((peak.mapped_bytes - s.mapped_bytes) >> 20));
  CHECK(s.last_live_bytes < HEAP_BYTES / 8);
#if !CORE_ASAN
  uint64_t rss_now = rss_bytes();
  CHECKF(rss_now + HEAP_BYTES / 2 <= rss_peak, "RSS %llu MiB after the heap died (peak %llu MiB, base %llu MiB)",
         (unsigned long long)(rss_now >> 20), (unsigned long long)(rss_peak >> 20),
         (unsigned long long)(rss_base >> 20));
#endif

  /* Round 2: the memory is reused (zeroed), then cgc_release_memory gives it
     back at once. */
  build();
  cgc_collect();
  peak = stats_now();
  rss_peak = rss_bytes();
  report("built again", peak);
  drop();
  cgc_collect();
  cgc_release_memory();
  s = stats_now();
  report("after cgc_release_memory", s);
  CHECKF(s.mapped_bytes <= peak.mapped_bytes / 4,
         "mapped_bytes %llu MiB right after cgc_release_memory (peak %llu MiB)",
         (unsigned long long)(s.mapped_bytes >> 20), (unsigned long long)(peak.mapped_bytes >> 20));
#if !CORE_ASAN
  rss_now = rss_bytes();
  CHECKF(rss_now + HEAP_BYTES / 2 <= rss_peak, "RSS %llu MiB after cgc_release_memory (peak %llu MiB)",
         (unsigned long long)(rss_now >> 20), (unsigned long long)(rss_peak >> 20));
#endif

  /* Round 3: released memory comes back zeroed. */
  build();
  drop();
  cgc_collect();
  cgc_release_memory();
  /* Round 4: a program that keeps building and dropping a big buffer keeps
     the pages it needs: collections give back only what none of the last few
     cycles used, and no more than the excess, so the buffer's pages are not
     released and faulted in again round after round (what goes back is the
     excess of a heap that grew because no free run was long enough; the
     whole-span scavenger without the peaks released 100-200 MiB here). */
  for (int i = 0; i < 10 && stats_now().last_live_bytes > 16 * CORE_MIB; i++) {
    clear_stack();
    cgc_collect();
  }
  cgc_release_memory();
  cgc_stats_t r0 = stats_now();
  for (int round = 0; round < 8; round++) {
    if (round == 2) r0 = stats_now();
    size_t cap = 64 * 1024;
    unsigned char *b = cgc_alloc_noscan(cap);
    CHECK(b != NULL);
    for (; cap < 32 * CORE_MIB; cap *= 2) {
      b = cgc_realloc(b, cap * 2);
      CHECK(b != NULL);
      memset(b + cap, round + 1, cap);
    }
    CHECK(b[cap - 1] == round + 1);
    if (round % 2) cgc_free(b);
    b = NULL;
    clear_stack();
    cgc_collect();
    s = stats_now();
    report("big buffer built and dropped", s);
    if (round >= 2)
      CHECKF(s.mapped_bytes >= 32 * CORE_MIB, "mapped_bytes %llu MiB: the buffer's pages were given back",
             (unsigned long long)(s.mapped_bytes >> 20));
  }
  CHECKF(s.released_bytes - r0.released_bytes < 16 * CORE_MIB,
         "%llu MiB released (and faulted in again) over 6 rounds of a steady program",
         (unsigned long long)((s.released_bytes - r0.released_bytes) >> 20));

  (void)rss_base;
  (void)rss_peak;
  printf("core_release: ok (%d collections to give memory back)\n", n);
  return 0;
}
