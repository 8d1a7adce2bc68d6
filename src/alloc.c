/* alloc.c — allocation and explicit free (see docs/heap.md, docs/free.md).
 *
 * Fast path: pop the thread's free list for the span class: no lock, no
 * atomic read-modify-write.  Slow path (_cgc_alloc_slow): sweep the owned
 * span, or take a span from the central lists (partial, then unswept, which it
 * sweeps), or carve a new span from the page heap.
 *
 * Free: push onto the calling thread's list for the object's span class (LIFO,
 * cache-warm).  Any thread may free any object: a thread list may hold slots
 * of any span of its class, which is safe because every collection marks every
 * slot on every thread list (invariant I4).
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

__thread cgc_tcache_t *_cgc_tc = &_cgc_empty_tcache;
cgc_tcache_t _cgc_empty_tcache;

/* ---- fast paths ------------------------------------------------------------ */

/* Pop the head of one of the thread's lists: tc->free[sc] (the slot is zero
but its link, I3) or tc->dirty[sc] (noscan, left by cgc_realloc or freed
from a class above INLINE_MAX: words 0 and 1 zero, the rest as its last
user left it). */
static CGC_ALWAYS_INLINE void *pop_slot(cgc_tcache_t *tc, void **head, size_t csize) {
  void *p = *head;
  *head = _cgc_decode(*(uintptr_t *)p);
  cgc_compiler_barrier(); /* unlink before clearing: the list stays walkable (I4) */
  *(uintptr_t *)p = 0;
  tc->alloc_bytes += csize;
  tc->alloc_objects++;
  return p;
}
#define pop_free(tc, sc, csize) pop_slot((tc), &(tc)->free[(sc)], (csize))
#define pop_dirty(tc, sc, csize) pop_slot((tc), &(tc)->dirty[(sc)], (csize))

/* The largest request the inline path serves.  Noscan slots of larger
   classes that cgc_free gives back go onto the dirty list uncleared, and
   _cgc_alloc_slow, which serves those classes, takes that list first (LIFO)
   and clears the slot then: a buffer moved there by cgc_realloc needs no
   clearing at all. */
#define INLINE_MAX 1024

static CGC_ALWAYS_INLINE void *alloc_inline(size_t size, int noscan) {
  if (cgc_likely(size <= INLINE_MAX)) {
    uint32_t e = _cgc_lut8[(size + 7) >> 3];
    cgc_tcache_t *tc = _cgc_tc;
    unsigned sc = ((e & 0xff) << 1) | (unsigned)noscan;
    if (cgc_likely(tc->free[sc] != NULL)) return pop_free(tc, sc, e >> 8);
  }
  return _cgc_alloc_slow(size, noscan);
}

void *cgc_alloc(size_t size) { return alloc_inline(size, 0); }
void *cgc_alloc_noscan(size_t size) { return alloc_inline(size, 1); }

void *cgc_calloc(size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return alloc_inline(total, 0);
}

char *cgc_strdup(const char *s) {
  cgc_check(s != NULL, "cgc_strdup: the string is NULL");
  size_t n = strlen(s) + 1;
  char *p = alloc_inline(n, 1);
  if (p) memcpy(p, s, n);
  return p;
}

/* ---- thread caches ---------------------------------------------------------- */

cgc_tcache_t *_cgc_tcache_init(void) {
  _cgc_ensure_init();
  cgc_thread_t *t = _cgc_self;
  if (!t) t = _cgc_thread_register_self(false);
  return t ? t->tc : NULL;
}

/* Hand the free slots of s (swept, claimed by the caller) to tc: to its
   dirty list if the sweep left them uncleared (dirty), else to its free
   list.  Must hold the central lock: the sweep must belong to the current
   cycle, or a collection ran in between and the span has to be swept again. */
static bool take_locked(cgc_tcache_t *tc, unsigned sc, cgc_span_t *s, bool dirty) {
  if (s->sweepgen != atomic_load_explicit(&_cgc_g.gc_cycle, memory_order_relaxed)) return false;
  void **list = dirty ? &tc->dirty[sc] : &tc->free[sc];
  cgc_assert(tc->free[sc] == NULL && tc->dirty[sc] == NULL); /* pushed_at_take restarts the count with both */
  s->owner = tc;
  tc->span[sc] = s;
  tc->pushed_at_take[0][sc] = tc->pushed[0][sc];
  tc->pushed_at_take[1][sc] = tc->pushed[1][sc];
  *list = s->freelist;
  atomic_fetch_add_explicit(&_cgc_g.heap_live, (int64_t)s->nfree * (int64_t)s->elemsize,
                            memory_order_relaxed);
  s->freelist = NULL;
  s->nfree = 0;
  return true;
}

void _cgc_span_file_unowned_locked(cgc_span_t *s) {
  cgc_central_t *c = &_cgc_g.central[s->spanclass];
  s->owner = NULL;
  if (s->sweepgen != atomic_load_explicit(&_cgc_g.gc_cycle, memory_order_relaxed))
    _cgc_unswept_push_locked(c, s);
  else if (s->nfree)
    _cgc_list_push(&c->partial, s, CGC_LIST_PARTIAL);
  else
    _cgc_list_push(&c->full, s, CGC_LIST_FULL);
}

static void release_owned(cgc_tcache_t *tc, unsigned sc) {
  cgc_span_t *s = tc->span[sc];
  cgc_central_t *c = &_cgc_g.central[sc];
  pthread_mutex_lock(&c->lock);
  tc->span[sc] = NULL;
  _cgc_span_file_unowned_locked(s);
  pthread_mutex_unlock(&c->lock);
}

/* A new span for span class sc from the page heap, swept for the current
   cycle and not on any list; its slots zero, or (!zero, noscan only) as the
   pages were but for word 0 (the link) and word 1 (I3).  NULL when out of
   memory. */
static cgc_span_t *new_small_span(unsigned sc, bool zero) {
  unsigned cls = sc >> 1;
  size_t npages = _cgc_class_npages[cls];
  _cgc_before_grow(npages * CGC_PAGE_SIZE);
  _cgc_heap_lock();
  cgc_span_t *s = _cgc_page_alloc_locked(npages, 0);
  _cgc_heap_unlock();
  if (!s) return NULL;
  if (zero) _cgc_span_zero(s);
  s->elemsize = _cgc_class_size[cls];
  s->nelems = _cgc_class_nelems[cls];
  s->divmul = _cgc_class_divmul[cls];
  s->spanclass = (uint16_t)sc;
  s->noscan = sc & 1;
  s->limit = s->base + (uintptr_t)s->nelems * s->elemsize;
  /* Build the free list in address order. */
  void *head = NULL;
  for (uint32_t i = s->nelems; i-- > 0;) {
    uintptr_t *slot = (uintptr_t *)_cgc_slot_base(s, i);
    if (!zero) _cgc_slot_make_dirty(slot, s->elemsize);
    *slot = _cgc_encode(head);
    head = slot;
  }
  for (uint32_t w = 0; w < CGC_MARK_WORDS; w++) s->listed[w] = _cgc_slot_mask(s->nelems, w);
  s->freelist = head;
  s->nfree = s->nelems;
  _cgc_heap_lock();
  _cgc_span_publish(s, CGC_SPAN_SMALL);
  _cgc_heap_unlock();
  return s;
}

/* A span swept with dirty slots that its taker could not have: clear
   them, so that its own list is clean again (I3). */
static void clean_span_list(cgc_span_t *s) {
  for (void *p = s->freelist; p; p = _cgc_decode(*(uintptr_t *)p))
    memset((char *)p + sizeof(uintptr_t), 0, s->elemsize - sizeof(uintptr_t));
}

/* Refill tc's list for sc: its free list, or (dirty, for a noscan move by
   cgc_realloc) its free or dirty list, whose slots need no clearing.
   Returns false when out of memory. */
static bool refill(cgc_tcache_t *tc, unsigned sc, bool dirty) {
  cgc_assert(!dirty || (sc & 1));
  cgc_central_t *c = &_cgc_g.central[sc];
  cgc_span_t *s = tc->span[sc];
  if (s) {
    /* The owned span first: a collection may have found garbage in it. */
    if (s->sweepgen != atomic_load(&_cgc_g.gc_cycle) && _cgc_sweep_begin()) {
      uint32_t n = _cgc_sweep_span(s, !dirty);
      _cgc_sweep_end();
      if (n) {
        pthread_mutex_lock(&c->lock);
        bool ok = take_locked(tc, sc, s, dirty);
        pthread_mutex_unlock(&c->lock);
        if (ok) return true;
        if (dirty) clean_span_list(s);
      }
    }
    release_owned(tc, sc);
  }

  pthread_mutex_lock(&c->lock);
  for (;;) {
    s = _cgc_list_pop(&c->partial);
    if (s) { /* swept already: its slots are clean */
      if (take_locked(tc, sc, s, false)) break;
      _cgc_unswept_push_locked(c, s);
      continue;
    }
    s = _cgc_list_pop(&c->unswept);
    if (!s) break;
    pthread_mutex_unlock(&c->lock);
    if (!_cgc_sweep_begin()) { /* a collection is starting: use fresh memory */
      pthread_mutex_lock(&c->lock);
      _cgc_unswept_push_locked(c, s);
      s = NULL;
      break;
    }
    uint32_t n = _cgc_sweep_span(s, !dirty);
    _cgc_sweep_end();
    pthread_mutex_lock(&c->lock);
    if (n && take_locked(tc, sc, s, dirty)) break;
    pthread_mutex_unlock(&c->lock);
    if (n && dirty) clean_span_list(s);
    _cgc_span_put_swept(s);
    pthread_mutex_lock(&c->lock);
  }
  pthread_mutex_unlock(&c->lock);
  if (s) return true;

  s = new_small_span(sc, !dirty);
  if (!s) return false;
  pthread_mutex_lock(&c->lock);
  s->sweepgen = atomic_load(&_cgc_g.gc_cycle);
  take_locked(tc, sc, s, dirty);
  pthread_mutex_unlock(&c->lock);
  return true;
}

/* A slot of span class sc (noscan) for cgc_realloc to move a buffer into:
   its bytes need not be zero, so a slot an earlier move left behind comes
   first, and new or swept memory is not cleared.  NULL when out of memory. */
static inline void *alloc_for_move(cgc_tcache_t *tc, unsigned sc, size_t size, size_t csize) {
  if (tc->dirty[sc]) return pop_dirty(tc, sc, csize);
  if (tc->free[sc]) return pop_free(tc, sc, csize);
  if (tc != &_cgc_empty_tcache && !_cgc_g.opt.checkfree) {
    _cgc_pacing_check(tc);
    if (refill(tc, sc, true)) return tc->free[sc] ? pop_free(tc, sc, csize) : pop_dirty(tc, sc, csize);
  }
  return _cgc_alloc_slow(size, 1); /* out of memory: collects and retries */
}

CGC_NOINLINE void *_cgc_alloc_slow(size_t size, int noscan) {
  _cgc_ensure_init();
  if (size > CGC_MAX_SMALL) return _cgc_alloc_large(size, noscan);
  cgc_tcache_t *tc = _cgc_tc;
  if (tc == &_cgc_empty_tcache) {
    tc = _cgc_tcache_init();
    if (!tc) {
      errno = ENOMEM;
      return NULL;
    }
  }
  unsigned cls = _cgc_size_to_class(size);
  unsigned sc = (cls << 1) | (unsigned)noscan;
  size_t csize = _cgc_class_size[cls];
  if (tc->dirty[sc] && (csize > INLINE_MAX || !tc->free[sc])) return memset(pop_dirty(tc, sc, csize), 0, csize);
  if (tc->free[sc]) return pop_free(tc, sc, csize);
  for (int attempt = 0;; attempt++) {
    _cgc_pacing_check(tc);
    if (refill(tc, sc, false)) return pop_free(tc, sc, csize);
    if (attempt > 0) break;
    _cgc_collect(CGC_GC_OOM, 0); /* out of memory: collect once more, sweep, then give up */
    _cgc_sweep_all();
  }
  errno = ENOMEM;
  return NULL;
}

/* Pages for one large object or arena chunk: a BUSY span of npages, zeroed
   (unless !zero: a noscan move copies over them), with the single-object
   fields set (the caller publishes it); at the start of a free span of room
   pages if there is one (_cgc_page_alloc_locked).  Paces, sweeps dead large
   objects first, and on failure collects, sweeps and tries once more.  No
   lock held; NULL with errno ENOMEM. */
cgc_span_t *_cgc_alloc_pages(size_t npages, size_t room, int noscan, bool zero) {
  size_t bytes = npages * CGC_PAGE_SIZE;
  cgc_span_t *s = NULL;
  for (int attempt = 0; attempt < 2 && !s; attempt++) {
    if (attempt) {
      _cgc_collect(CGC_GC_OOM, 0);
      _cgc_sweep_all();
    }
    _cgc_pacing_check(_cgc_tc);
    _cgc_before_grow(bytes);
    _cgc_heap_lock();
    if (_cgc_g.large_unswept && _cgc_sweep_begin()) {
      _cgc_sweep_large_locked();
      _cgc_sweep_end();
    }
    s = _cgc_page_alloc_locked(npages, room);
    _cgc_heap_unlock();
  }
  if (!s) {
    errno = ENOMEM;
    return NULL;
  }
  if (zero) _cgc_span_zero(s);
  s->elemsize = bytes;
  s->nelems = 1;
  s->divmul = 0;
  s->spanclass = (uint16_t)noscan;
  s->noscan = (uint8_t)noscan;
  s->limit = s->base + bytes;
  return s;
}

#define LARGE_MAX ((size_t)1 << (CGC_ADDR_BITS - 1))

/* The largest object: the page map needs a word per page (1/1024 of the
   object), written when the object is made, so a request far beyond the
   machine's memory would exhaust it on metadata (32 TiB: 32 GiB of page-map
   words) instead of failing.  Cap it at 16 times the RAM (the metadata then
   stays under 2% of it), or LARGE_MAX. */
size_t _cgc_large_max(void) {
  static _Atomic size_t cap;
  size_t c = atomic_load_explicit(&cap, memory_order_relaxed);
  if (cgc_unlikely(!c)) {
    uint64_t ram = _cgc_os_phys_memory();
    c = ram && ram < LARGE_MAX / 16 ? (size_t)ram * 16 : LARGE_MAX;
    atomic_store_explicit(&cap, c, memory_order_relaxed);
  }
  return c;
}

static void *alloc_large(size_t size, size_t room, int noscan, bool zero) {
  if (size > _cgc_large_max()) {
    errno = ENOMEM;
    return NULL;
  }
  size_t npages = (size + CGC_PAGE_SIZE - 1) >> CGC_PAGE_SHIFT;
  if (_cgc_tc == &_cgc_empty_tcache && !_cgc_tcache_init()) {
    errno = ENOMEM;
    return NULL;
  }
  cgc_span_t *s = _cgc_alloc_pages(npages, room, noscan, zero);
  if (!s) return NULL;
  size_t bytes = s->elemsize;
  /* From its publication on, a collection may stop this thread (typically
     in the unlock below, which wakes the collector waiting for the lock)
     and must find the object: its address stays in this frame (stack or
     register, both scanned) until it is returned, not only in the span
     struct, which is not scanned. */
  void *obj = (void *)s->base;
  _cgc_heap_lock();
  s->sweepgen = atomic_load(&_cgc_g.gc_cycle);
  _cgc_span_publish(s, CGC_SPAN_LARGE);
  _cgc_list_push(&_cgc_g.large, s, CGC_LIST_LARGE);
  /* Counted under the lock: a collection that takes it next finds the
     object marked and counted allocated, not marked only (free_large). */
  atomic_fetch_add_explicit(&_cgc_g.heap_live, (int64_t)bytes, memory_order_relaxed);
  atomic_fetch_add_explicit(&_cgc_g.large_alloc_bytes, bytes, memory_order_relaxed);
  atomic_fetch_add_explicit(&_cgc_g.large_alloc_objects, 1, memory_order_relaxed);
  _cgc_heap_unlock();
  _cgc_count_other_call();
  __asm__ volatile("" : : "r"(obj) : "memory"); /* held to here */
  return obj;
}

void *_cgc_alloc_large(size_t size, int noscan) { return alloc_large(size, 0, noscan, true); }

void _cgc_tcache_release(cgc_tcache_t *tc) {
  for (unsigned sc = 2; sc < CGC_NUM_SPAN_CLASSES; sc++) {
    /* Slots on the list are dropped: unreachable and unmarked, the next
       sweep of their spans frees them. */
    tc->free[sc] = tc->dirty[sc] = NULL;
    if (tc->span[sc]) release_owned(tc, sc);
  }
}

void _cgc_tcache_free_totals(const cgc_tcache_t *tc, uint64_t *bytes, uint64_t *objects) {
  uint64_t b = __atomic_load_n(&tc->free_bytes, __ATOMIC_RELAXED), o = __atomic_load_n(&tc->free_objects, __ATOMIC_RELAXED);
  for (unsigned sc = 2; sc < CGC_NUM_SPAN_CLASSES; sc++) {
    uint64_t n = __atomic_load_n(&tc->pushed[0][sc], __ATOMIC_RELAXED) + __atomic_load_n(&tc->pushed[1][sc], __ATOMIC_RELAXED);
    b += n * _cgc_class_size[sc >> 1];
    o += n;
  }
  *bytes = b;
  *objects = o;
}

void _cgc_tcache_flush_counts(cgc_tcache_t *tc) {
  uint64_t fb, fo;
  _cgc_tcache_free_totals(tc, &fb, &fo);
  atomic_fetch_add(&_cgc_g.exited_alloc_bytes, tc->alloc_bytes);
  atomic_fetch_add(&_cgc_g.exited_alloc_objects, tc->alloc_objects);
  atomic_fetch_add(&_cgc_g.exited_free_bytes, fb);
  atomic_fetch_add(&_cgc_g.exited_free_objects, fo);
  tc->alloc_bytes = tc->alloc_objects = tc->free_bytes = tc->free_objects = tc->other_calls = 0;
  memset(tc->pushed, 0, sizeof tc->pushed);
  memset(tc->pushed_at_take, 0, sizeof tc->pushed_at_take);
}

/* ---- object lookup and validation ------------------------------------------ */

/* A free slot is zero except a link word that decodes to NULL or to a slot
   start of the same span class (I3).  A live object matching that by chance
   would need its first word to equal a random 64-bit key XOR an address. */
bool _cgc_slot_looks_free(const cgc_span_t *s, uintptr_t base) {
  if (s->nelems == 1) return false; /* large: freed spans are not SMALL/LARGE */
  uintptr_t next = (uintptr_t)_cgc_decode(*(uintptr_t *)base);
  if (s->elemsize >= 16 && ((uintptr_t *)base)[1] != 0) return false;
  if (!next) return true;
  if (next - s->base < s->limit - s->base) /* the common case: a link within the span */
    return _cgc_slot_base(s, _cgc_slot_index(s, next)) == next;
  cgc_span_t *ns = _cgc_span_of(next);
  return ns && ns->spanclass == s->spanclass && _cgc_slot_base(ns, _cgc_slot_index(ns, next)) == next;
}

typedef struct {
  cgc_span_t *span;
  uint32_t idx;
} obj_ref_t;

/* Why p is not the start of a live object, for public call fn: never returns. */
static CGC_COLD _Noreturn void bad_pointer(const char *fn, const void *p) {
  uintptr_t a = (uintptr_t)p;
  cgc_span_t *s = _cgc_span_of_any(a);
  uint8_t st = s ? atomic_load_explicit(&s->state, memory_order_acquire) : CGC_SPAN_DEAD;
  if (st == CGC_SPAN_ARENA && a - s->base < s->limit - s->base)
    _cgc_fatal("%s: %p points into an arena (arena memory is released with cgc_arena_free)", fn, p);
  s = _cgc_span_of(a);
  if (!s) {
    /* Free pages; or pages a large object gave back when it shrank, or the
       slack after a small span's last slot, which still map to the span. */
    if (st == CGC_SPAN_FREE || st == CGC_SPAN_BUSY || st == CGC_SPAN_SMALL || st == CGC_SPAN_LARGE)
      _cgc_fatal("%s: %p is not an allocated object (freed already?)", fn, p);
    _cgc_fatal("%s: %p is not a pointer into the collected heap", fn, p);
  }
  uint32_t idx = _cgc_slot_index(s, a);
  uintptr_t base = _cgc_slot_base(s, idx);
  if (base != a) _cgc_fatal("%s: %p is an interior pointer (object starts at %p)", fn, p, (void *)base);
  if (_cgc_slot_looks_free(s, base)) _cgc_fatal("%s: %p is not an allocated object (double free?)", fn, p);
  _cgc_fatal("%s: %p is not an allocated object (double free? it was unreachable at the last collection; was its "
             "only reference hidden from the collector?)",
             fn, p);
}

/* checkfree: p was freed and sits in the quarantine (poisoned, on no free
   list, so only the quarantine table knows). */
static CGC_COLD _Noreturn void quarantined(const char *fn, const void *p) {
  _cgc_fatal("%s: %p is not an allocated object (double free: it was freed already and is in the checkfree "
             "quarantine)",
             fn, p);
}

/* Resolve p as the base of a live object for public call fn, or die.  An
   object the last collection found unreachable is refused too: freeing it
   would hand its slot out twice, and its size is no longer the program's. */
static inline obj_ref_t resolve_base(const char *fn, const void *p) {
  uintptr_t a = (uintptr_t)p;
  cgc_span_t *s = _cgc_span_of(a);
  if (cgc_unlikely(!s)) bad_pointer(fn, p);
  obj_ref_t r = {s, _cgc_slot_index(s, a)};
  if (cgc_unlikely(_cgc_slot_base(s, r.idx) != a || _cgc_slot_looks_free(s, a) ||
                   _cgc_found_dead(s, r.idx)))
    bad_pointer(fn, p);
  if (cgc_unlikely(_cgc_is_weak_handle(s, a)))
    _cgc_fatal("%s: %p is a weak handle (made by cgc_weak_make), not an object", fn, p);
  if (cgc_unlikely(_cgc_g.opt.checkfree) && _cgc_checkfree_holds(a)) quarantined(fn, p);
  return r;
}

size_t cgc_usable_size(const void *p) {
  if (!p) return 0;
  return resolve_base("cgc_usable_size", p).span->elemsize;
}

void *cgc_base(const void *p) {
  cgc_span_t *s = _cgc_span_of((uintptr_t)p);
  if (!s) return NULL;
  uint32_t idx = _cgc_slot_index(s, (uintptr_t)p);
  uintptr_t base = _cgc_slot_base(s, idx);
  /* Not live: a free slot, or one the last collection found unreachable
     (not swept yet, so not free yet). */
  if (_cgc_slot_looks_free(s, base) || _cgc_found_dead(s, idx)) return NULL;
  if (cgc_unlikely(_cgc_g.opt.checkfree) && _cgc_checkfree_holds(base)) return NULL; /* freed */
  return (void *)base;
}

int cgc_is_heap_ptr(const void *p) {
  return _cgc_span_of((uintptr_t)p) != NULL;
}

/* ---- explicit free ----------------------------------------------------------- */

/* Quarantine hook for checkfree mode (checkfree.c).  Returns true if taken. */
bool _cgc_checkfree_take(cgc_span_t *s, uintptr_t base) CGC_HIDDEN;

/* Slots up to this size are cleared with stores, inline; larger ones with
   memset. */
#define ZERO_INLINE_MAX 64

/* Clear a slot of at most ZERO_INLINE_MAX bytes (a multiple of 8) with
   overlapping 16-byte stores: one predictable branch per size range rather
   than a jump per size. */
static inline void zero_small(uintptr_t base, size_t size) {
  char *p = (char *)base;
  cgc_assert(size <= ZERO_INLINE_MAX && size % 8 == 0 && size > 0);
  if (size < 16) {
    *(uint64_t *)base = 0;
  } else if (size <= 32) {
    memset(p, 0, 16);
    memset(p + size - 16, 0, 16);
  } else {
    memset(p, 0, 32);
    memset(p + size - 32, 0, 32);
  }
}

static inline void zero_object(uintptr_t base, size_t size) {
  if (size <= ZERO_INLINE_MAX) zero_small(base, size);
  else memset((void *)base, 0, size);
}

/* Link a dead small object, prepared for the list, onto tc's free list
   (LIFO) or, if dirty, its dirty list. */
static inline void link_slot_to(cgc_tcache_t *tc, cgc_span_t *s, uintptr_t base, bool dirty) {
  void **head = dirty ? &tc->dirty[s->spanclass] : &tc->free[s->spanclass];
  tc->pushed[dirty][s->spanclass]++; /* counted before the slot is on the list */
  cgc_compiler_barrier();
  *(uintptr_t *)base = _cgc_encode(*head);
  cgc_compiler_barrier();
  *head = (void *)base;
}

/* Push a dead small object onto tc's free list, zeroed; or, for a noscan
   object freed from a class above INLINE_MAX, onto its dirty list, writing
   only the link and word 1 (I3). */
static inline void push_slot_to(cgc_tcache_t *tc, cgc_span_t *s, uintptr_t base, size_t size, bool dirty) {
  if (!dirty) zero_object(base, size);
  else _cgc_slot_make_dirty((uintptr_t *)base, size);
  link_slot_to(tc, s, base, dirty);
}

/* The calling thread's cache, registering the thread if need be; NULL if
   it cannot be registered (a freed slot is then left to the collector). */
static inline cgc_tcache_t *tcache_for_free(void) {
  cgc_tcache_t *tc = _cgc_tc;
  if (cgc_unlikely(tc == &_cgc_empty_tcache)) return _cgc_tcache_init();
  if (!tc) __builtin_unreachable(); /* _cgc_tc is never NULL: the caller's check folds away */
  return tc;
}

static inline void push_slot(cgc_span_t *s, uintptr_t base, size_t size, bool dirty) {
  cgc_tcache_t *tc = tcache_for_free();
  if (tc) push_slot_to(tc, s, base, size, dirty);
}

/* The slot a noscan buffer moved out of: uncleared onto the dirty list, or,
   16 bytes or less, onto the free list (the link and word 1 are all of it,
   so it is clean, and the inline path takes from that list). */
static inline void push_left_slot(cgc_span_t *s, uintptr_t base, size_t size) {
  cgc_tcache_t *tc = tcache_for_free();
  if (!tc) return;
  _cgc_slot_make_dirty((uintptr_t *)base, size);
  if (size > 2 * sizeof(uintptr_t)) link_slot_to(tc, s, base, true);
  else link_slot_to(tc, s, base, false);
}

/* cgc_free of a slot of s: uncleared onto the dirty list for large noscan
   classes (see INLINE_MAX). */
static inline bool free_leaves_dirty(const cgc_span_t *s) { return s->elemsize > INLINE_MAX && s->noscan; }

static void free_small(cgc_span_t *s, uintptr_t base) {
  if (cgc_unlikely(_cgc_g.opt.checkfree) && _cgc_checkfree_take(s, base)) return;
  push_slot(s, base, s->elemsize, free_leaves_dirty(s));
}

/* Statistics: bytes (and objects) given back by cgc_free or cgc_realloc. */
static void count_free(size_t bytes, unsigned objects) {
  cgc_tcache_t *tc = _cgc_tc;
  if (tc != &_cgc_empty_tcache) {
    tc->free_bytes += bytes;
    tc->free_objects += objects;
  } else {
    atomic_fetch_add(&_cgc_g.exited_free_bytes, bytes);
    atomic_fetch_add(&_cgc_g.exited_free_objects, objects);
  }
}
void _cgc_count_free(size_t bytes) { count_free(bytes, 1); }
static void count_free_bytes(size_t bytes) { count_free(bytes, 0); }

static void free_large(cgc_span_t *s, const void *p) {
  if (cgc_unlikely(_cgc_g.opt.checkfree) && _cgc_checkfree_take(s, s->base)) return;
  size_t bytes = s->elemsize;
  _cgc_heap_lock();
  if (atomic_load(&s->state) != CGC_SPAN_LARGE || s->base != (uintptr_t)p) {
    _cgc_heap_unlock();
    _cgc_fatal("cgc_free: %p is not an allocated object (double free?)", p);
  }
  _cgc_page_free_locked(s, false);
  /* Under the heap lock, which a collection takes before it resets
     heap_live and takes its totals: after the unlock, a collection woken by
     it would count these pages neither live nor freed, and the late update
     would take them off twice. */
  atomic_fetch_sub_explicit(&_cgc_g.heap_live, (int64_t)bytes, memory_order_relaxed);
  _cgc_count_free(bytes);
  _cgc_heap_unlock();
}

static inline bool is_large(cgc_span_t *s) {
  return s->nelems == 1 && atomic_load_explicit(&s->state, memory_order_relaxed) == CGC_SPAN_LARGE;
}

/* Free the live object p resolved as r: specials, large objects, checkfree. */
static void free_resolved(obj_ref_t r, void *p, const char *call) {
  /* Specials first.  What a cleanup or finalizer attaches to the dying object
     meanwhile is dropped unrun (weak handles cleared): nothing runs later.
     A free of the object from inside them is left to this call. */
  if (r.span->specials != NULL &&
      _cgc_specials_on_free(r.span, r.idx, (uintptr_t)p, call) == CGC_ONFREE_NESTED)
    return;
  if (is_large(r.span)) free_large(r.span, p);
  else free_small(r.span, (uintptr_t)p);
}

static CGC_NOINLINE void free_slow(void *p) { free_resolved(resolve_base("cgc_free", p), p, "cgc_free"); }

/* a is the start of slot idx of small span s and its first word is not a
   free-list link (its top byte is not the key's tag: _cgc_word0_may_link). */
static inline bool small_slot_start(cgc_span_t *s, uintptr_t a, uint32_t idx) {
  return _cgc_slot_base(s, idx) == a && !_cgc_word0_may_link(a) && s->nelems > 1;
}

/* The cheap half of resolve_base for a small object: p is a slot start
   whose first word is not a free-list link and the last collection did not
   find it dead.  False sends the caller to resolve_base,
   which diagnoses. */
static inline bool small_live_fast(cgc_span_t *s, uintptr_t a, uint32_t *idx) {
  *idx = _cgc_slot_index(s, a);
  return cgc_likely(small_slot_start(s, a, *idx) && !_cgc_found_dead(s, *idx));
}

/* The span of a, a pointer passed to cgc_free or cgc_realloc, or NULL.
   Recent frees' spans first (a small cache indexed by page): frees cluster,
   and the check (state, then bounds, as I1 orders them) is shorter than the
   page-map walk.  Span structs are never unmapped, so a stale hint only
   fails the check. */
static inline bool hint_holds(cgc_span_t *s, uintptr_t a) {
  return s && atomic_load_explicit(&s->state, memory_order_acquire) == CGC_SPAN_SMALL && a - s->base < s->limit - s->base;
}
_Static_assert((CGC_FREE_HINTS & (CGC_FREE_HINTS - 1)) == 0, "CGC_FREE_HINTS must be a power of two");
static inline cgc_span_t **free_hint(cgc_tcache_t *tc, uintptr_t a) {
  return &tc->free_span[(a >> CGC_PAGE_SHIFT) & (CGC_FREE_HINTS - 1)];
}
static inline cgc_span_t *span_of_hinted(cgc_tcache_t *tc, uintptr_t a) {
  cgc_span_t **hint = free_hint(tc, a);
  cgc_span_t *s = *hint;
  if (cgc_unlikely(!hint_holds(s, a))) {
    s = _cgc_span_of(a);
    if (s && tc != &_cgc_empty_tcache) *hint = s;
  }
  return s;
}

/* A valid free of a small object without specials that the inline part
   of cgc_free leaves to a call: objects above ZERO_INLINE_MAX (cleared with
   memset, or pushed uncleared: free_leaves_dirty), or an unregistered
   caller. */
static CGC_NOINLINE void free_valid(cgc_tcache_t *tc, cgc_span_t *s, uintptr_t a, size_t size) {
  if (cgc_unlikely(tc == &_cgc_empty_tcache) && !(tc = tcache_for_free())) return;
  if (free_leaves_dirty(s)) push_slot_to(tc, s, a, size, true);
  else push_slot_to(tc, s, a, size, false);
}

/* The inline paths' test of a in small span s (found, not yet checked to be
   a slot start): the start of a live object without specials, whose first
   word is not a free-list link and that the last collection did not find
   dead, with checkfree off.  small_live_fast, but a "found dead" answer is
   false here, to be confirmed out of line (_cgc_found_dead), so that
   nothing here makes a call. */
static CGC_ALWAYS_INLINE bool plain_small(cgc_span_t *s, uintptr_t a) {
  uint32_t idx = _cgc_slot_index(s, a);
  uint32_t c = atomic_load_explicit(&_cgc_g.gc_cycle, memory_order_acquire);
  return small_slot_start(s, a, idx) && !_cgc_unmarked_unswept(s, idx, c) && !s->specials && !_cgc_g.opt.checkfree;
}

/* cgc_free of a, in span s (found, not yet checked to be a slot start).
   The common case (a small object's start of at most ZERO_INLINE_MAX bytes,
   without specials, whose first word is not a free-list link and that the
   last collection did not find dead, freed by a registered thread) makes no
   call but tail calls, so it saves no registers; everything else goes to
   free_valid, and every diagnosis to free_slow. */
static CGC_ALWAYS_INLINE void free_in_span(cgc_tcache_t *tc, cgc_span_t *s, uintptr_t a) {
  if (cgc_unlikely(!plain_small(s, a))) {
    free_slow((void *)a); /* diagnoses, or confirms a collection's verdict (_cgc_found_dead) */
    return;
  }
  size_t size = s->elemsize;
  if (cgc_unlikely(size > ZERO_INLINE_MAX || tc == &_cgc_empty_tcache)) {
    free_valid(tc, s, a, size);
    return;
  }
  zero_small(a, size);
  link_slot_to(tc, s, a, false);
}

/* cgc_free when the hint of a's page missed: the page map, which also
   refills the hint. */
static CGC_NOINLINE void free_unhinted(cgc_tcache_t *tc, uintptr_t a) {
  cgc_span_t *s = _cgc_span_of(a);
  if (cgc_unlikely(!s)) bad_pointer("cgc_free", (void *)a);
  if (tc != &_cgc_empty_tcache) *free_hint(tc, a) = s;
  free_in_span(tc, s, a);
}

void cgc_free(void *p) {
  uintptr_t a = (uintptr_t)p;
  if (!a) return;
  cgc_tcache_t *tc = _cgc_tc;
  cgc_span_t *s = *free_hint(tc, a);
  if (cgc_unlikely(!hint_holds(s, a))) {
    free_unhinted(tc, a);
    return;
  }
  free_in_span(tc, s, a);
}

/* Under the heap lock, before resize_large changes s: s still holds the
   large object p of have pages.  A cgc_free or cgc_realloc of p on another
   thread since p was resolved would otherwise have the resize work on free
   pages (and corrupt the page heap); it is a double free, diagnosed. */
static void still_large_locked(cgc_span_t *s, void *p, size_t have) {
  if (cgc_likely(atomic_load_explicit(&s->state, memory_order_relaxed) == CGC_SPAN_LARGE &&
                 s->base == (uintptr_t)p && s->npages == have))
    return;
  _cgc_heap_unlock();
  _cgc_fatal("cgc_realloc: %p is not an allocated object (freed already, by another thread while this call "
             "resized it?)",
             p);
}

/* cgc_realloc of large object s to a large size, in place if it can be:
   fewer pages give their tail back to the page heap, more pages are taken
   from the free pages that follow s or mapped at the heap's end.  Nothing is
   copied.  For a scanned object the bytes past size are cleared (pages the
   page heap knows to be zero are not written; a collection that runs before
   they are cleared sees their old bytes, which can only retain memory).
   False: s is unchanged and the object must move. */
static CGC_NOINLINE bool resize_large(cgc_span_t *s, void *p, size_t size, int noscan) {
  if (size > _cgc_large_max()) return false;
  size_t have = s->npages, npages = CGC_ALIGN_UP(size, CGC_PAGE_SIZE) >> CGC_PAGE_SHIFT;
  size_t old = have * CGC_PAGE_SIZE, bytes = npages * CGC_PAGE_SIZE;
  if (npages < have) {
    if (_cgc_g.opt.checkfree) return false; /* freed pages are quarantined, not trimmed */
    _cgc_heap_lock();
    still_large_locked(s, p, have);
    bool ok = _cgc_page_trim_locked(s, npages);
    if (ok) { /* under the lock, which a collection holds while it takes its totals */
      atomic_fetch_sub_explicit(&_cgc_g.heap_live, (int64_t)(old - bytes), memory_order_relaxed);
      count_free_bytes(old - bytes);
    }
    _cgc_heap_unlock();
    if (!ok) return false;
  } else if (npages > have) {
    _cgc_pacing_check(_cgc_tc); /* may collect: p, used below, keeps the object alive */
    _cgc_before_grow(bytes - old);
    _cgc_heap_lock();
    still_large_locked(s, p, have);
    bool ok = _cgc_page_extend_locked(s, npages);
    if (ok) { /* under the lock, as above */
      atomic_fetch_add_explicit(&_cgc_g.heap_live, (int64_t)(bytes - old), memory_order_relaxed);
      atomic_fetch_add_explicit(&_cgc_g.large_alloc_bytes, bytes - old, memory_order_relaxed);
    }
    _cgc_heap_unlock();
    if (!ok) return false;
    if (!noscan) _cgc_pages_zero(s->base + old, npages - have);
  }
  size_t kept = CGC_MIN(old, bytes);
  if (!noscan && size < kept) memset((char *)s->base + size, 0, kept - size);
  _cgc_count_other_call();
  return true;
}

/* Can a cgc_realloc to size keep the object at a (slot of old bytes; fit,
   the slot size would get if allocated anew)?  Only if size fits, the slot
   is less than twice what size needs, and the slot is as aligned as a new one
   would be: a size that is a multiple of 16 gets a 16-byte-aligned object
   (docs/heap.md), which a slot of a class that is an odd multiple of 8
   (24, 40, ..., 120) is only every other time. */
static inline bool stays_in_place(uintptr_t a, size_t size, size_t old, size_t fit) {
  return size <= old && fit * 2 > old && ((size & 15) != 0 || (a & 15) == 0);
}

/* cgc_realloc, every case: large objects, scanned objects, sizes, misuse. */
static CGC_NOINLINE void *realloc_slow(void *p, size_t size) {
  if (!p) return cgc_alloc(size);
  cgc_tcache_t *tc = _cgc_tc;
  obj_ref_t r;
  r.span = span_of_hinted(tc, (uintptr_t)p);
  if (cgc_unlikely(!r.span || !small_live_fast(r.span, (uintptr_t)p, &r.idx) || _cgc_g.opt.checkfree))
    r = resolve_base("cgc_realloc", p);
  cgc_span_t *s = r.span;
  size_t old = s->elemsize;
  int noscan = s->noscan;
  if (size == 0) {
    cgc_free(p);
    return NULL;
  }
  bool small = size <= CGC_MAX_SMALL;
  if (!small && is_large(s) && resize_large(s, p, size, noscan)) return p;
  /* In place when the current slot fits and is less than twice what size needs
     (and keeps the alignment the size promises: stays_in_place). */
  unsigned cls = small ? _cgc_size_to_class(size) : 0;
  size_t fit = small ? _cgc_class_size[cls] : CGC_ALIGN_UP(size, CGC_PAGE_SIZE);
  if (stays_in_place((uintptr_t)p, size, old, fit)) {
    if (!noscan) memset((char *)p + size, 0, old - size); /* no stale pointers past size */
    return p;
  }
  /* Move.  A noscan buffer moves into memory whose bytes past the copy are
     unspecified, as with realloc (alloc_for_move; pages not cleared), and
     leaves its old slot uncleared on the dirty list of its class
     (push_left_slot).  A large object that grows goes to the start of a free
     span of twice its pages if there is one, so that it can grow into the
     rest in place next time (resize_large) instead of moving again. */
  void *n = small    ? (noscan ? alloc_for_move(tc, (cls << 1) | 1u, size, fit) : cgc_alloc(size))
                     : alloc_large(size, size > old ? 2 * (fit >> CGC_PAGE_SHIFT) : 0, noscan, !noscan);
  if (!n) return NULL;
  memcpy(n, p, CGC_MIN(old, size));
  if (noscan && s->nelems > 1 && !s->specials && !_cgc_g.opt.checkfree) push_left_slot(s, (uintptr_t)p, old);
  else free_resolved(r, p, "cgc_realloc");
  return n;
}

/* The move of a noscan buffer of span s at a (of old bytes, len of them to
   keep) into the slot n just popped, without a call but memcpy's last: the
   first 16 bytes are read into registers, the old slot goes onto its list
   (which overwrites its words 0 and 1: push_left_slot), and the rest is
   copied by a tail-position memcpy, so nothing lives across the call.
   Until the copy ends the old slot, on this thread's list, can only be
   premarked by a collection; no one else takes it. */
static CGC_ALWAYS_INLINE void *move_noscan(cgc_tcache_t *tc, cgc_span_t *s, uintptr_t a, char *n, size_t len,
                                           size_t old) {
  uint64_t w[2];
  /* Bytes are copied in words here: slots are multiples of 8 bytes, and n's
     class holds the size asked for, at least len rounded up to 8. */
  memcpy(w, (const void *)a, old < 16 ? 8 : 16);
  _cgc_slot_make_dirty((uintptr_t *)a, old);
  if (cgc_likely(old > 2 * sizeof(uintptr_t))) link_slot_to(tc, s, a, true);
  else link_slot_to(tc, s, a, false);
  if (len <= 8) {
    memcpy(n, w, 8);
    return n;
  }
  memcpy(n, w, 16);
  if (len <= 16) return n;
  return (char *)memcpy(n + 16, (const char *)a + 16, len - 16) - 16;
}

/* The inline part handles a noscan small buffer of a registered thread
   (its span in the free hints, no specials, not found dead) that stays in
   place or moves into a slot on the thread's lists of the new class; the
   rest, and every diagnosis, is realloc_slow's. */
void *cgc_realloc(void *p, size_t size) {
  uintptr_t a = (uintptr_t)p;
  cgc_tcache_t *tc = _cgc_tc;
  cgc_span_t *s = *free_hint(tc, a);
  if (cgc_unlikely(size - 1 >= CGC_MAX_SMALL || !hint_holds(s, a) || !s->noscan || !plain_small(s, a)))
    return realloc_slow(p, size);
  size_t old = s->elemsize;
  unsigned cls = _cgc_size_to_class(size);
  size_t fit = _cgc_class_size[cls];
  if (stays_in_place(a, size, old, fit)) return p;
  unsigned sc = (cls << 1) | 1u;
  void **head = tc->dirty[sc] ? &tc->dirty[sc] : &tc->free[sc];
  if (cgc_unlikely(*head == NULL)) return realloc_slow(p, size);
  return move_noscan(tc, s, a, pop_slot(tc, head, fit), CGC_MIN(old, size), old);
}
