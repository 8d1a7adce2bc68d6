/* threads.c — the thread registry and stopping the world (see docs/threads.md).
 *
 * Threads created with pthread_create are registered automatically: cgc
 * defines pthread_create, which wraps the start routine and calls the next
 * definition (the C library's).  Other threads register on their first
 * allocation or with cgc_register_thread.  A registered thread is
 * unregistered by a thread-specific-data destructor at exit.
 *
 * Stopping the world: the collector (holding threads_lock) sends the suspend
 * signal (SIGPWR by default; CGC_SIGNAL or cgc_set_suspend_signal move it) to
 * every other registered thread.  The handler records the stack pointer (its
 * own frame lies below the interrupted one, with the interrupted registers in
 * the signal frame above it), acknowledges on a semaphore and sleeps on the
 * world epoch until the collector restarts the world.  The handler is
 * installed with SA_RESTART, so interrupted system calls that can be
 * restarted are.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

__thread cgc_thread_t *_cgc_self;

static pthread_key_t exit_key;
static CGC_STATE cgc_thread_t *free_threads; /* recycled structs: threads_lock */

#define STOP_TIMEOUT_NS (5ull * 1000000000ull)
#define STOP_REPLACED_NS (200ull * 1000000ull) /* then a replaced handler is diagnosed */

/* ---- registry ------------------------------------------------------------------- */

void _cgc_threads_for_each(void (*fn)(cgc_thread_t *, void *), void *ctx) {
  for (cgc_thread_t *t = _cgc_g.threads; t; t = t->next) fn(t, ctx);
}

static void thread_exit_destructor(void *arg);

static cgc_thread_t *thread_struct_alloc(void) {
  pthread_mutex_lock(&_cgc_g.threads_lock);
  cgc_thread_t *t = free_threads;
  if (t) free_threads = t->next;
  pthread_mutex_unlock(&_cgc_g.threads_lock);
  if (t) {
    cgc_tcache_t *tc = t->tc;
    memset(tc, 0, sizeof *tc);
    memset(t, 0, sizeof *t);
    t->tc = tc;
    return t;
  }
  /* A struct whose cache could not be had waits here for the next try
     (metadata is never given back). */
  static cgc_thread_t *without_tc; /* threads_lock */
  pthread_mutex_lock(&_cgc_g.threads_lock);
  t = without_tc;
  without_tc = NULL;
  pthread_mutex_unlock(&_cgc_g.threads_lock);
  if (!t && !(t = _cgc_meta_alloc(sizeof *t))) return NULL;
  t->tc = _cgc_meta_alloc(sizeof *t->tc);
  if (!t->tc) {
    pthread_mutex_lock(&_cgc_g.threads_lock);
    without_tc = t;
    pthread_mutex_unlock(&_cgc_g.threads_lock);
    return NULL;
  }
  return t;
}

static void thread_struct_unused(cgc_thread_t *t) {
  pthread_mutex_lock(&_cgc_g.threads_lock);
  t->next = free_threads;
  free_threads = t;
  pthread_mutex_unlock(&_cgc_g.threads_lock);
}

/* Register this thread with t, a struct from thread_struct_alloc. */
static CGC_STATE _Atomic uint32_t last_serial;

static cgc_thread_t *register_with(cgc_thread_t *t, bool explicit_reg) {
  t->tid = _cgc_os_gettid();
  do t->serial = atomic_fetch_add_explicit(&last_serial, 1, memory_order_relaxed) + 1;
  while (t->serial == 0);
  t->reg_ticks = _cgc_os_boot_ticks();
  t->tp = _cgc_os_thread_pointer();
  t->explicit_reg = explicit_reg;
  t->is_main = t->tid == getpid();
  if (_cgc_os_thread_stack(&t->stack_lo, &t->stack_hi) != 0) {
    /* Not even /proc could tell (out of file descriptors?).  The thread's
       frames lie between this one and its descriptor, which glibc puts at
       the top of the stack (the thread pointer); never guess past it: a
       window rounded up could reach the guard page of the next stack. */
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    t->stack_lo = here - (64 << 10);
    t->stack_hi = t->tp > here && t->tp - here < ((uintptr_t)64 << 20) ? t->tp : CGC_ALIGN_UP(here + 1, 4096);
    _cgc_warn("cannot find the stack of thread %d: scanning %p-%p", (int)t->tid, (void *)here, (void *)t->stack_hi);
  }
  t->tc->thread = t;
  /* Publish to this thread first so a stop signal finds it, then to the list. */
  _cgc_self = t;
  _cgc_tc = t->tc;
  pthread_mutex_lock(&_cgc_g.threads_lock);
  t->next = _cgc_g.threads;
  t->prev = NULL;
  if (_cgc_g.threads) _cgc_g.threads->prev = t;
  _cgc_g.threads = t;
  _cgc_g.nthreads++;
  pthread_mutex_unlock(&_cgc_g.threads_lock);
  pthread_setspecific(exit_key, t);
  return t;
}

cgc_thread_t *_cgc_thread_register_self(bool explicit_reg) {
  if (_cgc_self) return _cgc_self;
  cgc_thread_t *t = thread_struct_alloc();
  return t ? register_with(t, explicit_reg) : NULL;
}

static void thread_unregister(cgc_thread_t *t) {
  _cgc_tcache_release(t->tc);
  pthread_mutex_lock(&_cgc_g.threads_lock);
  /* The counts move to the exited totals and the thread leaves the list in
     one step under threads_lock, which statistics and collections read them
     under: else a reader between the two counts them twice. */
  _cgc_tcache_flush_counts(t->tc);
  if (t->prev) t->prev->next = t->next;
  else _cgc_g.threads = t->next;
  if (t->next) t->next->prev = t->prev;
  _cgc_g.nthreads--;
  /* This thread forgets t before another can take it from free_threads
     (no stop can be under way: the collector stops under threads_lock). */
  _cgc_tc = &_cgc_empty_tcache;
  _cgc_self = NULL;
  t->next = free_threads;
  free_threads = t;
  pthread_mutex_unlock(&_cgc_g.threads_lock);
}

/* cgc's key is created first, so glibc runs its destructor first in each
   round: re-armed, it keeps the thread registered (its stack and TLS roots)
   through the program's destructors until the last round. */
static __thread int exit_rounds;
static void thread_exit_destructor(void *arg) {
  cgc_thread_t *t = arg;
  if (!t || t != _cgc_self) return;
  if (++exit_rounds < PTHREAD_DESTRUCTOR_ITERATIONS && pthread_setspecific(exit_key, t) == 0) return;
  thread_unregister(t);
}

int cgc_register_thread(void) {
  _cgc_ensure_init();
  if (_cgc_self) {
    /* A thread made by clone() without a thread-local storage of its own
       (no CLONE_SETTLS), or a vfork child, sees its creator's record: it
       would share its creator's cache and its stack would never be
       scanned. */
    pid_t tid = _cgc_os_gettid();
    if (_cgc_self->tid != tid)
      _cgc_fatal("cgc_register_thread: thread %d shares its thread-local storage with thread %d (made by clone "
                 "without CLONE_SETTLS, or vfork?): it cannot be registered", (int)tid, (int)_cgc_self->tid);
    _cgc_self->explicit_reg = true;
    return 0;
  }
  return _cgc_thread_register_self(true) ? 0 : -1;
}

bool _cgc_specials_defer_unregister(void) CGC_HIDDEN; /* specials.c */

void cgc_unregister_thread(void) {
  cgc_thread_t *t = _cgc_self;
  if (!t) _cgc_fatal("cgc_unregister_thread: thread %ld is not registered", (long)_cgc_os_gettid());
  if (_cgc_specials_defer_unregister()) return; /* from a cleanup or finalizer: once they are over */
  pthread_setspecific(exit_key, NULL);
  thread_unregister(t);
}

/* ---- pthread_create ---------------------------------------------------------------- */

/* A thread's start routine and argument are kept in a collected object that is
   linked from `pending_starts` (a scanned global) until the new thread has
   registered and holds them on its own stack. */
/* Collected records kept alive by a list whose head is a scanned global. */
typedef struct kept {
  struct kept *next, *prev;
} kept_t;

static CGC_STATE pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;

static void kept_insert(kept_t **head, kept_t *k) {
  pthread_mutex_lock(&pending_lock);
  k->prev = NULL;
  k->next = *head;
  if (*head) (*head)->prev = k;
  *head = k;
  pthread_mutex_unlock(&pending_lock);
}

/* The unlinked record's own links are cleared: a stale reference to it (a
   dead frame's slot, say) must keep only it alive, not, through links to
   neighbours unlinked after it, every record that was on the list. */
static void kept_remove_locked(kept_t **head, kept_t *k) {
  if (k->prev) k->prev->next = k->next;
  else *head = k->next;
  if (k->next) k->next->prev = k->prev;
  k->next = k->prev = NULL;
}

typedef struct start_info {
  kept_t link;
  void *(*fn)(void *);
  void *arg;
  cgc_thread_t *thread; /* the new thread's registry struct, allocated by the creator */
} start_info_t;

static kept_t *pending_starts; /* scanned as part of cgc's data segment */

static void pending_remove(start_info_t *si) {
  pthread_mutex_lock(&pending_lock);
  kept_remove_locked(&pending_starts, &si->link);
  pthread_mutex_unlock(&pending_lock);
  si->arg = NULL; /* the new thread holds it now; a stale reference to si must not */
}

/* A joinable thread's result stays visible to the collector until the
   thread is joined or detached: glibc keeps it in the thread descriptor,
   which is not scanned once the thread has ended.  Results are kept in
   collected records linked from `results` (a scanned global). */
typedef struct result_rec {
  kept_t link;
  uintptr_t thread;
  void *value;
} result_rec_t;

static kept_t *results; /* scanned; pending_lock */

static void result_remember(void *value) {
  if (!value) return;
  pthread_attr_t attr;
  int detached = 0;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    int st;
    if (pthread_attr_getdetachstate(&attr, &st) == 0) detached = st == PTHREAD_CREATE_DETACHED;
    pthread_attr_destroy(&attr);
  }
  if (detached) return;
  result_rec_t *r = cgc_alloc(sizeof *r);
  if (!r) return;
  r->thread = (uintptr_t)pthread_self();
  r->value = value;
  kept_insert(&results, &r->link);
}

/* After t was joined or detached: drop its record, the oldest one for t.
   Records go in at the head, and a newer one for the same pthread_t can
   only be a new thread's that reused t's descriptor once the join
   returned (and exited before this ran): its value must stay kept. */
static void result_forget(pthread_t t) {
  pthread_mutex_lock(&pending_lock);
  kept_t *oldest = NULL;
  for (kept_t *k = results; k; k = k->next)
    if (((result_rec_t *)k)->thread == (uintptr_t)t) oldest = k;
  if (oldest) {
    kept_remove_locked(&results, oldest);
    ((result_rec_t *)oldest)->value = NULL; /* nor the value, the same way */
  }
  pthread_mutex_unlock(&pending_lock);
}

static void *start_trampoline(void *p) {
  start_info_t *si = p;
  /* The struct was allocated before the thread was created, so that running
     out of memory fails pthread_create instead of leaving this thread
     unregistered: unscanned, its argument freed under it once unlinked. */
  if (_cgc_self) thread_struct_unused(si->thread); /* registered already (a TLS destructor ran cgc?) */
  else register_with(si->thread, false);
  void *(*fn)(void *) = si->fn;
  void *arg = si->arg;
  pending_remove(si);
  si = NULL;
  void *r = fn(arg);
  result_remember(r);
  return r;
}

CGC_API int pthread_join(pthread_t t, void **ret);
int pthread_join(pthread_t t, void **ret) {
  CGC_REAL(int (*)(pthread_t, void **), "pthread_join");
  int rc = f(t, ret);
  if (rc == 0) result_forget(t);
  return rc;
}

CGC_API int pthread_detach(pthread_t t);
int pthread_detach(pthread_t t) {
  CGC_REAL(int (*)(pthread_t), "pthread_detach");
  int rc = f(t);
  if (rc == 0) result_forget(t);
  return rc;
}

CGC_API _Noreturn void pthread_exit(void *value);
void pthread_exit(void *value) {
  CGC_REAL(void (*)(void *), "pthread_exit");
  if (_cgc_self) result_remember(value);
  f(value);
  __builtin_unreachable();
}

CGC_API int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);
int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *), void *arg) {
  _cgc_ensure_init();
  start_info_t *si = cgc_alloc(sizeof *si);
  if (!si) return EAGAIN;
  si->thread = thread_struct_alloc();
  if (!si->thread) return EAGAIN;
  si->fn = fn;
  si->arg = arg;
  kept_insert(&pending_starts, &si->link);
  int rc = _cgc_os_real_pthread_create()(thread, attr, start_trampoline, si);
  if (rc != 0) {
    thread_struct_unused(si->thread);
    pending_remove(si);
  }
  return rc;
}

/* ---- stopping the world ----------------------------------------------------------------- */

/* Stop signals that reached a thread other than the one their record
   names: that record's thread ended while registered and its tid is now a
   thread's that is not registered (or not yet on the registry).  The
   handler reports the signal's value, epoch << 32 | serial, here, and the
   collector takes the record as gone (stray_reported).  Reset at each stop;
   values of other stops never match. */
#define NSTRAY 16
static CGC_STATE _Atomic uint64_t stray[NSTRAY];
static CGC_STATE _Atomic uint32_t nstray;

static uint64_t stop_value(const cgc_thread_t *t, uint32_t epoch) { return (uint64_t)epoch << 32 | t->serial; }

static void report_stray(uint64_t v) {
  uint32_t i = atomic_fetch_add_explicit(&nstray, 1, memory_order_relaxed);
  if (i < NSTRAY) atomic_store_explicit(&stray[i], v, memory_order_release);
  atomic_fetch_add_explicit(&_cgc_g.acks, 1, memory_order_release);
  _cgc_os_wake_all(&_cgc_g.acks);
}

static bool stray_reported(const cgc_thread_t *t, uint32_t epoch) {
  uint32_t n = atomic_load_explicit(&nstray, memory_order_acquire);
  for (uint32_t i = 0; i < n && i < NSTRAY; i++)
    if (atomic_load_explicit(&stray[i], memory_order_acquire) == stop_value(t, epoch)) return true;
  return false;
}

static void suspend_handler(int sig, void *info, void *uctx) {
  (void)sig;
  int saved_errno = errno;
  cgc_thread_t *t = _cgc_self;
  uint32_t epoch = atomic_load_explicit(&_cgc_g.world_epoch, memory_order_acquire);
  uint64_t v = _cgc_os_signal_value(info);
  if ((epoch & 1) && v >> 32 == epoch && (!t || (uint32_t)v != t->serial)) report_stray(v);
  if (!t || !(epoch & 1) || t == _cgc_g.collector) { /* not ours to stop: unregistered, stray, or the collector */
    errno = saved_errno;
    return;
  }
  volatile uintptr_t marker = 0;
  t->stop_sp = (uintptr_t)&marker;
  t->stop_alt_end = _cgc_os_altstack_end(uctx, (uintptr_t)&marker);
  atomic_store_explicit(&t->stopped, epoch, memory_order_release);
  atomic_fetch_add_explicit(&_cgc_g.acks, 1, memory_order_release);
  _cgc_os_wake_all(&_cgc_g.acks);
  while (atomic_load_explicit(&_cgc_g.world_epoch, memory_order_acquire) == epoch)
    _cgc_os_wait(&_cgc_g.world_epoch, epoch);
  errno = saved_errno;
}

/* Drop a record whose thread is gone (every lock the collector takes is
   held): its owned spans go back to the central lists, its lists are
   dropped (their slots are unmarked: the next sweep frees them), its counts
   move to the exited totals, and the struct is kept for a new thread.  The
   caller has taken it off the registry (or is dropping the whole registry,
   in a fork child). */
static void drop_thread_locked(cgc_thread_t *t) {
  for (unsigned sc = 2; sc < CGC_NUM_SPAN_CLASSES; sc++) {
    cgc_span_t *s = t->tc->span[sc];
    t->tc->free[sc] = t->tc->dirty[sc] = NULL;
    if (!s) continue;
    t->tc->span[sc] = NULL;
    _cgc_span_file_unowned_locked(s);
  }
  _cgc_tcache_flush_counts(t->tc);
  t->next = free_threads;
  free_threads = t;
}

/* A thread that ended while registered (it allocated again in a TSD
   destructor after cgc's had unregistered it, or a raw clone() thread
   exited without cgc_unregister_thread): nothing of it to scan in this
   stop, and its record leaves the registry at the end of the stop, so that
   no later stop signals its tid, which a new thread may have by then. */
static void thread_gone(cgc_thread_t *t, uint32_t epoch) {
  t->stop_sp = 0;
  t->gone = true;
  atomic_store(&t->stopped, epoch);
}

/* Another record of t's tid has acknowledged this stop: t's thread ended
   while registered and a new thread has its tid (two live threads never
   share one). */
static bool tid_taken(const cgc_thread_t *t, uint32_t epoch) {
  for (const cgc_thread_t *u = _cgc_g.threads; u; u = u->next)
    if (u != t && u->tid == t->tid && atomic_load_explicit(&u->stopped, memory_order_acquire) == epoch) return true;
  return false;
}

static void drop_gone_threads(void) {
  cgc_thread_t *next;
  for (cgc_thread_t *t = _cgc_g.threads; t; t = next) {
    next = t->next;
    if (!t->gone) continue;
    if (t->prev) t->prev->next = t->next;
    else _cgc_g.threads = t->next;
    if (t->next) t->next->prev = t->prev;
    _cgc_g.nthreads--;
    drop_thread_locked(t);
  }
}

/* Send t the stop signal.  Only ESRCH means the thread is gone; a real-time
   signal can also fail with EAGAIN (the user's queued-signal limit,
   RLIMIT_SIGPENDING, counts every process of the user): the wait loop
   sends it again until it is queued. */
static void signal_stop(cgc_thread_t *t, uint32_t epoch) {
  int rc = _cgc_os_signal_thread(t->tid, _cgc_g.suspend_signal, stop_value(t, epoch));
  if (rc == 0) {
    t->stop_unsent = false;
  } else if (rc == ESRCH) {
    t->stop_unsent = false;
    thread_gone(t, epoch);
  }
}

/* A foreign handler of the suspend signal seen to pass stops on to cgc's
   (threads acknowledged while it was installed): the collector's only. */
static void *chaining_handler;

static bool foreign_handler_chains(cgc_thread_t *self, uint32_t epoch) {
  void *h = _cgc_os_handler(_cgc_g.suspend_signal);
  if (h && h == chaining_handler) return true;
  for (cgc_thread_t *t = _cgc_g.threads; t; t = t->next)
    if (t != self && t->stop_sp && atomic_load_explicit(&t->stopped, memory_order_acquire) == epoch) {
      chaining_handler = h; /* someone acknowledged under it */
      return true;
    }
  return false;
}

/* After a stop every thread acknowledged: if the handler is not cgc's, it
   chains to it; remembered, so that a later stop that waits on a slow
   thread does not take it for a handler that swallows the signal. */
static void note_chaining_handler(cgc_thread_t *self) {
  if (!_cgc_g.threads || (_cgc_g.threads == self && !self->next)) return;
  void *h = _cgc_os_handler(_cgc_g.suspend_signal);
  if (h && h != (void *)suspend_handler) chaining_handler = h;
}

/* A thread counts as stopped when its own `stopped` field holds this epoch:
   acknowledgements are never counted, so a late one from an earlier stop
   cannot stand in for a thread that is still running. */
void _cgc_stop_world(void) {
  cgc_thread_t *self = _cgc_self;
  _cgc_g.collector = self;
  /* A program that set the suspend signal back to its default (daemon and
     child set-up code resets every signal) would be killed by the first
     stop, SIGPWR's default action being to terminate: diagnose it first. */
  const char *none = _cgc_g.threads && _cgc_g.threads->next ? _cgc_os_handler_disposition(_cgc_g.suspend_signal) : NULL;
  if (none)
    _cgc_fatal("collection: signal %d, which stops threads for collections, was set to %s by the program; "
               "leave it to cgc, or choose another signal for cgc with CGC_SIGNAL or cgc_set_suspend_signal",
               _cgc_g.suspend_signal, none);
  atomic_store_explicit(&nstray, 0, memory_order_relaxed);
  uint32_t epoch = atomic_fetch_add(&_cgc_g.world_epoch, 1) + 1;
  cgc_assert(epoch & 1);
  for (cgc_thread_t *t = _cgc_g.threads; t; t = t->next) {
    if (t == self) continue;
    t->stop_unsent = true;
    signal_stop(t, epoch);
  }
  uint64_t start = _cgc_os_now_ns(), warned = 0;
  for (;;) {
    uint32_t seen = atomic_load_explicit(&_cgc_g.acks, memory_order_acquire);
    for (cgc_thread_t *t = _cgc_g.threads; t; t = t->next)
      if (t != self && t->stop_unsent) signal_stop(t, epoch);
    cgc_thread_t *waiting = NULL;
    for (cgc_thread_t *t = _cgc_g.threads; t && !waiting; t = t->next)
      if (t != self && atomic_load_explicit(&t->stopped, memory_order_acquire) != epoch) waiting = t;
    if (!waiting) {
      note_chaining_handler(self);
      drop_gone_threads();
      break;
    }
    if (stray_reported(waiting, epoch)) {
      thread_gone(waiting, epoch); /* exited while registered; its tid is another thread's */
      continue;
    }
    uint64_t now = _cgc_os_now_ns();
    if (now - start > 1000000 &&
        (!_cgc_os_thread_alive_since(waiting->tid, waiting->reg_ticks) || tid_taken(waiting, epoch))) {
      thread_gone(waiting, epoch); /* exited while registered (its tid may be another thread's) */
      continue;
    }
    /* A handler the program installed for the suspend signal after cgc's
       never acknowledges (one that chains to cgc's does, and is fine: it
       has been seen to, now or at an earlier stop, and the thread is only
       slow to take the signal). */
    if (now - start > STOP_REPLACED_NS && !_cgc_os_handler_is(_cgc_g.suspend_signal, suspend_handler) &&
        !foreign_handler_chains(self, epoch))
      _cgc_fatal("collection: the handler of signal %d, which stops threads for collections, was replaced by "
                 "the program; choose another signal for cgc with CGC_SIGNAL or cgc_set_suspend_signal",
                 _cgc_g.suspend_signal);
    if (now - start > STOP_TIMEOUT_NS * (warned + 1)) {
      warned++;
      if (waiting->stop_unsent)
        _cgc_warn("waiting for thread %d to stop: signal %d cannot be queued to it (EAGAIN: the user's "
                  "RLIMIT_SIGPENDING is reached)", (int)waiting->tid, _cgc_g.suspend_signal);
      else
        _cgc_warn("waiting for thread %d to stop (does it block signal %d?)", (int)waiting->tid,
                  _cgc_g.suspend_signal);
    }
    _cgc_os_wait_timeout(&_cgc_g.acks, seen, 10 * 1000 * 1000);
  }
}

void _cgc_start_world(void) {
  _cgc_g.collector = NULL;
  atomic_fetch_add_explicit(&_cgc_g.world_epoch, 1, memory_order_release);
  _cgc_os_wake_all(&_cgc_g.world_epoch);
}

/* ---- fork --------------------------------------------------------------------------------- */

void _cgc_collect_lock_all(void) CGC_HIDDEN;   /* collect.c */
void _cgc_collect_unlock_all(void) CGC_HIDDEN; /* collect.c */
void _cgc_sweeper_fork_child(void) CGC_HIDDEN; /* sweep.c */
void _cgc_specials_signal_moved(void) CGC_HIDDEN; /* specials.c */

/* The child must not inherit a lock held by a thread that does not exist
   there: take them all (the collection lock first, as a collector does).
   Nor a span a sweep had taken off its list, which would be on no list
   there: raise the sweep fence and let running sweeps end first, as a
   collection does. */
static void fork_prepare(void) {
  if (!atomic_load(&_cgc_g.initialized)) return;
  _cgc_gc_lock();
  _cgc_sweep_fence_raise();
  pthread_mutex_lock(&_cgc_g.trace_lock);
  pthread_mutex_lock(&pending_lock);
  _cgc_collect_lock_all();
}

static void fork_parent(void) {
  if (!atomic_load(&_cgc_g.initialized)) return;
  _cgc_sweep_fence_lower();
  _cgc_collect_unlock_all();
  pthread_mutex_unlock(&pending_lock);
  pthread_mutex_unlock(&_cgc_g.trace_lock);
  _cgc_gc_unlock();
}

static void fork_child(void) {
  if (!atomic_load(&_cgc_g.initialized)) return;
  /* Only this thread survives: drop the others (their cached spans go back to
     the central lists) and forget the helper threads. */
  cgc_thread_t *self = _cgc_self, *next;
  for (cgc_thread_t *t = _cgc_g.threads; t; t = next) {
    next = t->next;
    if (t != self) drop_thread_locked(t);
  }
  _cgc_g.threads = NULL;
  _cgc_g.nthreads = 0;
  if (self) {
    self->next = self->prev = NULL;
    self->tid = _cgc_os_gettid();
    self->reg_ticks = _cgc_os_boot_ticks(); /* the child's thread started at the fork */
    _cgc_g.threads = self;
    _cgc_g.nthreads = 1;
  }
  atomic_store(&_cgc_g.active_sweeps, 0);
  _cgc_mark_workers_reset();
  _cgc_sweeper_fork_child();
  _cgc_specials_fork_child();
  _cgc_collect_unlock_all();
  pthread_mutex_unlock(&pending_lock);
  pthread_mutex_unlock(&_cgc_g.trace_lock);
  _cgc_sweep_fence_lower();
  _cgc_gc_unlock();
}

int _cgc_threads_move_signal(int sig) CGC_HIDDEN;
int _cgc_threads_move_signal(int sig) {
  if (sig == _cgc_g.suspend_signal) return 0;
  if (_cgc_os_install_handler(sig, suspend_handler) != 0) return -1;
  _cgc_os_restore_default(_cgc_g.suspend_signal);
  _cgc_g.suspend_signal = sig;
  _cgc_specials_signal_moved();
  return 0;
}

/* ---- exec --------------------------------------------------------------------------------- */

/* A stop signal sent to a thread that has entered execve stays pending
   across the exec, which resets the handler to the default: SIGPWR (or a
   real-time CGC_SIGNAL) then kills the new program before it runs.  cgc
   therefore defines the exec calls: each holds gc_lock across the real one,
   so that no stop starts meanwhile (a stop already under way ends first,
   this thread taking its signal while it waits for the lock), and releases it
   if the exec fails.  Not taken by an unregistered thread (never signalled),
   by the holder of gc_lock (an exec from a signal handler that interrupted a
   collection), nor in the child of vfork, which shares the parent's memory
   and would leave the lock held there when its exec succeeds.  Dynamic
   linking only, as for pthread_create: calls the C library makes itself
   (posix_spawn, system, popen) exec in a child process and need nothing. */
static bool exec_begin(void) {
  cgc_thread_t *t = _cgc_self;
  if (!t || !atomic_load(&_cgc_g.initialized) || _cgc_gc_lock_held() || _cgc_os_gettid() != t->tid) return false;
  _cgc_gc_lock();
  return true;
}

static int exec_end(bool held, int rc) {
  if (held) {
    int e = errno;
    _cgc_gc_unlock();
    errno = e;
  }
  return rc;
}

typedef int (*exec_fn)(const char *, char *const[], char *const[]);

CGC_API int execve(const char *path, char *const argv[], char *const envp[]);
int execve(const char *path, char *const argv[], char *const envp[]) {
  CGC_REAL(exec_fn, "execve");
  bool held = exec_begin();
  return exec_end(held, f(path, argv, envp));
}

CGC_API int execvpe(const char *file, char *const argv[], char *const envp[]);
int execvpe(const char *file, char *const argv[], char *const envp[]) {
  CGC_REAL(exec_fn, "execvpe");
  bool held = exec_begin();
  return exec_end(held, f(file, argv, envp));
}

CGC_API int execv(const char *path, char *const argv[]);
int execv(const char *path, char *const argv[]) {
  CGC_REAL(int (*)(const char *, char *const[]), "execv");
  bool held = exec_begin();
  return exec_end(held, f(path, argv));
}

CGC_API int execvp(const char *file, char *const argv[]);
int execvp(const char *file, char *const argv[]) {
  CGC_REAL(int (*)(const char *, char *const[]), "execvp");
  bool held = exec_begin();
  return exec_end(held, f(file, argv));
}

CGC_API int fexecve(int fd, char *const argv[], char *const envp[]);
int fexecve(int fd, char *const argv[], char *const envp[]) {
  CGC_REAL(int (*)(int, char *const[], char *const[]), "fexecve");
  bool held = exec_begin();
  return exec_end(held, f(fd, argv, envp));
}

CGC_API int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags);
int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags) {
  CGC_REAL(int (*)(int, const char *, char *const[], char *const[], int), "execveat");
  bool held = exec_begin();
  return exec_end(held, f(dirfd, path, argv, envp, flags));
}

/* execl, execle, execlp: the list into an array on the stack, as the C
   library does, then the vector call above (which holds the lock). */
#define EXEC_LIST_ARGV(argv, arg0, ap, envp_out)                                                             \
  size_t argc_ = 1;                                                                                         \
  va_start(ap, arg0);                                                                                       \
  while (va_arg(ap, char *)) argc_++;                                                                       \
  va_end(ap);                                                                                               \
  char *argv[argc_ + 1];                                                                                    \
  argv[0] = (char *)(arg0);                                                                                 \
  va_start(ap, arg0);                                                                                       \
  for (size_t i_ = 1; i_ <= argc_; i_++) argv[i_] = va_arg(ap, char *);                                   \
  envp_out;                                                                                                 \
  va_end(ap)

CGC_API int execl(const char *path, const char *arg, ...);
int execl(const char *path, const char *arg, ...) {
  va_list ap;
  EXEC_LIST_ARGV(argv, arg, ap, (void)0);
  return execv(path, argv);
}

CGC_API int execlp(const char *file, const char *arg, ...);
int execlp(const char *file, const char *arg, ...) {
  va_list ap;
  EXEC_LIST_ARGV(argv, arg, ap, (void)0);
  return execvp(file, argv);
}

CGC_API int execle(const char *path, const char *arg, ...);
int execle(const char *path, const char *arg, ...) {
  va_list ap;
  char *const *envp;
  EXEC_LIST_ARGV(argv, arg, ap, envp = va_arg(ap, char *const *));
  return execve(path, argv, envp);
}

/* ---- init ------------------------------------------------------------------------------ */

void _cgc_threads_init(void) {
  pthread_key_create(&exit_key, thread_exit_destructor);
  /* Two copies of cgc (libcgc.a linked into two shared libraries, or into
     one and libcgc.so loaded too) would share the signal, and each one's
     handler would ignore the other's threads: the first collection with
     another thread aborted, blaming the program. */
  const char *other = _cgc_os_handler_of_other_copy(_cgc_g.suspend_signal);
  if (other)
    _cgc_fatal("init: another copy of cgc, in %s, is loaded in this process (it handles signal %d); a process "
               "can hold one cgc: link the libraries that use it against libcgc.so, not libcgc.a",
               other, _cgc_g.suspend_signal);
  if (_cgc_os_install_handler(_cgc_g.suspend_signal, suspend_handler) != 0)
    _cgc_fatal("cannot install the handler for signal %d", _cgc_g.suspend_signal);
  _cgc_os_atfork(fork_prepare, fork_parent, fork_child);
}
