/* A program that does not link cgc loads a plugin that does (dlopen), uses
   it from a thread, and unloads it while that thread still runs.  libcgc
   must stay loaded (it is linked with -z nodelete): its threads, its signal
   handler and its thread-exit destructor outlive the plugin.  The thread
   then exits (cgc's destructor runs), and a stray suspend signal arrives,
   which cgc's handler ignores; before, both crashed in unmapped code.
   Built twice: with a plugin linked against libcgc.so, and with one that
   has libcgc.a inside (CORE_PLUGIN_KEPT names the object that must stay
   mapped: cgc pins its own object, so the plugin needs no -z nodelete). */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h" /* not testutil.h: this program does not link cgc */

#ifndef CORE_PLUGIN_KEPT
#define CORE_PLUGIN_KEPT "/libcgc.so"
#endif

typedef uint64_t (*work_fn)(int);
static work_fn work;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int stage; /* 1: the thread used the plugin; 2: the plugin is unloaded */

static void *user(void *arg) {
  (void)arg;
  uint64_t sum = work(1000);
  CHECKF(sum == 1000ull * 999 / 2, "plugin_work: checksum %llu", (unsigned long long)sum);
  pthread_mutex_lock(&lock);
  stage = 1;
  pthread_cond_broadcast(&cond);
  while (stage < 2) pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  return NULL; /* cgc's thread-exit destructor runs now */
}

static int libcgc_mapped(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  CHECK(f != NULL);
  char line[512];
  int found = 0;
  while (fgets(line, sizeof line, f))
    if (strstr(line, CORE_PLUGIN_KEPT)) found = 1;
  fclose(f);
  return found;
}

int main(void) {
  void *h = dlopen(CORE_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
  CHECKF(h != NULL, "dlopen: %s", dlerror());
  work = (work_fn)(uintptr_t)dlsym(h, "plugin_work");
  CHECK(work != NULL);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, user, NULL) == 0);
  pthread_mutex_lock(&lock);
  while (stage < 1) pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);

  CHECK(dlclose(h) == 0);
  CHECKF(libcgc_mapped(), "%s was unloaded with the plugin", CORE_PLUGIN_KEPT);
  pthread_mutex_lock(&lock);
  stage = 2;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&lock);
  CHECK(pthread_join(t, NULL) == 0);
  raise(SIGPWR); /* cgc's default suspend signal, stray: ignored */
  printf("core_plugin: ok (%s stays)\n", CORE_PLUGIN_KEPT);
  return 0;
}
