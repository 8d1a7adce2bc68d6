/* arena.c — arenas: bump allocation in chunks, freed all at once (see docs/free.md).
 *
 * An arena is a list of chunks, each a span of pages taken from the page heap
 * and published with state CGC_SPAN_ARENA (so the page map knows the range:
 * cgc_free of an address inside aborts, and the marker reports words that
 * point into it).  An arena has two bump regions, one in a scanned chunk and
 * one in a noscan chunk; allocation moves a pointer, and memory never comes
 * back to an arena, so it is zero from the page heap.  Regular chunks grow
 * from 64 KiB to 4 MiB; a request above a quarter of the next chunk size gets
 * a chunk of its own.
 *
 * Roots: while an arena lives, the used part of each scanned chunk is a root
 * range (_cgc_arenas_enumerate_roots).  Arena memory is never collected.
 *
 * cgc_arena_free: every chunk is replaced by an inaccessible mapping (one
 * mmap per run of contiguous chunks: time proportional to the chunks) and
 * put in quarantine.  A chunk in quarantine keeps its ARENA span, so the
 * marker still reports words pointing into it: _cgc_arena_note_hit stores
 * the current mark epoch in span->mark_epoch (for ARENA spans that field
 * means "last marking that found a word pointing here"; no mark bits are
 * used).  After a marking, quarantined chunks not hit by it are proven
 * unreferenced; once the world restarts they are made read-write (fresh zero
 * pages) and given back to the page heap.  Chunks that were hit stay
 * quarantined and faulting, and are examined again by the next collection.
 *
 * Accounting: quarantined chunks have no memory behind them, so their bytes
 * leave mapped_bytes when they are protected; the range returns to the page
 * heap as released pages (fresh zero pages, not resident), which enter
 * mapped_bytes again when they are handed out.  Freed arena bytes count as
 * allocation for the pacer (heap_live): freeing arenas in a loop brings on
 * the collections that recycle their ranges, which keeps the address space
 * and mapped_bytes bounded.  Allocating arena memory does not bring on collections (it is not
 * garbage a collection could reclaim).
 *
 * Locking: arena_lock protects the live list, every arena's chunk list and
 * current chunks, the quarantine and the free handle queue.  The collector
 * holds it through the stop-the-world phase (_cgc_collect_lock_all), so the
 * hooks called then read the lists without locking.  The bump pointers are
 * written by the arena's user without a lock: an arena is used by one thread
 * at a time, and the collector reads them only while that thread is stopped.
 * arena_lock is never held while taking the heap lock or collecting.
 */
#include <errno.h>

#include "internal.h"

#define CHUNK_MIN ((size_t)64 << 10)
#define CHUNK_MAX ((size_t)4 << 20)
#define HANDLE_RESERVE ((size_t)16 << 20) /* address space for handles: about 150000 */
#define HANDLE_COMMIT ((size_t)64 << 10)   /* made readable this much at a time */

enum { ARENA_UNUSED = 0, ARENA_LIVE = 0x4c495645, ARENA_FREED = 0x46524545 };

typedef struct chunk {
  struct chunk *next;
  cgc_span_t *span;
  uintptr_t base, end; /* the pages */
  uintptr_t used;      /* end of the allocated part (not the current chunk) */
  uint8_t noscan;
  uint8_t faulting;    /* in quarantine and really inaccessible */
} chunk_t;

struct cgc_arena {
  /* Bump regions: the user's thread only (read by the collector while it is stopped). */
  uintptr_t cur, end;   /* scanned */
  uintptr_t ncur, nend; /* noscan */
  uintptr_t tag;        /* the handle's own address while it is a live arena, else 0: the
                           inline path's check, so that a bogus or freed handle goes to
                           the slow path, which reports it */
  /* arena_lock. */
  chunk_t *chunks;
  chunk_t *cur_chunk[2]; /* [noscan] */
  size_t next_size[2];
  size_t bytes;
  uint32_t state;
  uint32_t id;
  struct cgc_arena *next, *prev; /* live list, or the free handle queue */
};

/* Handles live in one reserved range, made readable as it fills, so that
   the inline path can tell a handle's address from any other pointer with
   one comparison before it reads the handle: every address in
   [handles_base, handles_base + handles_readable) can be read, a handle
   whose offset is below handles_fit lies wholly in it, and a wild pointer
   goes to the slow path, which reports it, instead of faulting.
   handles_base is written once, before handles_fit is first raised
   (release); handles_fit only grows.  handles_readable, handles_reserved
   and handles_used: arena_lock. */
static CGC_STATE uintptr_t handles_base;
static CGC_STATE _Atomic uintptr_t handles_fit;
static CGC_STATE size_t handles_readable, handles_reserved, handles_used;

static CGC_STATE pthread_mutex_t arena_lock = PTHREAD_MUTEX_INITIALIZER;
static CGC_STATE struct cgc_arena *live_head;
static CGC_STATE struct cgc_arena *fq_head, *fq_tail; /* freed handles, oldest first */
static CGC_STATE chunk_t *chunk_pool;
static CGC_STATE chunk_t *quarantine, *pending; /* pending: proven unreferenced, to return */
static CGC_STATE uint32_t next_id;
static CGC_STATE _Atomic uint64_t live_bytes;   /* chunks of live arenas */
static CGC_STATE _Atomic uint64_t quarantined_bytes;
static CGC_STATE _Atomic int warned_protect;

void _cgc_arenas_lock(void) CGC_HIDDEN;
void _cgc_arenas_unlock(void) CGC_HIDDEN;
void _cgc_arenas_lock(void) { pthread_mutex_lock(&arena_lock); }
void _cgc_arenas_unlock(void) { pthread_mutex_unlock(&arena_lock); }

uint64_t _cgc_arena_stats_bytes(void) CGC_HIDDEN;
uint64_t _cgc_arena_stats_bytes(void) { return atomic_load_explicit(&live_bytes, memory_order_relaxed); }

/* ---- handles ------------------------------------------------------------------ */

/* Can all of *a be read: does it lie in the readable part of the handle
   range?  handles_fit is that part's size less a handle's, plus one (0
   while nothing is readable).  (Any thread, no lock.) */
static CGC_ALWAYS_INLINE bool handle_readable(const struct cgc_arena *a) {
  uintptr_t fit = atomic_load_explicit(&handles_fit, memory_order_acquire);
  return (uintptr_t)a - handles_base < fit;
}

static bool handle_known(const struct cgc_arena *a) {
  uintptr_t off = (uintptr_t)a - handles_base;
  return handle_readable(a) && off < handles_used * sizeof *a && off % sizeof *a == 0;
}

/* Room for one more handle: reserve the range (at the first handle, as
   much of HANDLE_RESERVE as the address space allows), make the next part
   readable.  arena_lock held; false when out of memory. */
static bool handle_room_locked(void) {
  if (!handles_reserved) {
    for (size_t size = HANDLE_RESERVE; size >= HANDLE_COMMIT && !handles_reserved; size /= 2) {
      void *p = _cgc_os_reserve(size);
      if (p) {
        handles_base = (uintptr_t)p;
        handles_reserved = size;
      }
    }
    if (!handles_reserved) return false;
  }
  if ((handles_used + 1) * sizeof(struct cgc_arena) <= handles_readable) return true;
  if (handles_readable + HANDLE_COMMIT > handles_reserved) return false; /* every handle in use */
  if (_cgc_os_protect_rw((void *)(handles_base + handles_readable), HANDLE_COMMIT) != 0) return false;
  handles_readable += HANDLE_COMMIT;
  atomic_fetch_add(&_cgc_g.metadata_bytes, HANDLE_COMMIT);
  atomic_store_explicit(&handles_fit, handles_readable - sizeof(struct cgc_arena) + 1, memory_order_release);
  return true;
}

/* arena_lock held; unlocks before dying. */
static void check_handle_locked(const struct cgc_arena *a, const char *fn) {
  if (cgc_unlikely(!handle_known(a))) {
    pthread_mutex_unlock(&arena_lock);
    _cgc_fatal("%s: %p is not an arena made by cgc_arena_new", fn, (const void *)a);
  }
  if (cgc_unlikely(a->state != ARENA_LIVE)) {
    pthread_mutex_unlock(&arena_lock);
    _cgc_fatal("%s: arena %p has been freed with cgc_arena_free", fn, (const void *)a);
  }
}

/* A handle for a new arena: a never-used one while the range has room, so
   that a freed handle stays freed, and calls through it are caught, for as
   long as possible (about 150000 arenas made since); then the handle freed
   longest ago.  The range's pages are made readable only as the handles
   are first used, so a program that makes few arenas touches few. */
static struct cgc_arena *handle_alloc_locked(void) {
  struct cgc_arena *a;
  if (handle_room_locked()) {
    a = (struct cgc_arena *)handles_base + handles_used++;
  } else if (fq_head) {
    a = fq_head;
    fq_head = a->next;
    if (!fq_head) fq_tail = NULL;
    else fq_head->prev = NULL;
  } else {
    return NULL;
  }
  memset(a, 0, sizeof *a);
  return a;
}

/* ---- chunks ------------------------------------------------------------------- */

static chunk_t *chunk_rec_alloc_locked(void) {
  chunk_t *c = chunk_pool;
  if (c) {
    chunk_pool = c->next;
  } else {
    c = _cgc_meta_alloc(sizeof *c);
    if (!c) return NULL;
  }
  memset(c, 0, sizeof *c);
  return c;
}

static void chunk_rec_free_locked(chunk_t *c) {
  c->span = NULL;
  c->next = chunk_pool;
  chunk_pool = c;
}

/* A zeroed ARENA span of bytes (a multiple of the page size), or NULL.  No
   lock held: this may collect. */
static cgc_span_t *span_new(size_t bytes, int noscan, uint32_t id) {
  cgc_span_t *s = _cgc_alloc_pages(bytes >> CGC_PAGE_SHIFT, 0, noscan, true);
  if (!s) return NULL;
  s->nelems = 0;
  s->arena_id = id;
  atomic_store_explicit(&s->mark_epoch, 0, memory_order_relaxed);
  _cgc_heap_lock();
  _cgc_span_publish(s, CGC_SPAN_ARENA);
  _cgc_heap_unlock();
  return s;
}

/* Return a span made by span_new (never handed out) to the page heap. */
static void span_drop(cgc_span_t *s) {
  _cgc_heap_lock();
  _cgc_page_free_locked(s, false);
  _cgc_heap_unlock();
}

/* ---- allocation ------------------------------------------------------------------ */

/* Rounded size and alignment: 8-byte steps, 16-byte alignment for sizes that
   are multiples of 16 (as the size classes). */
static CGC_ALWAYS_INLINE void *bump_if(uintptr_t *curp, uintptr_t end, size_t size, bool ok) {
  uintptr_t sz = ((uintptr_t)size + 7) & ~(uintptr_t)7;
  uintptr_t mask = 15 - (sz & 8);
  uintptr_t p = (*curp + mask) & ~mask;
  if (cgc_likely(ok && p + sz <= end)) {
    __atomic_store_n(curp, p + sz, __ATOMIC_RELAXED);
    return (void *)p;
  }
  return NULL;
}

/* The inline path: requests up to CHUNK_MIN, on a handle whose tag holds
   (read only once the address is known to be readable). */
static CGC_ALWAYS_INLINE void *bump(const struct cgc_arena *a, uintptr_t *curp, uintptr_t end, size_t size) {
  return bump_if(curp, end, size, size - 1 < CHUNK_MIN && a->tag == (uintptr_t)a);
}

static CGC_NOINLINE void *alloc_slow(struct cgc_arena *a, size_t size, int noscan, const char *fn) {
  _cgc_ensure_init();
  pthread_mutex_lock(&arena_lock);
  check_handle_locked(a, fn);
  size_t next = a->next_size[noscan];
  uint32_t id = a->id;
  pthread_mutex_unlock(&arena_lock);
  if (size == 0) size = 1;
  if (size > _cgc_large_max()) { /* as for cgc_alloc: the page map's words would exhaust memory first */
    errno = ENOMEM;
    return NULL;
  }
  uintptr_t *curp = noscan ? &a->ncur : &a->cur;
  uintptr_t *endp = noscan ? &a->nend : &a->end;
  /* Fits after all?  The inline bump takes requests up to CHUNK_MIN only;
     a larger one that fits the current chunk goes there too (a new chunk
     for it would drop the current one's free tail). */
  void *fit = bump_if(curp, *endp, size, *endp != 0);
  if (fit) return fit;

  size_t sz = CGC_ALIGN_UP(size, 8);
  bool own = sz > next / 4;
  size_t bytes = own ? CGC_ALIGN_UP(sz, CGC_PAGE_SIZE) : next;
  cgc_span_t *s = span_new(bytes, noscan, id);
  if (!s) {
    errno = ENOMEM;
    return NULL;
  }
  pthread_mutex_lock(&arena_lock);
  chunk_t *c = chunk_rec_alloc_locked();
  if (!c || a->state != ARENA_LIVE) {
    bool freed = a->state != ARENA_LIVE;
    pthread_mutex_unlock(&arena_lock);
    span_drop(s);
    if (freed) _cgc_fatal("%s: arena %p was freed while in use", fn, (void *)a);
    errno = ENOMEM;
    return NULL;
  }
  c->span = s;
  c->base = s->base;
  c->end = s->base + bytes;
  c->noscan = (uint8_t)noscan;
  c->next = a->chunks;
  a->chunks = c;
  a->bytes += bytes;
  atomic_fetch_add_explicit(&live_bytes, bytes, memory_order_relaxed);
  void *r;
  /* Regular chunks double with every chunk taken, own ones included: an
     arena whose requests all take chunks of their own (above a quarter of
     the next size) reaches regular chunks that hold several of them,
     instead of a page-heap visit and a page-rounded chunk per request. */
  a->next_size[noscan] = CGC_MIN(next * 2, CHUNK_MAX);
  _cgc_count_other_call();
  if (own) {
    c->used = c->base + sz;
    r = (void *)c->base;
  } else {
    chunk_t *old = a->cur_chunk[noscan];
    if (old) old->used = *curp;
    a->cur_chunk[noscan] = c;
    r = (void *)c->base;
    __atomic_store_n(curp, c->base + sz, __ATOMIC_RELAXED);
    *endp = c->end;
  }
  pthread_mutex_unlock(&arena_lock);
  return r;
}

/* A pointer outside the handle range (NULL from a failed cgc_arena_new,
   unchecked, or any other) goes to the slow path, which reports it; so
   does one inside it whose tag does not hold. */
void *cgc_arena_alloc(cgc_arena_t *a, size_t size) {
  if (cgc_unlikely(!handle_readable(a))) return alloc_slow(a, size, 0, "cgc_arena_alloc");
  void *p = bump(a, &a->cur, a->end, size);
  if (cgc_likely(p != NULL)) return p;
  return alloc_slow(a, size, 0, "cgc_arena_alloc");
}

void *cgc_arena_alloc_noscan(cgc_arena_t *a, size_t size) {
  if (cgc_unlikely(!handle_readable(a))) return alloc_slow(a, size, 1, "cgc_arena_alloc_noscan");
  void *p = bump(a, &a->ncur, a->nend, size);
  if (cgc_likely(p != NULL)) return p;
  return alloc_slow(a, size, 1, "cgc_arena_alloc_noscan");
}

cgc_arena_t *cgc_arena_new(void) {
  _cgc_ensure_init();
  pthread_mutex_lock(&arena_lock);
  struct cgc_arena *a = handle_alloc_locked();
  if (!a) {
    pthread_mutex_unlock(&arena_lock);
    errno = ENOMEM;
    return NULL;
  }
  a->state = ARENA_LIVE;
  a->tag = (uintptr_t)a;
  a->id = ++next_id;
  a->next_size[0] = a->next_size[1] = CHUNK_MIN;
  a->next = live_head;
  if (live_head) live_head->prev = a;
  live_head = a;
  pthread_mutex_unlock(&arena_lock);
  return a;
}

/* ---- free ------------------------------------------------------------------------ */

static void warn_protect(const char *what) {
  int expected = 0;
  if (atomic_compare_exchange_strong(&warned_protect, &expected, 1))
    _cgc_warn("%s: cannot change the protection of freed arena memory (%s); "
              "too many mappings? (vm.max_map_count)", what, "mmap failed");
}

/* Apply op to the runs of contiguous chunks in list l (in list order).  Sets
   c->faulting for chunks where op succeeded when protecting. */
static void protect_runs(chunk_t *l, bool none) {
  chunk_t *run = l;
  while (run) {
    uintptr_t lo = run->base, hi = run->end;
    chunk_t *last = run;
    while (last->next && (last->next->end == lo || last->next->base == hi)) {
      chunk_t *n = last->next;
      if (n->end == lo) lo = n->base;
      else hi = n->end;
      last = n;
    }
    int rc = none ? _cgc_os_protect_none((void *)lo, hi - lo) : _cgc_os_protect_rw((void *)lo, hi - lo);
    for (chunk_t *c = run;; c = c->next) {
      if (none) {
        c->faulting = rc == 0;
        /* Still drop the contents (they go back as zero pages); locked
           pages the kernel will not release are cleared by hand. */
        if (rc != 0 && _cgc_os_release((void *)c->base, c->end - c->base) != 0)
          memset((void *)c->base, 0, c->end - c->base);
      } else if (rc == 0) {
        c->faulting = 0;
      }
      if (c == last) break;
    }
    if (rc != 0) warn_protect(none ? "cgc_arena_free" : "arena quarantine");
    run = last->next;
  }
}

void cgc_arena_free(cgc_arena_t *a) {
  if (!a) return;
  _cgc_ensure_init();
  pthread_mutex_lock(&arena_lock);
  check_handle_locked(a, "cgc_arena_free");
  a->state = ARENA_FREED;
  if (a->prev) a->prev->next = a->next;
  else live_head = a->next;
  if (a->next) a->next->prev = a->prev;
  chunk_t *chunks = a->chunks;
  size_t bytes = a->bytes;
  a->chunks = NULL;
  a->cur_chunk[0] = a->cur_chunk[1] = NULL;
  a->bytes = 0;
  /* Any later allocation takes the slow path, which reports the misuse. */
  a->cur = a->end = a->ncur = a->nend = a->tag = 0;
  a->next = NULL;
  a->prev = fq_tail;
  if (fq_tail) fq_tail->next = a;
  else fq_head = a;
  fq_tail = a;
  pthread_mutex_unlock(&arena_lock);
  if (!chunks) return;
  atomic_fetch_sub_explicit(&live_bytes, bytes, memory_order_relaxed);

  /* A range registered with cgc_add_roots over the chunks (memory that was
     the program's before the page heap gave it to this arena) would be
     scanned, faulting, by the next collection. */
  for (chunk_t *c = chunks; c; c = c->next) {
    uintptr_t rs;
    size_t rn;
    if (_cgc_roots_cover(c->base, c->end, &rs, &rn))
      _cgc_fatal("cgc_arena_free: arena %p's memory [%p, %p) lies in the range %p + %zu registered with "
                 "cgc_add_roots; remove the range (cgc_remove_roots) before its memory is reused",
                 (void *)a, (void *)c->base, (void *)c->end, (void *)rs, rn);
  }
  /* From here no root covers the chunks; make them fault. */
  protect_runs(chunks, true);
  chunk_t *tail = chunks;
  while (tail->next) tail = tail->next;
  pthread_mutex_lock(&arena_lock);
  tail->next = quarantine;
  quarantine = chunks;
  pthread_mutex_unlock(&arena_lock);
  atomic_fetch_add(&quarantined_bytes, bytes);
  atomic_fetch_sub(&_cgc_g.mapped_bytes, bytes);
  /* Freed arena memory is garbage only a collection can recycle. */
  atomic_fetch_add_explicit(&_cgc_g.heap_live, (int64_t)bytes, memory_order_relaxed);
}

/* ---- collector hooks -------------------------------------------------------------- */

/* World stopped, arena_lock held by the collector. */
void _cgc_arenas_enumerate_roots(void (*fn)(void *ctx, uintptr_t lo, uintptr_t hi), void *ctx) {
  for (struct cgc_arena *a = live_head; a; a = a->next) {
    for (chunk_t *c = a->chunks; c; c = c->next) {
      if (c->noscan) continue;
      uintptr_t hi = c == a->cur_chunk[0] ? __atomic_load_n(&a->cur, __ATOMIC_RELAXED) : c->used;
      if (hi > c->base) fn(ctx, c->base, hi);
    }
  }
}

/* Marking, possibly from several workers at once. */
void _cgc_arena_note_hit(cgc_span_t *s) {
  uint32_t e = atomic_load_explicit(&_cgc_g.mark_epoch, memory_order_relaxed);
  if (atomic_load_explicit(&s->mark_epoch, memory_order_relaxed) != e)
    atomic_store_explicit(&s->mark_epoch, e, memory_order_relaxed);
}

/* World stopped after marking: quarantined chunks no word pointed into are
   proven unreferenced. */
void _cgc_arenas_after_mark_stw(void) {
  uint32_t e = atomic_load(&_cgc_g.mark_epoch);
  chunk_t **pp = &quarantine;
  while (*pp) {
    chunk_t *c = *pp;
    if (atomic_load_explicit(&c->span->mark_epoch, memory_order_relaxed) == e) {
      pp = &c->next;
      continue;
    }
    *pp = c->next;
    c->next = pending;
    pending = c;
  }
}

/* After the world restarts (no lock held): give the proven ranges back. */
void _cgc_arenas_after_gc(void) {
  pthread_mutex_lock(&arena_lock);
  chunk_t *l = pending;
  pending = NULL;
  pthread_mutex_unlock(&arena_lock);
  if (!l) return;
  protect_runs(l, false);
  chunk_t *keep = NULL, *done = NULL, *next;
  size_t bytes = 0;
  _cgc_heap_lock(); /* no marking runs while this is held */
  for (chunk_t *c = l; c; c = next) {
    next = c->next;
    if (c->faulting) { /* could not be made accessible: try again later */
      c->next = keep;
      keep = c;
      continue;
    }
    cgc_span_t *s = c->span;
    atomic_store_explicit(&s->mark_epoch, 0, memory_order_relaxed);
    bytes += c->end - c->base;
    _cgc_page_free_released_locked(s); /* fresh pages: nothing resident until reused */
    c->next = done;
    done = c;
  }
  _cgc_heap_unlock();
  atomic_fetch_sub(&quarantined_bytes, bytes);
  pthread_mutex_lock(&arena_lock);
  for (chunk_t *c = done; c; c = next) {
    next = c->next;
    chunk_rec_free_locked(c);
  }
  if (keep) {
    chunk_t *t = keep;
    while (t->next) t = t->next;
    t->next = quarantine;
    quarantine = keep;
  }
  pthread_mutex_unlock(&arena_lock);
}
