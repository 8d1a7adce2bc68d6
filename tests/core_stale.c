/* Stale words in the stack below a collection's caller: stale copies of a
   live object's address lie where cgc_collect's register save area goes;
   the heap's first object, dropped, must die.  A 32-bit zero that setjmp
   wrote over such a word's low half made the heap's first address, and
   kept that object, with all it reached, alive.  (Stale copies of a dropped
   object's own address there cannot be promised away: the collector's
   entry frame may keep a word of alignment padding, as any frame may.) */
#include "core_util.h"

#define K 0xA5A5A5A5A5A5A5A5ull
static volatile uintptr_t hidden_first, hidden_dead;

/* The heap's first object, holding 1000 more. */
static __attribute__((noinline)) void build_first(void) {
  void **t = cgc_alloc(1 << 20);
  CHECK(t != NULL);
  for (int i = 0; i < 1000; i++) t[i] = cgc_alloc_noscan(2048);
  hidden_first = (uintptr_t)t ^ K;
}

static __attribute__((noinline)) void build_dead(void) {
  void **d = cgc_alloc(1 << 20);
  CHECK(d != NULL);
  for (int i = 0; i < 1000; i++) d[i] = cgc_alloc_noscan(4096);
  hidden_dead = (uintptr_t)d ^ K;
}

/* An ordinary call that once had a heap address all over its frame. */
static __attribute__((noinline)) void spray(uintptr_t v) {
  volatile uintptr_t a[2048];
  for (int i = 0; i < 2048; i++) a[i] = v;
  consume((void *)(uintptr_t)a[7]);
}

static __attribute__((noinline)) bool alive(volatile uintptr_t *hidden) {
  return cgc_base((void *)(*hidden ^ K)) != NULL;
}

int main(int argc, char **argv) {
  CHECKF(argc == 2 && (strcmp(argv[1], "live") == 0 || strcmp(argv[1], "dead") == 0), "usage: core_stale live|dead");
  test_seed();
  cgc_collect(); /* binds the calls a collection makes (lazy binding saves registers on the stack) */
  build_first();
  static void *keep;
  keep = cgc_alloc(64);
  bool live = strcmp(argv[1], "live") == 0;
  if (live) {
    clear_stack();
    spray((uintptr_t)keep);
  } else {
    build_dead();
    clear_stack();
    spray(hidden_dead ^ K);
  }
  cgc_collect();
  cgc_collect();
  /* The address is rebuilt only now, out of the hidden copy. */
  CHECKF(!alive(live ? &hidden_first : &hidden_dead), "the dropped object is alive (%s)", argv[1]);
  printf("core_stale %s: ok\n", argv[1]);
  return 0;
}
