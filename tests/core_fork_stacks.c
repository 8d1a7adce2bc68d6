/* A fork child whose cgc threads start on stacks the parent's other threads
   left (the C library reuses them): under AddressSanitizer those stacks
   carry the parent threads' poisoning, which cgc must clear for its own
   threads (they start past the sanitizer's pthread_create interceptor).
   GCC's AddressSanitizer reported it here before the fix; Clang's runtime
   happened not to.  Without a sanitizer it checks that the child's collections and cleanups
   work while the parent's threads sat in deep frames at the fork. */
#include "core_util.h"

#include <sys/wait.h>

enum { NBLOCK = 4 };
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int ready, stop;

static void *blocker(void *a) {
  volatile char buf[3][4000]; /* a deep frame, with redzones under ASan */
  for (int i = 0; i < 3; i++) memset((char *)buf[i], 1, sizeof buf[i]);
  pthread_mutex_lock(&lock);
  ready++;
  pthread_cond_broadcast(&cond);
  while (!stop) pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  return (void *)(uintptr_t)buf[1][7];
}

static atomic_int ran;
static void count(void *a) {
  (void)a;
  atomic_fetch_add(&ran, 1);
}
static __attribute__((noinline)) void garbage(int n) {
  for (int i = 0; i < n; i++) cgc_add_cleanup(cgc_alloc(64), count, NULL);
}

int main(void) {
  test_seed();
  cgc_init();
  pthread_t t[NBLOCK];
  for (int i = 0; i < NBLOCK; i++) CHECK(pthread_create(&t[i], NULL, blocker, NULL) == 0);
  pthread_mutex_lock(&lock);
  while (ready < NBLOCK) pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    for (int r = 0; r < 5; r++) {
      garbage(20000);
      clear_stack();
      cgc_collect();
    }
    cgc_wait_cleanups();
    CHECKF(atomic_load(&ran) >= 50000, "only %d of 100000 cleanups ran in the child", atomic_load(&ran));
    _exit(0);
  }
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  pthread_mutex_lock(&lock);
  stop = 1;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&lock);
  for (int i = 0; i < NBLOCK; i++) CHECK(pthread_join(t[i], NULL) == 0);
  CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child failed (status %d)", st);
  printf("core_fork_stacks: ok\n");
  return 0;
}
