/* checkfree.c — CGC_DEBUG=checkfree=1: catch references to freed objects
 * (see docs/free.md).
 *
 * cgc_free hands each object to _cgc_checkfree_take instead of a free list.
 * The object is filled with 0xA5 bytes (a word of them is no heap address and
 * does not decode as a free-list link: its top bits are set) and recorded in
 * a quarantine table.  It stays allocated as far as the heap is concerned:
 * not on any free list, so nothing reuses it.
 *
 * The next collection marks as usual; then (_cgc_checkfree_stw, world
 * stopped) every quarantined object that got marked is looked up: the
 * reachable words pointing into it are found by walking the roots and the
 * marked objects (_cgc_for_each_reference), and each reference found in a
 * heap object, an arena, a global or thread-local variable or a registered
 * root is reported as
 *   cgc: use after free: object 0x... (N bytes) freed with cgc_free is still
 *   referenced from 0x... (in ...)
 * and the program aborts.  References found only on thread stacks are not
 * reported: a conservative scan finds stale copies of pointers in dead stack
 * slots and saved registers all the time.  Such an object stays quarantined
 * (marked, so the sweep keeps it) and is examined again by the next
 * collection; gctrace=1 mentions it.  Unmarked quarantined objects leave the
 * table: the sweep reclaims them like any garbage.
 *
 * A second cgc_free of a quarantined object aborts (found in the table), and
 * so does one of an object that left the quarantine at a collection but whose
 * span has not been swept yet (it is unmarked in an unswept span, which a live
 * object never is: objects allocated since the collection come from swept
 * spans or from thread lists, whose slots the collection marked).
 *
 * The table is metadata (mmap), so it keeps nothing alive.  cf_lock protects
 * it; the collector holds cf_lock through the stop-the-world phase.
 */
#include "internal.h"

#define POISON 0xA5
#define TAB_MIN 1024
#define MAX_REPORTS 16 /* lines; the total follows */

typedef struct {
  uintptr_t base; /* 0: empty */
  size_t size;
  uintptr_t ref;   /* reported reference (not on a stack), or 0 */
  uintptr_t sref;  /* a reference on a stack, or 0 */
  int ref_tid;     /* thread owning the stack of sref */
  uintptr_t uref;  /* a reference outside the stacks, not ripe() yet, or 0 */
  const cgc_tcache_t *freer; /* the freeing thread's cache (metadata, never unmapped) */
  uint64_t progress;         /* freer's progress() when a collection first saw a reference (seen) */
  bool seen;                 /* a collection found a reference outside the stacks, not ripe() */
} qent_t;

/* How far a thread has run, as it counts it itself: its allocations and
   frees, and the calls those counts miss (large objects, arena chunks).  A
   collection that finds it changed since an earlier collection saw a
   reference knows the thread has called in since then, after the
   instructions it was stopped before, in program order.  Exit zeroes them
   (_cgc_tcache_flush_counts), which counts as progress too (the free
   counted itself: the sum was not 0). */
static uint64_t progress(const cgc_tcache_t *tc) {
  return __atomic_load_n(&tc->alloc_objects, __ATOMIC_RELAXED) + __atomic_load_n(&tc->free_objects, __ATOMIC_RELAXED) +
         __atomic_load_n(&tc->other_calls, __ATOMIC_RELAXED);
}

static CGC_STATE pthread_mutex_t cf_lock = PTHREAD_MUTEX_INITIALIZER;
static CGC_STATE qent_t *tab;
static CGC_STATE size_t tab_cap, tab_n;
static CGC_STATE _Atomic int warned_full;

void _cgc_checkfree_lock(void) CGC_HIDDEN;
void _cgc_checkfree_unlock(void) CGC_HIDDEN;
void _cgc_checkfree_lock(void) { pthread_mutex_lock(&cf_lock); }
void _cgc_checkfree_unlock(void) { pthread_mutex_unlock(&cf_lock); }

/* mark.c: every word of the roots and of the marked objects that lies in the heap bounds. */
void _cgc_for_each_reference(void (*fn)(void *ctx, uintptr_t where, uintptr_t value), void *ctx) CGC_HIDDEN;

/* ---- the table ---------------------------------------------------------------------- */

static size_t hash(uintptr_t base, size_t cap) { return (size_t)((base >> 3) * 0x9E3779B97F4A7C15ull) & (cap - 1); }

static qent_t *find(uintptr_t base) {
  if (!tab_n) return NULL;
  for (size_t h = hash(base, tab_cap);; h = (h + 1) & (tab_cap - 1)) {
    if (tab[h].base == base) return &tab[h];
    if (tab[h].base == 0) return NULL;
  }
}

static void put(qent_t *t, size_t cap, const qent_t *e) {
  size_t h = hash(e->base, cap);
  while (t[h].base) h = (h + 1) & (cap - 1);
  t[h] = *e;
}

/* Make room for one more entry (load at most 1/2).  False when out of memory. */
static bool reserve(void) {
  if (tab && (tab_n + 1) * 2 <= tab_cap) return true;
  size_t cap = tab_cap ? tab_cap * 2 : TAB_MIN;
  qent_t *n = _cgc_os_map(cap * sizeof *n);
  if (!n) return false;
  for (size_t i = 0; i < tab_cap; i++)
    if (tab[i].base) put(n, cap, &tab[i]);
  if (tab) _cgc_os_unmap(tab, tab_cap * sizeof *tab);
  atomic_fetch_add(&_cgc_g.metadata_bytes, (cap - tab_cap) * sizeof *n);
  tab = n;
  tab_cap = cap;
  return true;
}

/* ---- cgc_free in checkfree mode ------------------------------------------------------- */

bool _cgc_checkfree_take(cgc_span_t *s, uintptr_t base) CGC_HIDDEN;
bool _cgc_checkfree_take(cgc_span_t *s, uintptr_t base) {
  size_t size = s->elemsize;
  uint32_t idx = s->nelems > 1 ? _cgc_slot_index(s, base) : 0;
  pthread_mutex_lock(&cf_lock);
  if (find(base)) {
    pthread_mutex_unlock(&cf_lock);
    _cgc_fatal("cgc_free: %p is not an allocated object (double free: it was freed already and is in "
               "the checkfree quarantine)", (void *)base);
  }
  /* The collector holds cf_lock from before it stops the world until after
     gc_cycle moves, so here the cycle and the marks are the last
     collection's: the test is exact, with nothing to confirm. */
  if (_cgc_unmarked_unswept(s, idx, atomic_load_explicit(&_cgc_g.gc_cycle, memory_order_relaxed))) {
    pthread_mutex_unlock(&cf_lock);
    _cgc_fatal("cgc_free: %p is not an allocated object (double free? it was unreachable at the last "
               "collection)", (void *)base);
  }
  if (!reserve()) {
    pthread_mutex_unlock(&cf_lock);
    int expected = 0;
    if (atomic_compare_exchange_strong(&warned_full, &expected, 1))
      _cgc_warn("checkfree: out of memory for the quarantine; freed objects are reused unchecked");
    return false;
  }
  /* Counted first, so that the progress recorded is the thread's own count
     from now until it calls in again. */
  _cgc_count_free(size);
  const cgc_tcache_t *tc = _cgc_tc == &_cgc_empty_tcache ? NULL : _cgc_tc;
  qent_t e = {base, size, 0, 0, 0, 0, tc, 0, false};
  put(tab, tab_cap, &e);
  tab_n++;
  pthread_mutex_unlock(&cf_lock);
  memset((void *)base, POISON, size);
  return true;
}

/* Is the object at base in the quarantine (freed)?  For the calls that must
   refuse freed objects: a quarantined object is poisoned, not on a free
   list, so the usual test (a free-list link in its first word) misses it. */
bool _cgc_checkfree_holds(uintptr_t base) {
  pthread_mutex_lock(&cf_lock);
  bool held = find(base) != NULL;
  pthread_mutex_unlock(&cf_lock);
  return held;
}

/* ---- the check (world stopped, after marking) ----------------------------------------- */

struct stack_find {
  uintptr_t where;
  int tid;
};

static void stack_of(cgc_thread_t *t, void *ctx) {
  struct stack_find *f = ctx;
  if (f->tid) return;
  uintptr_t sp = t->stop_sp, w = f->where;
  bool on = w >= t->stack_lo && w < t->stack_hi;
  /* Not frames: the thread's static TLS blocks (below the thread pointer)
     and its descriptor from the thread pointer up (glibc puts both at the
     top of the stack block; the descriptor holds pthread_setspecific's
     first values).  Thread-local variables, reported. */
  if (on && ((w >= t->tp && t->tp > t->stack_lo) || _cgc_roots_in_tls(t, w))) return;
  if (!on && sp && _cgc_thread_on_other_stack(t) && w >= sp)
    on = w < _cgc_roots_other_stack_end(t); /* scanned as roots.c does */
  if (on) f->tid = t->tid ? t->tid : -1;
}

/* The thread whose stack holds where, or 0. */
static int stack_thread(uintptr_t where) {
  struct stack_find f = {where, 0};
  _cgc_threads_for_each(stack_of, &f);
  return f.tid;
}

static bool quarantined_marked(const qent_t *e) {
  cgc_span_t *s = _cgc_span_of(e->base);
  if (!s) return false;
  return _cgc_slot_marked(s, s->nelems > 1 ? _cgc_slot_index(s, e->base) : 0);
}

/* May a reference to e found now be reported?  A correct program may still
   hold one for a while after the free: the collection can stop the freeing
   thread before the store that drops it (g = NULL after cgc_free(g); the
   store of cgc_realloc's result), or run inside the call that computes the
   value stored over it (cgc_free(g); g = cgc_alloc(n), whose allocation
   may collect, on that thread or, once it has counted, on any other).  So
   the first collection that finds a reference outside the stacks only notes
   it (seen) with the freeing thread's progress(); one that finds it again
   after the thread has made progress since reports it: the thread has
   called in again after whatever it was stopped in, so the store, if there
   was one, has happened.  No count of collections can stand in for
   progress: a thread stopped by back-to-back collections may not run a
   single instruction in between.  Reported at once: a reference when the
   freeing thread itself asked for the collection (cgc_collect: the free's
   statement is over), and any reference to an object freed by an
   unregistered thread (such threads are not stopped, so nothing can be
   said of where they are).  A thread that never allocates or frees again
   has its reference reported after it exits. */
static bool ripe(const qent_t *e, bool forced) {
  if (!e->freer || (forced && e->freer == _cgc_self->tc)) return true;
  return e->seen && progress(e->freer) != e->progress;
}

static void ref_cb(void *ctx, uintptr_t where, uintptr_t value) {
  bool forced = *(const bool *)ctx;
  cgc_span_t *s = _cgc_span_of(value);
  if (!s) return;
  uintptr_t base = s->nelems > 1 ? _cgc_slot_base(s, _cgc_slot_index(s, value)) : s->base;
  qent_t *e = find(base);
  if (!e || e->ref) return;
  int tid = stack_thread(where);
  if (tid) {
    if (!e->sref) {
      e->sref = where;
      e->ref_tid = tid;
    }
  } else if (ripe(e, forced)) {
    e->ref = where;
  } else if (!e->uref) {
    e->uref = where;
  }
}

static void describe(uintptr_t where, char *buf, size_t n) {
  cgc_span_t *s = _cgc_span_of(where);
  if (s) {
    uintptr_t b = s->nelems > 1 ? _cgc_slot_base(s, _cgc_slot_index(s, where)) : s->base;
    _cgc_format(buf, n, "heap object %p of %zu bytes, at offset %zu", (void *)b, s->elemsize, (size_t)(where - b));
    return;
  }
  cgc_span_t *a = _cgc_span_of_any(where);
  if (a && atomic_load(&a->state) == CGC_SPAN_ARENA) {
    _cgc_format(buf, n, "memory of a live arena");
    return;
  }
  for (size_t i = 0; i < _cgc_g.nroots; i++)
    if (where >= _cgc_g.roots[i].lo && where < _cgc_g.roots[i].hi) {
      _cgc_format(buf, n, "the range %p registered with cgc_add_roots", (void *)_cgc_g.roots[i].lo);
      return;
    }
  const char *special = _cgc_specials_root_name(where);
  _cgc_format(buf, n, "%s", special ? special : "a global or thread-local variable");
}

void _cgc_checkfree_stw(int reason) {
  bool forced = reason == CGC_GC_FORCED;
  if (!tab_n) return;
  size_t nmarked = 0;
  for (size_t i = 0; i < tab_cap; i++) {
    qent_t *e = &tab[i];
    if (!e->base) continue;
    e->ref = e->sref = e->uref = 0;
    e->ref_tid = 0;
    if (quarantined_marked(e)) nmarked++;
  }
  if (nmarked) {
    _cgc_for_each_reference(ref_cb, &forced);
    size_t reported = 0;
    for (size_t i = 0; i < tab_cap; i++) {
      qent_t *e = &tab[i];
      if (!e->base || !e->ref) continue;
      if (reported++ >= MAX_REPORTS) continue;
      char where[160];
      describe(e->ref, where, sizeof where);
      _cgc_warn("use after free: object %p (%zu bytes) freed with cgc_free is still referenced from %p (in %s)",
                (void *)e->base, e->size, (void *)e->ref, where);
    }
    if (reported)
      _cgc_fatal("use after free: %zu object%s freed with cgc_free %s still referenced (CGC_DEBUG=checkfree=1)",
                 reported, reported == 1 ? "" : "s", reported == 1 ? "is" : "are");
  }
  /* Keep the marked ones (referenced from a stack, or kept by a finalizer):
     the sweep leaves them alone; the next collection looks again. */
  size_t keep = 0;
  if (nmarked) {
    /* A slot empty before any release (the load is at most 1/2): no probe
       run crosses it, so the rehash below can start after it. */
    size_t z = 0;
    while (tab[z].base) z++;
    for (size_t i = 0; i < tab_cap; i++) {
      qent_t *e = &tab[i];
      if (!e->base) continue;
      if (!quarantined_marked(e)) {
        e->base = 0;
        continue;
      }
      keep++;
      if (e->uref && !e->seen) { /* the first sighting: note the freer's progress */
        e->seen = true;
        e->progress = progress(e->freer);
      }
      if (_cgc_g.opt.gctrace) {
        if (e->uref)
          _cgc_warn("checkfree: object %p (%zu bytes) freed with cgc_free is still referenced from %p, but its "
                    "freeing thread may be about to drop it; kept in quarantine",
                    (void *)e->base, e->size, (void *)e->uref);
        else if (e->sref)
          _cgc_warn("checkfree: object %p (%zu bytes) freed with cgc_free is still referenced from the stack of "
                    "thread %d (at %p); kept in quarantine", (void *)e->base, e->size, e->ref_tid, (void *)e->sref);
        else
          _cgc_warn("checkfree: object %p (%zu bytes) freed with cgc_free is still marked; kept in quarantine",
                    (void *)e->base, e->size);
      }
    }
    /* Close the holes the released entries left in the probe runs, in
       place (no memory needed in the pause): take each survivor out and put
       it back, in slot order from z on.  Each lands at or before its old
       slot, and every slot of its run before it is settled by then.  (z must
       be empty from before the releases: a hole they made can lie inside a
       run, and starting there would move an entry out of a slot a run
       processed earlier depends on.) */
    for (size_t k = 1; k <= tab_cap; k++) {
      qent_t *e = &tab[(z + k) & (tab_cap - 1)];
      if (!e->base) continue;
      qent_t moved = *e;
      e->base = 0;
      put(tab, tab_cap, &moved);
    }
  } else {
    memset(tab, 0, tab_cap * sizeof *tab);
  }
  tab_n = keep;
}

/* After the world restarts: give a large, empty table back. */
void _cgc_checkfree_after_gc(void) {
  pthread_mutex_lock(&cf_lock);
  if (tab && tab_n == 0 && tab_cap > TAB_MIN * 16) {
    _cgc_os_unmap(tab, tab_cap * sizeof *tab);
    atomic_fetch_sub(&_cgc_g.metadata_bytes, tab_cap * sizeof *tab);
    tab = NULL;
    tab_cap = 0;
  }
  pthread_mutex_unlock(&cf_lock);
}
