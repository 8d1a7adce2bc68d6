/* internal.h — the collector's shared data structures (see docs/heap.md).
 *
 * Names: public cgc_* in include/, cross-file _cgc_*, everything else static.
 *
 * Layout of the heap
 *   The heap is made of 8 KiB pages.  A span is a run of pages that is either
 *   free (owned by the page heap), a small-object span (one size class, at most
 *   CGC_MAX_SPAN_OBJS equal slots), or a large-object span (one object).  Every
 *   page of an in-use span maps to its span through the page map
 *   (_cgc_g.arena_l1 -> cgc_arena_meta_t.spans), so any word can be resolved to
 *   a span in four dependent loads with no lock.
 *
 * Free slots
 *   A free slot is all zero except its first word, which holds the next free
 *   slot's address XOR _cgc_g.key (the key's top byte is a tag, 0xF5..0xFE,
 *   so a link never looks like a heap pointer to the scanner, and every
 *   link's top byte is that tag).  Free slots live on
 *     - a thread's list tc->free[sc] (any span of that span class), or
 *     - an unowned span's own list span->freelist, or
 *     - a thread's list tc->dirty[sc] (noscan classes only): slots that
 *       cgc_realloc moved away from, kept for the next cgc_realloc into that
 *       class, which overwrites them; only words 0 (the link) and 1 (zero)
 *       are defined.  Any other allocation zeroes such a slot first.
 *
 * Invariants
 *   I1  state is published last (release) when a span is created and cleared
 *       first when it is freed; readers check state before other fields.
 *   I2  span->owner != NULL  =>  span->freelist == NULL.
 *   I3  every slot on any list is zero except word 0 (on a dirty list: word 1
 *       is zero, the rest is unspecified).
 *   I4  a collection marks every reachable object and every slot on every
 *       thread list (free and dirty) as it leaves them (it may cut a long
 *       list: the slots cut off are on no list and unmarked); a sweep frees
 *       exactly the unmarked slots that are not already on span->freelist.
 *   I5  sweeps never run while the world is stopped or a collection is pending
 *       (_cgc_sweep_begin/_cgc_sweep_end fence them).
 *   I6  no scanned memory of cgc's own holds a heap address: such state lives
 *       in the cgc_state section (CGC_STATE; excluded from the roots) or in
 *       mapped metadata.
 *   I7  under central[sc].lock: central[sc].unswept non-empty  =>  bit sc of
 *       _cgc_g.unswept_classes set.
 */
#ifndef CGC_INTERNAL_H
#define CGC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cgc.h"
#include "platform.h"
#include "util.h"

/* ---- geometry ------------------------------------------------------------- */

#define CGC_PAGE_SHIFT 13
#define CGC_PAGE_SIZE ((size_t)1 << CGC_PAGE_SHIFT)
#define CGC_ARENA_SHIFT 26 /* page-map granule: 64 MiB */
#define CGC_ARENA_SIZE ((size_t)1 << CGC_ARENA_SHIFT)
#define CGC_PAGES_PER_ARENA (CGC_ARENA_SIZE / CGC_PAGE_SIZE)
#define CGC_ADDR_BITS 48
#define CGC_L2_BITS 12
#define CGC_L1_BITS (CGC_ADDR_BITS - CGC_ARENA_SHIFT - CGC_L2_BITS)
#define CGC_MAX_SMALL 32768
#define CGC_NUM_CLASSES 81 /* class 0 is unused: 1..80 */
#define CGC_NUM_SPAN_CLASSES (CGC_NUM_CLASSES * 2)
/* Entries of a thread cache's span hints for cgc_free and cgc_realloc, by
   page (a power of two). */
#define CGC_FREE_HINTS 64
#define CGC_MAX_SPAN_OBJS 1024
#define CGC_MARK_WORDS (CGC_MAX_SPAN_OBJS / 64)
#define CGC_HEAP_MIN ((size_t)4 << 20)
/* Offset of a word's most significant byte in memory. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define CGC_WORD_TOP_BYTE 0
#else
#define CGC_WORD_TOP_BYTE (sizeof(uintptr_t) - 1)
#endif

_Static_assert(CGC_L1_BITS == 10, "address split");
_Static_assert(CGC_PAGES_PER_ARENA == 8192, "pages per arena");
_Static_assert((CGC_MAX_SPAN_OBJS % 64) == 0, "mark words");

/* ---- spans ---------------------------------------------------------------- */

enum {
  CGC_SPAN_DEAD = 0,  /* span struct not in use */
  CGC_SPAN_FREE,      /* free pages owned by the page heap */
  CGC_SPAN_BUSY,      /* allocated pages being set up or torn down */
  CGC_SPAN_SMALL,     /* small-object span */
  CGC_SPAN_LARGE,     /* one large object */
  CGC_SPAN_ARENA,     /* a chunk of a cgc_arena_t */
};

struct cgc_tcache;
struct cgc_specials;

typedef struct cgc_span {
  /* Set before the span is published; immutable while state is SMALL/LARGE. */
  uintptr_t base;
  uintptr_t limit;        /* end of the last slot (small) or of the pages (large) */
  size_t npages;
  size_t elemsize;        /* slot size; for large spans npages * CGC_PAGE_SIZE */
  uint32_t nelems;
  uint32_t divmul;        /* slot index = (offset * divmul) >> 32 */
  uint16_t spanclass;     /* (class << 1) | noscan; 0 or 1 for large */
  uint8_t noscan;
  _Atomic uint8_t state;  /* I1 */

  /* Allocation state: protected by _cgc_g.central[spanclass].lock while the
     span is unowned; by the owner thread while owned (owner itself changes only
     under the central lock). */
  struct cgc_tcache *owner;
  void *freelist;         /* decoded head; links inside are encoded */
  uint32_t nfree;
  uint32_t sweepgen;      /* collection cycle this span was last swept in */
  uint32_t arena_id;      /* CGC_SPAN_ARENA: owning arena's serial */
  _Atomic uint32_t mark_epoch; /* marks are valid iff == _cgc_g.mark_epoch (see mark.c) */

  /* List links: page-heap free lists (heap lock), central lists (central
     lock), the large list (heap lock). */
  struct cgc_span *next, *prev;
  uint8_t on_list;

  /* Cleanups, finalizers, weak handles: see specials.c.  Protected by
     _cgc_g.specials_lock; read during the stop-the-world phase. */
  struct cgc_specials *specials;

  /* Slots the last sweep (or the creation) of a small span put on its list:
     written with freelist, read by premarking with the world stopped, which
     uses the owned span's bits for the part of a thread list that is still
     the span's list as the thread took it (see mark.c). */
  uint64_t listed[CGC_MARK_WORDS];
  _Atomic uint64_t mark[CGC_MARK_WORDS];
} cgc_span_t;

/* A 64 MiB granule of address space that holds heap pages. */
typedef struct cgc_arena_meta {
  cgc_span_t *spans[CGC_PAGES_PER_ARENA];         /* page -> span (in-use: every page; free: first and last) */
  uint64_t zeroed[CGC_PAGES_PER_ARENA / 64];       /* free page known to be zero; heap lock */
  uint64_t released[CGC_PAGES_PER_ARENA / 64];     /* free page given back to the OS; heap lock */
} cgc_arena_meta_t;

/* ---- thread caches -------------------------------------------------------- */

typedef struct cgc_tcache {
  void *free[CGC_NUM_SPAN_CLASSES];           /* owner only; walked while the world is stopped */
  void *dirty[CGC_NUM_SPAN_CLASSES];          /* noscan slots left by cgc_realloc or freed above 1 KiB (I3); as free */
  cgc_span_t *span[CGC_NUM_SPAN_CLASSES];     /* owned span per class; owner only */
  /* Slots ever pushed on free[sc] / dirty[sc] by cgc_free or cgc_realloc,
     and that count when the class last took a span's list (take_locked):
     the difference bounds the slots of those lists that are not part of
     that span's list (premarking reads it with the world stopped), and the
     counts are the thread's small frees for the statistics (read racily:
     _cgc_tcache_free_totals).  Owner writes. */
  uint64_t pushed[2][CGC_NUM_SPAN_CLASSES];
  uint64_t pushed_at_take[2][CGC_NUM_SPAN_CLASSES];
  cgc_span_t *free_span[CGC_FREE_HINTS];       /* spans of recent frees by page: hints, checked (I1) */
  uint64_t alloc_bytes, alloc_objects;        /* owner writes; others read racily (stats) */
  uint64_t free_bytes, free_objects;          /* as alloc_*: frees other than pushed slots (large, shrinking) */
  uint64_t other_calls;                       /* calls the counts above miss (large objects, arena chunks,
                                                 in-place resizes): progress for checkfree; as alloc_* */
  struct cgc_thread *thread;
} cgc_tcache_t;

/* The calling thread's cache; the static empty cache (all lists NULL) sends an
   unregistered thread into the slow path. */
extern __thread cgc_tcache_t *_cgc_tc CGC_HIDDEN;
extern cgc_tcache_t _cgc_empty_tcache CGC_HIDDEN;

/* A call the thread's allocation and free counts do not see (a large
   object, an arena chunk, an in-place resize): checkfree's progress(). */
static inline void _cgc_count_other_call(void) {
  cgc_tcache_t *tc = _cgc_tc;
  if (tc != &_cgc_empty_tcache) tc->other_calls++;
}

/* ---- threads -------------------------------------------------------------- */

typedef struct cgc_thread {
  pid_t tid;
  uint32_t serial;            /* this registration's number (never 0): stop signals name it */
  uint64_t reg_ticks;         /* _cgc_os_boot_ticks() at registration: a thread of this tid that
                                 started later is another one */
  uintptr_t stack_lo, stack_hi;
  uintptr_t tp;               /* thread pointer, for TLS blocks */
  uintptr_t stop_sp;          /* written by the thread in the stop handler */
  uintptr_t stop_alt_end;     /* likewise: the end of the alternate signal stack it was
                                 stopped on (sigaltstack), or 0 */
  _Atomic uint32_t stopped;   /* stop epoch acknowledged */
  bool stop_unsent;           /* the collector's: the stop signal could not be queued yet (EAGAIN) */
  bool gone;                  /* the collector's: the thread ended while registered; dropped at
                                 the end of the stop (its tid may be reused by another thread) */
  cgc_tcache_t *tc;
  struct cgc_thread *next, *prev; /* registry list: _cgc_g.threads_lock */
  bool explicit_reg;          /* cgc_register_thread */
  bool is_main;
  void *defer_chain;          /* defer/panic subsystem (owner only) */
} cgc_thread_t;

extern __thread cgc_thread_t *_cgc_self CGC_HIDDEN;

/* ---- central lists -------------------------------------------------------- */

typedef struct {
  cgc_span_t *head, *tail;
  size_t count;
} cgc_span_list_t;

enum { CGC_LIST_NONE = 0, CGC_LIST_PARTIAL, CGC_LIST_FULL, CGC_LIST_UNSWEPT, CGC_LIST_FREE, CGC_LIST_LARGE };

typedef struct {
  pthread_mutex_t lock;
  cgc_span_list_t partial;  /* swept this cycle, unowned, nfree > 0 */
  cgc_span_list_t full;     /* swept this cycle, unowned, nfree == 0 */
  cgc_span_list_t unswept;  /* unowned, not swept this cycle */
  char pad[64];
} cgc_central_t;

/* ---- options (CGC_DEBUG) -------------------------------------------------- */

typedef struct {
  int gctrace;
  int checkmark;
  int checkfree;
  int checkfinalizers;
  int cleanups_manual;
  int markworkers;       /* 0: one per CPU */
  int bgsweep;
  int scavenge;
} cgc_options_t;

/* ---- the global state ----------------------------------------------------- */

/* Fields that the allocation and free paths read are grouped at the start
   and written rarely; fields written often (locks, the sweep fence, shared
   counters) start cache lines of their own, so that a sweeper or another
   thread writing them does not evict what every cgc_free reads. */
typedef struct {
  /* Set once at init. */
  _Atomic int initialized;
  uint64_t key;                 /* free-list link key (top byte: a tag, 0xF5..0xFE; _cgc_init_slow) */
  uint64_t weak_key;            /* a weak handle's second word is its address ^ weak_key (specials.c) */
  uint64_t start_ns;
  int ncpus;
  int suspend_signal;
  cgc_options_t opt;
  int tls_ok;
  int on_valgrind;
  /* Written rarely: at heap growth (bounds) and once per collection. */
  _Atomic uintptr_t heap_lo, heap_hi;  /* bounds of all heap mappings */
  _Atomic uint32_t gc_cycle;           /* completed collections; spans with sweepgen != this need sweeping */
  _Atomic uint32_t mark_epoch;         /* changes every marking */
  uintptr_t mark_lo, mark_range;       /* the bounds used by the current marking */

  /* Page map: written under heap_lock, read lock-free. */
  _Atomic(cgc_arena_meta_t **) arena_l1[1 << CGC_L1_BITS];

  /* Page heap: heap_lock. */
  _Alignas(64) pthread_mutex_t heap_lock;
  cgc_span_list_t free_small[129];     /* free spans by npages (1..128) */
  uint64_t free_small_set[3];          /* bit n: free_small[n] is not empty */
  cgc_span_list_t free_large;          /* free spans of more than 128 pages */
  size_t free_pages;                   /* pages in free spans */
  size_t used_pages;                   /* pages in spans handed out (any state but FREE) */
  size_t used_pages_peak;              /* the most used_pages since the last scavenge */
  size_t used_peaks[8];                /* used_pages_peak of the last eight periods (collections) */
  uint32_t used_peaks_cycle;           /* gc_cycle at the last shift of used_peaks */
  uintptr_t grow_hint;                 /* where the heap grows next */
  cgc_span_list_t large;               /* in-use large spans */
  bool large_unswept;                  /* large spans need a sweep pass */
  cgc_span_t *span_pool;               /* recycled span structs */

  cgc_central_t central[CGC_NUM_SPAN_CLASSES];
  /* Bit sc set: central[sc].unswept may hold spans.  Set under that class's
     lock with every push (_cgc_unswept_push_locked) and in the pause's
     splice; cleared under it only when the list is found empty.  So under
     the lock a non-empty list has its bit set (I7), and a full sweep skips
     the classes whose bit is clear without taking their locks. */
  _Alignas(64) _Atomic uint64_t unswept_classes[(CGC_NUM_SPAN_CLASSES + 63) / 64];

  /* Accounting (atomics unless noted). */
  _Alignas(64) _Atomic uint64_t heap_goal;
  _Atomic uint64_t mapped_bytes;       /* heap pages mapped and not released */
  _Atomic uint64_t released_total;
  _Alignas(64) _Atomic int64_t heap_live; /* pacing: marked + spans handed out + large - frees */
  _Atomic int64_t heap_live_at_gc;     /* heap_live as the last collection set it */
  uint64_t marked_bytes;               /* last cycle: reachable bytes (gc_lock) */
  uint64_t premarked_bytes;            /* last cycle: slots on thread lists */
  uint64_t record_bytes;               /* last cycle: cleanup records in use (paced like heap objects) */
  _Atomic uint64_t large_alloc_bytes, large_alloc_objects; /* cumulative */
  _Atomic uint64_t exited_alloc_bytes, exited_alloc_objects; /* from exited threads */
  _Atomic uint64_t exited_free_bytes, exited_free_objects;
  uint64_t alloc_bytes_at_gc;          /* total allocated at the end of the last cycle */
  uint64_t free_bytes_at_gc;
  _Atomic uint64_t metadata_bytes;

  /* Pacing parameters. */
  _Atomic int gc_percent;
  _Atomic int64_t memory_limit;

  /* Collection state. */
  _Alignas(64) pthread_mutex_t gc_lock; /* one collection at a time: _cgc_gc_lock/_cgc_gc_unlock */
  _Atomic uintptr_t gc_owner;          /* thread pointer of gc_lock's holder, else 0 */
  pthread_mutex_t trace_lock;          /* a gctrace line being written: taken under gc_lock */
  _Atomic uint32_t world_epoch;        /* odd while the world is stopped */
  _Alignas(64) _Atomic int gc_pending; /* set from just before stop until restart (I5) */
  _Atomic int active_sweeps;
  _Alignas(64) char fence_end;         /* nothing else on the sweep fence's line */
  uint64_t pause_total_ns, pause_max_ns, last_pause_ns, mark_total_ns; /* gc_lock */
  uint64_t num_forced;

  /* Threads: threads_lock. */
  pthread_mutex_t threads_lock;
  cgc_thread_t *threads;
  size_t nthreads;
  _Atomic uint32_t acks;               /* bumped by each stopped thread (a wake-up hint) */
  cgc_thread_t *collector;             /* the thread that stopped the world, while it is stopped */

  /* Roots registered with cgc_add_roots: roots_lock. */
  pthread_mutex_t roots_lock;
  struct cgc_root *roots;
  size_t nroots, roots_cap;

  /* Internal metadata allocator: meta_lock. */
  pthread_mutex_t meta_lock;
} cgc_globals_t;

struct cgc_root {
  uintptr_t lo, hi;
};

extern cgc_globals_t _cgc_g CGC_HIDDEN;

/* ---- size classes (sizeclass.c) ------------------------------------------- */

extern uint32_t _cgc_class_size[CGC_NUM_CLASSES] CGC_HIDDEN;
extern uint16_t _cgc_class_npages[CGC_NUM_CLASSES] CGC_HIDDEN;
extern uint16_t _cgc_class_nelems[CGC_NUM_CLASSES] CGC_HIDDEN;
extern uint32_t _cgc_class_divmul[CGC_NUM_CLASSES] CGC_HIDDEN;
/* For size <= 1024: entry (size+7)>>3 = class | (class size << 8). */
extern uint32_t _cgc_lut8[129] CGC_HIDDEN;
/* For 1024 < size <= 32768: entry (size+127)>>7 = class. */
extern uint8_t _cgc_lut128[257] CGC_HIDDEN;
void _cgc_sizeclass_init(void) CGC_HIDDEN;

static inline unsigned _cgc_size_to_class(size_t size) {
  if (size <= 1024) return _cgc_lut8[(size + 7) >> 3] & 0xff;
  return _cgc_lut128[(size + 127) >> 7];
}

/* ---- page map ------------------------------------------------------------- */

static inline cgc_arena_meta_t *_cgc_arena_of(uintptr_t a) {
  if (a >> CGC_ADDR_BITS) return NULL;
  cgc_arena_meta_t **l2 = atomic_load_explicit(&_cgc_g.arena_l1[a >> (CGC_ARENA_SHIFT + CGC_L2_BITS)],
                                               memory_order_acquire);
  if (!l2) return NULL;
  return __atomic_load_n(&l2[(a >> CGC_ARENA_SHIFT) & ((1u << CGC_L2_BITS) - 1)], __ATOMIC_ACQUIRE);
}

static inline size_t _cgc_page_index(uintptr_t a) {
  return (a >> CGC_PAGE_SHIFT) & (CGC_PAGES_PER_ARENA - 1);
}

/* The span whose pages contain a, whatever its state, or NULL. */
static inline cgc_span_t *_cgc_span_of_any(uintptr_t a) {
  cgc_arena_meta_t *m = _cgc_arena_of(a);
  if (!m) return NULL;
  return __atomic_load_n(&m->spans[_cgc_page_index(a)], __ATOMIC_ACQUIRE);
}

/* The small or large span containing a, or NULL. */
static inline cgc_span_t *_cgc_span_of(uintptr_t a) {
  if (a - atomic_load_explicit(&_cgc_g.heap_lo, memory_order_relaxed) >=
      atomic_load_explicit(&_cgc_g.heap_hi, memory_order_relaxed) -
          atomic_load_explicit(&_cgc_g.heap_lo, memory_order_relaxed))
    return NULL;
  cgc_span_t *s = _cgc_span_of_any(a);
  if (!s) return NULL;
  uint8_t st = atomic_load_explicit(&s->state, memory_order_acquire);
  if (st != CGC_SPAN_SMALL && st != CGC_SPAN_LARGE) return NULL;
  if (a < s->base || a >= s->limit) return NULL;
  return s;
}

static inline uint32_t _cgc_slot_index(const cgc_span_t *s, uintptr_t a) {
  return (uint32_t)(((uint64_t)(a - s->base) * s->divmul) >> 32);
}

static inline uintptr_t _cgc_slot_base(const cgc_span_t *s, uint32_t idx) {
  return s->base + (uintptr_t)idx * s->elemsize;
}

/* Free-list link encoding. */
static inline uintptr_t _cgc_encode(void *next) { return (uintptr_t)next ^ _cgc_g.key; }
static inline void *_cgc_decode(uintptr_t w) { return (void *)(w ^ _cgc_g.key); }

#define cgc_compiler_barrier() __asm__ volatile("" ::: "memory")

/* ---- page heap (pageheap.c) ----------------------------------------------- */

/* Allocate npages contiguous pages as a span in state BUSY, from the start
   of a free span of room pages when room > npages and one is free; NULL on
   failure (errno ENOMEM).  The pages may be dirty: callers that need zeroed
   memory call _cgc_span_zero.  heap_lock must be held. */
cgc_span_t *_cgc_page_alloc_locked(size_t npages, size_t room) CGC_HIDDEN;
/* Zero the pages of a BUSY span (or pages [base, base+npages) of one) that
   are not known to be zero. */
void _cgc_span_zero(cgc_span_t *s) CGC_HIDDEN;
void _cgc_pages_zero(uintptr_t base, size_t npages) CGC_HIDDEN;
/* Grow the pages of large span s in place to npages by taking the free pages
   that follow it (mapping more at the heap's end if s ends there), or return
   false and change nothing.  The new pages are mapped to s (elemsize and
   limit follow) but may be dirty.  heap_lock must be held. */
bool _cgc_page_extend_locked(cgc_span_t *s, size_t npages) CGC_HIDDEN;
/* Shrink large span s to its first npages pages, freeing the rest (dirty);
   false (nothing changed) when out of metadata.  elemsize and limit follow.
   heap_lock must be held. */
bool _cgc_page_trim_locked(cgc_span_t *s, size_t npages) CGC_HIDDEN;
/* The most bytes in pages handed out at any time in the last eight periods
   (collections; the first: since startup); the first call after a
   collection starts the next period.  Takes heap_lock. */
size_t _cgc_used_peak_take(void) CGC_HIDDEN;
/* Forget those peaks (cgc_release_memory).  Takes heap_lock. */
void _cgc_used_peaks_reset(void) CGC_HIDDEN;
/* gc_cycle at the last _cgc_used_peak_take: the collection whose complete
   sweep was last followed by a scavenge.  Takes heap_lock. */
uint32_t _cgc_used_peak_cycle(void) CGC_HIDDEN;
/* Give the pages of span s back to the page heap (zeroed: they are known to
   be zero).  heap_lock must be held. */
void _cgc_page_free_locked(cgc_span_t *s, bool zeroed) CGC_HIDDEN;
/* The same for pages that have no memory behind them (a fresh mapping put
   over them): given back as released, outside mapped_bytes, which they
   enter again when they are handed out.  heap_lock must be held. */
void _cgc_page_free_released_locked(cgc_span_t *s) CGC_HIDDEN;
/* Does [lo, hi) overlap a range registered with cgc_add_roots?  (roots.c;
   takes roots_lock.) */
bool _cgc_roots_cover(uintptr_t lo, uintptr_t hi, uintptr_t *start, size_t *size) CGC_HIDDEN;
/* Publish a BUSY span as SMALL/LARGE/ARENA: fills the page map and stores state. */
void _cgc_span_publish(cgc_span_t *s, uint8_t state) CGC_HIDDEN;
/* Release free pages to the OS until mapped_bytes <= target_mapped (or no
   free page is left mapped).  Returns bytes released.  Takes heap_lock. */
size_t _cgc_scavenge(size_t target_mapped) CGC_HIDDEN;
void _cgc_heap_lock(void) CGC_HIDDEN;
void _cgc_heap_unlock(void) CGC_HIDDEN;
/* Metadata allocation (never freed to the OS; zeroed). */
void *_cgc_meta_alloc(size_t size) CGC_HIDDEN;
cgc_span_t *_cgc_span_struct_alloc_locked(void) CGC_HIDDEN;
void _cgc_span_struct_free_locked(cgc_span_t *s) CGC_HIDDEN;

void _cgc_list_push(cgc_span_list_t *l, cgc_span_t *s, uint8_t which) CGC_HIDDEN;
void _cgc_list_remove(cgc_span_list_t *l, cgc_span_t *s) CGC_HIDDEN;
cgc_span_t *_cgc_list_pop(cgc_span_list_t *l) CGC_HIDDEN;
void _cgc_list_splice(cgc_span_list_t *dst, cgc_span_list_t *src, uint8_t which) CGC_HIDDEN;

/* ---- allocation (alloc.c) ------------------------------------------------- */

void *_cgc_alloc_slow(size_t size, int noscan) CGC_HIDDEN;
/* The largest object or arena request: 16 times the RAM (the page map's
   word per page would exhaust memory long before a larger one failed). */
size_t _cgc_large_max(void) CGC_HIDDEN;
/* The cheap half of _cgc_slot_looks_free: could the first word of the slot
   at base be a free-list link?  Every link's top byte is the key's (heap
   addresses are below 2^48), a byte that live data rarely holds there
   (0xF5..0xFE: not a pointer, a small or negative integer, a common double,
   ASCII or UTF-8); false means the slot is surely not on a list, true sends
   the caller to the full test.  One byte is read, not the word: a load of a
   word that the program has just written in part (a byte store into a
   struct's first field, then cgc_free) cannot be served from the store
   buffer and waits for the stores to retire; a byte load always can. */
static inline bool _cgc_word0_may_link(uintptr_t base) {
  return ((const unsigned char *)base)[CGC_WORD_TOP_BYTE] == (unsigned char)(_cgc_g.key >> 56);
}
/* Is the 16-byte noscan slot at base of s a weak handle (specials.c)?  Its
   first word has the free-list tag over the referent (so that cgc_free and
   cgc_realloc take their slow paths), its second is its address under
   weak_key. */
static inline bool _cgc_is_weak_handle(const cgc_span_t *s, uintptr_t base) {
  return s->elemsize == 16 && s->noscan && ((const uintptr_t *)base)[1] == (base ^ _cgc_g.weak_key) &&
         _cgc_word0_may_link(base);
}
/* Does the slot at base look free (zero but for a valid free-list link)? */
bool _cgc_slot_looks_free(const cgc_span_t *s, uintptr_t base) CGC_HIDDEN;
/* Make an uncleared slot of size bytes fit for a dirty list (I3): word 1
   zero, so that _cgc_slot_looks_free still recognizes it; the caller writes
   the link into word 0. */
static inline void _cgc_slot_make_dirty(uintptr_t *slot, size_t size) {
  if (size >= 16) slot[1] = 0;
}
void *_cgc_alloc_large(size_t size, int noscan) CGC_HIDDEN;
cgc_span_t *_cgc_alloc_pages(size_t npages, size_t room, int noscan, bool zero) CGC_HIDDEN;
/* Count an explicit free of bytes in the calling thread's statistics. */
void _cgc_count_free(size_t bytes) CGC_HIDDEN;
cgc_tcache_t *_cgc_tcache_init(void) CGC_HIDDEN;
/* Give back the thread's cache (thread exit).  The world may not be stopped.
   Its counts stay: thread_unregister flushes them (_cgc_tcache_flush_counts)
   under threads_lock as it unlinks the thread. */
void _cgc_tcache_release(cgc_tcache_t *tc) CGC_HIDDEN;
/* Bytes and objects tc's thread gave back with cgc_free and cgc_realloc. */
void _cgc_tcache_free_totals(const cgc_tcache_t *tc, uint64_t *bytes, uint64_t *objects) CGC_HIDDEN;
/* Move tc's counts to the exited threads' totals and clear them; with
   threads_lock held and the thread leaving the list in the same hold. */
void _cgc_tcache_flush_counts(cgc_tcache_t *tc) CGC_HIDDEN;
/* Flush pacing counters and maybe start a collection. */
void _cgc_pacing_check(cgc_tcache_t *tc) CGC_HIDDEN;

/* ---- sweeping (sweep.c) --------------------------------------------------- */

bool _cgc_sweep_begin(void) CGC_HIDDEN;
void _cgc_sweep_end(void) CGC_HIDDEN;
/* The other side of the fence (gc_lock held): refuse new sweeps and wait
   for running ones to end; then let them run again. */
void _cgc_sweep_fence_raise(void) CGC_HIDDEN;
void _cgc_sweep_fence_lower(void) CGC_HIDDEN;
/* Sweep a span claimed by the caller (not on any list, unowned or owned by the
   caller).  Returns the number of free slots; the list goes to s->freelist.
   !zero (noscan spans, for a thread's dirty list): dead slots get only word 0
   (the link) and word 1 cleared, and the caller must clear them before the
   list stays on the span (I3). */
uint32_t _cgc_sweep_span(cgc_span_t *s, bool zero) CGC_HIDDEN;
/* File an unowned span on its central list: partial or full if it was swept
   this cycle, unswept otherwise.  The central lock must be held. */
void _cgc_span_file_unowned_locked(cgc_span_t *s) CGC_HIDDEN;
/* Push s onto its class's unswept list (c, whose lock is held), and mark
   the class as having unswept spans (I7). */
void _cgc_unswept_push_locked(cgc_central_t *c, cgc_span_t *s) CGC_HIDDEN;
/* Put a swept, unowned small span where it belongs (or free its pages). */
void _cgc_span_put_swept(cgc_span_t *s) CGC_HIDDEN;
/* Sweep until no unswept span remains.  Returns true if everything is swept. */
bool _cgc_sweep_all(void) CGC_HIDDEN;
void _cgc_sweep_large_locked(void) CGC_HIDDEN;
bool _cgc_sweeper_wake(void) CGC_HIDDEN; /* false: no sweeper thread (bgsweep=0, or it could not start) */
void _cgc_sweeper_start(void) CGC_HIDDEN;
/* Called while the world is stopped at the end of marking. */
void _cgc_sweep_prepare_stw(void) CGC_HIDDEN;

/* ---- marking (mark.c) ----------------------------------------------------- */

typedef struct cgc_mark_result {
  uint64_t marked_bytes;
  uint64_t premarked_bytes;
  uint64_t marked_objects;
  uint64_t root_bytes;
  int workers;
} cgc_mark_result_t;

/* Mark everything reachable from the roots (world stopped, locks held). */
void _cgc_mark(cgc_mark_result_t *res) CGC_HIDDEN;
/* Single-threaded mark into check bits and compare (checkmark mode). */
void _cgc_checkmark(void) CGC_HIDDEN;
/* During the stop-the-world phase (after _cgc_mark), for specials: mark the
   object containing p (if unmarked) and everything reachable from it. */
void _cgc_mark_from(uintptr_t p) CGC_HIDDEN;
/* Same, for everything reachable from the object at base but not the object. */
void _cgc_mark_children(uintptr_t base) CGC_HIDDEN;
bool _cgc_is_marked(uintptr_t base) CGC_HIDDEN;
/* Mark bits are valid only when the span's epoch is the current marking's
   (see mark.c). */
static inline bool _cgc_span_marks_valid(const cgc_span_t *s) {
  return atomic_load_explicit(&((cgc_span_t *)s)->mark_epoch, memory_order_acquire) ==
         atomic_load_explicit(&_cgc_g.mark_epoch, memory_order_relaxed);
}
/* The bits of mark (or listed) word w that stand for slots of a span of n. */
static inline uint64_t _cgc_slot_mask(uint32_t n, uint32_t w) {
  return w * 64 + 64 <= n ? ~0ull : w * 64 < n ? (1ull << (n - w * 64)) - 1 : 0;
}
static inline bool _cgc_slot_marked(cgc_span_t *s, uint32_t idx) {
  if (!_cgc_span_marks_valid(s)) return false;
  return (atomic_load_explicit(&s->mark[idx / 64], memory_order_relaxed) >> (idx % 64)) & 1;
}
/* Did the last collection find this object unreachable, with its span not
   swept since?  (A thread's owned span stays unswept while its list lasts;
   until swept, a span's marks are the last collection's.)  Then no pointer
   to it should exist: freeing it would hand the slot out twice.
   The calling thread may be stopped for a whole collection between any two
   of these loads, so a "dead" answer is read again until gc_cycle did not
   move under it: a span epoch from before and a global epoch from after a
   collection would otherwise make a live object look unmarked.  (An
   unregistered caller, which collections do not stop, is registered
   first.) */
bool _cgc_found_dead_confirm(cgc_span_t *s, uint32_t idx, uint32_t cycle) CGC_HIDDEN;
/* The test itself, for loads known to come from collection cycle c. */
static inline bool _cgc_unmarked_unswept(cgc_span_t *s, uint32_t idx, uint32_t c) {
  return s->sweepgen != c && !_cgc_slot_marked(s, idx);
}
static inline bool _cgc_found_dead(cgc_span_t *s, uint32_t idx) {
  uint32_t c = atomic_load_explicit(&_cgc_g.gc_cycle, memory_order_acquire);
  if (cgc_likely(!_cgc_unmarked_unswept(s, idx, c))) return false;
  return _cgc_found_dead_confirm(s, idx, c);
}
void _cgc_mark_workers_reset(void) CGC_HIDDEN; /* in a forked child */

/* ---- threads (threads.c) -------------------------------------------------- */

void _cgc_threads_init(void) CGC_HIDDEN;
cgc_thread_t *_cgc_thread_register_self(bool explicit_reg) CGC_HIDDEN;
/* Stop every registered thread but the caller.  threads_lock held. */
void _cgc_stop_world(void) CGC_HIDDEN;
void _cgc_start_world(void) CGC_HIDDEN;
/* Call fn for every registered thread; threads_lock must be held. */
void _cgc_threads_for_each(void (*fn)(cgc_thread_t *, void *), void *ctx) CGC_HIDDEN;

/* ---- roots (roots.c) ------------------------------------------------------ */

/* Collect the data segments and TLS modules (before stopping the world). */
void _cgc_roots_prepare(void) CGC_HIDDEN;
/* Enumerate all root ranges (world stopped).  fn is called per range. */
void _cgc_roots_enumerate(void (*fn)(void *ctx, uintptr_t lo, uintptr_t hi), void *ctx) CGC_HIDDEN;
/* True if the set of loaded objects changed since _cgc_roots_prepare. */
bool _cgc_roots_stale(void) CGC_HIDDEN;
/* Was stopped thread t running on another stack than its primary one (a
   coroutine's, or an alternate signal stack, which may lie inside the
   primary stack)?  Then that stack is scanned from t->stop_sp up to
   _cgc_roots_other_stack_end(t) (0: unknown, not scanned), and all of the
   mapped primary stack too. */
static inline bool _cgc_thread_on_other_stack(const cgc_thread_t *t) {
  return t->stop_sp < t->stack_lo || t->stop_sp >= t->stack_hi || t->stop_alt_end;
}
uintptr_t _cgc_roots_other_stack_end(const cgc_thread_t *t) CGC_HIDDEN;
/* Does where lie in one of t's TLS blocks (world stopped)?  A thread's
   static TLS lies inside its stack bounds (glibc puts it at the top of the
   stack block), but its words are variables, not frames. */
bool _cgc_roots_in_tls(const cgc_thread_t *t, uintptr_t where) CGC_HIDDEN;

/* ---- collection (collect.c) ----------------------------------------------- */

enum { CGC_GC_PACED = 0, CGC_GC_FORCED, CGC_GC_OOM, CGC_GC_LIMIT };
/* Run a collection.  For PACED, skipped if another thread collected meanwhile
   (cycle != expect_cycle). */
void _cgc_collect(int reason, uint32_t expect_cycle) CGC_HIDDEN;
void _cgc_init_slow(void) CGC_HIDDEN;
/* gc_lock, with its holder recorded (gc_owner) for code that must not wait
   for it while holding it (exec from a signal handler). */
void _cgc_gc_lock(void) CGC_HIDDEN;
void _cgc_gc_unlock(void) CGC_HIDDEN;
static inline bool _cgc_gc_lock_held(void) {
  return atomic_load_explicit(&_cgc_g.gc_owner, memory_order_relaxed) == _cgc_os_thread_pointer();
}

static inline void _cgc_ensure_init(void) {
  if (cgc_unlikely(!atomic_load_explicit(&_cgc_g.initialized, memory_order_acquire))) _cgc_init_slow();
}
void _cgc_update_goal(void) CGC_HIDDEN;
/* Called when the heap wants to grow by bytes; may collect (memory limit). */
void _cgc_before_grow(size_t bytes) CGC_HIDDEN;

/* ---- options (options.c) -------------------------------------------------- */

void _cgc_options_init(void) CGC_HIDDEN;
/* Parse "512MiB", "1g", "off" ...  Returns -1 for off, -2 for invalid. */
int64_t _cgc_parse_bytes(const char *s) CGC_HIDDEN;

/* ---- specials hooks (specials.c) ------------------------------------------ */

/* Called with the world stopped after marking: finalizer ordering, weak
   clearing, cleanup queueing.  May mark more objects. */
void _cgc_specials_process_stw(void) CGC_HIDDEN;
/* After the world restarts: hand queued work to the runner. */
void _cgc_specials_after_gc(void) CGC_HIDDEN;
/* cgc_free of an object whose span has specials: clear its weak handles,
   run its finalizer and cleanups here and drop them all (RAN), if it has a
   record (else NONE).  NESTED: the object is being freed already (by this
   call's caller up the stack, from its finalizer or cleanups): do nothing. */
enum { CGC_ONFREE_NONE, CGC_ONFREE_RAN, CGC_ONFREE_NESTED };
int _cgc_specials_on_free(cgc_span_t *s, uint32_t idx, uintptr_t base, const char *call) CGC_HIDDEN;
/* What cgc root holds the word at where (a cleanup's argument, a queued
   callback), for reports; NULL if none.  World stopped. */
const char *_cgc_specials_root_name(uintptr_t where) CGC_HIDDEN;
size_t _cgc_specials_record_bytes(void) CGC_HIDDEN; /* cleanup records in use; stripes held */
void _cgc_specials_fork_child(void) CGC_HIDDEN;

/* ---- panic barriers ----------------------------------------------------------- */
/* A panic must not leave a program callback that cgc calls (a cleanup or a
   finalizer): cgc's bookkeeping around the call would be skipped, as a C++
   exception must not leave a destructor.  A barrier is a record in the
   thread's defer chain that only a panic runs: linked before the callback,
   unlinked after it, and if a panic unwinds past it, it aborts with the
   panic and the callback named.  fn and arg name the callback now running
   (updated in place when one barrier guards a batch).  A barrier declared
   CGC_BARRIER (in a file compiled with -fexceptions) has a landing pad too,
   which runs first whatever unwinds its frame while it is armed: a panic
   (reported as above), a C++ exception or a thread exit (pthread_exit,
   cancellation), each fatal. */
typedef struct {
  cgc__bnode_t node;
  const char *call; /* the cgc call, or the thread, running the callback */
  const char *what; /* "the cleanup", "the finalizer" */
  void (*fn)(void *);
  void *arg;
  bool armed;       /* pushed and not popped */
} _cgc_barrier_t;
void _cgc_panic_barrier_hit(void *barrier) CGC_HIDDEN;
_Noreturn void _cgc_barrier_unwound(const _cgc_barrier_t *b) CGC_HIDDEN;
static inline void _cgc_barrier_guard(_cgc_barrier_t *b) {
  if (cgc_unlikely(b->armed)) _cgc_barrier_unwound(b);
}
#define CGC_BARRIER __attribute__((cleanup(_cgc_barrier_guard)))
static inline void _cgc_barrier_push(_cgc_barrier_t *b, const char *call) {
  b->armed = true;
  b->call = call;
  b->what = NULL;
  b->fn = NULL;
  b->arg = NULL;
  cgc__link_one(&b->node, _cgc_panic_barrier_hit, b);
}
static inline void _cgc_barrier_set(_cgc_barrier_t *b, const char *what, void (*fn)(void *), void *arg) {
  b->what = what;
  b->fn = fn;
  b->arg = arg;
}
static inline void _cgc_barrier_pop(_cgc_barrier_t *b) {
  cgc_assert(cgc__defer_chain == &b->node.f);
  cgc__defer_chain = b->node.f.prev;
  b->armed = false;
  b->arg = NULL; /* the barrier may live on in an idle thread's frame, which is scanned */
}

/* ---- free / arenas hooks -------------------------------------------------- */
/* checkfree quarantine: verify and release after marking (world stopped). */
void _cgc_checkfree_stw(int reason) CGC_HIDDEN;
bool _cgc_checkfree_holds(uintptr_t base) CGC_HIDDEN; /* freed and quarantined? */
void _cgc_checkfree_after_gc(void) CGC_HIDDEN;
/* Arenas: roots while alive; quarantine ranges until proven unreferenced. */
void _cgc_arenas_enumerate_roots(void (*fn)(void *ctx, uintptr_t lo, uintptr_t hi), void *ctx) CGC_HIDDEN;
void _cgc_arenas_after_mark_stw(void) CGC_HIDDEN;
void _cgc_arenas_after_gc(void) CGC_HIDDEN;
/* Conservative hit on an arena chunk span (during marking). */
void _cgc_arena_note_hit(cgc_span_t *s) CGC_HIDDEN;

#endif
