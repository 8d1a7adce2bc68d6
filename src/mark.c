/* mark.c — parallel conservative marking (see docs/marking.md).
 *
 * With the world stopped, every mark worker (the collecting thread plus
 * opt.markworkers-1 helper threads) claims root ranges from a shared job list,
 * scans them word by word, and traces from what it finds with an explicit
 * work-stealing deque (Chase-Lev) per worker; idle workers steal from others.
 * Marking ends when no worker is active and no job is left.
 *
 * Mark bits live in the span.  They are valid only when span->mark_epoch
 * equals _cgc_g.mark_epoch: the first marker to touch a span in a cycle
 * clears its bits (claiming the span with a CAS to CLEARING), so there is no
 * global clearing pass and unswept spans keep working (a later sweep uses the
 * latest marks, which describe the heap completely).
 *
 * Objects on thread free lists are marked without being scanned (I4).
 */
#include "internal.h"

#define EPOCH_CLEARING UINT32_MAX
#define LARGE_CHUNK ((uintptr_t)128 << 10)
#define ROOT_JOB_BYTES ((uintptr_t)256 << 10)
#define DEQUE_INIT (1u << 16)

#if defined(__clang__)
#define NO_SANITIZE __attribute__((no_sanitize("address", "thread", "undefined", "hwaddress")))
#else
#define NO_SANITIZE __attribute__((no_sanitize_address, no_sanitize_thread, no_sanitize_undefined))
#endif

/* ---- mark bits ---------------------------------------------------------------- */

bool _cgc_span_marks_valid(const cgc_span_t *s) {
  return atomic_load_explicit(&((cgc_span_t *)s)->mark_epoch, memory_order_acquire) ==
         atomic_load_explicit(&_cgc_g.mark_epoch, memory_order_relaxed);
}

bool _cgc_slot_marked(cgc_span_t *s, uint32_t idx) {
  if (!_cgc_span_marks_valid(s)) return false;
  return (atomic_load_explicit(&s->mark[idx / 64], memory_order_relaxed) >> (idx % 64)) & 1;
}

static inline void marks_prepare(cgc_span_t *s, uint32_t epoch) {
  uint32_t e = atomic_load_explicit(&s->mark_epoch, memory_order_acquire);
  if (cgc_likely(e == epoch)) return;
  for (;;) {
    if (e != EPOCH_CLEARING &&
        atomic_compare_exchange_strong_explicit(&s->mark_epoch, &e, EPOCH_CLEARING, memory_order_acquire,
                                                memory_order_acquire)) {
      for (int i = 0; i < CGC_MARK_WORDS; i++) atomic_store_explicit(&s->mark[i], 0, memory_order_relaxed);
      atomic_store_explicit(&s->mark_epoch, epoch, memory_order_release);
      return;
    }
    while ((e = atomic_load_explicit(&s->mark_epoch, memory_order_acquire)) == EPOCH_CLEARING)
      _cgc_os_cpu_relax();
    if (e == epoch) return;
  }
}

/* Set the mark bit; true if this call set it. */
static inline bool mark_bit(cgc_span_t *s, uint32_t idx, uint32_t epoch) {
  marks_prepare(s, epoch);
  uint64_t bit = 1ull << (idx % 64);
  _Atomic uint64_t *w = &s->mark[idx / 64];
  if (atomic_load_explicit(w, memory_order_relaxed) & bit) return false;
  return !(atomic_fetch_or_explicit(w, bit, memory_order_relaxed) & bit);
}

/* ---- work-stealing deque ---------------------------------------------------------- */

typedef struct {
  size_t cap; /* power of two */
  _Atomic uintptr_t items[];
} dq_buf_t;

typedef struct {
  _Atomic int64_t top;
  char pad0[56];
  _Atomic int64_t bottom;
  char pad1[56];
  _Atomic(dq_buf_t *) buf;
  dq_buf_t *retired[32]; /* grown-out buffers, unmapped after marking */
  int nretired;
  uint64_t marked_bytes, marked_objects;
  uint32_t epoch;
  uint32_t seen_phase; /* helpers: the phase they last worked in */
  char pad2[64];
} worker_t;

static dq_buf_t *dq_buf_new(size_t cap) {
  dq_buf_t *b = _cgc_os_map(sizeof(dq_buf_t) + cap * sizeof(uintptr_t));
  if (!b) _cgc_fatal("out of memory for the mark stack (%zu entries)", cap);
  b->cap = cap;
  return b;
}

static void dq_push(worker_t *w, uintptr_t x) {
  int64_t b = atomic_load_explicit(&w->bottom, memory_order_relaxed);
  int64_t t = atomic_load_explicit(&w->top, memory_order_acquire);
  dq_buf_t *buf = atomic_load_explicit(&w->buf, memory_order_relaxed);
  if (cgc_unlikely(b - t >= (int64_t)buf->cap - 1)) {
    dq_buf_t *nb = dq_buf_new(buf->cap * 2);
    for (int64_t i = t; i < b; i++)
      atomic_store_explicit(&nb->items[i & (nb->cap - 1)],
                            atomic_load_explicit(&buf->items[i & (buf->cap - 1)], memory_order_relaxed),
                            memory_order_relaxed);
    if (w->nretired < 32) w->retired[w->nretired++] = buf;
    atomic_store_explicit(&w->buf, nb, memory_order_release);
    buf = nb;
  }
  atomic_store_explicit(&buf->items[b & (buf->cap - 1)], x, memory_order_relaxed);
  atomic_thread_fence(memory_order_release);
  atomic_store_explicit(&w->bottom, b + 1, memory_order_relaxed);
}

static uintptr_t dq_pop(worker_t *w) {
  int64_t b = atomic_load_explicit(&w->bottom, memory_order_relaxed) - 1;
  dq_buf_t *buf = atomic_load_explicit(&w->buf, memory_order_relaxed);
  atomic_store_explicit(&w->bottom, b, memory_order_relaxed);
  atomic_thread_fence(memory_order_seq_cst);
  int64_t t = atomic_load_explicit(&w->top, memory_order_relaxed);
  if (t > b) {
    atomic_store_explicit(&w->bottom, b + 1, memory_order_relaxed);
    return 0;
  }
  uintptr_t x = atomic_load_explicit(&buf->items[b & (buf->cap - 1)], memory_order_relaxed);
  if (t == b) {
    if (!atomic_compare_exchange_strong_explicit(&w->top, &t, t + 1, memory_order_seq_cst, memory_order_relaxed))
      x = 0;
    atomic_store_explicit(&w->bottom, b + 1, memory_order_relaxed);
  }
  return x;
}

static uintptr_t dq_steal(worker_t *w) {
  int64_t t = atomic_load_explicit(&w->top, memory_order_acquire);
  atomic_thread_fence(memory_order_seq_cst);
  int64_t b = atomic_load_explicit(&w->bottom, memory_order_acquire);
  if (t >= b) return 0;
  dq_buf_t *buf = atomic_load_explicit(&w->buf, memory_order_consume);
  uintptr_t x = atomic_load_explicit(&buf->items[t & (buf->cap - 1)], memory_order_relaxed);
  if (!atomic_compare_exchange_strong_explicit(&w->top, &t, t + 1, memory_order_seq_cst, memory_order_relaxed))
    return 0;
  return x;
}

static bool dq_nonempty(worker_t *w) {
  return atomic_load_explicit(&w->bottom, memory_order_acquire) >
         atomic_load_explicit(&w->top, memory_order_acquire);
}

/* ---- workers and jobs --------------------------------------------------------------- */

#define MAX_WORKERS 64

typedef struct {
  uintptr_t lo, hi;
} job_t;

static worker_t *workers;  /* MAX_WORKERS entries, mapped once */
static int nworkers;       /* including the collector (worker 0) */
static int helpers_started;
static job_t *jobs;
static size_t njobs, jobs_cap;
static _Atomic size_t next_job;
static _Atomic int active;
static _Atomic uint32_t phase;       /* bumped to start a marking */
static _Atomic int helpers_running;  /* helpers still marking */
static uintptr_t heap_lo, heap_range;

static void add_job(uintptr_t lo, uintptr_t hi) {
  lo = CGC_ALIGN_UP(lo, sizeof(uintptr_t));
  while (lo + sizeof(uintptr_t) <= hi) {
    uintptr_t end = hi - lo > ROOT_JOB_BYTES ? lo + ROOT_JOB_BYTES : hi;
    if (njobs == jobs_cap) {
      size_t ncap = jobs_cap ? jobs_cap * 2 : 4096;
      job_t *nj = _cgc_os_map(ncap * sizeof(job_t));
      if (!nj) _cgc_fatal("out of memory for the root list");
      if (jobs) {
        memcpy(nj, jobs, njobs * sizeof(job_t));
        _cgc_os_unmap(jobs, jobs_cap * sizeof(job_t));
      }
      jobs = nj;
      jobs_cap = ncap;
    }
    jobs[njobs++] = (job_t){lo, end};
    lo = end;
  }
}

static void add_job_cb(void *ctx, uintptr_t lo, uintptr_t hi) {
  (void)ctx;
  add_job(lo, hi);
}

void _cgc_mark_root_range(uintptr_t lo, uintptr_t hi) { add_job(lo, hi); }

/* ---- scanning ---------------------------------------------------------------------- */

static inline void mark_word(worker_t *w, uintptr_t v) {
  if (v - heap_lo >= heap_range) return;
  cgc_span_t *s = _cgc_span_of_any(v);
  if (!s) return;
  uint8_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
  if (st == CGC_SPAN_SMALL) {
    if (v >= s->limit) return;
    uint32_t idx = _cgc_slot_index(s, v);
    if (!mark_bit(s, idx, w->epoch)) return;
    w->marked_bytes += s->elemsize;
    w->marked_objects++;
    if (!s->noscan) dq_push(w, _cgc_slot_base(s, idx));
  } else if (st == CGC_SPAN_LARGE) {
    if (!mark_bit(s, 0, w->epoch)) return;
    w->marked_bytes += s->elemsize;
    w->marked_objects++;
    if (!s->noscan) dq_push(w, s->base);
  } else if (st == CGC_SPAN_ARENA) {
    _cgc_arena_note_hit(s);
  }
}

NO_SANITIZE static void scan_range(worker_t *w, uintptr_t lo, uintptr_t hi) {
  const uintptr_t *p = (const uintptr_t *)lo, *end = (const uintptr_t *)hi;
  uintptr_t hl = heap_lo, hr = heap_range;
  for (; p < end; p++) {
    uintptr_t v = *p;
    if (v - hl < hr) mark_word(w, v);
  }
}

/* Scan one work item: an object start, or a chunk of a large object. */
static void scan_item(worker_t *w, uintptr_t a) {
  cgc_span_t *s = _cgc_span_of_any(a);
  if (cgc_likely(atomic_load_explicit(&s->state, memory_order_relaxed) == CGC_SPAN_SMALL)) {
    scan_range(w, a, a + s->elemsize);
    return;
  }
  uintptr_t end = a + LARGE_CHUNK;
  if (end < s->limit) dq_push(w, end);
  else end = s->limit;
  scan_range(w, a, end);
}

static void drain(worker_t *w) {
  uintptr_t a;
  while ((a = dq_pop(w)) != 0) scan_item(w, a);
}

static bool steal_some(worker_t *self) {
  int me = (int)(self - workers);
  for (int k = 1; k < nworkers; k++) {
    worker_t *v = &workers[(me + k) % nworkers];
    uintptr_t a = dq_steal(v);
    if (a) {
      scan_item(self, a);
      return true;
    }
  }
  return false;
}

static bool work_visible(void) {
  if (atomic_load_explicit(&next_job, memory_order_relaxed) < njobs) return true;
  for (int i = 0; i < nworkers; i++)
    if (dq_nonempty(&workers[i])) return true;
  return false;
}

static void mark_loop(worker_t *w) {
  for (;;) {
    size_t j;
    while ((j = atomic_fetch_add(&next_job, 1)) < njobs) {
      scan_range(w, jobs[j].lo, jobs[j].hi);
      drain(w);
    }
    drain(w);
    if (steal_some(w)) continue;
    atomic_fetch_sub(&active, 1);
    for (unsigned spins = 0;; spins++) {
      if (work_visible()) {
        atomic_fetch_add(&active, 1);
        break;
      }
      if (atomic_load(&active) == 0) return;
      if (spins < 64) _cgc_os_cpu_relax();
      else _cgc_os_yield();
    }
  }
}

static void *helper_main(void *arg) {
  worker_t *w = arg;
  _cgc_os_set_thread_name("cgc-marker");
  for (;;) {
    uint32_t seen = w->seen_phase;
    while (atomic_load(&phase) == seen) _cgc_os_wait(&phase, seen);
    w->seen_phase = seen + 1; /* phases advance one at a time, after all helpers finish */
    mark_loop(w);
    atomic_fetch_sub(&helpers_running, 1);
    _cgc_os_wake_all((_Atomic uint32_t *)&helpers_running);
  }
  return NULL;
}

static void workers_init(void) {
  if (!workers) {
    workers = _cgc_os_map(MAX_WORKERS * sizeof(worker_t));
    if (!workers) _cgc_fatal("out of memory for mark workers");
    for (int i = 0; i < MAX_WORKERS; i++) atomic_store(&workers[i].buf, dq_buf_new(DEQUE_INIT));
  }
  int want = _cgc_g.opt.markworkers > 0 ? _cgc_g.opt.markworkers : _cgc_g.ncpus;
  want = CGC_MAX(1, CGC_MIN(want, MAX_WORKERS));
  /* Helpers are started before the world stops (creating threads takes locks
     a stopped thread could hold). */
  while (helpers_started + 1 < want) {
    workers[helpers_started + 1].seen_phase = atomic_load(&phase);
    if (_cgc_os_thread_create(helper_main, &workers[helpers_started + 1]) != 0) break;
    helpers_started++;
  }
  nworkers = helpers_started + 1;
}

void _cgc_mark_workers_reset(void) { helpers_started = 0; }

/* The collector calls this before stopping the world. */
void _cgc_mark_prepare(void) CGC_HIDDEN;
void _cgc_mark_prepare(void) { workers_init(); }

/* ---- thread free lists (I4) -------------------------------------------------------- */

static void premark_thread(cgc_thread_t *t, void *ctx) {
  worker_t *w = ctx;
  cgc_tcache_t *tc = t->tc;
  for (unsigned sc = 2; sc < CGC_NUM_SPAN_CLASSES; sc++) {
    for (void *p = tc->free[sc]; p;) {
      cgc_span_t *s = _cgc_span_of((uintptr_t)p);
      if (!s || s->spanclass != sc) break; /* a list being pushed mid-stop: the rest is reachable via registers */
      uint32_t idx = _cgc_slot_index(s, (uintptr_t)p);
      if (mark_bit(s, idx, w->epoch)) _cgc_g.premarked_bytes += s->elemsize;
      p = _cgc_decode(*(uintptr_t *)p);
    }
  }
}

/* ---- entry points ---------------------------------------------------------------------- */

static void start_marking(void) {
  uint32_t e = atomic_load(&_cgc_g.mark_epoch) + 1;
  if (e == 0 || e == EPOCH_CLEARING) e = 1;
  atomic_store(&_cgc_g.mark_epoch, e);
  heap_lo = atomic_load(&_cgc_g.heap_lo);
  heap_range = atomic_load(&_cgc_g.heap_hi) - heap_lo;
  for (int i = 0; i < MAX_WORKERS; i++) {
    workers[i].epoch = e;
    workers[i].marked_bytes = workers[i].marked_objects = 0;
  }
}

void _cgc_mark(cgc_mark_result_t *res) {
  if (!workers) workers_init();
  start_marking();
  _cgc_g.premarked_bytes = 0;
  _cgc_threads_for_each(premark_thread, &workers[0]);

  njobs = 0;
  atomic_store(&next_job, 0);
  _cgc_roots_enumerate(add_job_cb, NULL);

  atomic_store(&active, nworkers);
  atomic_store(&helpers_running, nworkers - 1);
  atomic_fetch_add(&phase, 1);
  _cgc_os_wake_all(&phase);
  mark_loop(&workers[0]);
  int r;
  while ((r = atomic_load(&helpers_running)) != 0) _cgc_os_wait((_Atomic uint32_t *)&helpers_running, (uint32_t)r);

  res->marked_bytes = res->marked_objects = 0;
  for (int i = 0; i < nworkers; i++) {
    res->marked_bytes += workers[i].marked_bytes;
    res->marked_objects += workers[i].marked_objects;
    for (int k = 0; k < workers[i].nretired; k++)
      _cgc_os_unmap(workers[i].retired[k], sizeof(dq_buf_t) + workers[i].retired[k]->cap * sizeof(uintptr_t));
    workers[i].nretired = 0;
  }
  res->premarked_bytes = _cgc_g.premarked_bytes;
  res->workers = nworkers;
}

void _cgc_mark_from(uintptr_t p) {
  worker_t *w = &workers[0];
  uint64_t before = w->marked_bytes;
  mark_word(w, p);
  drain(w);
  _cgc_g.marked_bytes += w->marked_bytes - before;
}

bool _cgc_is_marked(uintptr_t a) {
  cgc_span_t *s = _cgc_span_of(a);
  if (!s) return true; /* not in the heap: never collected */
  return _cgc_slot_marked(s, _cgc_slot_index(s, a));
}

/* ---- checkmark ---------------------------------------------------------------------- */

/* An independent single-threaded re-mark from the same roots: every object it
   reaches must already be marked, or the parallel marker lost it and the sweep
   would free a reachable object. */
typedef struct {
  uintptr_t *set;   /* open-addressed set of visited object bases */
  size_t set_cap;
  uintptr_t *stack;
  size_t sp, stack_cap;
  uintptr_t found_in; /* root range or object where the current word was found */
} check_t;

static void check_visit(check_t *c, uintptr_t v) {
  cgc_span_t *s = _cgc_span_of(v);
  if (!s) return;
  uintptr_t base = _cgc_slot_base(s, _cgc_slot_index(s, v));
  size_t h = (base >> 3) * 0x9E3779B97F4A7C15ull & (c->set_cap - 1);
  while (c->set[h]) {
    if (c->set[h] == base) return;
    h = (h + 1) & (c->set_cap - 1);
  }
  c->set[h] = base;
  if (!_cgc_slot_marked(s, _cgc_slot_index(s, v)))
    _cgc_fatal("checkmark: object %p (%zu bytes) is reachable (word %p, found in %p) but was not marked",
               (void *)base, s->elemsize, (void *)v, (void *)c->found_in);
  if (s->noscan) return;
  if (c->sp == c->stack_cap) {
    size_t ncap = c->stack_cap * 2;
    uintptr_t *ns = _cgc_os_map(ncap * sizeof(uintptr_t));
    if (!ns) _cgc_fatal("checkmark: out of memory");
    memcpy(ns, c->stack, c->sp * sizeof(uintptr_t));
    _cgc_os_unmap(c->stack, c->stack_cap * sizeof(uintptr_t));
    c->stack = ns;
    c->stack_cap = ncap;
  }
  c->stack[c->sp++] = base;
}

NO_SANITIZE static void check_scan(check_t *c, uintptr_t lo, uintptr_t hi) {
  for (const uintptr_t *p = (const uintptr_t *)CGC_ALIGN_UP(lo, sizeof(uintptr_t)); (uintptr_t)(p + 1) <= hi; p++)
    if (*p - heap_lo < heap_range) check_visit(c, *p);
}

void _cgc_checkmark(void) {
  check_t c;
  uint64_t objs = 0;
  for (int i = 0; i < nworkers; i++) objs += workers[i].marked_objects;
  c.set_cap = 1024;
  while (c.set_cap < objs * 2 + 1024) c.set_cap *= 2;
  c.set = _cgc_os_map(c.set_cap * sizeof(uintptr_t));
  c.stack_cap = 1 << 16;
  c.stack = _cgc_os_map(c.stack_cap * sizeof(uintptr_t));
  c.sp = 0;
  if (!c.set || !c.stack) _cgc_fatal("checkmark: out of memory");
  for (size_t j = 0; j < njobs; j++) {
    c.found_in = jobs[j].lo;
    check_scan(&c, jobs[j].lo, jobs[j].hi);
    while (c.sp) {
      uintptr_t base = c.stack[--c.sp];
      cgc_span_t *s = _cgc_span_of(base);
      c.found_in = base;
      check_scan(&c, base, base + s->elemsize);
    }
  }
  _cgc_os_unmap(c.set, c.set_cap * sizeof(uintptr_t));
  _cgc_os_unmap(c.stack, c.stack_cap * sizeof(uintptr_t));
}
