/* sweep.c — lazy and background sweeping (see docs/heap.md).
 *
 * A collection only flips the cycle counter and moves the central lists to
 * "unswept" (O(size classes), inside the pause).  Spans are then swept by
 *   - the allocating thread that needs a span of that class (lazy), and
 *   - the background sweeper thread, which also gives memory back to the OS.
 * A thread's owned span is swept by that thread only, when its list runs dry.
 *
 * A sweep rebuilds a span's free list from its mark bits: every unmarked slot
 * is free.  Slots already on the span's list are known to be zero (I3); the
 * others are zeroed here, so allocation only clears the link word.
 *
 * Fence (I5): sweeps run between _cgc_sweep_begin and _cgc_sweep_end.  A
 * collection sets gc_pending, waits for active sweeps to drain, and only then
 * stops the world; a sweep that would start while a collection is pending
 * backs off.  So marks are never rewritten under a running sweep.
 */
#include "internal.h"

bool _cgc_sweep_begin(void) {
  atomic_fetch_add(&_cgc_g.active_sweeps, 1);
  if (cgc_unlikely(atomic_load(&_cgc_g.gc_pending))) {
    atomic_fetch_sub(&_cgc_g.active_sweeps, 1);
    return false;
  }
  return true;
}

void _cgc_sweep_end(void) { atomic_fetch_sub(&_cgc_g.active_sweeps, 1); }

void _cgc_sweep_fence_raise(void) {
  atomic_store(&_cgc_g.gc_pending, 1);
  while (atomic_load(&_cgc_g.active_sweeps)) _cgc_os_yield();
}

void _cgc_sweep_fence_lower(void) { atomic_store(&_cgc_g.gc_pending, 0); }

static void load_marks(cgc_span_t *s, uint64_t *marks) {
  if (_cgc_span_marks_valid(s)) {
    for (int i = 0; i < CGC_MARK_WORDS; i++) marks[i] = atomic_load_explicit(&s->mark[i], memory_order_relaxed);
  } else {
    memset(marks, 0, CGC_MARK_WORDS * sizeof *marks);
  }
}

uint32_t _cgc_sweep_span(cgc_span_t *s, bool zero) {
  uint64_t marks[CGC_MARK_WORDS], wasfree[CGC_MARK_WORDS] = {0};
  uint32_t cycle = atomic_load(&_cgc_g.gc_cycle);
  load_marks(s, marks);
  uint32_t n = s->nelems;

  /* Slots on the span's own list are clean (I3). */
  for (void *p = s->freelist; p; p = _cgc_decode(*(uintptr_t *)p)) {
    uintptr_t a = (uintptr_t)p;
    if (a < s->base || a >= s->limit)
      _cgc_fatal("heap corruption: free list of span %p links to %p (use after free?)", (void *)s->base, p);
    uint32_t i = _cgc_slot_index(s, a);
    wasfree[i / 64] |= 1ull << (i % 64);
  }

  void *head = NULL;
  uint32_t nfree = 0;
  size_t size = s->elemsize;
  for (uint32_t i = n; i-- > 0;) {
    uint64_t bit = 1ull << (i % 64);
    if (marks[i / 64] & bit) continue;
    uintptr_t *slot = (uintptr_t *)(s->base + (uintptr_t)i * size);
    if (!(wasfree[i / 64] & bit)) {
      if (zero) memset(slot, 0, size);
      else _cgc_slot_make_dirty(slot, size);
    }
    *slot = _cgc_encode(head);
    head = slot;
    nfree++;
  }
  for (uint32_t w = 0; w < CGC_MARK_WORDS; w++) s->listed[w] = ~marks[w] & _cgc_slot_mask(n, w);
  s->freelist = head;
  s->nfree = nfree;
  s->sweepgen = cycle;
  return nfree;
}

/* Sweep without building a list when the span turns out to be wholly free:
   its pages go straight back to the page heap.  Returns true if freed. */
static bool sweep_or_free(cgc_span_t *s) {
  uint64_t marks[CGC_MARK_WORDS];
  load_marks(s, marks);
  uint32_t marked = 0;
  for (uint32_t w = 0; w < (s->nelems + 63) / 64; w++) marked += (uint32_t)__builtin_popcountll(marks[w]);
  if (marked == 0 && s->specials == NULL) {
    _cgc_heap_lock();
    _cgc_page_free_locked(s, false);
    _cgc_heap_unlock();
    return true;
  }
  _cgc_sweep_span(s, true);
  return false;
}

void _cgc_span_put_swept(cgc_span_t *s) {
  if (s->nfree == s->nelems && s->specials == NULL) {
    _cgc_heap_lock();
    _cgc_page_free_locked(s, false);
    _cgc_heap_unlock();
    return;
  }
  cgc_central_t *c = &_cgc_g.central[s->spanclass];
  pthread_mutex_lock(&c->lock);
  _cgc_span_file_unowned_locked(s);
  pthread_mutex_unlock(&c->lock);
}

void _cgc_sweep_large_locked(void) {
  uint32_t cycle = atomic_load(&_cgc_g.gc_cycle);
  cgc_span_t *next;
  for (cgc_span_t *s = _cgc_g.large.head; s; s = next) {
    next = s->next;
    if (s->sweepgen == cycle) continue;
    if (_cgc_slot_marked(s, 0) || s->specials) {
      s->sweepgen = cycle;
      continue;
    }
    _cgc_page_free_locked(s, false);
  }
  _cgc_g.large_unswept = false;
}

/* Class sc's bit in _cgc_g.unswept_classes (I7): its word and its mask. */
static _Atomic uint64_t *unswept_word(unsigned sc) { return &_cgc_g.unswept_classes[sc / 64]; }
static uint64_t unswept_bit(unsigned sc) { return 1ull << (sc % 64); }

static void unswept_mark(unsigned sc) {
  atomic_fetch_or_explicit(unswept_word(sc), unswept_bit(sc), memory_order_relaxed);
}

void _cgc_unswept_push_locked(cgc_central_t *c, cgc_span_t *s) {
  _cgc_list_push(&c->unswept, s, CGC_LIST_UNSWEPT);
  unswept_mark(s->spanclass);
}

/* I7, checked in CGC_CHECKED builds after a full sweep. */
static void unswept_check(void) {
  for (unsigned sc = 2; sc < CGC_NUM_SPAN_CLASSES; sc++) {
    cgc_central_t *c = &_cgc_g.central[sc];
    pthread_mutex_lock(&c->lock);
    if (c->unswept.head && !(atomic_load_explicit(unswept_word(sc), memory_order_relaxed) & unswept_bit(sc)))
      _cgc_fatal("internal error: span class %u has unswept spans but no unswept bit", sc);
    pthread_mutex_unlock(&c->lock);
  }
}

/* Sweep the unswept spans of class sc until there are none (false: a
   collection is starting).  One span per take: a span the sweeper holds is
   one an allocating thread cannot find (it would carve fresh pages
   instead). */
static bool sweep_class(unsigned sc) {
  cgc_central_t *c = &_cgc_g.central[sc];
  for (;;) {
    if (!_cgc_sweep_begin()) return false;
    pthread_mutex_lock(&c->lock);
    cgc_span_t *s = _cgc_list_pop(&c->unswept);
    if (!s) /* I7: cleared only with the list seen empty under the lock */
      atomic_fetch_and_explicit(unswept_word(sc), ~unswept_bit(sc), memory_order_relaxed);
    pthread_mutex_unlock(&c->lock);
    if (!s) {
      _cgc_sweep_end();
      return true;
    }
    bool freed = sweep_or_free(s);
    _cgc_sweep_end();
    if (!freed) _cgc_span_put_swept(s);
  }
}

/* The first class from `from` on whose bit is set (read now), or -1. */
static int next_unswept(unsigned from) {
  for (unsigned w = from / 64; w < (CGC_NUM_SPAN_CLASSES + 63) / 64; w++) {
    uint64_t bits = atomic_load_explicit(&_cgc_g.unswept_classes[w], memory_order_relaxed);
    if (w == from / 64) bits &= ~0ull << (from % 64);
    if (bits) return (int)(w * 64 + (unsigned)__builtin_ctzll(bits));
  }
  return -1;
}

bool _cgc_sweep_all(void) {
  /* Only the classes that may have unswept spans (I7), in class order, the
     bits read afresh after each class: a span pushed onto a class not yet
     reached is swept in this pass, one pushed onto a class already passed is
     left to the next, as when every class was visited. */
  for (int sc = next_unswept(0); sc >= 0; sc = next_unswept((unsigned)sc + 1))
    if (!sweep_class((unsigned)sc)) return false;
  if (!_cgc_sweep_begin()) return false;
  _cgc_heap_lock();
  if (_cgc_g.large_unswept) _cgc_sweep_large_locked();
  _cgc_heap_unlock();
  _cgc_sweep_end();
  if (CGC_CHECKED) unswept_check();
  return true;
}

/* Called with the world stopped, all central locks and the heap lock held,
   after gc_cycle was advanced. */
void _cgc_sweep_prepare_stw(void) {
  for (unsigned sc = 2; sc < CGC_NUM_SPAN_CLASSES; sc++) {
    cgc_central_t *c = &_cgc_g.central[sc];
    _cgc_list_splice(&c->unswept, &c->partial, CGC_LIST_UNSWEPT);
    _cgc_list_splice(&c->unswept, &c->full, CGC_LIST_UNSWEPT);
    if (c->unswept.head) unswept_mark(sc);
  }
  _cgc_g.large_unswept = _cgc_g.large.head != NULL;
}

/* ---- background sweeper ------------------------------------------------------- */

static CGC_STATE _Atomic uint32_t sweeper_kick;
static CGC_STATE _Atomic int sweeper_started;

void _cgc_after_sweep(void) CGC_HIDDEN; /* collect.c: scavenging after a full sweep */

static void *sweeper_main(void *arg) {
  (void)arg;
  _cgc_os_set_thread_name("cgc-sweeper");
  uint32_t seen = atomic_load(&sweeper_kick);
  for (;;) {
    while (atomic_load(&sweeper_kick) == seen) _cgc_os_wait(&sweeper_kick, seen);
    seen = atomic_load(&sweeper_kick);
    if (_cgc_sweep_all()) _cgc_after_sweep();
  }
  return NULL;
}

void _cgc_sweeper_start(void) {
  if (!_cgc_g.opt.bgsweep) return;
  int expected = 0;
  if (!atomic_compare_exchange_strong(&sweeper_started, &expected, 1)) return;
  if (_cgc_os_thread_create(sweeper_main, NULL) != 0) atomic_store(&sweeper_started, 0);
}

bool _cgc_sweeper_wake(void) {
  if (!atomic_load(&sweeper_started)) return false;
  atomic_fetch_add(&sweeper_kick, 1);
  _cgc_os_wake_all(&sweeper_kick);
  return true;
}

/* In a forked child the sweeper thread is gone. */
void _cgc_sweeper_fork_child(void) CGC_HIDDEN;
void _cgc_sweeper_fork_child(void) { atomic_store(&sweeper_started, 0); }
