/* Threads not created through cgc's pthread_create (here: libc's own
   pthread_create, called directly) use cgc_register_thread and
   cgc_unregister_thread.  While registered their stacks are roots; while
   unregistered they are never stopped, so collections complete while such a
   thread runs or blocks. */
#include "core_util.h"

#include <dlfcn.h>

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

static create_fn libc_pthread_create(void) {
  void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
  CHECKF(libc != NULL, "libc.so.6 not loaded: %s", dlerror());
  create_fn f = (create_fn)dlsym(libc, "pthread_create");
  CHECK(f != NULL);
  return f;
}

static core_event_t ev_unreg_running = CORE_EVENT_INIT, ev_unreg_go = CORE_EVENT_INIT;
static core_event_t ev_reg_ready = CORE_EVENT_INIT, ev_reg_go = CORE_EVENT_INIT;
static core_event_t ev_unreg_again = CORE_EVENT_INIT, ev_final = CORE_EVENT_INIT;
static atomic_int spin_stop;

static __attribute__((noinline)) void registered_phase(void) {
  void *volatile slot = NULL;
  hidden_obj_t h = make_obj((void **)&slot, 1234, 77);
  void *volatile big = NULL;
  hidden_obj_t h2 = make_obj((void **)&big, 100000, 78);
  clear_stack();
  event_set(&ev_reg_ready);
  event_wait(&ev_reg_go);
  verify_obj(h, "object on the stack of a thread registered with cgc_register_thread");
  verify_obj(h2, "large object on the stack of a thread registered with cgc_register_thread");
}

static void *foreign_thread(void *arg) {
  (void)arg;
  /* Not registered yet: must not be stopped or scanned; it just runs. */
  event_set(&ev_unreg_running);
  while (!atomic_load(&spin_stop)) sched_yield();
  event_wait(&ev_unreg_go);

  int r = cgc_register_thread();
  CHECKF(r >= 0, "cgc_register_thread returned %d", r);
  registered_phase();
  cgc_unregister_thread();

  /* Unregistered again: collections must not wait for this thread. */
  event_set(&ev_unreg_again);
  event_wait(&ev_final);
  return NULL;
}

int main(void) {
  test_seed();
  cgc_init();
  cgc_collect();
  uint64_t base = stats_now().num_threads;
  create_fn real_create = libc_pthread_create();
  pthread_t t;
  CHECK(real_create(&t, NULL, foreign_thread, NULL) == 0);
  event_wait(&ev_unreg_running);
  CHECKF(stats_now().num_threads == base, "a thread made with libc's pthread_create was registered");
  /* The foreign thread spins, unregistered: collections complete anyway. */
  for (int i = 0; i < 5; i++) cgc_collect();
  atomic_store(&spin_stop, 1);
  event_set(&ev_unreg_go);

  event_wait(&ev_reg_ready);
  CHECKF(stats_now().num_threads == base + 1, "cgc_register_thread did not register the thread (%llu threads)",
         (unsigned long long)stats_now().num_threads);
  for (int r = 0; r < 2; r++) {
    churn(1234, 8);
    churn(100000, 16);
  }
  event_set(&ev_reg_go);

  event_wait(&ev_unreg_again);
  CHECKF(stats_now().num_threads == base, "cgc_unregister_thread left %llu threads (base %llu)",
         (unsigned long long)stats_now().num_threads, (unsigned long long)base);
  /* It is blocked on a condition variable, unregistered: collections still complete. */
  for (int i = 0; i < 5; i++) cgc_collect();
  event_set(&ev_final);
  CHECK(pthread_join(t, NULL) == 0);
  printf("core_register: ok\n");
  return 0;
}
