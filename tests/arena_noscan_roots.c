/* Noscan arena memory keeps nothing alive, in every chunk of a live arena:
   a chunk of its own (a big request) and a regular chunk the noscan bump
   region has left behind, not only the current one.  The scanned
   counterparts, made the same way, keep their targets. */
#include "free_util.h"

static cgc_arena_t *g_arena;
static cgc_weak_t g_weak[4]; /* [noscan][own chunk] */

static void stash(void *arg) {
  (void)arg;
  for (int noscan = 0; noscan < 2; noscan++) {
    void *(*aa)(cgc_arena_t *, size_t) = noscan ? cgc_arena_alloc_noscan : cgc_arena_alloc;
    /* A chunk of its own: far above a quarter of the first chunk size. */
    void **own = aa(g_arena, 200000);
    CHECK(own != NULL);
    void *t = cgc_alloc(64);
    own[1000] = t;
    g_weak[noscan * 2 + 1] = cgc_weak_make(t);
    /* A regular chunk, then enough to move the bump region to the next. */
    void **reg = aa(g_arena, 64);
    CHECK(reg != NULL);
    t = cgc_alloc(64);
    reg[3] = t;
    g_weak[noscan * 2] = cgc_weak_make(t);
    for (int i = 0; i < 3000; i++) CHECK(aa(g_arena, 64) != NULL); /* 192 KiB: past the 64 KiB chunk */
    t = NULL;
  }
}

int main(void) {
  cgc_init();
  g_arena = cgc_arena_new();
  CHECK(g_arena != NULL);
  in_thread(stash, NULL);
  int alive[4] = {0, 0, 0, 0};
  for (int round = 0; round < 3; round++) {
    clear_stack();
    cgc_collect();
    for (int i = 0; i < 4; i++) alive[i] = cgc_weak_value(g_weak[i]) != NULL;
    if (!alive[2] && !alive[3]) break; /* a stale word may keep one a round longer */
  }
  CHECKF(alive[0] && alive[1], "scanned arena memory did not keep its targets (regular %d, own chunk %d)",
         alive[0], alive[1]);
  CHECKF(!alive[2], "noscan arena memory in a left-behind regular chunk kept its target alive");
  CHECKF(!alive[3], "noscan arena memory in a chunk of its own kept its target alive");
  cgc_arena_free(g_arena);
  printf("arena_noscan_roots: ok\n");
  return 0;
}
