/* collect.c — the collection cycle, pacing and statistics (see docs/pacing.md).
 *
 * A collection:
 *   1. takes gc_lock, sets gc_pending and waits for running sweeps (I5);
 *   2. snapshots the loaded objects, starts the mark helpers;
 *   3. takes every allocator lock (so no stopped thread holds one) and stops
 *      the world; retries from 2 if a dlopen/dlclose raced with the snapshot;
 *   4. marks in parallel, runs checkmark if asked, processes finalizers, weak
 *      handles and cleanups, advances the cycle and makes every span
 *      "unswept";
 *   5. sets the next goal, restarts the world and releases the locks.
 * Sweeping happens afterwards, lazily and in the background.
 *
 * Pacing (Go's GOGC): the next collection starts when heap_live reaches
 *   goal = max(4 MiB, live * (1 + gc_percent/100)),
 * lowered towards the memory limit when one is set.  heap_live counts the
 * bytes marked by the last collection plus spans handed to thread caches and
 * large objects since.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdlib.h>

#include "internal.h"

CGC_STATE cgc_globals_t _cgc_g;

static CGC_STATE pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static CGC_STATE _Atomic int limit_gc_cycle = -1; /* cycle of the last memory-limit collection */

void _cgc_specials_init(void) CGC_HIDDEN;
bool _cgc_mark_prepare(void) CGC_HIDDEN;
void _cgc_mark_init(void) CGC_HIDDEN;
void _cgc_after_sweep(void) CGC_HIDDEN;

/* ---- init ---------------------------------------------------------------------- */

static void mutex_init(pthread_mutex_t *m) { pthread_mutex_init(m, NULL); }

void _cgc_gc_lock(void) {
  pthread_mutex_lock(&_cgc_g.gc_lock);
  atomic_store_explicit(&_cgc_g.gc_owner, _cgc_os_thread_pointer(), memory_order_relaxed);
}

void _cgc_gc_unlock(void) {
  atomic_store_explicit(&_cgc_g.gc_owner, 0, memory_order_relaxed);
  pthread_mutex_unlock(&_cgc_g.gc_lock);
}

void _cgc_init_slow(void) {
  pthread_mutex_lock(&init_lock);
  if (atomic_load(&_cgc_g.initialized)) {
    pthread_mutex_unlock(&init_lock);
    return;
  }
  /* Looked up now, not at the first collection (whose mark workers are
     threads): a fully static executable, which has none to find, is told
     at start-up. */
  _cgc_os_real_pthread_create();
  _cgc_os_pin_self();
  /* Pages go back to the kernel, and arena chunks are protected, in runs of
     cgc's pages: a kernel with larger pages (aarch64 with 16 or 64 KiB)
     would round them, clearing or protecting live neighbours.  Refuse it. */
  if (_cgc_os_page_size() > CGC_PAGE_SIZE)
    _cgc_fatal("init: the kernel's page size is %zu bytes; cgc supports pages of up to %zu bytes",
               _cgc_os_page_size(), CGC_PAGE_SIZE);
  mutex_init(&_cgc_g.heap_lock);
  mutex_init(&_cgc_g.gc_lock);
  mutex_init(&_cgc_g.trace_lock);
  mutex_init(&_cgc_g.threads_lock);
  mutex_init(&_cgc_g.roots_lock);
  mutex_init(&_cgc_g.meta_lock);
  for (unsigned i = 0; i < CGC_NUM_SPAN_CLASSES; i++) mutex_init(&_cgc_g.central[i].lock);
  _cgc_g.start_ns = _cgc_os_now_ns();
  _cgc_g.ncpus = _cgc_os_ncpus();
  /* Free-list link key: its top byte, which every link has (I3), is one
     of 0xF5..0xFE, never the top byte of a pointer, a small or negative
     integer, a common double or text, so that cgc_free can tell a live
     object from a free slot by that byte alone, almost always. */
  uint64_t r = _cgc_os_random();
  _cgc_g.key = (r & 0x00FFFFFFFFFFFFFFull) | (uint64_t)(0xF5 + (r >> 56) % 10) << 56;
  /* Weak handles carry their address under this key (top bit set: never an
     address, so never 0 once applied). */
  _cgc_g.weak_key = _cgc_os_random() | (1ull << 63);
  if (!_cgc_g.suspend_signal) _cgc_g.suspend_signal = _cgc_os_default_suspend_signal();
  atomic_store(&_cgc_g.gc_percent, 100);
  atomic_store(&_cgc_g.memory_limit, INT64_MAX);
  _cgc_options_init();
  _cgc_sizeclass_init();
  _cgc_g.tls_ok = _cgc_os_tls_init();
  _cgc_g.on_valgrind = _cgc_os_on_valgrind();
#if defined(__x86_64__) || defined(__aarch64__)
  /* A dense heap away from other mappings (and from the sanitizers' shadow),
     at an address whose halves are unlikely values for two adjacent ints.
     The low half is large: an int (a small one, zero above all) stored over
     the low half of a stale heap pointer makes an address below the heap,
     not the heap's first object (which zero did: it kept that object and
     all it reached alive).  64 MiB aligned, as the page map's granules. */
  _cgc_g.grow_hint = (uintptr_t)0x5a5a << 32 | (uintptr_t)0x5c << 24;
#endif
  atomic_store(&_cgc_g.mark_epoch, 1);
  _cgc_threads_init();
  _cgc_specials_init();
  _cgc_mark_init();
  _cgc_update_goal();
  atomic_store_explicit(&_cgc_g.initialized, 1, memory_order_release);
  pthread_mutex_unlock(&init_lock);
  _cgc_thread_register_self(false);
}

void cgc_init(void) { _cgc_ensure_init(); }

__attribute__((constructor)) static void cgc_constructor(void) { _cgc_ensure_init(); }

/* ---- locks ----------------------------------------------------------------------- */

void _cgc_specials_lock(void) CGC_HIDDEN;
void _cgc_specials_unlock(void) CGC_HIDDEN;
void _cgc_arenas_lock(void) CGC_HIDDEN;      /* arena.c */
void _cgc_arenas_unlock(void) CGC_HIDDEN;
void _cgc_checkfree_lock(void) CGC_HIDDEN;   /* checkfree.c */
void _cgc_checkfree_unlock(void) CGC_HIDDEN;

/* Every lock a mutator may hold while it could be stopped, in order. */
void _cgc_collect_lock_all(void) CGC_HIDDEN;
void _cgc_collect_lock_all(void) {
  pthread_mutex_lock(&_cgc_g.roots_lock);
  _cgc_specials_lock();
  _cgc_arenas_lock();
  _cgc_checkfree_lock();
  for (unsigned i = 0; i < CGC_NUM_SPAN_CLASSES; i++) pthread_mutex_lock(&_cgc_g.central[i].lock);
  pthread_mutex_lock(&_cgc_g.heap_lock);
  pthread_mutex_lock(&_cgc_g.meta_lock);
  pthread_mutex_lock(&_cgc_g.threads_lock);
}

void _cgc_collect_unlock_all(void) CGC_HIDDEN;
void _cgc_collect_unlock_all(void) {
  pthread_mutex_unlock(&_cgc_g.threads_lock);
  pthread_mutex_unlock(&_cgc_g.meta_lock);
  pthread_mutex_unlock(&_cgc_g.heap_lock);
  for (unsigned i = CGC_NUM_SPAN_CLASSES; i-- > 0;) pthread_mutex_unlock(&_cgc_g.central[i].lock);
  _cgc_checkfree_unlock();
  _cgc_arenas_unlock();
  _cgc_specials_unlock();
  pthread_mutex_unlock(&_cgc_g.roots_lock);
}

/* ---- pacing ------------------------------------------------------------------------- */

void _cgc_update_goal(void) {
  int pct = atomic_load(&_cgc_g.gc_percent);
  int64_t lim = atomic_load(&_cgc_g.memory_limit);
  uint64_t live = _cgc_g.marked_bytes + _cgc_g.premarked_bytes + _cgc_g.record_bytes;
  uint64_t goal = UINT64_MAX;
  if (pct >= 0) goal = CGC_MAX(CGC_HEAP_MIN, live + live / 100 * (uint64_t)pct);
  if (lim != INT64_MAX) {
    uint64_t meta = atomic_load(&_cgc_g.metadata_bytes);
    uint64_t room = (uint64_t)lim / 20 * 19;
    room = room > meta ? room - meta : 0;
    /* Never closer than live + 1/16 (plus a little): collecting more often
       than that would use all the time and free next to nothing. */
    uint64_t floor = live + live / 16 + ((uint64_t)1 << 20);
    goal = CGC_MIN(goal, CGC_MAX(room, floor));
  }
  atomic_store(&_cgc_g.heap_goal, goal);
}

void _cgc_pacing_check(cgc_tcache_t *tc) {
  (void)tc;
  uint64_t goal = atomic_load_explicit(&_cgc_g.heap_goal, memory_order_relaxed);
  int64_t live = atomic_load_explicit(&_cgc_g.heap_live, memory_order_relaxed);
  if (live >= 0 && (uint64_t)live >= goal) _cgc_collect(CGC_GC_PACED, atomic_load(&_cgc_g.gc_cycle));
}

void _cgc_before_grow(size_t bytes) {
  int64_t lim = atomic_load_explicit(&_cgc_g.memory_limit, memory_order_relaxed);
  if (lim == INT64_MAX) return;
  uint64_t mapped = atomic_load(&_cgc_g.mapped_bytes);
  if (mapped + bytes <= (uint64_t)lim) return;
  /* Over the limit: first give back free pages, then what the last
     collection found dead and the sweeper has not reached yet, then collect
     (at most once per cycle of growth, and only when what was allocated
     since the last collection, all a collection can free, would bring the
     heap under the limit: a live heap above it does not thrash). */
  uint64_t target = (uint64_t)lim > bytes ? (uint64_t)lim - bytes : 0;
  _cgc_scavenge(target);
  if (atomic_load(&_cgc_g.mapped_bytes) <= target) return;
  if (_cgc_sweep_all()) {
    _cgc_scavenge(target);
    if (atomic_load(&_cgc_g.mapped_bytes) <= target) return;
  }
  int64_t since = atomic_load(&_cgc_g.heap_live) - atomic_load(&_cgc_g.heap_live_at_gc);
  if (atomic_load(&_cgc_g.mapped_bytes) > target + (uint64_t)CGC_MAX(since, 0)) return;
  uint32_t cycle = atomic_load(&_cgc_g.gc_cycle);
  if (atomic_load(&limit_gc_cycle) == (int)cycle) return;
  atomic_store(&limit_gc_cycle, (int)cycle + 1);
  _cgc_collect(CGC_GC_LIMIT, cycle);
  _cgc_sweep_all();
  _cgc_scavenge(target);
}

/* Scavenge after a complete sweep: keep mapped the goal plus half of it
   (and 4 MiB), or, if more, the most pages in use in the last eight periods
   between scavenges plus half of that, so a steady heap does not give pages
   back only to fault them in again (a program whose large buffers come and
   go uses more pages than the goal counts, one buffer growing through
   several goals spans several cycles, and the heap grows past what is in
   use when no free run is long enough), while a heap that shrank returns its
   memory eight cycles later. */
/* The scavenger keeps at least this much mapped for a goal (or live heap). */
static uint64_t scavenge_keep(uint64_t base) { return base + base / 2 + ((uint64_t)4 << 20); }

void _cgc_after_sweep(void) {
  if (!_cgc_g.opt.scavenge) return;
  uint64_t goal = atomic_load(&_cgc_g.heap_goal);
  int64_t live = atomic_load(&_cgc_g.heap_live);
  uint64_t base = goal == UINT64_MAX ? (uint64_t)CGC_MAX(live, 0) : goal;
  uint64_t used = _cgc_used_peak_take();
  uint64_t target = CGC_MAX(scavenge_keep(base), used + used / 2);
  int64_t lim = atomic_load(&_cgc_g.memory_limit);
  if (lim != INT64_MAX) target = CGC_MIN(target, (uint64_t)lim / 10 * 9);
  _cgc_scavenge(target);
}

/* Without a sweeper thread, lazy sweeps alone never sweep the classes a
   program stopped using, nor the large list, so a heap that died would stay
   mapped until cgc_collect.  With one, a program that allocates fast enough
   starts each collection before the sweeper finished the last one's pass,
   which then ends without a scavenge, and a dead heap stayed mapped for
   dozens of collections.  So after a paced collection (cgc_collect, and the
   out-of-memory and limit paths, sweep on their own), when there is no
   sweeper or no scavenge followed the previous collection's sweep
   (_cgc_used_peak_cycle), and more is mapped than the scavenger would keep
   for the new goal, the collecting thread sweeps and scavenges itself
   (beside the sweeper, if there is one).
   A sweeper that keeps up is left to do it: a heap that stays above that
   mark (pages pinned by a few live objects) does not cost every paced
   collection a full sweep on the allocating thread. */
static void sweep_here_if_shrunk(void) {
  if (!_cgc_g.opt.scavenge) return;
  uint64_t goal = atomic_load(&_cgc_g.heap_goal);
  if (goal == UINT64_MAX) return;
  if (atomic_load(&_cgc_g.mapped_bytes) <= scavenge_keep(goal)) return;
  if (_cgc_sweep_all()) _cgc_after_sweep();
}

/* ---- the collection ------------------------------------------------------------------- */

/* The trace line of collection n, formatted under gc_lock (so that its time,
   pause share and figures are this collection's) and written after it is
   released, under trace_lock (_cgc_g), taken before: lines come out in
   collection order when threads collect in turn. */
static int trace_format(char *buf, size_t size, uint64_t n, int reason, uint64_t stop_ns, uint64_t mark_ns,
                        uint64_t fin_ns, uint64_t before, uint64_t after, uint64_t goal, const cgc_mark_result_t *res,
                        size_t threads) {
  int workers = res->workers;
  uint64_t now = _cgc_os_now_ns() - _cgc_g.start_ns;
  uint64_t pct = now ? _cgc_g.pause_total_ns * 100 / now : 0;
  static const char *const why[] = {"", " (forced)", " (out of memory)", " (memory limit)"};
  return _cgc_format(buf, size,
                        "gc %llu @%llu.%03llus %llu%%: %llu.%03llu+%llu.%03llu+%llu.%03llu ms clock, "
                        "%llu->%llu MB, %llu MB goal, %llu MB mapped, %llu KB roots, %llu objects, %zu threads, %d P%s\n",
                        (unsigned long long)n, (unsigned long long)(now / 1000000000u),
                        (unsigned long long)(now / 1000000u % 1000u), (unsigned long long)pct,
                        (unsigned long long)(stop_ns / 1000000u), (unsigned long long)(stop_ns / 1000u % 1000u),
                        (unsigned long long)(mark_ns / 1000000u), (unsigned long long)(mark_ns / 1000u % 1000u),
                        (unsigned long long)(fin_ns / 1000000u), (unsigned long long)(fin_ns / 1000u % 1000u),
                        (unsigned long long)(before >> 20), (unsigned long long)(after >> 20),
                        (unsigned long long)(goal == UINT64_MAX ? 0 : goal >> 20),
                        (unsigned long long)(atomic_load(&_cgc_g.mapped_bytes) >> 20),
                        (unsigned long long)(res->root_bytes >> 10), (unsigned long long)res->marked_objects, threads, workers,
                        why[reason]);
}

static void totals_locked(uint64_t *alloc, uint64_t *freed);

static CGC_NOINLINE void collect_body(int reason, uint32_t expect_cycle, uintptr_t my_sp);

void _cgc_collect(int reason, uint32_t expect_cycle) {
  /* The collecting thread's roots: its registers, saved here, and its stack
     from this frame up.  Frames below (the collector's own, collect_body's
     first) are not scanned, so stale words left there by earlier calls
     retain nothing; this frame holds only the buffer, cleared first
     (setjmp leaves its signal-mask part unwritten), and what the prologue
     saved.  The prologue must save every callee-saved register: setjmp
     stores some of them mangled (glibc's pointer guard on rbp, rsp and the
     return address), and a register this small function does not use would
     otherwise be saved only below, in collect_body's frame. */
  __builtin_unwind_init();
  jmp_buf regs;
  memset(&regs, 0, sizeof regs);
  setjmp(regs);
  /* A cancellation acted on in here would leave the world stopped and every
     lock held: none is, until the collection is over. */
  int cancel_state;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
  collect_body(reason, expect_cycle, (uintptr_t)&regs);
  pthread_setcancelstate(cancel_state, NULL);
  __asm__ volatile("" ::"r"(&regs) : "memory"); /* the buffer lives to here */
}

static CGC_NOINLINE void collect_body(int reason, uint32_t expect_cycle, uintptr_t my_sp) {
  _cgc_ensure_init();
  if (!_cgc_self && !_cgc_thread_register_self(false)) return;
  cgc_mark_result_t res;
  uint64_t t_stop, t_marked, t_end;
  uint64_t before = (uint64_t)CGC_MAX(atomic_load(&_cgc_g.heap_live), 0);

  for (;;) {
    _cgc_gc_lock();
    if (reason != CGC_GC_FORCED && reason != CGC_GC_OOM && atomic_load(&_cgc_g.gc_cycle) != expect_cycle) {
      _cgc_gc_unlock();
      return; /* another thread collected meanwhile */
    }
    _cgc_sweep_fence_raise();
    if (cgc_unlikely(!_cgc_mark_prepare())) {
      /* No memory for the mark workers (mapped at init, so init could not
         map them either): no collection; an allocation that needed one
         fails with ENOMEM. */
      _cgc_sweep_fence_lower();
      _cgc_gc_unlock();
      return;
    }
    _cgc_roots_prepare();
    t_stop = _cgc_os_now_ns();
    _cgc_collect_lock_all();
    _cgc_stop_world();
    if (!_cgc_roots_stale()) break;
    /* A library was loaded or unloaded under us: let it finish and retry. */
    _cgc_start_world();
    _cgc_collect_unlock_all();
    _cgc_sweep_fence_lower();
    _cgc_gc_unlock();
    _cgc_os_yield();
  }

  uint64_t t_stopped = _cgc_os_now_ns();
  _cgc_self->stop_sp = my_sp;
  _cgc_self->stop_alt_end = 0; /* the collector runs on its own stack (cgc is not for signal handlers) */
  _cgc_mark(&res);
  _cgc_g.marked_bytes = res.marked_bytes;
  if (_cgc_g.opt.checkmark || CGC_CHECKED) _cgc_checkmark();
  t_marked = _cgc_os_now_ns();
  _cgc_specials_process_stw();
  _cgc_checkfree_stw(reason);
  _cgc_arenas_after_mark_stw();

  atomic_fetch_add(&_cgc_g.gc_cycle, 1);
  _cgc_sweep_prepare_stw();
  _cgc_g.premarked_bytes = res.premarked_bytes;
  _cgc_g.record_bytes = _cgc_specials_record_bytes();
  atomic_store(&_cgc_g.heap_live, (int64_t)(_cgc_g.marked_bytes + _cgc_g.premarked_bytes + _cgc_g.record_bytes));
  atomic_store(&_cgc_g.heap_live_at_gc, atomic_load(&_cgc_g.heap_live));
  totals_locked(&_cgc_g.alloc_bytes_at_gc, &_cgc_g.free_bytes_at_gc);
  _cgc_update_goal();
  size_t nthreads = _cgc_g.nthreads;
  uint64_t after = _cgc_g.marked_bytes + _cgc_g.premarked_bytes; /* the globals are the next collection's after gc_lock */

  _cgc_start_world();
  /* The marks are final: sweeps may run again (the lists they need are
     still locked, for a moment).  Raised until all the locks are released,
     the fence refused every sweep meanwhile, and threads the restart let go
     grew the heap instead of reusing what this collection found dead. */
  _cgc_sweep_fence_lower();
  t_end = _cgc_os_now_ns();
  uint64_t pause = t_end - t_stop;
  _cgc_g.pause_total_ns += pause;
  _cgc_g.last_pause_ns = pause;
  if (pause > _cgc_g.pause_max_ns) _cgc_g.pause_max_ns = pause;
  _cgc_g.mark_total_ns += t_marked - t_stopped;
  if (reason == CGC_GC_FORCED) _cgc_g.num_forced++;
  _cgc_collect_unlock_all();
  char trace[512];
  int trace_len = 0;
  if (_cgc_g.opt.gctrace) {
    trace_len = trace_format(trace, sizeof trace, atomic_load(&_cgc_g.gc_cycle), reason, t_stopped - t_stop,
                             t_marked - t_stopped, t_end - t_marked, before, after, atomic_load(&_cgc_g.heap_goal),
                             &res, nthreads);
    pthread_mutex_lock(&_cgc_g.trace_lock);
  }
  _cgc_gc_unlock();
  if (_cgc_g.opt.gctrace) {
    _cgc_write_all(2, trace, (size_t)trace_len);
    pthread_mutex_unlock(&_cgc_g.trace_lock);
  }

  _cgc_specials_after_gc();
  _cgc_checkfree_after_gc();
  _cgc_arenas_after_gc();
  _cgc_sweeper_start();
  bool sweeper = _cgc_sweeper_wake();
  if (reason == CGC_GC_PACED &&
      (!sweeper || _cgc_used_peak_cycle() + 1 < atomic_load(&_cgc_g.gc_cycle)))
    sweep_here_if_shrunk();
}

void cgc_collect(void) {
  _cgc_collect(CGC_GC_FORCED, 0);
  /* Like Go's runtime.GC: return with the heap swept. */
  _cgc_sweep_all();
  _cgc_after_sweep();
}

void cgc_release_memory(void) {
  _cgc_ensure_init();
  _cgc_sweep_all();
  _cgc_scavenge(0);
  _cgc_used_peaks_reset(); /* the program said it needs less now: forget the earlier peaks */
}

/* ---- parameters ------------------------------------------------------------------------ */

int cgc_set_gc_percent(int percent) {
  _cgc_ensure_init();
  if (percent < 0) percent = -1;
  _cgc_gc_lock();
  int old = atomic_exchange(&_cgc_g.gc_percent, percent);
  _cgc_update_goal();
  _cgc_gc_unlock();
  return old;
}

int64_t cgc_set_memory_limit(int64_t bytes) {
  _cgc_ensure_init();
  if (bytes < 0) return atomic_load(&_cgc_g.memory_limit);
  _cgc_gc_lock();
  int64_t old = atomic_exchange(&_cgc_g.memory_limit, bytes);
  _cgc_update_goal();
  _cgc_gc_unlock();
  return old;
}

void cgc_keep_alive(const void *p) { __asm__ volatile("" ::"r"(p) : "memory"); }

int _cgc_threads_move_signal(int sig) CGC_HIDDEN;

int cgc_set_suspend_signal(int sig) {
  char buf[16];
  _cgc_format(buf, sizeof buf, "%d", sig);
  if (_cgc_os_parse_signal(buf) < 0) return -1;
  if (!atomic_load(&_cgc_g.initialized)) {
    _cgc_g.suspend_signal = sig;
    return 0;
  }
  /* cgc initialises when it is loaded; the signal can still move until the
     first collection. */
  _cgc_gc_lock();
  int rc = -1;
  if (atomic_load(&_cgc_g.gc_cycle) == 0) rc = _cgc_threads_move_signal(sig);
  _cgc_gc_unlock();
  return rc;
}

int cgc_suspend_signal(void) {
  _cgc_ensure_init();
  return _cgc_g.suspend_signal;
}

uint64_t cgc_gc_count(void) { return atomic_load(&_cgc_g.gc_cycle); }

/* ---- statistics ---------------------------------------------------------------------- */

struct tot {
  uint64_t ab, ao, fb, fo;
};

static void tot_thread(cgc_thread_t *t, void *ctx) {
  struct tot *c = ctx;
  cgc_tcache_t *tc = t->tc;
  c->ab += __atomic_load_n(&tc->alloc_bytes, __ATOMIC_RELAXED);
  c->ao += __atomic_load_n(&tc->alloc_objects, __ATOMIC_RELAXED);
  uint64_t fb, fo;
  _cgc_tcache_free_totals(tc, &fb, &fo);
  c->fb += fb;
  c->fo += fo;
}

/* threads_lock held. */
static void totals_of(struct tot *c) {
  memset(c, 0, sizeof *c);
  _cgc_threads_for_each(tot_thread, c);
  c->ab += atomic_load(&_cgc_g.exited_alloc_bytes) + atomic_load(&_cgc_g.large_alloc_bytes);
  c->ao += atomic_load(&_cgc_g.exited_alloc_objects) + atomic_load(&_cgc_g.large_alloc_objects);
  c->fb += atomic_load(&_cgc_g.exited_free_bytes);
  c->fo += atomic_load(&_cgc_g.exited_free_objects);
}

static void totals_locked(uint64_t *alloc, uint64_t *freed) {
  struct tot c;
  totals_of(&c);
  *alloc = c.ab;
  *freed = c.fb;
}

uint64_t _cgc_stats_specials(cgc_stats_t *out) CGC_HIDDEN;
uint64_t _cgc_arena_stats_bytes(void) CGC_HIDDEN;

void cgc_read_stats(cgc_stats_t *out) {
  cgc_check(out != NULL, "cgc_read_stats: out is NULL");
  _cgc_ensure_init();
  memset(out, 0, sizeof *out);
  struct tot c;
  _cgc_gc_lock();
  pthread_mutex_lock(&_cgc_g.threads_lock);
  totals_of(&c);
  out->num_threads = _cgc_g.nthreads;
  pthread_mutex_unlock(&_cgc_g.threads_lock);
  out->num_gc = atomic_load(&_cgc_g.gc_cycle);
  uint64_t since_alloc = c.ab - _cgc_g.alloc_bytes_at_gc, since_free = c.fb - _cgc_g.free_bytes_at_gc;
  int64_t live = (int64_t)_cgc_g.marked_bytes + (int64_t)since_alloc - (int64_t)since_free;
  out->live_bytes = live > 0 ? (uint64_t)live : 0;
  out->last_live_bytes = _cgc_g.marked_bytes;
  out->pause_total_ns = _cgc_g.pause_total_ns;
  out->pause_max_ns = _cgc_g.pause_max_ns;
  out->last_pause_ns = _cgc_g.last_pause_ns;
  out->mark_total_ns = _cgc_g.mark_total_ns;
  out->num_forced_gc = _cgc_g.num_forced;
  _cgc_gc_unlock();
  out->mapped_bytes = atomic_load(&_cgc_g.mapped_bytes);
  out->total_alloc_bytes = c.ab;
  out->total_alloc_objects = c.ao;
  out->total_free_bytes = c.fb;
  out->total_free_objects = c.fo;
  out->heap_goal_bytes = atomic_load(&_cgc_g.heap_goal);
  out->released_bytes = atomic_load(&_cgc_g.released_total);
  int w = _cgc_g.opt.markworkers > 0 ? _cgc_g.opt.markworkers : _cgc_g.ncpus;
  out->mark_workers = (uint64_t)w;
  _cgc_stats_specials(out);
  out->arena_bytes = _cgc_arena_stats_bytes();
}
