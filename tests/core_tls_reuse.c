/* Thread-local blocks and reused module ids: a thread uses the TLS of a
   dlopen'ed library with a small block, then sleeps; the library is
   unloaded, and one with an 8 MiB block is loaded and gets the same module
   id.  The sleeping thread's vector still points at its small block (it has
   not used TLS since), which must not be scanned as 8 MiB: collections
   must not fault. */
#include "core_util.h"

#include <dlfcn.h>

#if !defined(CORE_TLS_SMALL) || !defined(CORE_TLS_LARGE)
#error "CORE_TLS_SMALL and CORE_TLS_LARGE must name the test modules"
#endif

static core_event_t ev_used = CORE_EVENT_INIT, ev_done = CORE_EVENT_INIT;

static void *sleeper(void *arg) {
  char *(*touch)(void) = (char *(*)(void))dlsym(arg, "core_tls_small_touch");
  CHECK(touch != NULL);
  CHECK(touch() != NULL);
  event_set(&ev_used);
  event_wait(&ev_done); /* uses no TLS of the libraries until the end */
  return NULL;
}

int main(void) {
  test_seed();
  cgc_init();
  void *hs = dlopen(CORE_TLS_SMALL, RTLD_NOW);
  CHECKF(hs != NULL, "%s", dlerror());
  size_t id_small = 0, id_large = 0;
  CHECK(dlinfo(hs, RTLD_DI_TLS_MODID, &id_small) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, sleeper, hs) == 0);
  event_wait(&ev_used);
  cgc_collect();
  CHECK(dlclose(hs) == 0);
  void *hl = dlopen(CORE_TLS_LARGE, RTLD_NOW);
  CHECKF(hl != NULL, "%s", dlerror());
  CHECK(dlinfo(hl, RTLD_DI_TLS_MODID, &id_large) == 0);
  char *(*touch)(void) = (char *(*)(void))dlsym(hl, "core_tls_large_touch");
  CHECK(touch != NULL && touch() != NULL);
  printf("module ids: small %zu, large %zu%s\n", id_small, id_large,
         id_small == id_large ? " (reused)" : " (not reused: nothing to test on this system)");
  for (int i = 0; i < 3; i++) cgc_collect();
  event_set(&ev_done);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(dlclose(hl) == 0);
  printf("core_tls_reuse: ok\n");
  return 0;
}
