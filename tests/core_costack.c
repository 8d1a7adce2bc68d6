/* A thread running on a coroutine stack that is an object of the collected
   heap (cgc_alloc_noscan, kept by a global): while it runs there, the
   collector scans that stack from the thread's stack pointer to the end of
   the object, not to the end of the heap mapping holding it.  An object
   held only by the coroutine's frame survives collections, and garbage that
   points to garbage elsewhere in the heap dies (scanned through to the end
   of the mapping, 938 of 2000 such objects survived).  `large`: the stack
   is a large object (256 KiB); `small`: a small one (24 KiB). */
#include "core_util.h"

#include <ucontext.h>

enum { N = 2000 };
static size_t stack_size;
static void *volatile g_stack;
static _Atomic int on_co, release_co;
static _Atomic uintptr_t held_hidden;
static ucontext_t co, back;

static __attribute__((noinline)) void coroutine_body(void) {
  unsigned char *volatile mine = cgc_alloc(100); /* only in this frame */
  memset(mine, 0x6b, 100);
  atomic_store(&held_hidden, hide_ptr(mine));
  atomic_store(&on_co, 1);
  while (!atomic_load(&release_co)) sched_yield();
  for (int i = 0; i < 100; i++) CHECKF(mine[i] == 0x6b, "the object held by the coroutine's frame was reused");
}

static void coroutine(void) { coroutine_body(); }

static void *thread_main(void *a) {
  (void)a;
  CHECK(getcontext(&co) == 0);
  co.uc_stack.ss_sp = g_stack;
  co.uc_stack.ss_size = stack_size;
  co.uc_link = &back;
  makecontext(&co, coroutine, 0);
  CHECK(swapcontext(&back, &co) == 0);
  return NULL;
}

static cgc_weak_t weak[N];

static __attribute__((noinline)) void make_garbage(void) {
  for (int i = 0; i < N; i++) {
    void **p = cgc_alloc(4096);
    CHECK(p != NULL);
    p[0] = cgc_alloc(64); /* garbage that points to garbage */
    CHECK(p[0] != NULL);
    weak[i] = cgc_weak_make(p[0]);
  }
}

static __attribute__((noinline)) int count_alive(void) {
  int n = 0;
  for (int i = 0; i < N; i++) n += cgc_weak_value(weak[i]) != NULL;
  return n;
}

static void run(size_t size) {
  stack_size = size;
  g_stack = cgc_alloc_noscan(size);
  CHECK(g_stack != NULL);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, thread_main, NULL) == 0);
  while (!atomic_load(&on_co)) sched_yield();
  make_garbage();
  clear_stack();
  cgc_collect();
  cgc_collect();
  int alive = count_alive();
  void *held = reveal_ptr(atomic_load(&held_hidden));
  CHECKF(cgc_base(held) == held, "the object held only by the coroutine's frame (%p) was collected", held);
  CHECKF(alive <= N / 20, "%d of %d objects pointed to only by garbage survived two collections while a thread ran "
         "on a coroutine stack of %zu bytes in the collected heap", alive, N, size);
  atomic_store(&release_co, 1);
  CHECK(pthread_join(t, NULL) == 0);
}

static void large(void) { run(256 << 10); }
static void small(void) { run(24 << 10); }

static const test_case_t cases[] = {{"large", large}, {"small", small}};

int main(int argc, char **argv) {
  test_seed();
  cgc_init();
  return RUN_NAMED_CASE(argc, argv, "core_costack", cases);
}
