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
#define DEQUE_INIT (1u << 12)
#define CAND 16

#define NO_SANITIZE CGC_NO_SANITIZE

/* ---- mark bits ---------------------------------------------------------------- */

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

/* A unit of marking work: a range of words to scan. */
typedef struct {
  uintptr_t lo, hi;
} item_t;

typedef struct {
  size_t cap;   /* power of two */
  bool mapped;  /* a mapping of its own (grown), else part of mark_memory's */
  item_t items[];
} dq_buf_t;

/* The private mark stack: no synchronisation at all. */
typedef struct {
  item_t *items;
  size_t n, cap;
  bool mapped; /* a mapping of its own (grown), else part of mark_memory's */
} pstack_t;

typedef struct {
  _Atomic int64_t top;
  char pad0[56];
  _Atomic int64_t bottom;
  char pad1[56];
  _Atomic(dq_buf_t *) buf;
  dq_buf_t *retired[32]; /* grown-out buffers, unmapped after marking */
  int nretired;
  pstack_t priv;
  uintptr_t cand_v[CAND];        /* candidates waiting for their prefetches */
  cgc_span_t *cand_s[CAND];
  uint64_t cand_n;
  uintptr_t cache_key;           /* arena index of the last lookup */
  cgc_arena_meta_t *cache_meta;
  uint64_t marked_bytes, marked_objects;
  uint32_t epoch;
  bool parallel;
  uint32_t seen_phase; /* helpers: the phase they last worked in */
  char pad2[64];
} worker_t;

static dq_buf_t *dq_buf_new(size_t cap) {
  dq_buf_t *b = _cgc_os_map(sizeof(dq_buf_t) + cap * sizeof(item_t));
  if (b) {
    b->cap = cap;
    b->mapped = true;
  }
  return b;
}

/* Slots of a deque buffer are only rewritten after the buffer grows, so a
   stealer's plain read of an item is validated by its CAS on top.  Returns
   false when the deque is full and cannot grow. */
static bool dq_push(worker_t *w, item_t x) {
  int64_t b = atomic_load_explicit(&w->bottom, memory_order_relaxed);
  int64_t t = atomic_load_explicit(&w->top, memory_order_acquire);
  dq_buf_t *buf = atomic_load_explicit(&w->buf, memory_order_relaxed);
  if (cgc_unlikely(b - t >= (int64_t)buf->cap - 1)) {
    if (w->nretired == 32) return false;
    dq_buf_t *nb = dq_buf_new(buf->cap * 2);
    if (!nb) return false;
    for (int64_t i = t; i < b; i++) nb->items[i & (nb->cap - 1)] = buf->items[i & (buf->cap - 1)];
    w->retired[w->nretired++] = buf;
    atomic_store_explicit(&w->buf, nb, memory_order_release);
    buf = nb;
  }
  buf->items[b & (buf->cap - 1)] = x;
  atomic_thread_fence(memory_order_release);
  atomic_store_explicit(&w->bottom, b + 1, memory_order_relaxed);
  return true;
}

static bool dq_pop(worker_t *w, item_t *out) {
  int64_t b = atomic_load_explicit(&w->bottom, memory_order_relaxed) - 1;
  dq_buf_t *buf = atomic_load_explicit(&w->buf, memory_order_relaxed);
  atomic_store_explicit(&w->bottom, b, memory_order_relaxed);
  atomic_thread_fence(memory_order_seq_cst);
  int64_t t = atomic_load_explicit(&w->top, memory_order_relaxed);
  if (t > b) {
    atomic_store_explicit(&w->bottom, b + 1, memory_order_relaxed);
    return false;
  }
  *out = buf->items[b & (buf->cap - 1)];
  bool ok = true;
  if (t == b) {
    ok = atomic_compare_exchange_strong_explicit(&w->top, &t, t + 1, memory_order_seq_cst, memory_order_relaxed);
    atomic_store_explicit(&w->bottom, b + 1, memory_order_relaxed);
  }
  return ok;
}

NO_SANITIZE static bool dq_steal(worker_t *w, item_t *out) {
  int64_t t = atomic_load_explicit(&w->top, memory_order_acquire);
  atomic_thread_fence(memory_order_seq_cst);
  int64_t b = atomic_load_explicit(&w->bottom, memory_order_acquire);
  if (t >= b) return false;
  dq_buf_t *buf = atomic_load_explicit(&w->buf, memory_order_acquire);
  item_t x = buf->items[t & (buf->cap - 1)];
  if (!atomic_compare_exchange_strong_explicit(&w->top, &t, t + 1, memory_order_seq_cst, memory_order_relaxed))
    return false;
  *out = x;
  return true;
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

static CGC_STATE worker_t *workers;  /* MAX_WORKERS entries, mapped once */
static CGC_STATE int nworkers;       /* including the collector (worker 0) */
static CGC_STATE int helpers_started;
static CGC_STATE job_t *jobs;
static CGC_STATE size_t njobs, jobs_cap;
static CGC_STATE _Atomic size_t next_job;
/* The marking's state: MARK_OPEN while it runs, plus the number of workers
   taking part and not idle.  A helper joins only while it is open (so a
   helper that never gets to run, or runs late, cannot hold a marking up), and
   whoever finds it open with no active worker closes it. */
#define MARK_OPEN 0x80000000u
static CGC_STATE _Atomic uint32_t mstate;
static CGC_STATE _Atomic uint32_t phase;       /* bumped to start a marking */
static CGC_STATE _Atomic int helpers_running;  /* helpers still marking */
/* Heap bounds for this marking: in _cgc_g, which is not scanned (a heap
   address in a scanned static would keep that object alive). */

static void scan_now(uintptr_t lo, uintptr_t hi);
static CGC_STATE size_t scanned_now_bytes; /* roots scan_now took (no job list), this marking */

static void add_job(uintptr_t lo, uintptr_t hi) {
  lo = CGC_ALIGN_UP(lo, sizeof(uintptr_t)); /* only whole words inside [lo, hi) are roots */
  hi &= ~(uintptr_t)(sizeof(uintptr_t) - 1);
  while (lo < hi && hi - lo >= sizeof(uintptr_t)) { /* no lo + 8: a range may end at the top */
    uintptr_t end = hi - lo > ROOT_JOB_BYTES ? lo + ROOT_JOB_BYTES : hi;
    if (njobs == jobs_cap) {
      size_t ncap = jobs_cap ? jobs_cap * 2 : 4096;
      job_t *nj = _cgc_os_map(ncap * sizeof(job_t));
      if (!nj) { /* no memory for the job list: scan this range right away */
        scan_now(lo, hi);
        return;
      }
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

/* ---- scanning ---------------------------------------------------------------------- */

static CGC_STATE _Atomic int idle_workers; /* workers looking for work: a hint to share */
/* An idle worker that found nothing for a while sleeps on work_seq instead
   of spinning.  Whoever makes work visible to it (share_work) or closes the
   marking bumps work_seq after doing so and wakes the sleepers: a sleeper
   reads work_seq before it looks for work, so it cannot miss a bump. */
static CGC_STATE _Atomic uint32_t work_seq;
static CGC_STATE _Atomic int sleepers;
#define IDLE_SPINS 64  /* cpu_relax rounds, then */
#define IDLE_YIELDS 64 /* sched_yield rounds, then sleep */

static void wake_idle(void) {
  atomic_fetch_add(&work_seq, 1);
  if (atomic_load(&sleepers) > 0) _cgc_os_wake_all(&work_seq);
}

/* Mark stack overflow: when a stack cannot grow (out of memory), the object
   stays marked but unscanned and the worker records the overflow; marking
   then rescans every marked object of the heap until no overflow is left. */
static CGC_STATE _Atomic int overflowed;

/* Grow ps; a push that cannot (full) records the overflow. */
static bool pstack_grow(pstack_t *ps, bool full) {
  size_t ncap = CGC_MAX(ps->cap * 2, (size_t)1 << 16);
  item_t *n = _cgc_os_map(ncap * sizeof(item_t));
  if (!n) {
    if (full) atomic_store(&overflowed, 1);
    return false;
  }
  if (ps->items) {
    memcpy(n, ps->items, ps->n * sizeof(item_t));
    if (ps->mapped) _cgc_os_unmap(ps->items, ps->cap * sizeof(item_t));
  }
  ps->items = n;
  ps->cap = ncap;
  ps->mapped = true;
  return true;
}

static inline bool push_work(worker_t *w, uintptr_t lo, uintptr_t hi) {
  pstack_t *ps = &w->priv;
  if (cgc_unlikely(ps->n == ps->cap) && !pstack_grow(ps, true)) return false;
  ps->items[ps->n++] = (item_t){lo, hi};
  return true;
}

/* Give the older half of the private stack to the shared deque. */
static CGC_NOINLINE void share_work(worker_t *w) {
  pstack_t *ps = &w->priv;
  size_t k = ps->n / 2, i;
  for (i = 0; i < k; i++)
    if (!dq_push(w, ps->items[i])) break;
  k = i;
  memmove(ps->items, ps->items + k, (ps->n - k) * sizeof(item_t));
  ps->n -= k;
  if (k) wake_idle();
}

static inline cgc_span_t *lookup(worker_t *w, uintptr_t v) {
  uintptr_t key = v >> CGC_ARENA_SHIFT;
  cgc_arena_meta_t *m = w->cache_meta;
  if (cgc_unlikely(key != w->cache_key || !m)) {
    m = _cgc_arena_of(v);
    if (!m) return NULL;
    w->cache_key = key;
    w->cache_meta = m;
  }
  return m->spans[_cgc_page_index(v)];
}

static inline bool set_mark(worker_t *w, cgc_span_t *s, uint32_t idx) {
  if (cgc_likely(w->parallel)) return mark_bit(s, idx, w->epoch);
  marks_prepare(s, w->epoch);
  uint64_t bit = 1ull << (idx % 64);
  uint64_t old = atomic_load_explicit(&s->mark[idx / 64], memory_order_relaxed);
  if (old & bit) return false;
  atomic_store_explicit(&s->mark[idx / 64], old | bit, memory_order_relaxed);
  return true;
}

/* Mark the object that v points into, in span s (already looked up).
   True if this call marked it and it must be scanned: *it is its range. */
static inline bool mark_obj(worker_t *w, uintptr_t v, cgc_span_t *s, item_t *it) {
  /* Free pages may still map to a span struct that was reused for other
     pages: check the bounds, not only the state. */
  if (v - s->base >= s->limit - s->base) return false;
  uint8_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
  if (st == CGC_SPAN_SMALL) {
    uint32_t idx = _cgc_slot_index(s, v);
    if (!set_mark(w, s, idx)) return false;
    w->marked_bytes += s->elemsize;
    w->marked_objects++;
    if (s->noscan) return false;
    it->lo = _cgc_slot_base(s, idx);
    it->hi = it->lo + s->elemsize;
    return true;
  } else if (st == CGC_SPAN_LARGE) {
    if (!set_mark(w, s, 0)) return false;
    w->marked_bytes += s->elemsize;
    w->marked_objects++;
    if (s->noscan) return false;
    it->lo = s->base;
    it->hi = s->limit;
    return true;
  } else if (st == CGC_SPAN_ARENA) {
    _cgc_arena_note_hit(s);
  }
  return false;
}

/* Mark it and queue it for scanning. */
static inline void mark_in_span(worker_t *w, uintptr_t v, cgc_span_t *s) {
  item_t it;
  if (mark_obj(w, v, s, &it)) push_work(w, it.lo, it.hi);
}

static inline void mark_word(worker_t *w, uintptr_t v) {
  if (v - _cgc_g.mark_lo >= _cgc_g.mark_range) return;
  cgc_span_t *s = lookup(w, v);
  if (s) mark_in_span(w, v, s);
}

/* Candidates found by a scan wait in a small FIFO (CAND entries) while their
   span's header and mark words and the object itself are prefetched: on a
   heap whose pointers go everywhere, the misses of several candidates then
   overlap instead of following one another. */

static inline void cand_push(worker_t *w, uintptr_t v) {
  cgc_span_t *s = lookup(w, v);
  if (!s) return;
  __builtin_prefetch(s);
  __builtin_prefetch((const char *)s + 64);
  __builtin_prefetch((const char *)s->mark);
  __builtin_prefetch((const char *)s->mark + 64);
  __builtin_prefetch((const void *)v);
  unsigned i = (unsigned)(w->cand_n++ % CAND);
  if (w->cand_n > CAND) mark_in_span(w, w->cand_v[i], w->cand_s[i]);
  w->cand_v[i] = v;
  w->cand_s[i] = s;
}

/* Under valgrind, words are read as defined values so memcheck does not
   report the collector for looking at uninitialised stack slots. */
static CGC_NOINLINE void scan_range_valgrind(worker_t *w, uintptr_t lo, uintptr_t hi) {
  for (const uintptr_t *p = (const uintptr_t *)lo; p < (const uintptr_t *)hi; p++) mark_word(w, _cgc_os_read_defined(p));
}

NO_SANITIZE static void scan_range(worker_t *w, uintptr_t lo, uintptr_t hi) {
  if (cgc_unlikely(_cgc_g.on_valgrind)) {
    scan_range_valgrind(w, lo, hi);
    return;
  }
  const uintptr_t *p = (const uintptr_t *)lo, *end = (const uintptr_t *)hi;
  uintptr_t hl = _cgc_g.mark_lo, hr = _cgc_g.mark_range;
  for (; p < end; p++) {
    uintptr_t v = *p;
    if (v - hl < hr) cand_push(w, v);
  }
}

/* Scan one item; a long range is split so that others can take the rest. */
static inline void scan_item(worker_t *w, item_t it) {
  if (it.hi - it.lo > LARGE_CHUNK && push_work(w, it.lo + LARGE_CHUNK, it.hi)) it.hi = it.lo + LARGE_CHUNK;
  scan_range(w, it.lo, it.hi);
}

/* Mark every candidate still waiting; drain does so when it has no other
   work.  The first that needs scanning is scanned at once, the others are
   queued: a chain (a linked list, singly or doubly) then goes from object
   to object without a trip through the stack and the ring, whose
   prefetching has nothing to overlap there. */
static void cand_flush(worker_t *w) {
  uint64_t m = w->cand_n;
  w->cand_n = 0;
  item_t first = {0, 0}, it;
  if (m == 1) { /* a singly linked list */
    if (mark_obj(w, w->cand_v[0], w->cand_s[0], &it)) scan_item(w, it);
    return;
  }
  /* All of them at once: the order does not matter (their prefetches were
     issued as they came in). */
  unsigned n = m < CAND ? (unsigned)m : CAND;
  for (unsigned i = 0; i < n; i++) {
    if (!mark_obj(w, w->cand_v[i], w->cand_s[i], &it)) continue;
    if (first.hi == 0) first = it;
    else push_work(w, it.lo, it.hi);
  }
  if (first.hi != 0) scan_item(w, first);
}

/* Items pass through a small FIFO before they are scanned, so the object's
   memory has been prefetched by the time the scan reads it. */
#define RING 8

static void drain(worker_t *w) {
  pstack_t *ps = &w->priv;
  item_t ring[RING];
  unsigned head = 0, count = 0, k = 0;
  for (;;) {
    while (count < RING && ps->n) {
      item_t it = ps->items[--ps->n];
      __builtin_prefetch((const void *)it.lo);
      ring[(head + count++) % RING] = it;
    }
    if (count == 0) {
      if (w->cand_n) {
        cand_flush(w);
        continue;
      }
      item_t it;
      if (!dq_pop(w, &it)) return;
      scan_item(w, it);
      continue;
    }
    item_t it = ring[head];
    head = (head + 1) % RING;
    count--;
    scan_item(w, it);
    if (cgc_unlikely(++k == 64)) {
      k = 0;
      if (w->parallel && ps->n > 1 && atomic_load_explicit(&idle_workers, memory_order_relaxed) > 0 &&
          !dq_nonempty(w))
        share_work(w);
    }
  }
}

static bool steal_some(worker_t *self) {
  int me = (int)(self - workers);
  for (int k = 1; k < nworkers; k++) {
    worker_t *v = &workers[(me + k) % nworkers];
    item_t it;
    if (dq_steal(v, &it)) {
      scan_item(self, it);
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

/* Join the open marking (one more active worker); false if it is closed. */
static bool mark_join(void) {
  uint32_t cur = atomic_load(&mstate);
  while (cur & MARK_OPEN)
    if (atomic_compare_exchange_weak(&mstate, &cur, cur + 1)) return true;
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
    /* Idle.  No work can appear while no worker is active, so the marking
       is over when the count reaches zero. */
    atomic_fetch_add(&idle_workers, 1);
    atomic_fetch_sub(&mstate, 1);
    bool back = false;
    for (unsigned spins = 0;; spins++) {
      uint32_t seq = atomic_load(&work_seq);
      if (work_visible()) {
        back = mark_join();
        break;
      }
      uint32_t cur = atomic_load(&mstate);
      if (!(cur & MARK_OPEN)) break;
      if (cur == MARK_OPEN) {
        if (atomic_compare_exchange_strong(&mstate, &cur, 0)) {
          wake_idle(); /* the sleepers see it closed */
          break;
        }
        continue;
      }
      if (spins < IDLE_SPINS) {
        _cgc_os_cpu_relax();
      } else if (spins < IDLE_SPINS + IDLE_YIELDS) {
        _cgc_os_yield();
      } else {
        /* A chain (a linked list) keeps one worker busy for a long time
           with nothing to share: do not burn a CPU waiting. */
        atomic_fetch_add(&sleepers, 1);
        _cgc_os_wait(&work_seq, seq);
        atomic_fetch_sub(&sleepers, 1);
      }
    }
    atomic_fetch_sub(&idle_workers, 1);
    if (!back) return;
  }
}

static void *helper_main(void *arg) {
  worker_t *w = arg;
  _cgc_os_set_thread_name("cgc-marker");
  for (;;) {
    uint32_t seen = w->seen_phase;
    while (atomic_load(&phase) == seen) _cgc_os_wait(&phase, seen);
    w->seen_phase = atomic_load(&phase);
    /* Count ourselves running before joining: the collector waits for the
       helpers that joined, and cannot see the marking closed before that. */
    atomic_fetch_add(&helpers_running, 1);
    if (mark_join()) mark_loop(w);
    atomic_fetch_sub(&helpers_running, 1);
    _cgc_os_wake_all((_Atomic uint32_t *)&helpers_running);
  }
  return NULL;
}

static size_t first_deque_cap(int i) { return i < 8 ? DEQUE_INIT : 64; }
/* The first private stacks too (the first 8 workers): a collection out of
   memory that could not map one overflowed at every push, and a list then
   took one rescan of the heap per node (a minute for 32000 nodes). */
#define PSTACK_INIT ((size_t)1 << 12)
static size_t first_pstack_cap(int i) { return i < 8 ? PSTACK_INIT : 0; }

/* The workers and their first deque buffers, in one mapping.  Made at init
   (_cgc_mark_init), so that the collection a program out of memory brings
   on finds them there; false if it cannot be mapped.  Buffers grown later
   are mapped one by one, and marking copes with failing to grow them (the
   deques and the private stacks overflow into a rescan). */
static bool mark_memory(void) {
  if (workers) return true;
  size_t bytes = CGC_ALIGN_UP(MAX_WORKERS * sizeof(worker_t), 64);
  for (int i = 0; i < MAX_WORKERS; i++)
    bytes += sizeof(dq_buf_t) + (first_deque_cap(i) + first_pstack_cap(i)) * sizeof(item_t);
  char *m = _cgc_os_map(bytes);
  if (!m) return false;
  worker_t *w = (worker_t *)m;
  char *p = m + CGC_ALIGN_UP(MAX_WORKERS * sizeof(worker_t), 64);
  for (int i = 0; i < MAX_WORKERS; i++) {
    dq_buf_t *b = (dq_buf_t *)p;
    b->cap = first_deque_cap(i);
    b->mapped = false;
    atomic_store(&w[i].buf, b);
    p += sizeof(dq_buf_t) + b->cap * sizeof(item_t);
    if (first_pstack_cap(i)) {
      w[i].priv.items = (item_t *)p;
      w[i].priv.cap = first_pstack_cap(i);
      p += first_pstack_cap(i) * sizeof(item_t);
    }
  }
  workers = w;
  return true;
}

void _cgc_mark_init(void) CGC_HIDDEN;
void _cgc_mark_init(void) { (void)mark_memory(); }

static bool workers_init(void) {
  if (!mark_memory()) return false;
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
  for (int i = 0; i < nworkers; i++)
    if (!workers[i].priv.mapped) pstack_grow(&workers[i].priv, false); /* else the preallocated one serves */
  return true;
}

/* In a fork child, whose helpers did not come along: a helper that woke late
   in the parent (after the marking closed) may have been counted running,
   idle or asleep when the fork came. */
void _cgc_mark_workers_reset(void) {
  helpers_started = 0;
  atomic_store(&helpers_running, 0);
  atomic_store(&idle_workers, 0);
  atomic_store(&sleepers, 0);
}

/* The collector calls this before stopping the world. */
bool _cgc_mark_prepare(void) CGC_HIDDEN;
bool _cgc_mark_prepare(void) { return workers_init(); }

/* ---- thread free lists (I4) -------------------------------------------------------- */

/* Slots of span class sc that a thread list keeps across a collection: a
   span's worth, or 64 KiB of slots if that is more. */
static uint32_t list_keep(unsigned sc) {
  unsigned cls = sc >> 1;
  return CGC_MAX((uint32_t)_cgc_class_nelems[cls], (uint32_t)(65536 / _cgc_class_size[cls]));
}

/* Set bits of mark word `word` of s for listed slots; count the new ones. */
static void premark_flush(cgc_span_t *s, uint32_t word, uint64_t bits) {
  if (!bits) return;
  uint64_t old = atomic_fetch_or_explicit(&s->mark[word], bits, memory_order_relaxed);
  _cgc_g.premarked_bytes += (uint64_t)__builtin_popcountll(bits & ~old) * s->elemsize;
}

/* Mark word wd of s's listed slots, from slot first on. */
static inline uint64_t listed_from(const cgc_span_t *s, uint32_t wd, uint32_t first) {
  return s->listed[wd] & (wd == first / 64 ? ~0ull << (first % 64) : ~0ull);
}

/* The rest of a thread list from slot p on is still the owned span s's list
   as the thread took it (slots in address order, popped from the front), so
   it is exactly the slots s->listed has from p's on: premark them all at
   once.  False if p is not in s (cannot happen; the caller then walks). */
static bool premark_taken(cgc_span_t *s, uintptr_t p, uint32_t epoch) {
  if (!s || p - s->base >= s->limit - s->base) return false;
  uint32_t first = _cgc_slot_index(s, p);
  if (CGC_CHECKED) { /* the rest of the list is exactly s->listed from first on */
    uint32_t count = 0, prev = first;
    for (uintptr_t q = p; q; q = (uintptr_t)_cgc_decode(*(uintptr_t *)q), count++) {
      cgc_assert(q - s->base < s->limit - s->base);
      uint32_t i = _cgc_slot_index(s, q);
      cgc_assert((s->listed[i / 64] >> (i % 64)) & 1);
      cgc_assert(q == p || i > prev);
      prev = i;
    }
    uint32_t want = 0;
    for (uint32_t wd = first / 64; wd < CGC_MARK_WORDS; wd++)
      want += (uint32_t)__builtin_popcountll(listed_from(s, wd, first));
    cgc_assert(count == want);
    (void)prev;
    (void)want;
  }
  marks_prepare(s, epoch);
  for (uint32_t wd = first / 64; wd < CGC_MARK_WORDS; wd++) premark_flush(s, wd, listed_from(s, wd, first));
  return true;
}

/* Premark a thread list (which: 0 free, 1 dirty): walk the slots pushed in
   front, then mark the rest from the owned span's bitmap (premark_taken).
   A walk that reaches list_keep(sc) slots cuts the list there.  The rest are
   left unmarked, so sweeps reclaim them for every thread: otherwise a thread
   that freed many objects would keep them to itself, each collection would
   walk them in the pause and count them live.  Cutting is safe with the
   owner stopped anywhere: it touches only the head and the head's link, and
   the cut is deeper (keep >= 4). */
static void premark_list(worker_t *w, const cgc_thread_t *t, unsigned sc, int which) {
  void *p = which ? t->tc->dirty[sc] : t->tc->free[sc];
  uint64_t pushed = t->tc->pushed[which][sc] - t->tc->pushed_at_take[which][sc];
  uint32_t keep = list_keep(sc);
  /* Runs of a list are in one span, often in address order (a refill), so
     the span of the last slot is tried first and the bits of one mark word
     are set together. */
  cgc_span_t *s = NULL;
  uint32_t word = 0;
  uint64_t bits = 0;
  for (uint32_t n = 1; p; n++) {
    uintptr_t a = (uintptr_t)p;
    /* Only pushed slots come before the owned span's own list: past as many
       slots as were pushed, the rest is that list. */
    if (cgc_unlikely(n > pushed) && premark_taken(t->tc->span[sc], a, w->epoch)) break;
    if (!s || a - s->base >= s->limit - s->base) {
      premark_flush(s, word, bits);
      bits = 0;
      s = _cgc_span_of(a);
      if (!s || s->spanclass != sc)
        _cgc_fatal("heap corruption: thread %d's free list for size %u links to %p (written after cgc_free?)",
                   (int)t->tid, _cgc_class_size[sc >> 1], p);
      marks_prepare(s, w->epoch);
    }
    uint32_t idx = _cgc_slot_index(s, a);
    if (idx / 64 != word) {
      premark_flush(s, word, bits);
      bits = 0;
      word = idx / 64;
    }
    bits |= 1ull << (idx % 64);
    /* A refill is linked in address order, one slot after the other: load
       the links ahead of the walk, which would otherwise wait for each. */
    __builtin_prefetch((const char *)a + 16 * s->elemsize);
    if (cgc_unlikely(n == keep)) {
      *(uintptr_t *)p = _cgc_encode(NULL);
      break;
    }
    p = _cgc_decode(*(uintptr_t *)p);
  }
  premark_flush(s, word, bits);
}

/* Every slot on a thread's free and dirty lists (I4). */
static void premark_thread(cgc_thread_t *t, void *ctx) {
  worker_t *w = ctx;
  for (unsigned sc = 2; sc < CGC_NUM_SPAN_CLASSES; sc++) {
    premark_list(w, t, sc, 0);
    premark_list(w, t, sc, 1);
  }
}

/* ---- overflow recovery ---------------------------------------------------------------- */

static void scan_now(uintptr_t lo, uintptr_t hi) {
  worker_t *w = &workers[0];
  scanned_now_bytes += hi - lo;
  scan_range(w, CGC_ALIGN_UP(lo, sizeof(uintptr_t)), hi & ~(uintptr_t)(sizeof(uintptr_t) - 1));
}

/* Scan every marked object of every span (single-threaded, world stopped). */
static void rescan_marked(worker_t *w) {
  for (size_t i1 = 0; i1 < ((size_t)1 << CGC_L1_BITS); i1++) {
    cgc_arena_meta_t **l2 = atomic_load(&_cgc_g.arena_l1[i1]);
    if (!l2) continue;
    for (size_t i2 = 0; i2 < ((size_t)1 << CGC_L2_BITS); i2++) {
      cgc_arena_meta_t *m = l2[i2];
      if (!m) continue;
      uintptr_t abase = ((uintptr_t)i1 << (CGC_ARENA_SHIFT + CGC_L2_BITS)) | ((uintptr_t)i2 << CGC_ARENA_SHIFT);
      for (size_t pg = 0; pg < CGC_PAGES_PER_ARENA; pg++) {
        cgc_span_t *s = m->spans[pg];
        if (!s || s->base != abase + pg * CGC_PAGE_SIZE || s->noscan || !_cgc_span_marks_valid(s)) continue;
        uint8_t st = atomic_load(&s->state);
        if (st != CGC_SPAN_SMALL && st != CGC_SPAN_LARGE) continue;
        for (uint32_t i = 0; i < s->nelems; i++)
          if (_cgc_slot_marked(s, i)) {
            uintptr_t b = _cgc_slot_base(s, i);
            scan_range(w, b, b + s->elemsize);
            drain(w);
          }
      }
    }
  }
}

static void recover_overflow(void) {
  worker_t *w = &workers[0];
  w->parallel = false;
  while (atomic_exchange(&overflowed, 0)) rescan_marked(w);
}

/* The slow half of _cgc_found_dead: the loads saw "dead" in cycle c; true
   once they are known to come from one collection's results. */
bool _cgc_found_dead_confirm(cgc_span_t *s, uint32_t idx, uint32_t c) {
  /* Collections do not stop an unregistered thread: it could have read a
     marking in progress.  Registering waits for one to finish (threads
     lock) and makes later ones stop this thread (cgc_free and cgc_realloc
     register the caller anyway); then the test is read again. */
  bool reread = false;
  if (cgc_unlikely(!_cgc_self)) {
    if (!_cgc_thread_register_self(false)) return false; /* cannot tell: no diagnosis */
    reread = true;
  }
  for (;;) {
    atomic_signal_fence(memory_order_acq_rel); /* the loads above, before the re-read */
    uint32_t now = atomic_load_explicit(&_cgc_g.gc_cycle, memory_order_acquire);
    if (now == c && !reread) return true;
    c = now;
    reread = false;
    if (!_cgc_unmarked_unswept(s, idx, c)) return false;
  }
}

/* ---- entry points ---------------------------------------------------------------------- */

static void start_marking(void) {
  uint32_t e = atomic_load(&_cgc_g.mark_epoch) + 1;
  if (e == 0 || e == EPOCH_CLEARING) e = 1;
  atomic_store(&_cgc_g.mark_epoch, e);
  _cgc_g.mark_lo = atomic_load(&_cgc_g.heap_lo);
  _cgc_g.mark_range = atomic_load(&_cgc_g.heap_hi) - _cgc_g.mark_lo;
  for (int i = 0; i < MAX_WORKERS; i++) {
    workers[i].epoch = e;
    workers[i].marked_bytes = workers[i].marked_objects = 0;
    workers[i].parallel = nworkers > 1;
    workers[i].cache_meta = NULL;
    workers[i].cache_key = 0;
  }
}

void _cgc_mark(cgc_mark_result_t *res) {
  cgc_assert(workers != NULL); /* _cgc_mark_prepare succeeded */
  start_marking();
  _cgc_g.premarked_bytes = 0;
  _cgc_threads_for_each(premark_thread, &workers[0]);

  njobs = 0;
  scanned_now_bytes = 0;
  atomic_store(&next_job, 0);
  _cgc_roots_enumerate(add_job_cb, NULL);

  atomic_store(&mstate, MARK_OPEN | 1); /* the collector itself */
  atomic_fetch_add(&phase, 1);
  _cgc_os_wake_all(&phase);
  mark_loop(&workers[0]);
  int r;
  while ((r = atomic_load(&helpers_running)) != 0) _cgc_os_wait((_Atomic uint32_t *)&helpers_running, (uint32_t)r);
  if (atomic_load(&overflowed)) recover_overflow();

  res->marked_bytes = res->marked_objects = 0;
  for (int i = 0; i < nworkers; i++) {
    res->marked_bytes += workers[i].marked_bytes;
    res->marked_objects += workers[i].marked_objects;
    for (int k = 0; k < workers[i].nretired; k++)
      if (workers[i].retired[k]->mapped)
        _cgc_os_unmap(workers[i].retired[k], sizeof(dq_buf_t) + workers[i].retired[k]->cap * sizeof(item_t));
    workers[i].nretired = 0;
  }
  res->premarked_bytes = _cgc_g.premarked_bytes;
  res->workers = nworkers;
  res->root_bytes = scanned_now_bytes; /* and the jobs: */
  for (size_t j = 0; j < njobs; j++) res->root_bytes += jobs[j].hi - jobs[j].lo;
  if (_cgc_g.opt.gctrace >= 2) {
    for (size_t j = 0; j < njobs; j++)
      if (jobs[j].hi - jobs[j].lo >= ROOT_JOB_BYTES / 2) _cgc_warn("gctrace: root job %p-%p", (void *)jobs[j].lo, (void *)jobs[j].hi);
  }
}

void _cgc_mark_from(uintptr_t p) {
  worker_t *w = &workers[0];
  uint64_t before = w->marked_bytes;
  w->parallel = false;
  mark_word(w, p);
  drain(w);
  if (atomic_load(&overflowed)) recover_overflow();
  _cgc_g.marked_bytes += w->marked_bytes - before;
}

void _cgc_mark_children(uintptr_t base) {
  cgc_span_t *s = _cgc_span_of(base);
  if (!s || s->noscan) return;
  worker_t *w = &workers[0];
  uint64_t before = w->marked_bytes;
  w->parallel = false;
  scan_range(w, base, base + s->elemsize);
  drain(w);
  if (atomic_load(&overflowed)) recover_overflow();
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
  size_t set_cap, set_n;
  bool full;
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
  if (++c->set_n * 4 > c->set_cap * 3) {
    c->full = true; /* everything checked so far was right; stop here */
    return;
  }
  c->set[h] = base;
  if (!_cgc_slot_marked(s, _cgc_slot_index(s, v)))
    _cgc_fatal("checkmark: object %p (%zu bytes) is reachable (word %p, found in %p) but was not marked",
               (void *)base, s->elemsize, (void *)v, (void *)c->found_in);
  if (s->noscan) return;
  if (c->sp == c->stack_cap) {
    size_t ncap = c->stack_cap * 2;
    uintptr_t *ns = _cgc_os_map(ncap * sizeof(uintptr_t));
    if (!ns) _cgc_fatal("checkmark: out of memory for its stack");
    memcpy(ns, c->stack, c->sp * sizeof(uintptr_t));
    _cgc_os_unmap(c->stack, c->stack_cap * sizeof(uintptr_t));
    c->stack = ns;
    c->stack_cap = ncap;
  }
  c->stack[c->sp++] = base;
}

NO_SANITIZE static void check_scan(check_t *c, uintptr_t lo, uintptr_t hi) {
  for (const uintptr_t *p = (const uintptr_t *)CGC_ALIGN_UP(lo, sizeof(uintptr_t)); (uintptr_t)(p + 1) <= hi; p++) {
    uintptr_t v = _cgc_g.on_valgrind ? _cgc_os_read_defined(p) : *p;
    if (v - _cgc_g.mark_lo < _cgc_g.mark_range) check_visit(c, v);
  }
}

void _cgc_checkmark(void) {
  check_t c;
  uint64_t objs = 0;
  for (int i = 0; i < nworkers; i++) objs += workers[i].marked_objects;
  objs += _cgc_g.premarked_bytes / 8; /* free slots reached by stale words are visited too */
  c.set_cap = 1024;
  while (c.set_cap < objs * 2 + 1024) c.set_cap *= 2;
  c.set = _cgc_os_map(c.set_cap * sizeof(uintptr_t));
  c.stack_cap = 1 << 16;
  c.stack = _cgc_os_map(c.stack_cap * sizeof(uintptr_t));
  c.sp = 0;
  c.set_n = 0;
  c.full = false;
  if (!c.set || !c.stack) {
    _cgc_warn("checkmark: out of memory; this collection is not checked");
    if (c.set) _cgc_os_unmap(c.set, c.set_cap * sizeof(uintptr_t));
    if (c.stack) _cgc_os_unmap(c.stack, c.stack_cap * sizeof(uintptr_t));
    return;
  }
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
  if (c.full) _cgc_warn("checkmark: visited-set full; part of the heap was not re-checked this time");
  _cgc_os_unmap(c.set, c.set_cap * sizeof(uintptr_t));
  _cgc_os_unmap(c.stack, c.stack_cap * sizeof(uintptr_t));
}

/* ---- references (checkfree reports) --------------------------------------------------- */

void _cgc_for_each_reference(void (*fn)(void *ctx, uintptr_t where, uintptr_t value), void *ctx) CGC_HIDDEN;

NO_SANITIZE static void refs_in(uintptr_t lo, uintptr_t hi, void (*fn)(void *, uintptr_t, uintptr_t), void *ctx) {
  for (const uintptr_t *p = (const uintptr_t *)CGC_ALIGN_UP(lo, sizeof(uintptr_t)); (uintptr_t)(p + 1) <= hi; p++)
    if (*p - _cgc_g.mark_lo < _cgc_g.mark_range) fn(ctx, (uintptr_t)p, *p);
}

/* After _cgc_mark, world stopped: call fn for every word of the current
   marking's root ranges and of every marked, scanned object whose value lies
   within the heap's bounds.  Walks the whole heap: for diagnostics. */
void _cgc_for_each_reference(void (*fn)(void *ctx, uintptr_t where, uintptr_t value), void *ctx) {
  for (size_t j = 0; j < njobs; j++) refs_in(jobs[j].lo, jobs[j].hi, fn, ctx);
  uintptr_t a = _cgc_g.mark_lo, end = _cgc_g.mark_lo + _cgc_g.mark_range;
  while (a < end) {
    cgc_arena_meta_t *m = _cgc_arena_of(a);
    if (!m) {
      a = CGC_ALIGN_DOWN(a, CGC_ARENA_SIZE) + CGC_ARENA_SIZE;
      continue;
    }
    cgc_span_t *s = m->spans[_cgc_page_index(a)];
    uint8_t st = s ? atomic_load(&s->state) : CGC_SPAN_DEAD;
    if (!s || s->base != a || (st != CGC_SPAN_SMALL && st != CGC_SPAN_LARGE) || s->npages == 0) {
      a += CGC_PAGE_SIZE;
      continue;
    }
    if (!s->noscan && _cgc_span_marks_valid(s)) {
      for (uint32_t i = 0; i < s->nelems; i++) {
        if (!((atomic_load_explicit(&s->mark[i / 64], memory_order_relaxed) >> (i % 64)) & 1)) continue;
        uintptr_t b = _cgc_slot_base(s, i);
        refs_in(b, b + s->elemsize, fn, ctx);
      }
    }
    a += s->npages * CGC_PAGE_SIZE;
  }
}
