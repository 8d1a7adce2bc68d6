/* A thread stopped while it runs a signal handler on an alternate signal
   stack (sigaltstack): the handler's own frame, on the alternate stack, and
   the frames the signal interrupted stay roots.  The alternate stack is
   mmap'd memory, or a local array of the thread's own outer frame, so that
   it lies inside the primary stack above the interrupted frames (which a
   scan from the stop point up missed: half of the objects they held were
   freed).  In `main` it is mmap'd memory and the thread is the main thread,
   whose primary stack may grow down further than it is mapped yet, while
   another thread collects.  In `coroutine` the thread runs on a stack of its
   own (mmap'd, entered with swapcontext, no signal involved) while it is
   stopped: that stack, from the stop to the end of its mapping, is scanned,
   though the thread also has an alternate signal stack (not in use).
   Run as `core_altstack mmap|local|main|coroutine`. */
#include "core_util.h"

#include <sys/mman.h>
#include <ucontext.h>

enum { NOBJ = 256, ALT = 64 << 10 };
static atomic_int in_handler, release_handler;
static int use_local;

static unsigned char handed_byte(int i) { return (unsigned char)(i % 255 + 1); }
static void *volatile handed[NOBJ]; /* objects for the handler, until it takes them */

static void handler(int sig) {
  (void)sig;
  void *volatile mine[NOBJ]; /* on the alternate stack: then the only references */
  for (int i = 0; i < NOBJ; i++) {
    mine[i] = handed[i];
    handed[i] = NULL;
  }
  atomic_store(&in_handler, 1);
  while (!atomic_load(&release_handler)) sched_yield(); /* collections run meanwhile */
  for (int i = 0; i < NOBJ; i++) handed[i] = mine[i]; /* back, for deep to check */
}

/* Objects held only by this frame, then a signal handled on the alternate
   stack while main collects; afterwards every object must be live and
   intact. */
static __attribute__((noinline)) void deep(void) {
  void *volatile objs[NOBJ];
  for (int i = 0; i < NOBJ; i++) {
    unsigned char *p = cgc_alloc_noscan(200);
    CHECK(p != NULL);
    memset(p, i & 0xff, 200);
    objs[i] = p;
  }
  for (int i = 0; i < NOBJ; i++) {
    unsigned char *p = cgc_alloc_noscan(200);
    CHECK(p != NULL);
    memset(p, handed_byte(i), 200);
    handed[i] = p;
  }
  CHECK(raise(SIGUSR1) == 0);
  int freed = 0;
  for (int i = 0; i < NOBJ; i++) {
    unsigned char *p = handed[i];
    if (cgc_base(p) != p || p[0] != handed_byte(i) || p[199] != handed_byte(i)) freed++;
    handed[i] = NULL;
  }
  CHECKF(freed == 0, "%d of %d objects held by the handler's frame were freed", freed, NOBJ);
  int bad = 0;
  for (int i = 0; i < NOBJ; i++) {
    unsigned char *p = objs[i];
    if (cgc_base(p) != p || p[0] != (i & 0xff) || p[199] != (i & 0xff)) bad++;
  }
  CHECKF(bad == 0, "%d of %d objects held by the interrupted frame were freed", bad, NOBJ);
}

static void *thread_main(void *arg) {
  (void)arg;
  char local[ALT]; /* the alternate stack, in this frame (use_local) */
  stack_t ss = {0};
  ss.ss_size = ALT;
  if (use_local) {
    ss.ss_sp = local;
  } else {
    ss.ss_sp = mmap(NULL, ALT, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(ss.ss_sp != MAP_FAILED);
  }
  CHECK(sigaltstack(&ss, NULL) == 0);
  deep();
  ss.ss_flags = SS_DISABLE;
  CHECK(sigaltstack(&ss, NULL) == 0);
  consume(local);
  return NULL;
}

/* coroutine: objects held only by the coroutine's frame while collections
   run; afterwards every one must be live and intact. */
static ucontext_t co_ctx, co_back;
static atomic_int co_freed;
static void coroutine(void) {
  void *volatile mine[NOBJ];
  for (int i = 0; i < NOBJ; i++) {
    unsigned char *p = cgc_alloc_noscan(200);
    CHECK(p != NULL);
    memset(p, handed_byte(i), 200);
    mine[i] = p;
  }
  atomic_store(&in_handler, 1);
  while (!atomic_load(&release_handler)) sched_yield(); /* collections run meanwhile */
  int freed = 0;
  for (int i = 0; i < NOBJ; i++) {
    unsigned char *p = mine[i];
    if (cgc_base(p) != p || p[0] != handed_byte(i) || p[199] != handed_byte(i)) freed++;
  }
  atomic_store(&co_freed, freed);
}

/* The thread also has an alternate signal stack that it is not using: the
   scan ends at the end of the coroutine stack's mapping, not at the end of
   the alternate stack.  The coroutine stack lies between two inaccessible
   pages, so a scan past its end faults. */
static void *coroutine_thread(void *arg) {
  (void)arg;
  size_t page = (size_t)sysconf(_SC_PAGESIZE), size = 256 << 10;
  stack_t ss = {0};
  ss.ss_size = ALT;
  ss.ss_sp = mmap(NULL, ALT, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(ss.ss_sp != MAP_FAILED);
  CHECK(sigaltstack(&ss, NULL) == 0);
  char *map = mmap(NULL, size + 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(map != MAP_FAILED);
  CHECK(mprotect(map, page, PROT_NONE) == 0);
  CHECK(mprotect(map + page + size, page, PROT_NONE) == 0);
  CHECK(getcontext(&co_ctx) == 0);
  co_ctx.uc_stack.ss_sp = map + page;
  co_ctx.uc_stack.ss_size = size;
  co_ctx.uc_link = &co_back;
  makecontext(&co_ctx, coroutine, 0);
  CHECK(swapcontext(&co_back, &co_ctx) == 0);
  CHECKF(atomic_load(&co_freed) == 0, "%d of %d objects held by the coroutine's frame were freed",
         atomic_load(&co_freed), NOBJ);
  ss.ss_flags = SS_DISABLE;
  CHECK(sigaltstack(&ss, NULL) == 0);
  CHECK(munmap(map, size + 2 * page) == 0);
  CHECK(munmap(ss.ss_sp, ALT) == 0);
  return NULL;
}

/* Collect while the other thread sits in the handler, then release it. */
static void collect_in_handler(void) {
  while (!atomic_load(&in_handler)) sched_yield();
  for (int i = 0; i < 5; i++) {
    cgc_collect();
    for (int k = 0; k < 20000; k++) consume(cgc_alloc_noscan(200)); /* reuses whatever was freed */
  }
  atomic_store(&release_handler, 1);
}

static void *collector_main(void *arg) {
  (void)arg;
  collect_in_handler();
  return NULL;
}

int main(int argc, char **argv) {
  CHECKF(argc == 2 && (strcmp(argv[1], "mmap") == 0 || strcmp(argv[1], "local") == 0 || strcmp(argv[1], "main") == 0 ||
                       strcmp(argv[1], "coroutine") == 0),
         "usage: core_altstack mmap|local|main|coroutine");
  test_seed();
  cgc_init();
  use_local = strcmp(argv[1], "local") == 0;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sa.sa_flags = SA_ONSTACK;
  CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
  pthread_t t;
  if (strcmp(argv[1], "coroutine") == 0) {
    CHECK(pthread_create(&t, NULL, coroutine_thread, NULL) == 0);
    collect_in_handler();
  } else if (strcmp(argv[1], "main") == 0) {
    CHECK(pthread_create(&t, NULL, collector_main, NULL) == 0);
    thread_main(NULL);
  } else {
    CHECK(pthread_create(&t, NULL, thread_main, NULL) == 0);
    collect_in_handler();
  }
  CHECK(pthread_join(t, NULL) == 0);
  printf("core_altstack %s: ok\n", argv[1]);
  return 0;
}
