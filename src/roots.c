/* roots.c — where the collector looks for pointers (see docs/roots.md).
 *
 * Roots are:
 *   - the writable segments (data, bss) of the executable and every loaded
 *     shared object, found with the loader's list before the world stops;
 *     cgc's own state (_cgc_g) is excluded;
 *   - each registered thread's stack from its stopped stack pointer to the
 *     top (the interrupted registers are saved in the signal frame, inside
 *     that range; the collecting thread saves its own with setjmp);
 *   - each registered thread's thread-local blocks, for every module with a
 *     TLS segment (static and dlopen'ed), found through the thread's dynamic
 *     thread vector;
 *   - ranges registered with cgc_add_roots, live arenas, and cleanup
 *     arguments (specials.c).
 * Memory from malloc or mmap is not scanned unless registered.
 *
 * Loads and unloads: a collection snapshots the segment list with a
 * signature of the loader's lists of objects, stops the world, and retries
 * if a load or unload completed since or is under way (the loader's debugger
 * interface says so, whoever called dlopen or dlclose), so a library's data
 * is never missed or read after unmapping.
 */
#include <dlfcn.h>

#include "internal.h"

#define MAX_SEGS 4096
#define MAX_TLS 1024

static CGC_STATE struct cgc_root segs[MAX_SEGS];
static CGC_STATE size_t nsegs;
static CGC_STATE cgc_tls_module_t tls_mods[MAX_TLS];
static CGC_STATE size_t ntls;
static CGC_STATE uint64_t prepared_signature;

/* The linker's bounds of the cgc_state section (util.h: CGC_STATE). */
extern char __start_cgc_state[] CGC_HIDDEN, __stop_cgc_state[] CGC_HIDDEN;

static void seg_cb(void *ctx, uintptr_t lo, uintptr_t hi) {
  (void)ctx;
  /* Leave out cgc's own state: it holds heap addresses (bounds, free lists)
     that must not keep anything alive (I6). */
  uintptr_t xlo = (uintptr_t)__start_cgc_state, xhi = (uintptr_t)__stop_cgc_state;
  if (xlo < hi && xhi > lo) {
    if (lo < xlo) seg_cb(ctx, lo, xlo);
    if (xhi < hi) seg_cb(ctx, xhi, hi);
    return;
  }
  if (nsegs < MAX_SEGS) segs[nsegs++] = (struct cgc_root){lo, hi};
  else _cgc_warn("more than %d writable segments: some are not scanned", MAX_SEGS);
}

void _cgc_roots_prepare(void) {
  nsegs = 0;
  prepared_signature = _cgc_os_for_each_data_segment(seg_cb, NULL);
  ntls = _cgc_g.tls_ok ? _cgc_os_tls_modules(tls_mods, MAX_TLS) : 0;
  if (ntls > MAX_TLS) ntls = MAX_TLS;
}

/* With the world stopped.  (A library whose constructor collects from
   inside its own dlopen is on the list already: the loader finishes the
   list, and says so, before it runs constructors.) */
bool _cgc_roots_stale(void) { return _cgc_os_loader_changed(prepared_signature); }

struct enum_ctx {
  void (*fn)(void *, uintptr_t, uintptr_t);
  void *ctx;
};

/* The end of the other stack t stopped on: an alternate signal stack's
   own; for a stack in the collected heap (a coroutine stack from cgc_alloc)
   or in an arena, the end of its object or of its arena chunk (the rest of
   the heap mapping holds other objects, which must not all become roots);
   or else the end of the mapping holding t->stop_sp. */
uintptr_t _cgc_roots_other_stack_end(const cgc_thread_t *t) {
  uintptr_t lo, hi, sp = t->stop_sp;
  if (t->stop_alt_end > sp) return t->stop_alt_end;
  cgc_span_t *s = _cgc_span_of_any(sp);
  if (s && sp >= s->base && sp < s->limit) {
    uint8_t st = atomic_load_explicit(&s->state, memory_order_acquire);
    if (st == CGC_SPAN_SMALL) return _cgc_slot_base(s, _cgc_slot_index(s, sp)) + s->elemsize;
    if (st == CGC_SPAN_LARGE || st == CGC_SPAN_ARENA) return s->limit;
  }
  return _cgc_os_mapping_bounds(sp, &lo, &hi) == 0 ? hi : 0;
}

bool _cgc_roots_in_tls(const cgc_thread_t *t, uintptr_t where) {
  for (size_t i = 0; i < ntls; i++) {
    size_t avail;
    uintptr_t b = _cgc_os_tls_block_sized(t->tp, tls_mods[i].modid, &avail);
    if (b && where >= b && where - b < CGC_MIN(tls_mods[i].size, avail)) return true;
  }
  return false;
}

static void thread_roots(cgc_thread_t *t, void *arg) {
  struct enum_ctx *e = arg;
  uintptr_t sp = t->stop_sp, covered_lo = sp, covered_hi = t->stack_hi;
  if (!sp) return; /* the thread is gone */
  if (!_cgc_thread_on_other_stack(t)) {
    e->fn(e->ctx, sp, t->stack_hi);
  } else {
    /* Running on another stack (a signal stack or a coroutine's): scan it from
       sp to its end, and all of the mapped primary stack.  A signal stack may
       lie inside the primary stack (a local array): the frames it interrupted
       are below it, so that case scans the whole primary stack too. */
    uintptr_t end = _cgc_roots_other_stack_end(t), mlo, mhi;
    if (end > sp) e->fn(e->ctx, sp, end);
    if (_cgc_os_mapping_bounds(t->stack_hi - 1, &mlo, &mhi) == 0) {
      covered_lo = CGC_MAX(mlo, t->stack_lo);
      e->fn(e->ctx, covered_lo, t->stack_hi);
    } else {
      covered_lo = covered_hi = 0;
    }
  }
  for (size_t i = 0; i < ntls; i++) {
    size_t avail;
    uintptr_t b = _cgc_os_tls_block_sized(t->tp, tls_mods[i].modid, &avail);
    if (!b) continue;
    size_t size = CGC_MIN(tls_mods[i].size, avail);
    if (b >= covered_lo && b + size <= covered_hi) continue; /* scanned with the stack */
    e->fn(e->ctx, b, b + size);
  }
}

void _cgc_specials_enumerate_roots(void (*fn)(void *, uintptr_t, uintptr_t), void *ctx) CGC_HIDDEN;

void _cgc_roots_enumerate(void (*fn)(void *, uintptr_t, uintptr_t), void *ctx) {
  for (size_t i = 0; i < nsegs; i++) fn(ctx, segs[i].lo, segs[i].hi);
  struct enum_ctx e = {fn, ctx};
  _cgc_threads_for_each(thread_roots, &e);
  for (size_t i = 0; i < _cgc_g.nroots; i++) fn(ctx, _cgc_g.roots[i].lo, _cgc_g.roots[i].hi);
  _cgc_arenas_enumerate_roots(fn, ctx);
  _cgc_specials_enumerate_roots(fn, ctx);
}

/* ---- cgc_add_roots / cgc_remove_roots ----------------------------------------------- */

/* The first address of [lo, hi) in an arena chunk (live or freed), else 0. */
static uintptr_t arena_memory_in(uintptr_t lo, uintptr_t hi) {
  uintptr_t hl = atomic_load(&_cgc_g.heap_lo), hh = atomic_load(&_cgc_g.heap_hi);
  lo = CGC_MAX(lo, hl);
  hi = CGC_MIN(hi, hh);
  for (uintptr_t p = lo & ~(uintptr_t)(CGC_PAGE_SIZE - 1); p < hi;) {
    cgc_span_t *s = _cgc_span_of_any(p); /* a stale entry fails the bounds */
    uintptr_t b = s ? s->base : 0, e = s ? b + s->npages * CGC_PAGE_SIZE : 0;
    if (!s || p < b || p >= e) {
      p += CGC_PAGE_SIZE;
      continue;
    }
    if (atomic_load(&s->state) == CGC_SPAN_ARENA) return CGC_MAX(p, lo);
    p = e;
  }
  return 0;
}

/* Does [lo, hi) overlap a range registered with cgc_add_roots?  That
   range's start and size then go to *start, *size. */
bool _cgc_roots_cover(uintptr_t lo, uintptr_t hi, uintptr_t *start, size_t *size) {
  bool found = false;
  pthread_mutex_lock(&_cgc_g.roots_lock);
  for (size_t i = 0; i < _cgc_g.nroots && !found; i++)
    if (lo < _cgc_g.roots[i].hi && _cgc_g.roots[i].lo < hi) {
      *start = _cgc_g.roots[i].lo;
      *size = _cgc_g.roots[i].hi - _cgc_g.roots[i].lo;
      found = true;
    }
  pthread_mutex_unlock(&_cgc_g.roots_lock);
  return found;
}

void cgc_add_roots(const void *start, size_t size) {
  _cgc_ensure_init();
  if (!start) return;
  /* An empty range is registered too (scanning it is free), so that its
     cgc_remove_roots finds it, as for a buffer that may be empty. */
  uintptr_t lo = (uintptr_t)start;
  if (lo + size < lo) _cgc_fatal("cgc_add_roots: range %p + %zu wraps around", start, size);
  /* Scanned at every collection with the world stopped: a range that is not
     memory would fault there, far from the mistake. */
  if (size && _cgc_os_range_readable(lo, lo + size) == 0)
    _cgc_fatal("cgc_add_roots: range %p + %zu is not all readable memory (unmapped, not readable, or past the end of a mapped file)", start,
               size);
  /* Arena memory is scanned while its arena lives, and faults once it is
     freed: a registration of it could only crash a later collection. */
  uintptr_t a = size ? arena_memory_in(lo, lo + size) : 0; /* an empty range holds nothing */
  if (a)
    _cgc_fatal("cgc_add_roots: range %p + %zu holds arena memory (%p): a live arena's memory is scanned "
               "already, and a freed arena's faults", start, size, (void *)a);
  pthread_mutex_lock(&_cgc_g.roots_lock);
  for (size_t i = 0; i < _cgc_g.nroots; i++)
    if (_cgc_g.roots[i].lo == lo) { /* re-registering a start replaces its size */
      _cgc_g.roots[i].hi = lo + size;
      pthread_mutex_unlock(&_cgc_g.roots_lock);
      return;
    }
  if (_cgc_g.nroots == _cgc_g.roots_cap) {
    size_t ncap = _cgc_g.roots_cap ? _cgc_g.roots_cap * 2 : 64;
    struct cgc_root *n = _cgc_meta_alloc(ncap * sizeof *n);
    if (!n) _cgc_fatal("cgc_add_roots: out of memory");
    if (_cgc_g.roots) memcpy(n, _cgc_g.roots, _cgc_g.nroots * sizeof *n);
    _cgc_g.roots = n; /* the old array is metadata: not reused, harmless */
    _cgc_g.roots_cap = ncap;
  }
  _cgc_g.roots[_cgc_g.nroots++] = (struct cgc_root){lo, lo + size};
  pthread_mutex_unlock(&_cgc_g.roots_lock);
}

void cgc_remove_roots(const void *start) {
  if (!start) return; /* as cgc_add_roots(NULL, n) */
  _cgc_ensure_init();
  uintptr_t lo = (uintptr_t)start;
  pthread_mutex_lock(&_cgc_g.roots_lock);
  for (size_t i = 0; i < _cgc_g.nroots; i++)
    if (_cgc_g.roots[i].lo == lo) {
      _cgc_g.roots[i] = _cgc_g.roots[--_cgc_g.nroots];
      pthread_mutex_unlock(&_cgc_g.roots_lock);
      return;
    }
  pthread_mutex_unlock(&_cgc_g.roots_lock);
  _cgc_fatal("cgc_remove_roots: %p is not the start of a range registered with cgc_add_roots", start);
}

