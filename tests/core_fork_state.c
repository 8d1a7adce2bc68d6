/* The state a fork child starts from (docs/threads.md, "fork"); run with
   CGC_DEBUG=markworkers=4 (tests/core.cmake).
   - Spans that another thread of the parent was allocating from go back to
     the central lists: the objects the vanished thread made are reclaimed by
     the child's collections and their slots handed out again to the child's
     allocations of the same size class.
   - The parent's mark helpers did not come along: the child's first
     collection starts its own, as many as the parent had (the child's
     threads then number at least the mark workers). */
#include "core_util.h"

#include <dirent.h>
#include <sys/wait.h>

enum { NOBJ = 4, SIZE = 3072 }; /* a size class nothing else here uses */

static uintptr_t g_hidden[NOBJ]; /* the other thread's objects, hidden */
static int g_pipe[2];
static atomic_int g_ready;

static void *holder(void *arg) {
  (void)arg;
  for (int i = 0; i < NOBJ; i++) {
    unsigned char *p = cgc_alloc(SIZE);
    CHECK(p != NULL);
    memset(p, 0x77, SIZE);
    g_hidden[i] = hide_ptr(p);
  }
  atomic_store(&g_ready, 1);
  char c;
  CHECK(read(g_pipe[0], &c, 1) == 1); /* until the parent has forked */
  return NULL;
}

static int count_tasks(void) {
  DIR *d = opendir("/proc/self/task");
  CHECK(d != NULL);
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

static __attribute__((noinline)) int child(void) {
  clear_stack();
  cgc_collect(); /* the holder's objects are unreachable in the child */
  cgc_stats_t st;
  cgc_read_stats(&st);
  int tasks = count_tasks();
  if (st.mark_workers != 4 || tasks < 4) {
    fprintf(stderr, "core_fork_state: after the child's first collection: %d threads, %llu mark workers\n", tasks,
            (unsigned long long)st.mark_workers);
    return 3;
  }
  for (int n = 0; n < 2000; n++) {
    uintptr_t p = (uintptr_t)cgc_alloc(SIZE);
    if (!p) return 2;
    for (int i = 0; i < NOBJ; i++)
      if (p == (uintptr_t)reveal_ptr(g_hidden[i])) return 0; /* reused */
  }
  fprintf(stderr, "core_fork_state: the child never reused the slots of the span another thread of the parent "
                  "allocated from\n");
  return 1;
}

int main(void) {
  test_seed();
  cgc_init();
  const char *d = getenv("CGC_DEBUG");
  CHECKF(d && strstr(d, "markworkers=4"), "run with CGC_DEBUG=markworkers=4");
  CHECK(pipe(g_pipe) == 0);
  cgc_collect(); /* the parent's helpers are running */
  CHECK(count_tasks() >= 4);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, holder, NULL) == 0);
  while (!atomic_load(&g_ready)) sched_yield();
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) _exit(child());
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECK(write(g_pipe[1], "x", 1) == 1);
  CHECK(pthread_join(t, NULL) == 0);
  CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
  printf("core_fork_state: ok\n");
  return 0;
}
