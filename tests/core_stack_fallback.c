/* A thread's stack bounds when pthread_getattr_np fails (it allocates, so it
   does under memory pressure: RLIMIT_AS, a cgroup limit): cgc finds the
   stack from /proc/self/maps instead (the mapping that holds the thread's
   frame), without a warning, and the thread's frames are roots as usual.
   This program stands in front of the C library's pthread_getattr_np and
   fails it with ENOMEM for the threads it creates; their stderr output is
   caught in a file.  Skipped under AddressSanitizer, whose own thread setup
   calls pthread_getattr_np and cannot do without it. */
#include "core_util.h"

#include <dlfcn.h>

static atomic_int fail_getattr;

int pthread_getattr_np(pthread_t th, pthread_attr_t *attr) {
  static int (*real)(pthread_t, pthread_attr_t *);
  if (atomic_load(&fail_getattr) && core_gettid() != getpid()) return ENOMEM;
  if (!real) real = (int (*)(pthread_t, pthread_attr_t *))dlsym(RTLD_NEXT, "pthread_getattr_np");
  return real(th, attr);
}

enum { NOBJ = 64, DEPTH = 64 };

/* Objects held by frames all along a deep call chain; a collection at the
   bottom, then every object must be intact. */
static __attribute__((noinline)) int deep(int level) {
  void *volatile objs[NOBJ / DEPTH + 1];
  char pad[2048];
  memset(pad, level, sizeof pad);
  unsigned char *p = cgc_alloc_noscan(300);
  CHECK(p != NULL);
  memset(p, level & 0xff, 300);
  objs[0] = p;
  int bad = 0;
  if (level + 1 < DEPTH) {
    bad = deep(level + 1);
  } else {
    for (int i = 0; i < 3; i++) {
      cgc_collect();
      for (int k = 0; k < 20000; k++) consume(cgc_alloc_noscan(300)); /* reuses whatever was freed */
    }
  }
  p = objs[0];
  if (cgc_base(p) != p || p[0] != (level & 0xff) || p[299] != (level & 0xff)) bad++;
  consume(pad);
  return bad;
}

static void *thread_main(void *arg) {
  (void)arg;
  int bad = deep(0);
  CHECKF(bad == 0, "%d of %d objects held by the frames of a thread whose stack came from /proc/self/maps were freed",
         bad, DEPTH);
  return NULL;
}

int main(void) {
  test_seed();
  cgc_init();
  if (CORE_ASAN) {
    printf("core_stack_fallback: ok (skipped under AddressSanitizer)\n");
    return 0;
  }
  char path[] = "/tmp/cgc-core-stack-fallback-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  unlink(path);
  fflush(stderr);
  int saved = dup(2);
  CHECK(saved >= 0 && dup2(fd, 2) == 2);
  atomic_store(&fail_getattr, 1);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, thread_main, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  atomic_store(&fail_getattr, 0);
  fflush(stderr);
  CHECK(dup2(saved, 2) == 2);
  close(saved);
  char buf[4096];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  CHECK(n >= 0);
  buf[n] = 0;
  close(fd);
  CHECKF(strstr(buf, "cannot find the stack") == NULL, "with pthread_getattr_np failing, cgc warned:\n%s", buf);
  printf("core_stack_fallback: ok\n");
  return 0;
}
