/* A program that gets libcgc.so through another library (a language runtime
   built on cgc) and calls no cgc function itself: the C library comes first
   in the lookup order, so nothing after cgc defines pthread_create.  cgc
   used to abort at start-up as if the program were fully static. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "check.h"

uint64_t plugin_work(int n); /* core_plugin_mod.c, built as the runtime library */

static void *worker(void *arg) {
  (void)arg;
  CHECK(plugin_work(1000) == 1000ull * 999 / 2);
  return NULL;
}

int main(void) {
  CHECK(plugin_work(1000) == 1000ull * 999 / 2);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, worker, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  printf("core_indirect: ok\n");
  return 0;
}
