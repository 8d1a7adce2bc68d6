/* __thread variables of the executable are roots, for the main thread and for
   other threads (blocked or running): zero-initialized (.tbss), initialized
   (.tdata), and deep inside a large TLS array. */
#include "core_util.h"

static int anchor;
static __thread void *tls_bss;
static __thread void *tls_data = &anchor;
static __thread void *tls_big[8192];

static const size_t SZ[3] = {72, 2400, 50000};

static __attribute__((noinline)) void fill_tls(hidden_obj_t h[3], uint64_t seed) {
  h[0] = make_obj(&tls_bss, SZ[0], seed);
  h[1] = make_obj(&tls_data, SZ[1], seed + 1);
  h[2] = make_obj(&tls_big[7001], SZ[2], seed + 2);
}

static __attribute__((noinline)) void check_tls(const hidden_obj_t h[3], const char *who) {
  char what[128];
  snprintf(what, sizeof what, "object referenced from a .tbss variable of %s", who);
  verify_obj(h[0], what);
  snprintf(what, sizeof what, "object referenced from a .tdata variable of %s", who);
  verify_obj(h[1], what);
  snprintf(what, sizeof what, "object referenced from a large TLS array of %s", who);
  verify_obj(h[2], what);
  CHECK(tls_bss == reveal_ptr(h[0].hbase));
  CHECK(tls_data == reveal_ptr(h[1].hbase));
  CHECK(tls_big[7001] == reveal_ptr(h[2].hbase));
}

static void churn_all(int rounds) {
  for (int r = 0; r < rounds; r++)
    for (int i = 0; i < 3; i++) churn(SZ[i], 6);
}

/* Other threads: half of them block on a condition variable, half spin. */
enum { NT = 6 };
static core_event_t ev_ready = CORE_EVENT_INIT, ev_go = CORE_EVENT_INIT;
static atomic_int stop_spin;

static void *tls_thread(void *arg) {
  int i = (int)(intptr_t)arg;
  hidden_obj_t h[3];
  fill_tls(h, 1000 + 10 * (uint64_t)i);
  clear_stack();
  event_set(&ev_ready);
  if (i % 2 == 0) {
    event_wait(&ev_go);
  } else {
    while (!atomic_load(&stop_spin)) sched_yield();
  }
  check_tls(h, i % 2 == 0 ? "a blocked thread" : "a running thread");
  return NULL;
}

int main(void) {
  test_seed();
  cgc_init();
  CHECK(tls_data == &anchor);

  hidden_obj_t mh[3];
  fill_tls(mh, 1);
  churn_all(2);
  check_tls(mh, "the main thread");

  pthread_t t[NT];
  for (int i = 0; i < NT; i++) CHECK(pthread_create(&t[i], NULL, tls_thread, (void *)(intptr_t)i) == 0);
  event_wait_at_least(&ev_ready, NT);
  churn_all(2);
  event_set(&ev_go);
  atomic_store(&stop_spin, 1);
  for (int i = 0; i < NT; i++) CHECK(pthread_join(t[i], NULL) == 0);
  check_tls(mh, "the main thread");

  /* Cleared TLS slots no longer keep their objects. */
  uint64_t before = live_after_collect();
  tls_bss = NULL;
  tls_data = NULL;
  tls_big[7001] = NULL;
  uint64_t after = live_after_collect();
  CHECKF(after + (SZ[0] + SZ[1] + SZ[2]) / 2 <= before, "live %llu -> %llu after clearing TLS roots",
         (unsigned long long)before, (unsigned long long)after);
  printf("core_tls: ok\n");
  return 0;
}
