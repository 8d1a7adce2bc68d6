/* CGC_DEBUG: gctrace=1 prints one line per collection to stderr, in the manner
   of Go's gctrace ("gc N @T.TTTs ..."), numbered 1, 2, 3, ... with times that
   do not go backwards; without it nothing is printed; unknown names are
   warned about (a line on stderr naming them) without stopping the program,
   and the known names around them still take effect.  A name alone means
   name=1 and empty entries are skipped; a bad value (out of range, trailing
   characters) is warned about and ignored, as is a name that only starts
   like a known one.  Threads that collect at once still get their lines in
   collection order, each with its own collection's time (they were written
   after the lock was dropped, and came out of order).  A line's time is the
   monotonic time since cgc started.  markworkers=0 marks with one thread per
   CPU of the process's affinity mask.  A warning quoting a very long value
   is cut to one printable line.
   `core_gctrace fields` checks the fields of a line, not only its number and
   time: the suffix names why the collection ran (" (forced)" for
   cgc_collect, " (memory limit)" for one the memory limit brought on, none
   for a paced one), "X->Y MB" is the heap before and the live heap after,
   "N objects" counts the marked objects, "0 MB goal" when pacing is off and
   no limit is set, and gctrace=2 also prints the root jobs of 128 KiB or
   more (a 1 MiB .bss array is one).
   The test runs itself as a child (`core_gctrace child`, `threads`,
   `fields_child`) with each setting. */
#include "core_util.h"

#include <regex.h>
#include <sys/wait.h>

extern char **environ;

#define KEEP 20
void *g_keep[KEEP];               /* not static: the stores must stay */
void *g_big_bss[1 << 17] = {0};   /* 1 MiB of .bss: several root jobs */

static __attribute__((noinline)) void garbage(size_t n) {
  uint64_t *p = (uint64_t *)cgc_alloc_noscan(n);
  CHECK(p != NULL);
  p[0] = 1;
  consume(p);
}

static int child_fields(void) {
  consume(g_big_bss);
  for (int i = 0; i < KEEP; i++) g_keep[i] = cgc_alloc_noscan(CORE_MIB);
  cgc_set_memory_limit(64 * (int64_t)CORE_MIB);
  cgc_collect();
  unsigned long long forced1 = cgc_gc_count();
  /* 15 MiB of garbage since that collection (under the 39 MiB goal), then a
     30 MiB object that would take the heap past the limit: a memory-limit
     collection. */
  for (int i = 0; i < 15; i++) garbage(CORE_MIB);
  unsigned long long before_limit = cgc_gc_count();
  garbage(30 * CORE_MIB);
  unsigned long long limit = cgc_gc_count();
  cgc_set_memory_limit(INT64_MAX);
  /* Drop the 20 MiB: the next forced collection goes from 20+ to ~0. */
  for (int i = 0; i < KEEP; i++) g_keep[i] = NULL;
  clear_stack();
  cgc_collect();
  unsigned long long forced2 = cgc_gc_count();
  until_paced_collection(64);
  unsigned long long paced = cgc_gc_count();
  cgc_set_gc_percent(-1);
  cgc_collect();
  unsigned long long off = cgc_gc_count();
  printf("forced1=%llu before_limit=%llu limit=%llu forced2=%llu paced=%llu off=%llu\n", forced1, before_limit,
         limit, forced2, paced, off);
  fflush(stdout);
  return 0;
}

static int child_main(void) {
  void *keep = NULL;
  for (int i = 0; i < 5; i++) {
    for (int j = 0; j < 2000; j++) {
      void *p = cgc_alloc(100 + (size_t)j);
      CHECK(p != NULL);
      if (j % 100 == 0) keep = p;
    }
    cgc_collect();
  }
  consume(keep);
  /* Some paced collections too. */
  for (int j = 0; j < 20000; j++) {
    void *p = cgc_alloc_noscan(4096);
    CHECK(p != NULL);
    consume(p);
  }
  cgc_collect();
  printf("collections=%llu\n", (unsigned long long)cgc_gc_count());
  fflush(stdout);
  return 0;
}

/* A collection, then allocation and explicit frees (pacing off: no
   collection meanwhile) for 1.2 s of the monotonic clock, then another. */
static int child_clock(void) {
  cgc_collect();
  cgc_set_gc_percent(-1);
  uint64_t t0 = now_ns();
  while (now_ns() - t0 < 1200000000u) cgc_free(cgc_alloc_noscan(64 << 10));
  cgc_collect();
  printf("collections=%llu elapsed_ms=%llu\n", (unsigned long long)cgc_gc_count(),
         (unsigned long long)((now_ns() - t0) / 1000000u));
  fflush(stdout);
  return 0;
}

/* The number of threads that mark, and the CPUs this process may use. */
static int child_workers(void) {
  cgc_collect();
  cgc_stats_t s = stats_now();
  printf("collections=%llu workers=%llu cpus=%d\n", (unsigned long long)cgc_gc_count(),
         (unsigned long long)s.mark_workers, cpus_available());
  fflush(stdout);
  return 0;
}

/* Three threads collecting in turn as fast as they can. */
static void *collect_loop(void *arg) {
  (void)arg;
  for (int i = 0; i < 150; i++) cgc_collect();
  return NULL;
}
static int child_threads(void) {
  pthread_t t[3];
  for (int i = 0; i < 3; i++) CHECK(pthread_create(&t[i], NULL, collect_loop, NULL) == 0);
  for (int i = 0; i < 3; i++) CHECK(pthread_join(t[i], NULL) == 0);
  printf("collections=%llu\n", (unsigned long long)cgc_gc_count());
  fflush(stdout);
  return 0;
}

typedef struct {
  char out[4096];
  char *err;
  size_t err_len;
  int status;
} result_t;

static void read_all(int fd, char **buf, size_t *len) {
  size_t cap = 65536;
  *buf = (char *)malloc(cap);
  *len = 0;
  CHECK(*buf != NULL);
  for (;;) {
    if (*len + 1 >= cap) {
      cap *= 2;
      *buf = (char *)realloc(*buf, cap);
      CHECK(*buf != NULL);
    }
    ssize_t n = read(fd, *buf + *len, cap - 1 - *len);
    if (n < 0 && errno == EINTR) continue;
    CHECK(n >= 0);
    if (n == 0) break;
    *len += (size_t)n;
  }
  (*buf)[*len] = 0;
}

/* Run this program as a child with CGC_DEBUG set to `debug` (NULL: unset),
   and `extra` ("NAME=value", NULL: none) in its environment too. */
static result_t run_child_env(const char *self, const char *mode, const char *debug, const char *extra) {
  /* The child's environment: ours without CGC_DEBUG, CGC_PERCENT and
     CGC_MEMLIMIT, plus the setting. */
  size_t n = 0;
  while (environ[n]) n++;
  char **envp = (char **)calloc(n + 3, sizeof(char *));
  CHECK(envp != NULL);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "CGC_DEBUG=", 10) && strncmp(environ[i], "CGC_PERCENT=", 12) &&
        strncmp(environ[i], "CGC_MEMLIMIT=", 13))
      envp[k++] = environ[i];
  char setting[256];
  if (debug) {
    snprintf(setting, sizeof setting, "CGC_DEBUG=%s", debug);
    envp[k++] = setting;
  }
  if (extra) envp[k++] = (char *)extra;
  envp[k] = NULL;

  int out[2], err[2];
  CHECK(pipe(out) == 0 && pipe(err) == 0);
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(err[1], 2);
    close(out[0]);
    close(err[0]);
    close(out[1]);
    close(err[1]);
    char *const argv[] = {(char *)self, (char *)mode, NULL};
    execve(self, argv, envp);
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  result_t r;
  memset(&r, 0, sizeof r);
  char *o = NULL;
  size_t olen = 0;
  read_all(out[0], &o, &olen);
  snprintf(r.out, sizeof r.out, "%s", o);
  free(o);
  read_all(err[0], &r.err, &r.err_len);
  close(out[0]);
  close(err[0]);
  CHECK(waitpid(pid, &r.status, 0) == pid);
  free(envp);
  return r;
}

static result_t run_child_mode(const char *self, const char *mode, const char *debug) {
  return run_child_env(self, mode, debug, NULL);
}

static result_t run_child(const char *self, const char *debug) { return run_child_mode(self, "child", debug); }

static void child_ok(const result_t *r, const char *debug) {
  CHECKF(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0, "CGC_DEBUG=%s: child failed (status 0x%x); stderr:\n%s",
         debug ? debug : "(unset)", r->status, r->err);
}

static unsigned long long child_collections(const result_t *r, const char *debug) {
  child_ok(r, debug);
  unsigned long long c = 0;
  CHECKF(sscanf(r->out, "collections=%llu", &c) == 1, "child output: %s", r->out);
  return c;
}

/* Count gctrace lines; check their numbering and times. */
static unsigned long long trace_lines(const result_t *r, const char *debug) {
  regex_t re;
  CHECK(regcomp(&re, "(^|[^[:alnum:]_])gc ([0-9]+) @([0-9]+)\\.([0-9]{3})s", REG_EXTENDED) == 0);
  unsigned long long count = 0;
  double last_t = -1;
  char *save = NULL;
  char *copy = strdup(r->err);
  CHECK(copy != NULL);
  for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    regmatch_t m[5];
    if (regexec(&re, line, 5, m, 0) != 0) continue;
    count++;
    unsigned long long num = strtoull(line + m[2].rm_so, NULL, 10);
    double t = strtod(line + m[3].rm_so, NULL);
    CHECKF(num == count, "CGC_DEBUG=%s: trace line %llu is numbered %llu: %s", debug, count, num, line);
    CHECKF(t >= last_t, "CGC_DEBUG=%s: trace time went backwards: %s", debug, line);
    last_t = t;
  }
  free(copy);
  regfree(&re);
  return count;
}

static void expect_trace(const char *self, const char *debug) {
  result_t r = run_child(self, debug);
  unsigned long long c = child_collections(&r, debug);
  unsigned long long lines = trace_lines(&r, debug);
  CHECKF(c >= 6, "child made only %llu collections", c);
  CHECKF(lines == c, "CGC_DEBUG=%s: %llu gctrace lines for %llu collections; stderr:\n%s", debug, lines, c, r.err);
  CHECKF(strstr(r.err, "gc 1 @") != NULL, "CGC_DEBUG=%s: no `gc 1 @` in stderr", debug);
  free(r.err);
}

static void expect_ordered_threads(const char *self) {
  result_t r = run_child_mode(self, "threads", "gctrace=1");
  unsigned long long c = child_collections(&r, "gctrace=1");
  unsigned long long lines = trace_lines(&r, "gctrace=1 (3 collecting threads)");
  CHECKF(lines == c, "3 collecting threads: %llu gctrace lines for %llu collections", lines, c);
  free(r.err);
}

static void expect_quiet(const char *self, const char *debug) {
  result_t r = run_child(self, debug);
  child_collections(&r, debug);
  CHECKF(trace_lines(&r, debug ? debug : "(unset)") == 0, "CGC_DEBUG=%s: gctrace lines printed:\n%s",
         debug ? debug : "(unset)", r.err);
  free(r.err);
}

static void expect_warning(const char *self, const char *debug, const char *unknown, int traced) {
  result_t r = run_child(self, debug);
  unsigned long long c = child_collections(&r, debug);
  bool warned = false;
  char *save = NULL;
  char *copy = strdup(r.err);
  CHECK(copy != NULL);
  for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
    if (strstr(line, unknown)) warned = true;
  free(copy);
  CHECKF(warned, "CGC_DEBUG=%s: no warning line naming `%s`; stderr:\n%s", debug, unknown, r.err);
  unsigned long long lines = trace_lines(&r, debug);
  if (traced)
    CHECKF(lines == c, "CGC_DEBUG=%s: %llu gctrace lines for %llu collections", debug, lines, c);
  else
    CHECKF(lines == 0, "CGC_DEBUG=%s: gctrace lines printed", debug);
  free(r.err);
}

/* A line's time is the monotonic time since cgc started: the last
   collection of a child that allocated for 1.2 s after main began is at
   least 1.2 s in, and not far past the child's whole run. */
static void expect_clock(const char *self) {
  result_t r = run_child_mode(self, "clock_child", "gctrace=1");
  unsigned long long c = child_collections(&r, "gctrace=1"), ms = 0;
  const char *q = strstr(r.out, "elapsed_ms=");
  CHECKF(q && sscanf(q, "elapsed_ms=%llu", &ms) == 1, "child output: %s", r.out);
  CHECKF(trace_lines(&r, "gctrace=1 (1.2 s of allocation)") == c, "%llu collections", c);
  char key[64];
  snprintf(key, sizeof key, "gc %llu @", c);
  const char *line = strstr(r.err, key);
  CHECKF(line != NULL, "no line for collection %llu; stderr:\n%s", c, r.err);
  double t = strtod(line + strlen(key), NULL);
  CHECKF(t >= 1.2 && t <= (double)ms / 1000 + 10, "the last collection is at @%.3fs, after %llu ms of allocation: %.120s",
         t, ms, line);
  free(r.err);
}

/* cgc's messages are cut to one line of at most 1024 bytes: a warning that
   quotes a very long CGC_MEMLIMIT is a single text line, and the program
   runs on. */
static void expect_long_warning(const char *self) {
  static char extra[8192];
  int len = snprintf(extra, sizeof extra, "CGC_MEMLIMIT=");
  memset(extra + len, '7', 6000);
  memcpy(extra + len + 6000, "qMiB", 5);
  result_t r = run_child_env(self, "child", NULL, extra);
  child_collections(&r, "(unset; a 6004-byte CGC_MEMLIMIT)");
  CHECKF(strlen(r.err) == r.err_len, "stderr holds a NUL byte (%zu of %zu bytes before it):\n%s", strlen(r.err),
         r.err_len, r.err);
  const char *w = strstr(r.err, "cgc: CGC_MEMLIMIT: cannot read '7777");
  CHECKF(w != NULL && (w == r.err || w[-1] == '\n'), "no warning line for the long CGC_MEMLIMIT; stderr:\n%.2000s", r.err);
  const char *nl = strchr(w, '\n');
  CHECKF(nl != NULL && nl - w < 1024, "the warning line is %zd bytes long", nl ? (ssize_t)(nl - w) : (ssize_t)-1);
  for (const char *c = w; c < nl; c++)
    CHECKF(*c >= ' ' && *c <= '~', "byte 0x%02x at %zd of the warning line", (unsigned char)*c, (ssize_t)(c - w));
  CHECKF(trace_lines(&r, "(unset)") == 0, "gctrace lines printed");
  free(r.err);
}

/* markworkers=0 (the default) marks with one thread per CPU the process may
   use (its affinity mask, not the CPUs online); markworkers=N with N. */
static unsigned long long child_workers_of(const char *self, const char *debug) {
  result_t r = run_child_mode(self, "workers_child", debug);
  child_collections(&r, debug);
  unsigned long long w = 0;
  int cpus = 0;
  const char *q = strstr(r.out, "workers=");
  CHECKF(q && sscanf(q, "workers=%llu cpus=%d", &w, &cpus) == 2, "child output: %s", r.out);
  free(r.err);
  return w;
}

static void expect_workers(const char *self) {
  cpu_set_t all, one;
  CHECK(sched_getaffinity(0, sizeof all, &all) == 0);
  CPU_ZERO(&one);
  for (int i = 0; i < CPU_SETSIZE; i++)
    if (CPU_ISSET(i, &all)) {
      CPU_SET(i, &one);
      break;
    }
  /* The child inherits the mask: one CPU. */
  CHECK(sched_setaffinity(0, sizeof one, &one) == 0);
  unsigned long long w_default = child_workers_of(self, NULL);
  unsigned long long w_three = child_workers_of(self, "markworkers=3");
  CHECK(sched_setaffinity(0, sizeof all, &all) == 0);
  CHECKF(w_default == 1, "markworkers unset, affinity of one CPU (of %d online): %llu mark workers", (int)sysconf(_SC_NPROCESSORS_ONLN), w_default);
  CHECKF(w_three == 3, "markworkers=3: %llu mark workers", w_three);
}

typedef struct {
  unsigned long long before, after, goal, objects;
  char suffix[64];
} line_t;

/* The trace line of collection n. */
static line_t find_line(const result_t *r, unsigned long long n) {
  char key[64];
  snprintf(key, sizeof key, "gc %llu @", n);
  const char *p = r->err;
  while ((p = strstr(p, key)) != NULL && p != r->err && p[-1] != '\n') p++;
  CHECKF(p != NULL, "no trace line for collection %llu; stderr:\n%s", n, r->err);
  const char *end = strchr(p, '\n');
  CHECK(end != NULL);
  char line[512];
  snprintf(line, sizeof line, "%.*s", (int)(end - p), p);
  line_t l;
  memset(&l, 0, sizeof l);
  const char *q = strstr(line, "ms clock, ");
  CHECKF(q != NULL, "line: %s", line);
  CHECKF(sscanf(q, "ms clock, %llu->%llu MB, %llu MB goal,", &l.before, &l.after, &l.goal) == 3, "line: %s", line);
  q = strstr(line, " KB roots, ");
  CHECKF(q != NULL && sscanf(q, " KB roots, %llu objects,", &l.objects) == 1, "line: %s", line);
  q = strstr(line, " P");
  CHECKF(q != NULL, "line: %s", line);
  snprintf(l.suffix, sizeof l.suffix, "%s", q + 2);
  fprintf(stderr, "collection %llu: %s\n", n, line);
  return l;
}

/* The fields of the lines (the `fields_child` child). */
static void expect_fields(const char *self) {
  result_t r = run_child_mode(self, "fields_child", "gctrace=1");
  child_ok(&r, "gctrace=1");
  unsigned long long forced1, before_limit, limit, forced2, paced, off;
  CHECKF(sscanf(r.out, "forced1=%llu before_limit=%llu limit=%llu forced2=%llu paced=%llu off=%llu", &forced1,
                &before_limit, &limit, &forced2, &paced, &off) == 6,
         "child output: %s", r.out);
  line_t l = find_line(&r, forced1);
  CHECKF(strcmp(l.suffix, " (forced)") == 0, "cgc_collect's line ends with `%s`, not ` (forced)`", l.suffix);
  CHECKF(l.after >= KEEP, "%d MiB live: the line says ->%llu MB", KEEP, l.after);
  CHECKF(l.objects >= KEEP, "%d objects live: the line says %llu objects", KEEP, l.objects);
  CHECKF(limit == before_limit + 1, "no memory-limit collection (%llu -> %llu)", before_limit, limit);
  l = find_line(&r, limit);
  CHECKF(strcmp(l.suffix, " (memory limit)") == 0, "the memory-limit collection's line ends with `%s`", l.suffix);
  l = find_line(&r, forced2);
  CHECKF(strcmp(l.suffix, " (forced)") == 0, "cgc_collect's line ends with `%s`, not ` (forced)`", l.suffix);
  CHECKF(l.before >= KEEP && l.after < KEEP / 2, "%d MiB dropped: the line says %llu->%llu MB", KEEP, l.before,
         l.after);
  l = find_line(&r, paced);
  CHECKF(l.suffix[0] == 0, "a paced collection's line ends with `%s`", l.suffix);
  l = find_line(&r, off);
  CHECKF(l.goal == 0, "pacing off, no limit: the line says %llu MB goal", l.goal);
  CHECKF(strstr(r.err, "root job") == NULL, "gctrace=1 printed root jobs:\n%s", r.err);
  free(r.err);

  r = run_child_mode(self, "fields_child", "gctrace=2");
  child_ok(&r, "gctrace=2");
  CHECKF(strstr(r.err, "root job") != NULL, "gctrace=2 printed no root job (a 1 MiB .bss array is scanned)");
  free(r.err);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "child") == 0) return child_main();
  if (argc > 1 && strcmp(argv[1], "fields_child") == 0) return child_fields();
  if (argc > 1 && strcmp(argv[1], "threads") == 0) return child_threads();
  if (argc > 1 && strcmp(argv[1], "workers_child") == 0) return child_workers();
  if (argc > 1 && strcmp(argv[1], "clock_child") == 0) return child_clock();
  test_seed();
  char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  CHECK(len > 0);
  self[len] = 0;
  if (argc > 1 && strcmp(argv[1], "fields") == 0) {
    expect_fields(self);
    printf("core_gctrace fields: ok\n");
    return 0;
  }

  expect_trace(self, "gctrace=1");
  expect_ordered_threads(self);
  expect_quiet(self, NULL);
  expect_quiet(self, "gctrace=0");
  expect_warning(self, "bogusknob=1", "bogusknob", 0);
  expect_warning(self, "gctrace=1,frobnicate=3", "frobnicate", 1);
  expect_warning(self, "zzunknown=2,gctrace=1", "zzunknown", 1);
  /* A name alone means name=1, and empty entries are skipped. */
  expect_trace(self, "gctrace");
  expect_trace(self, ",gctrace=1,,");
  /* A value out of the option's range or with characters after the number,
     and a name that is only the start of an option's, are reported and
     ignored; so is a cleanups mode that only starts with "manual". */
  expect_warning(self, "gctrace=3", "bad value for gctrace", 0);
  expect_warning(self, "gctrace=1x", "bad value for gctrace", 0);
  expect_warning(self, "gc=1", "unknown option 'gc'", 0);
  expect_warning(self, "gctrace=1,cleanups=manually", "cleanups takes", 1);
  expect_workers(self);
  expect_long_warning(self);
  expect_clock(self);
  printf("core_gctrace: ok\n");
  return 0;
}
