/* Once every handle of the handle range is in use, cgc_arena_new takes the
   handle freed longest ago (docs/free.md section 2): so a handle freed
   recently stays freed, and a call through it is caught, for as long as
   possible.  Fill the range, free three handles in a known order, and the
   next three arenas must get them back in that order; a call through the
   one not reused yet still reports the freed arena (child process). */
#include <errno.h>
#include "free_util.h"

static cgc_arena_t *g_stale;
static void alloc_on_stale(void *arg) {
  (void)arg;
  /* Silence the expected report in the test log. */
  if (!freopen("/dev/null", "w", stderr)) _exit(3);
  consume(cgc_arena_alloc(g_stale, 32));
}

int main(void) {
  cgc_init();
  size_t cap = 1 << 20, n = 0;
  cgc_arena_t **as = malloc(cap * sizeof *as);
  CHECK(as != NULL);
  for (;;) {
    CHECKF(n < cap, "%zu arenas and no ENOMEM", n);
    errno = 0;
    cgc_arena_t *a = cgc_arena_new();
    if (!a) {
      CHECKF(errno == ENOMEM, "cgc_arena_new: NULL with errno %d", errno);
      break;
    }
    as[n++] = a;
  }
  CHECKF(n >= 1000, "only %zu arenas at once", n);
  const size_t order[3] = {500, 300, 700};
  for (int i = 0; i < 3; i++) cgc_arena_free(as[order[i]]);
  for (int i = 0; i < 3; i++) {
    cgc_arena_t *a = cgc_arena_new();
    CHECKF(a == as[order[i]], "new arena %d is %p, not the handle freed longest ago %p (freed %d-th)", i,
           (void *)a, (void *)as[order[i]], i + 1);
    CHECK(cgc_arena_alloc(a, 32) != NULL);
    if (i == 1) {
      /* as[order[2]] is still freed: using it aborts. */
      g_stale = as[order[2]];
      CHECKF(in_child(alloc_on_stale, NULL) == SIGABRT, "allocation from a freed arena did not abort");
    }
  }
  for (size_t i = 0; i < n; i++) cgc_arena_free(as[i]);
  free(as);
  printf("arena_handle_reuse: %zu handles: ok\n", n);
  return 0;
}
