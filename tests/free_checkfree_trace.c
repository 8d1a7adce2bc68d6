/* CGC_DEBUG=checkfree=1,gctrace=1 (set by tests/free.cmake): a collection
   that finds a freed object still referenced from outside the stacks, but
   asked for by another thread than the one that freed it, does not report
   it yet (the freeing thread may be about to drop the reference; docs/free.md
   section 4); with gctrace=1 it says so, naming the object and the place of
   the reference, and keeps the object quarantined.  Once the reference is
   dropped the program runs on clean. */
#include <sys/mman.h>

#include "free_util.h"

void *volatile g_dangling;
static char *expect; /* shared with the child */

static void *collect_once(void *arg) {
  (void)arg;
  cgc_collect();
  return NULL;
}

static void pending_reference(void) {
  void *p = cgc_alloc(64);
  CHECK(p != NULL);
  g_dangling = p;
  snprintf(expect, 512,
           "checkfree: object %p (64 bytes) freed with cgc_free is still referenced from %p, but its freeing thread "
           "may be about to drop it; kept in quarantine\n",
           p, (const void *)&g_dangling);
  cgc_free(p);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, collect_once, NULL) == 0); /* not the freeing thread's own collection */
  CHECK(pthread_join(t, NULL) == 0);
  g_dangling = NULL; /* the store a correct program makes after the free */
  cgc_collect();
  cgc_collect();
}

int main(void) {
  test_seed();
  const char *d = getenv("CGC_DEBUG");
  CHECKF(d && strstr(d, "checkfree=1") && strstr(d, "gctrace=1"), "run with CGC_DEBUG=checkfree=1,gctrace=1");
  cgc_init();
  expect = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(expect != MAP_FAILED);
  int st;
  const char *out = child_stderr(pending_reference, &st);
  CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child did not run clean (status 0x%x); output:\n%s", st, out);
  CHECKF(expect[0] && strstr(out, expect) != NULL, "expected\n  %sin\n%s", expect, out);
  CHECKF(strstr(out, "use after free") == NULL, "a reference dropped in time was reported:\n%s", out);
  printf("free_checkfree_trace: ok\n");
  return 0;
}
