/* A thread that ends while registered: a TSD destructor of its allocates in
   glibc's last round of destructors, after cgc's own destructor has
   unregistered it, so it registers again and then ends (docs/threads.md,
   section 6).
   - `dropped`: the next collection finds it gone and drops its record:
     num_threads is back to what it was.
   - `reused`, `reused_nocollect`: a new thread then gets its tid (thread ids
     are cycled until one comes back, only where pid_max makes that quick;
     a tid another process takes meanwhile leaves the case not run),
     with (`reused`) or without (`reused_nocollect`) a collection between
     the end and the reuse; a collection must still complete, not wait for
     ever on the old record.
   - `reused_unregistered`: as `reused_nocollect`, but the thread that gets
     the tid has unregistered: it never acknowledges a stop, and only the
     stop signal's own record of whom it was meant for tells the collector
     that the old record's thread is gone.
   - `reused_unregistered_novalue`: the same where stop signals carry no
     record (rt_tgsigqueueinfo refused: cgc falls back to tgkill): the
     new thread's start time, after the old record's registration, tells. */
#include "core_util.h"

#include <limits.h>
#include <semaphore.h>

static pthread_key_t key;
static _Atomic int dead_tid;

static void rearm(void *v) {
  long n = (long)v;
  if (n < PTHREAD_DESTRUCTOR_ITERATIONS) { /* keep the thread in its destructors to the last round */
    pthread_setspecific(key, (void *)(n + 1));
    return;
  }
  consume(cgc_alloc(32)); /* cgc's destructor ran before this one: this registers the thread again */
  atomic_store(&dead_tid, (int)core_gettid());
}

static void *set_key(void *a) {
  (void)a;
  pthread_setspecific(key, (void *)1);
  return NULL;
}

static void end_registered(void) {
  CHECK(pthread_key_create(&key, rearm) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, set_key, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(atomic_load(&dead_tid) != 0);
}

static void dropped(void) {
  uint64_t base = stats_now().num_threads;
  end_registered();
  uint64_t registered = stats_now().num_threads;
  CHECKF(registered == base + 1, "the thread that registered again in its last destructor: num_threads %llu, base %llu",
         (unsigned long long)registered, (unsigned long long)base);
  cgc_collect();
  uint64_t after = stats_now().num_threads;
  CHECKF(after == base, "after a collection found thread %d gone, num_threads is %llu, not %llu",
         atomic_load(&dead_tid), (unsigned long long)after, (unsigned long long)base);
  cgc_collect();
}

/* ---- tid reuse ---- */

static sem_t checked, release;
static _Atomic int hit;
static bool probe_unregisters, refuse_values;

static void *probe(void *a) {
  (void)a;
  consume(cgc_alloc(16)); /* registered, as every thread pthread_create makes */
  if (probe_unregisters) cgc_unregister_thread();
  if ((int)core_gettid() == atomic_load(&dead_tid)) {
    atomic_store(&hit, 1);
    sem_post(&checked);
    while (sem_wait(&release) != 0) {
    }
    return NULL;
  }
  sem_post(&checked);
  return NULL;
}

static long pid_max(void) {
  FILE *f = fopen("/proc/sys/kernel/pid_max", "r");
  long v = 0;
  if (f) {
    if (fscanf(f, "%ld", &v) != 1) v = 0;
    fclose(f);
  }
  return v;
}

static void reused_case(bool collect_first) {
  long pm = pid_max();
  if (pm <= 0 || pm > 65536) {
    printf("pid_max %ld: thread ids would take too long to come back; case not run\n", pm);
    return;
  }
  uint64_t base = stats_now().num_threads;
  /* Without a collection between: none may start by itself meanwhile, or
     it would find the thread gone before its tid comes back. */
  int percent = cgc_set_gc_percent(collect_first ? 100 : -1);
  end_registered();
  if (collect_first) cgc_collect();
  CHECK(sem_init(&checked, 0, 0) == 0 && sem_init(&release, 0, 0) == 0);
  pthread_t t;
  uint64_t t0 = now_ns();
  for (long i = 0; i < 2 * pm && !atomic_load(&hit) && now_ns() - t0 < 20000000000ull; i++) {
    CHECK(pthread_create(&t, NULL, probe, NULL) == 0);
    while (sem_wait(&checked) != 0) {
    }
    if (!atomic_load(&hit)) CHECK(pthread_join(t, NULL) == 0);
  }
  if (!atomic_load(&hit)) { /* another process's thread took it meanwhile */
    printf("thread id %d did not come back in 20 s; case not run\n", atomic_load(&dead_tid));
    cgc_set_gc_percent(percent);
    return;
  }
  /* The old record is there yet (or not), besides the probe's (if it is
     registered). */
  uint64_t threads = stats_now().num_threads, expect = base + !collect_first + !probe_unregisters;
  CHECKF(threads == expect, "num_threads %llu before the collection, not %llu", (unsigned long long)threads,
         (unsigned long long)expect);
  cgc_set_gc_percent(percent);
  if (refuse_values) refuse_sigqueueinfo();
  watchdog_start(30, "a collection waited 30 s for a thread that had ended, its tid now another thread's");
  cgc_collect();
  watchdog_stop();
  sem_post(&release);
  CHECK(pthread_join(t, NULL) == 0);
  cgc_collect();
}

static void reused(void) { reused_case(true); }
static void reused_nocollect(void) { reused_case(false); }
static void reused_unregistered(void) {
  probe_unregisters = true;
  reused_case(false);
}

static void reused_unregistered_novalue(void) {
  probe_unregisters = refuse_values = true;
  reused_case(false);
}

static const test_case_t cases[] = {{"dropped", dropped},
                                    {"reused", reused},
                                    {"reused_nocollect", reused_nocollect},
                                    {"reused_unregistered", reused_unregistered},
                                    {"reused_unregistered_novalue", reused_unregistered_novalue}};

int main(int argc, char **argv) {
  cgc_init();
  return RUN_NAMED_CASE(argc, argv, "core_thread_gone", cases);
}
