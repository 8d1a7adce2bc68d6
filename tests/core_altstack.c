/* A thread stopped while it runs a signal handler on an alternate signal
   stack (sigaltstack): the frames the signal interrupted stay roots.  The
   alternate stack is mmap'd memory, or a local array of the thread's own
   outer frame, so that it lies inside the primary stack above the
   interrupted frames (which a scan from the stop point up missed: half of
   the objects they held were freed).  Run as `core_altstack mmap|local`. */
#include "core_util.h"

#include <sys/mman.h>

enum { NOBJ = 256, ALT = 64 << 10 };
static atomic_int in_handler, release_handler;
static int use_local;

static void handler(int sig) {
  (void)sig;
  atomic_store(&in_handler, 1);
  while (!atomic_load(&release_handler)) sched_yield(); /* collections run meanwhile */
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
  CHECK(raise(SIGUSR1) == 0);
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

int main(int argc, char **argv) {
  CHECKF(argc == 2 && (strcmp(argv[1], "mmap") == 0 || strcmp(argv[1], "local") == 0), "usage: core_altstack mmap|local");
  test_seed();
  cgc_init();
  use_local = strcmp(argv[1], "local") == 0;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sa.sa_flags = SA_ONSTACK;
  CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, thread_main, NULL) == 0);
  while (!atomic_load(&in_handler)) sched_yield();
  for (int i = 0; i < 5; i++) {
    cgc_collect();
    for (int k = 0; k < 20000; k++) consume(cgc_alloc_noscan(200)); /* reuses whatever was freed */
  }
  atomic_store(&release_handler, 1);
  CHECK(pthread_join(t, NULL) == 0);
  printf("core_altstack %s: ok\n", argv[1]);
  return 0;
}
