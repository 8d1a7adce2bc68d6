/* The fields of a gctrace line, not only its number and time (core_gctrace):
   the suffix names why the collection ran (" (forced)" for cgc_collect,
   " (memory limit)" for one the memory limit brought on, none for a paced
   one), "X->Y MB" is the heap before and the live heap after, "N objects"
   counts the marked objects, "0 MB goal" when pacing is off and no limit
   is set, and gctrace=2 also prints the root jobs of 128 KiB or more (a
   1 MiB .bss array is one).
   The test runs itself as a child (`core_gctrace_fields child`). */
#include "core_util.h"

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

static int child_main(void) {
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

typedef struct {
  char out[4096];
  char *err;
  int status;
} result_t;

static char *read_all(int fd) {
  size_t cap = 65536, len = 0;
  char *buf = (char *)malloc(cap);
  CHECK(buf != NULL);
  for (;;) {
    if (len + 1 >= cap) {
      cap *= 2;
      buf = (char *)realloc(buf, cap);
      CHECK(buf != NULL);
    }
    ssize_t n = read(fd, buf + len, cap - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    CHECK(n >= 0);
    if (n == 0) break;
    len += (size_t)n;
  }
  buf[len] = 0;
  return buf;
}

/* Run `self child` with CGC_DEBUG=debug and no CGC_PERCENT/CGC_MEMLIMIT. */
static result_t run_child(const char *self, const char *debug) {
  size_t n = 0;
  while (environ[n]) n++;
  char **envp = (char **)calloc(n + 2, sizeof(char *));
  CHECK(envp != NULL);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "CGC_DEBUG=", 10) && strncmp(environ[i], "CGC_PERCENT=", 12) &&
        strncmp(environ[i], "CGC_MEMLIMIT=", 13))
      envp[k++] = environ[i];
  char setting[256];
  snprintf(setting, sizeof setting, "CGC_DEBUG=%s", debug);
  envp[k++] = setting;
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
    char *const argv[] = {(char *)self, (char *)"child", NULL};
    execve(self, argv, envp);
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  result_t r;
  memset(&r, 0, sizeof r);
  char *o = read_all(out[0]);
  snprintf(r.out, sizeof r.out, "%s", o);
  free(o);
  r.err = read_all(err[0]);
  close(out[0]);
  close(err[0]);
  CHECK(waitpid(pid, &r.status, 0) == pid);
  free(envp);
  CHECKF(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "CGC_DEBUG=%s: child failed (status 0x%x); stderr:\n%s",
         debug, r.status, r.err);
  return r;
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

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "child") == 0) return child_main();
  char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  CHECK(len > 0);
  self[len] = 0;

  result_t r = run_child(self, "gctrace=1");
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

  r = run_child(self, "gctrace=2");
  CHECKF(strstr(r.err, "root job") != NULL, "gctrace=2 printed no root job (a 1 MiB .bss array is scanned)");
  free(r.err);
  printf("core_gctrace_fields: ok\n");
  return 0;
}
