/* __thread variables of a library loaded later with dlopen are roots, for
   every thread: the main thread, a thread that existed before the dlopen, and
   a thread created after it. */
#include "core_util.h"

#include <dlfcn.h>

#ifndef CORE_DLMOD_PATH
#error "CORE_DLMOD_PATH must name the test module"
#endif

typedef void **(*slot_fn)(void);
static slot_fn f_tls, f_tls_data, f_tls_big;

static const size_t SZ[3] = {40, 1800, 36000};

static __attribute__((noinline)) void fill(hidden_obj_t h[3], uint64_t seed) {
  h[0] = make_obj(f_tls(), SZ[0], seed);
  h[1] = make_obj(f_tls_data(), SZ[1], seed + 1);
  h[2] = make_obj(f_tls_big(), SZ[2], seed + 2);
}

static void check(const hidden_obj_t h[3], const char *who) {
  char what[160];
  snprintf(what, sizeof what, "object referenced from a dlopen'ed library's .tbss variable (%s)", who);
  verify_obj(h[0], what);
  snprintf(what, sizeof what, "object referenced from a dlopen'ed library's .tdata variable (%s)", who);
  verify_obj(h[1], what);
  snprintf(what, sizeof what, "object referenced from a dlopen'ed library's TLS array (%s)", who);
  verify_obj(h[2], what);
  CHECK(*f_tls() == reveal_ptr(h[0].hbase));
}

static core_event_t ev_loaded = CORE_EVENT_INIT, ev_ready = CORE_EVENT_INIT, ev_go = CORE_EVENT_INIT;

static void *thread_body(void *arg) {
  const char *who = (const char *)arg;
  event_wait(&ev_loaded);
  hidden_obj_t h[3];
  fill(h, 50 + (uint64_t)strlen(who) * 10);
  clear_stack();
  event_set(&ev_ready);
  event_wait(&ev_go);
  check(h, who);
  return NULL;
}

int main(void) {
  test_seed();
  cgc_init();
  pthread_t early, late;
  CHECK(pthread_create(&early, NULL, thread_body, (void *)"a thread created before dlopen") == 0);

  void *h = dlopen(CORE_DLMOD_PATH, RTLD_NOW | RTLD_LOCAL);
  CHECKF(h != NULL, "dlopen: %s", dlerror());
  f_tls = (slot_fn)dlsym(h, "mod_tls");
  f_tls_data = (slot_fn)dlsym(h, "mod_tls_data");
  f_tls_big = (slot_fn)dlsym(h, "mod_tls_big");
  CHECK(f_tls && f_tls_data && f_tls_big);
  event_set(&ev_loaded);
  CHECK(pthread_create(&late, NULL, thread_body, (void *)"a thread created after dlopen") == 0);

  hidden_obj_t m[3];
  fill(m, 7);
  event_wait_at_least(&ev_ready, 2);
  for (int r = 0; r < 2; r++)
    for (int i = 0; i < 3; i++) churn(SZ[i], 6);
  event_set(&ev_go);
  CHECK(pthread_join(early, NULL) == 0);
  CHECK(pthread_join(late, NULL) == 0);
  check(m, "the main thread");
  printf("core_dlopen_tls: ok\n");
  return 0;
}
