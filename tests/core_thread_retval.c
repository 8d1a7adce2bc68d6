/* A thread created with plain pthread_create returns a collected object; the
   thread has ended (its task is gone) but is not joined yet, and collections
   run.  pthread_join must still hand back the live, intact object: ending a
   thread is clean and needs no change to the program's source. */
#include "core_util.h"

#include <sys/stat.h>

enum { NT = 6 };
static atomic_int tids[NT];
static uintptr_t hidden[NT];

static void *worker(void *arg) {
  int i = (int)(intptr_t)arg;
  void *slot = NULL;
  hidden_obj_t h = make_obj(&slot, 100 + (size_t)i * 700, 9000 + (uint64_t)i);
  hidden[i] = h.hbase;
  atomic_store(&tids[i], (int)core_gettid());
  clear_stack();
  return slot;
}

static bool task_gone(int tid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/task/%d", tid);
  struct stat st;
  return stat(path, &st) != 0;
}

int main(void) {
  test_seed();
  cgc_init();
  pthread_t t[NT];
  for (int i = 0; i < NT; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0);
  uint64_t deadline = now_ns() + 20ull * 1000000000ull;
  for (int i = 0; i < NT; i++) {
    while (atomic_load(&tids[i]) == 0 || !task_gone(atomic_load(&tids[i]))) {
      CHECKF(now_ns() < deadline, "thread %d did not end", i);
      sched_yield();
    }
  }
  for (int r = 0; r < 3; r++)
    for (int i = 0; i < NT; i++) churn(100 + (size_t)i * 700, 4);
  for (int i = 0; i < NT; i++) {
    void *ret = NULL;
    CHECK(pthread_join(t[i], &ret) == 0);
    CHECK(hide_ptr(ret) == hidden[i]);
    ret = NULL;
    hidden_obj_t h = {hidden[i], 100 + (size_t)i * 700, 9000 + (uint64_t)i};
    verify_obj(h, "object returned by an ended, not yet joined thread");
  }
  printf("core_thread_retval: ok\n");
  return 0;
}
