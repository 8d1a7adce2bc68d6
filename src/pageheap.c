/* pageheap.c — pages, spans and the page map (see docs/heap.md).
 *
 * The heap grows by mapping address space next to what it already has (so it
 * stays dense), registers each 64 MiB granule in a two-level page map, and
 * hands out runs of 8 KiB pages as spans.  Free runs are coalesced with their
 * neighbours and kept on free lists by length.  Each free page carries two
 * bits: "known zero" (fresh from the OS, or released) and "released" (given
 * back to the OS with madvise).  mapped_bytes counts pages that are mapped and
 * not released.
 *
 * Locking: everything here is protected by _cgc_g.heap_lock, except the page
 * map (published with release stores, read lock-free) and the zero bits of a
 * BUSY span's pages (read by the span's creator outside the lock; all bitmap
 * words are updated with atomic operations so neighbours never tear them).
 */
#include <errno.h>

#include "internal.h"

#define GROW_MIN ((size_t)4 << 20)
#define GROW_MAX ((size_t)64 << 20)

/* ---- metadata allocator ---------------------------------------------------- */

static CGC_STATE char *meta_cur, *meta_end;

void *_cgc_meta_alloc(size_t size) {
  size = CGC_ALIGN_UP(size, 64);
  if (size >= ((size_t)256 << 10)) {
    void *p = _cgc_os_map(size);
    if (p) atomic_fetch_add(&_cgc_g.metadata_bytes, size);
    return p;
  }
  pthread_mutex_lock(&_cgc_g.meta_lock);
  if ((size_t)(meta_end - meta_cur) < size) {
    size_t chunk = (size_t)1 << 20;
    char *p = _cgc_os_map(chunk);
    if (!p) {
      pthread_mutex_unlock(&_cgc_g.meta_lock);
      return NULL;
    }
    atomic_fetch_add(&_cgc_g.metadata_bytes, chunk);
    meta_cur = p;
    meta_end = p + chunk;
  }
  void *r = meta_cur;
  meta_cur += size;
  pthread_mutex_unlock(&_cgc_g.meta_lock);
  return r;
}

cgc_span_t *_cgc_span_struct_alloc_locked(void) {
  cgc_span_t *s = _cgc_g.span_pool;
  if (s) {
    _cgc_g.span_pool = s->next;
  } else {
    s = _cgc_meta_alloc(sizeof *s);
    if (!s) return NULL;
  }
  memset((void *)s, 0, offsetof(cgc_span_t, mark));
  return s;
}

void _cgc_span_struct_free_locked(cgc_span_t *s) {
  atomic_store_explicit(&s->state, CGC_SPAN_DEAD, memory_order_release);
  s->base = s->limit = 0;
  s->next = _cgc_g.span_pool;
  _cgc_g.span_pool = s;
}

/* ---- span lists ------------------------------------------------------------ */

void _cgc_list_push(cgc_span_list_t *l, cgc_span_t *s, uint8_t which) {
  cgc_assert(s->on_list == CGC_LIST_NONE);
  s->prev = NULL;
  s->next = l->head;
  if (l->head) l->head->prev = s;
  else l->tail = s;
  l->head = s;
  l->count++;
  s->on_list = which;
}

void _cgc_list_remove(cgc_span_list_t *l, cgc_span_t *s) {
  if (s->prev) s->prev->next = s->next;
  else l->head = s->next;
  if (s->next) s->next->prev = s->prev;
  else l->tail = s->prev;
  s->next = s->prev = NULL;
  s->on_list = CGC_LIST_NONE;
  l->count--;
}

cgc_span_t *_cgc_list_pop(cgc_span_list_t *l) {
  cgc_span_t *s = l->head;
  if (s) _cgc_list_remove(l, s);
  return s;
}

/* O(1): spliced spans keep their on_list tag (central lists are only pushed
   and popped, so the tag only has to say "on some list"). */
void _cgc_list_splice(cgc_span_list_t *dst, cgc_span_list_t *src, uint8_t which) {
  (void)which;
  if (!src->head) return;
  if (dst->tail) {
    dst->tail->next = src->head;
    src->head->prev = dst->tail;
    dst->tail = src->tail;
  } else {
    dst->head = src->head;
    dst->tail = src->tail;
  }
  dst->count += src->count;
  src->head = src->tail = NULL;
  src->count = 0;
}

/* ---- page bitmaps -------------------------------------------------------- */

enum { BITS_ZEROED, BITS_RELEASED };

static uint64_t *bitmap_of(cgc_arena_meta_t *m, int which) {
  return which == BITS_ZEROED ? m->zeroed : m->released;
}

/* Apply op to the bits of pages [p, p+n): 0 clear, 1 set; returns how many
   were set before. */
static size_t bits_update(uintptr_t p, size_t n, int which, int op) {
  size_t before = 0;
  while (n) {
    cgc_arena_meta_t *m = _cgc_arena_of(p);
    size_t i = _cgc_page_index(p);
    size_t k = CGC_MIN(n, CGC_PAGES_PER_ARENA - i);
    uint64_t *bm = bitmap_of(m, which);
    for (size_t j = i; j < i + k;) {
      size_t w = j / 64, b = j % 64, cnt = CGC_MIN(64 - b, i + k - j);
      uint64_t mask = (cnt == 64 ? ~0ull : ((1ull << cnt) - 1)) << b;
      uint64_t old = op ? __atomic_fetch_or(&bm[w], mask, __ATOMIC_RELAXED)
                        : __atomic_fetch_and(&bm[w], ~mask, __ATOMIC_RELAXED);
      if (old & mask) before += (size_t)__builtin_popcountll(old & mask);
      j += cnt;
    }
    p += k * CGC_PAGE_SIZE;
    n -= k;
  }
  return before;
}

static bool bit_test(uintptr_t p, int which) {
  cgc_arena_meta_t *m = _cgc_arena_of(p);
  size_t i = _cgc_page_index(p);
  return (__atomic_load_n(&bitmap_of(m, which)[i / 64], __ATOMIC_RELAXED) >> (i % 64)) & 1;
}

/* ---- page map -------------------------------------------------------------- */

static bool ensure_meta(uintptr_t lo, uintptr_t hi) {
  for (uintptr_t a = CGC_ALIGN_DOWN(lo, CGC_ARENA_SIZE); a < hi; a += CGC_ARENA_SIZE) {
    if (a >> CGC_ADDR_BITS) return false;
    size_t i1 = a >> (CGC_ARENA_SHIFT + CGC_L2_BITS);
    size_t i2 = (a >> CGC_ARENA_SHIFT) & ((1u << CGC_L2_BITS) - 1);
    cgc_arena_meta_t **l2 = atomic_load(&_cgc_g.arena_l1[i1]);
    if (!l2) {
      l2 = _cgc_meta_alloc(sizeof(void *) << CGC_L2_BITS);
      if (!l2) return false;
      atomic_store_explicit(&_cgc_g.arena_l1[i1], l2, memory_order_release);
    }
    if (!l2[i2]) {
      cgc_arena_meta_t *m = _cgc_meta_alloc(sizeof *m);
      if (!m) return false;
      __atomic_store_n(&l2[i2], m, __ATOMIC_RELEASE);
    }
  }
  return true;
}

static void set_map(uintptr_t p, cgc_span_t *s) {
  cgc_arena_meta_t *m = _cgc_arena_of(p);
  __atomic_store_n(&m->spans[_cgc_page_index(p)], s, __ATOMIC_RELEASE);
}

static void set_map_range(cgc_span_t *s) {
  for (size_t i = 0; i < s->npages; i++) set_map(s->base + i * CGC_PAGE_SIZE, s);
}

void _cgc_span_publish(cgc_span_t *s, uint8_t state) {
  set_map_range(s);
  atomic_store_explicit(&s->state, state, memory_order_release);
}

/* ---- free spans -------------------------------------------------------------- */

static cgc_span_list_t *free_list_for(size_t npages) {
  return npages <= 128 ? &_cgc_g.free_small[npages] : &_cgc_g.free_large;
}

static void free_insert(cgc_span_t *s) {
  atomic_store_explicit(&s->state, CGC_SPAN_FREE, memory_order_release);
  s->limit = s->base;
  set_map(s->base, s);
  set_map(s->base + (s->npages - 1) * CGC_PAGE_SIZE, s);
  _cgc_list_push(free_list_for(s->npages), s, CGC_LIST_FREE);
  if (s->npages <= 128) _cgc_g.free_small_set[s->npages / 64] |= 1ull << (s->npages % 64);
  _cgc_g.free_pages += s->npages;
}

static void free_remove(cgc_span_t *s) {
  cgc_span_list_t *l = free_list_for(s->npages);
  _cgc_list_remove(l, s);
  if (s->npages <= 128 && !l->head) _cgc_g.free_small_set[s->npages / 64] &= ~(1ull << (s->npages % 64));
  _cgc_g.free_pages -= s->npages;
}

static cgc_span_t *free_neighbor(uintptr_t page, bool before, uintptr_t edge) {
  cgc_span_t *n = _cgc_span_of_any(page);
  if (!n || atomic_load_explicit(&n->state, memory_order_relaxed) != CGC_SPAN_FREE) return NULL;
  if (before ? n->base + n->npages * CGC_PAGE_SIZE != edge : n->base != edge) return NULL;
  return n;
}

/* Insert free pages [base, base+npages) coalescing with free neighbours. */
static void free_pages_insert(cgc_span_t *s) {
  uintptr_t lo = s->base, hi = s->base + s->npages * CGC_PAGE_SIZE;
  cgc_span_t *prev = _cgc_arena_of(lo - CGC_PAGE_SIZE) ? free_neighbor(lo - CGC_PAGE_SIZE, true, lo) : NULL;
  if (prev) {
    free_remove(prev);
    s->base = prev->base;
    s->npages += prev->npages;
    _cgc_span_struct_free_locked(prev);
  }
  cgc_span_t *next = _cgc_arena_of(hi) ? free_neighbor(hi, false, hi) : NULL;
  if (next) {
    free_remove(next);
    s->npages += next->npages;
    _cgc_span_struct_free_locked(next);
  }
  free_insert(s);
}

static size_t grow_size(size_t npages) {
  size_t want = npages * CGC_PAGE_SIZE;
  size_t step = atomic_load(&_cgc_g.mapped_bytes) / 8;
  step = CGC_MAX(step, GROW_MIN);
  step = CGC_MIN(step, GROW_MAX);
  return CGC_ALIGN_UP(CGC_MAX(want, step), GROW_MIN);
}

static bool heap_grow_locked(size_t npages) {
  size_t size = grow_size(npages);
  char *p = NULL;
  for (int attempt = 0; attempt < 2 && !p; attempt++) {
    size_t sz = attempt ? npages * CGC_PAGE_SIZE : size; /* second try: exactly what is needed */
    if (sz < npages * CGC_PAGE_SIZE) continue;
    p = NULL;
    if (_cgc_g.grow_hint) {
      p = _cgc_os_map_at((void *)_cgc_g.grow_hint, sz);
      if (!p && errno == ENOMEM) continue;
    }
    if (!p) {
      p = _cgc_os_map_aligned(sz, CGC_PAGE_SIZE);
      if (!p) continue;
    }
    size = sz;
  }
  if (!p) {
    errno = ENOMEM;
    return false;
  }
  if (!ensure_meta((uintptr_t)p, (uintptr_t)p + size)) {
    _cgc_os_unmap(p, size);
    errno = ENOMEM;
    return false;
  }
  _cgc_g.grow_hint = (uintptr_t)p + size;
  uintptr_t lo = atomic_load(&_cgc_g.heap_lo), hi = atomic_load(&_cgc_g.heap_hi);
  if (!lo || (uintptr_t)p < lo) atomic_store(&_cgc_g.heap_lo, (uintptr_t)p);
  if ((uintptr_t)p + size > hi) atomic_store(&_cgc_g.heap_hi, (uintptr_t)p + size);
  atomic_fetch_add(&_cgc_g.mapped_bytes, size);

  cgc_span_t *s = _cgc_span_struct_alloc_locked();
  if (!s) {
    errno = ENOMEM;
    return false; /* the mapping stays; it is harmless */
  }
  s->base = (uintptr_t)p;
  s->npages = size / CGC_PAGE_SIZE;
  bits_update(s->base, s->npages, BITS_ZEROED, 1);
  bits_update(s->base, s->npages, BITS_RELEASED, 0);
  free_pages_insert(s);
  return true;
}

/* The smallest free span of at least npages pages (best fit; of spans of
   more than 128 pages, the lowest of the smallest), or NULL. */
static cgc_span_t *find_free_locked(size_t npages) {
  for (size_t w = npages / 64; npages <= 128 && w < 3; w++) {
    uint64_t bits = _cgc_g.free_small_set[w];
    if (w == npages / 64) bits &= ~0ull << (npages % 64);
    if (bits) {
      cgc_span_t *f = _cgc_g.free_small[w * 64 + (size_t)__builtin_ctzll(bits)].head;
      cgc_assert(f && f->npages >= npages);
      return f;
    }
  }
  if (CGC_CHECKED)
    for (size_t n = npages; n <= 128; n++) cgc_assert(!_cgc_g.free_small[n].head); /* the bitmap missed none */
  cgc_span_t *best = NULL;
  for (cgc_span_t *s = _cgc_g.free_large.head; s; s = s->next)
    if (s->npages >= npages && (!best || s->npages < best->npages ||
                                (s->npages == best->npages && s->base < best->base)))
      best = s;
  return best;
}

static cgc_span_t *carve_locked(cgc_span_t *f, size_t npages) {
  free_remove(f);
  if (f->npages > npages) {
    cgc_span_t *rest = _cgc_span_struct_alloc_locked();
    if (!rest) { /* put it back whole */
      free_insert(f);
      return NULL;
    }
    rest->base = f->base + npages * CGC_PAGE_SIZE;
    rest->npages = f->npages - npages;
    f->npages = npages;
    free_insert(rest);
  }
  _cgc_g.used_pages += npages;
  _cgc_g.used_pages_peak = CGC_MAX(_cgc_g.used_pages_peak, _cgc_g.used_pages);
  size_t rel = bits_update(f->base, npages, BITS_RELEASED, 0);
  if (rel) atomic_fetch_add(&_cgc_g.mapped_bytes, rel * CGC_PAGE_SIZE);
  atomic_store_explicit(&f->state, CGC_SPAN_BUSY, memory_order_release);
  f->limit = f->base;
  set_map_range(f);
  return f;
}

/* npages pages, from the start of a free span of at least room pages if one
   is free (so that the object can grow in place into the rest:
   _cgc_page_extend_locked), else of the smallest that fits. */
cgc_span_t *_cgc_page_alloc_locked(size_t npages, size_t room) {
  if (npages == 0 || npages > ((size_t)1 << (CGC_ADDR_BITS - CGC_PAGE_SHIFT))) {
    errno = ENOMEM;
    return NULL;
  }
  cgc_span_t *f = room > npages ? find_free_locked(room) : NULL;
  if (!f) f = find_free_locked(npages);
  if (!f) {
    if (!heap_grow_locked(npages)) return NULL;
    f = find_free_locked(npages);
    if (!f) {
      errno = ENOMEM;
      return NULL;
    }
  }
  return carve_locked(f, npages);
}

/* The end of the run of pages from p (< end) whose bit `which` equals set. */
static uintptr_t run_end(uintptr_t p, uintptr_t end, int which, bool set) {
  while (p < end && bit_test(p, which) == set) p += CGC_PAGE_SIZE;
  return p;
}

/* Zero the dirty pages of a BUSY span (its creator calls this outside the
   lock; only the creator touches these pages' bits until publication). */
/* Dirty runs at least this long are zeroed by giving them back to the OS
   (they refault as zero pages) rather than written: writing is several times
   faster for memory that is about to be used (a page fault costs more than
   clearing its 4 KiB), but a huge, sparsely used object should not become
   resident just to be cleared. */
#define ZERO_BY_RELEASE ((size_t)64 << 20)

void _cgc_pages_zero(uintptr_t base, size_t npages) {
  uintptr_t p = base, end = base + npages * CGC_PAGE_SIZE;
  while ((p = run_end(p, end, BITS_ZEROED, true)) < end) {
    uintptr_t q = run_end(p, end, BITS_ZEROED, false);
    /* Released, the pages refault as zero; the kernel refuses to release
       locked memory (mlock, mlockall), which then keeps its bytes. */
    if (q - p < ZERO_BY_RELEASE || _cgc_os_release((void *)p, q - p) != 0) memset((void *)p, 0, q - p);
    p = q;
  }
  bits_update(base, npages, BITS_ZEROED, 0);
}

void _cgc_span_zero(cgc_span_t *s) { _cgc_pages_zero(s->base, s->npages); }

/* ---- resizing a large object in place ------------------------------------------ */

bool _cgc_page_extend_locked(cgc_span_t *s, size_t npages) {
  cgc_assert(npages > s->npages);
  size_t extra = npages - s->npages;
  uintptr_t end = s->base + s->npages * CGC_PAGE_SIZE;
  cgc_span_t *f = _cgc_arena_of(end) ? free_neighbor(end, false, end) : NULL;
  if (!f || f->npages < extra) {
    /* At the end of the heap, when a move could not reuse free pages either
       (it would grow the heap): map what is missing right there (the new
       pages coalesce with f; if they land elsewhere they are just free). */
    uintptr_t top = f ? f->base + f->npages * CGC_PAGE_SIZE : end;
    if (top != _cgc_g.grow_hint || find_free_locked(npages) || !heap_grow_locked(extra - (f ? f->npages : 0)))
      return false;
    f = _cgc_arena_of(end) ? free_neighbor(end, false, end) : NULL;
    if (!f || f->npages < extra) return false;
  }
  f = carve_locked(f, extra);
  if (!f) return false;
  cgc_assert(f->base == end);
  _cgc_span_struct_free_locked(f);
  s->npages = npages;
  for (uintptr_t p = end; p < end + extra * CGC_PAGE_SIZE; p += CGC_PAGE_SIZE) set_map(p, s);
  s->elemsize = npages * CGC_PAGE_SIZE;
  atomic_thread_fence(memory_order_release); /* lock-free readers: the map before the bounds */
  s->limit = s->base + s->elemsize;
  return true;
}

bool _cgc_page_trim_locked(cgc_span_t *s, size_t npages) {
  cgc_assert(npages > 0 && npages < s->npages);
  cgc_span_t *t = _cgc_span_struct_alloc_locked();
  if (!t) return false;
  t->base = s->base + npages * CGC_PAGE_SIZE;
  t->npages = s->npages - npages;
  s->npages = npages;
  s->elemsize = npages * CGC_PAGE_SIZE;
  s->limit = s->base + s->elemsize; /* before the tail pages are free */
  atomic_thread_fence(memory_order_release);
  _cgc_page_free_locked(t, false);
  return true;
}

void _cgc_page_free_locked(cgc_span_t *s, bool zeroed) {
  cgc_assert(s->npages > 0);
  atomic_store_explicit(&s->state, CGC_SPAN_BUSY, memory_order_release);
  if (s->on_list == CGC_LIST_LARGE) _cgc_list_remove(&_cgc_g.large, s);
  bits_update(s->base, s->npages, BITS_ZEROED, zeroed);
  cgc_assert(_cgc_g.used_pages >= s->npages);
  _cgc_g.used_pages -= s->npages;
  s->owner = NULL;
  s->freelist = NULL;
  s->specials = NULL;
  s->nfree = 0;
  free_pages_insert(s);
}

void _cgc_page_free_released_locked(cgc_span_t *s) {
  bits_update(s->base, s->npages, BITS_RELEASED, 1);
  _cgc_page_free_locked(s, true);
}

void _cgc_heap_lock(void) { pthread_mutex_lock(&_cgc_g.heap_lock); }
void _cgc_heap_unlock(void) { pthread_mutex_unlock(&_cgc_g.heap_lock); }


/* ---- scavenging ------------------------------------------------------------ */

/* The start of the run of released pages that ends at q, going down no
   further than lo: a bitmap word at a time where 64 pages are all released,
   so that a scavenge over a heap of mostly released free memory does not
   test each of its pages (it runs at every span allocation near a memory
   limit, under the heap lock). */
static uintptr_t released_run_start(uintptr_t lo, uintptr_t q) {
  while (q > lo) {
    uintptr_t p = q - CGC_PAGE_SIZE;
    size_t i = _cgc_page_index(p);
    if (i % 64 == 63 && q - lo >= 64 * CGC_PAGE_SIZE &&
        __atomic_load_n(&bitmap_of(_cgc_arena_of(p), BITS_RELEASED)[i / 64], __ATOMIC_RELAXED) == ~0ull) {
      q -= 64 * CGC_PAGE_SIZE;
      continue;
    }
    if (!bit_test(p, BITS_RELEASED)) break;
    q = p;
  }
  return q;
}

/* Release unreleased pages of free span s, from its end down (its start is
   what the next allocation from it takes), until at least want bytes went
   back; returns the bytes released. */
static size_t release_span(cgc_span_t *s, size_t want) {
  size_t released = 0;
  uintptr_t lo = s->base, q = s->base + s->npages * CGC_PAGE_SIZE;
  while (released < want) {
    q = released_run_start(lo, q);
    if (q == lo) break;
    uintptr_t p = q - CGC_PAGE_SIZE;
    while (p > lo && !bit_test(p - CGC_PAGE_SIZE, BITS_RELEASED) && q - p < want - released) p -= CGC_PAGE_SIZE;
    if (_cgc_os_release((void *)p, q - p) == 0) {
      size_t n = (q - p) / CGC_PAGE_SIZE;
      bits_update(p, n, BITS_RELEASED, 1);
      bits_update(p, n, BITS_ZEROED, 1);
      released += q - p;
    }
    q = p;
  }
  return released;
}

/* A period is a collection: a second full sweep after the same collection
   (cgc_collect sweeps, then the sweeper it woke finds nothing left) does
   not shift the window, which would otherwise keep the peak of four
   collections instead of eight. */
size_t _cgc_used_peak_take(void) {
  _cgc_heap_lock();
  size_t *w = _cgc_g.used_peaks, n = sizeof _cgc_g.used_peaks / sizeof *w;
  uint32_t cycle = atomic_load(&_cgc_g.gc_cycle);
  size_t peak = 0;
  if (cycle != _cgc_g.used_peaks_cycle) {
    /* A period is a collection, whether or not a complete sweep followed
       it: the window moves by the collections since the last take, and the
       peak since then counts in the oldest of them (a heap that shrank
       while the sweeper fell behind returns its memory as many collections
       later as when every collection was swept). */
    size_t k = CGC_MIN((size_t)(cycle - _cgc_g.used_peaks_cycle), n);
    _cgc_g.used_peaks_cycle = cycle;
    memmove(w + k, w, (n - k) * sizeof *w);
    w[k - 1] = _cgc_g.used_pages_peak;
    for (size_t i = 0; i + 1 < k; i++) w[i] = _cgc_g.used_pages;
    _cgc_g.used_pages_peak = _cgc_g.used_pages;
  } else {
    peak = _cgc_g.used_pages_peak; /* the period is still open */
  }
  for (size_t i = 0; i < n; i++) peak = CGC_MAX(peak, w[i]);
  _cgc_heap_unlock();
  return peak * CGC_PAGE_SIZE;
}

uint32_t _cgc_used_peak_cycle(void) {
  _cgc_heap_lock();
  uint32_t c = _cgc_g.used_peaks_cycle;
  _cgc_heap_unlock();
  return c;
}

void _cgc_used_peaks_reset(void) {
  _cgc_heap_lock();
  for (size_t i = 0; i < sizeof _cgc_g.used_peaks / sizeof *_cgc_g.used_peaks; i++) _cgc_g.used_peaks[i] = 0;
  _cgc_g.used_pages_peak = _cgc_g.used_pages;
  _cgc_heap_unlock();
}

/* Release pages of free span s by what mapped_bytes exceeds target, read
   once: cgc_arena_free lowers it without the heap lock, and a second read
   could find it under target, the difference wrapping around. */
static size_t scavenge_span(cgc_span_t *s, uint64_t target) {
  uint64_t m = atomic_load(&_cgc_g.mapped_bytes);
  if (m <= target) return 0;
  size_t r = release_span(s, m - target);
  atomic_fetch_sub(&_cgc_g.mapped_bytes, r);
  return r;
}

size_t _cgc_scavenge(size_t target_mapped) {
  size_t released = 0;
  _cgc_heap_lock();
  /* Spans of more than 128 pages first, then by length, longest first. */
  for (cgc_span_t *s = _cgc_g.free_large.head; s && atomic_load(&_cgc_g.mapped_bytes) > target_mapped; s = s->next)
    released += scavenge_span(s, target_mapped);
  for (size_t n = 128; n >= 1 && atomic_load(&_cgc_g.mapped_bytes) > target_mapped; n--)
    for (cgc_span_t *s = _cgc_g.free_small[n].head; s && atomic_load(&_cgc_g.mapped_bytes) > target_mapped;
         s = s->next)
      released += scavenge_span(s, target_mapped);
  if (released) atomic_fetch_add(&_cgc_g.released_total, released);
  _cgc_heap_unlock();
  return released;
}
