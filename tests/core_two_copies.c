/* A program that does not link cgc loads two plugins, each with libcgc.a
   inside: two copies of cgc would share the suspend signal, each one's
   handler ignoring the other's threads (the first collection with another
   thread aborted, blaming the program for replacing the handler).  The
   second copy refuses to start, naming the first (must-abort test). */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>

#include "check.h"

typedef uint64_t (*work_fn)(int);

int main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  void *a = dlopen(CORE_PLUGIN_A, RTLD_NOW | RTLD_LOCAL);
  CHECKF(a != NULL, "dlopen: %s", dlerror());
  work_fn wa = (work_fn)(uintptr_t)dlsym(a, "plugin_work");
  CHECK(wa != NULL && wa(100) == 100ull * 99 / 2);
  void *b = dlopen(CORE_PLUGIN_B, RTLD_NOW | RTLD_LOCAL); /* aborts */
  CHECKF(b == NULL, "a second copy of cgc was loaded");
  printf("core_two_copies: the second plugin did not load: %s\n", dlerror());
  return 1;
}
