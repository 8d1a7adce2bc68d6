/* specials.c — cleanups, finalizers and weak handles (see docs/specials.md).
 *
 * Lookup is O(1): a span that has objects with specials points to an array
 * with one entry per slot; an entry is the object's record (obj_rec_t) with
 * its cleanups (a doubly linked list: add and stop are O(1)), its finalizer
 * and its weak handles.  Nothing is sorted and nothing is walked on insert.
 *
 * Locking: records live in one of NSTRIPES stripes chosen by span address;
 * a stripe's mutex protects its records, its list of records and its free
 * lists.  The collector takes every stripe (and the queue lock) before it
 * stops the world, so records are consistent while it processes them.
 *
 * At a collection, with the world stopped and after marking (Go's order):
 *   1. everything reachable from an unmarked object with a finalizer is
 *      marked (not the object itself): if A reaches B, only A is finalized now;
 *   2. weak handles of unmarked objects are cleared (before any finalizer can
 *      resurrect them);
 *   3. unmarked objects with a finalizer are queued and resurrected (marked);
 *   4. the nodes of weak handles that died are dropped (after step 3, which
 *      may resurrect a handle), and cleanups of objects still unmarked are
 *      queued and their records dropped.
 * Without live finalizers nothing is resurrected, so one walk over the
 * records does steps 2 and 4 together.
 * Cleanup arguments are roots while their cleanup is registered or queued
 * (the record slabs and the queue are scanned), so `arg` stays alive.
 * Queued work runs on the cleanup thread, or in cgc_run_cleanups when
 * CGC_DEBUG=cleanups=manual.
 */
#include <errno.h>
#include <pthread.h>

#include "internal.h"

#define NSTRIPES 64
#define SLAB_BYTES ((size_t)64 << 10)
#define QCHUNK_ITEMS 4096

/* ---- records ---------------------------------------------------------------------- */

typedef struct cleanup_rec {
  void **argp;               /* this record's argument, in its slab's scanned array; fixed */
  void (*fn)(void *);
  uint64_t id;               /* 0 when free */
  struct cleanup_rec *next, *prev;
  struct obj_rec *obj;
} cleanup_rec_t;

typedef struct weak_node {
  struct cgc_weak *handle;   /* a collected object: held weakly (metadata is not scanned) */
  uintptr_t key;             /* the exact pointer the handle was made for, XOR key */
  struct weak_node *next;
} weak_node_t;

typedef struct obj_rec {
  cgc_span_t *span;
  uint32_t idx;
  uint32_t stripe;
  cleanup_rec_t *cleanups;
  void (*finalizer)(void *);
  weak_node_t *weaks;
  struct obj_rec *next, *prev; /* the stripe's list */
  /* While cgc_free runs the object's finalizer and cleanups: the freeing
     thread's token (the address of its free_token), else 0, and the
     cleanups it detached to run (freed once they ran).  The record stays
     in place meanwhile, so a nested cgc_free of the object finds it. */
  uintptr_t freeing;
  cleanup_rec_t *running;
} obj_rec_t;

/* A span's records by slot, in two levels so that the first special of a
   span costs a 64-entry chunk, not an entry for every slot. */
#define SPC_CHUNK 64
#define SPC_NCHUNK (CGC_MAX_SPAN_OBJS / SPC_CHUNK)
typedef struct spc_chunk {
  obj_rec_t *slot[SPC_CHUNK];
} spc_chunk_t;

typedef struct cgc_specials {
  uint32_t count;             /* records in use */
  struct cgc_specials *next_free;
  spc_chunk_t *chunk[SPC_NCHUNK];
} specials_arr_t;

/* A weak handle: 16 bytes of noscan heap.  The first word is the referent
   (none once it was found unreachable) under the free-list tag in its top byte,
   so that cgc_free and cgc_realloc of a handle take their slow paths, which
   name it; the second is the handle's own address ^ weak_key, by which
   cgc_weak_value and those paths recognize handles
   (_cgc_is_weak_handle). */
struct cgc_weak {
  _Atomic uintptr_t ptr;      /* WEAK_TAG | the referent */
  uintptr_t self;             /* (uintptr_t)this ^ _cgc_g.weak_key */
};
#define WEAK_ADDR ((uintptr_t)0x00FFFFFFFFFFFFFFull)
static inline uintptr_t weak_tag(void) { return (uintptr_t)_cgc_g.key & ~WEAK_ADDR; }
static inline void weak_clear(struct cgc_weak *h) { atomic_store_explicit(&h->ptr, weak_tag(), memory_order_release); }

typedef struct {
  cgc_spin_t lock;
  uint64_t next_id;           /* ids are next_id * NSTRIPES + stripe index: unique */
  obj_rec_t *objs;            /* records of this stripe */
  obj_rec_t *free_objs;
  cleanup_rec_t *free_cleanups;
  size_t ncleanups;           /* cleanup records in use (registered, or detached and running) */
  weak_node_t *free_weaks;
  /* Slot tables of the stripe's spans, recycled here.  A table or chunk on
     these lists is all zero but its link, so taking one clears one word. */
  struct cgc_specials *free_arrays;      /* linked through next_free */
  spc_chunk_t *free_chunks;              /* linked through slot[0] */
  char pad[64];
} stripe_t;

static CGC_STATE stripe_t stripes[NSTRIPES];
static CGC_STATE _Atomic uint64_t nweak;
static CGC_STATE _Atomic int64_t nfinalizers; /* records with a finalizer: skip their passes when 0 */

/* A slab of cleanup records: the records' arguments in an array of their
   own, which is a root (a registered cleanup keeps its arg alive), then the
   records, which the collector need not read.  Scanning only the arguments
   is one word per record instead of six. */
typedef struct slab {
  struct slab *next;
  size_t n;                  /* records (and arguments) */
} slab_t;
#define SLAB_N ((SLAB_BYTES - sizeof(slab_t)) / (sizeof(void *) + sizeof(cleanup_rec_t)))
static inline void **slab_args(slab_t *sl) { return (void **)(sl + 1); }
static CGC_STATE slab_t *cleanup_slabs;          /* slab_lock */
static CGC_STATE pthread_mutex_t slab_lock = PTHREAD_MUTEX_INITIALIZER;

static inline stripe_t *stripe_of(cgc_span_t *s) {
  return &stripes[((uintptr_t)s >> 8) * 0x9E3779B97F4A7C15ull >> 58];
}

static void refill_cleanups(stripe_t *st) {
  slab_t *sl = _cgc_meta_alloc(SLAB_BYTES);
  if (!sl) _cgc_fatal("cgc_add_cleanup: out of memory for cleanup records");
  sl->n = SLAB_N;
  void **args = slab_args(sl);
  cleanup_rec_t *r = (cleanup_rec_t *)(args + SLAB_N);
  for (size_t i = 0; i < SLAB_N; i++) {
    r[i].argp = &args[i];
    r[i].next = st->free_cleanups;
    st->free_cleanups = &r[i];
  }
  pthread_mutex_lock(&slab_lock);
  sl->next = cleanup_slabs;
  cleanup_slabs = sl;
  pthread_mutex_unlock(&slab_lock);
}

/* Cleanup records count towards heap_live (so many small objects with
   cleanups still pace collections), in per-thread batches; a collection
   sets heap_live to the marked bytes plus the records in use
   (_cgc_specials_record_bytes), so that records stopped or run after it
   are subtracted from a count that holds them. */
static __thread int64_t rec_bytes_pending;

static inline void account_records(int64_t bytes) {
  rec_bytes_pending += bytes;
  if (rec_bytes_pending >= 4096 || rec_bytes_pending <= -4096) {
    atomic_fetch_add_explicit(&_cgc_g.heap_live, rec_bytes_pending, memory_order_relaxed);
    rec_bytes_pending = 0;
  }
}

static void free_cleanup(stripe_t *st, cleanup_rec_t *c) {
  st->ncleanups--;
  *c->argp = NULL;
  c->fn = NULL;
  c->id = 0;
  c->obj = NULL;
  c->prev = NULL;
  c->next = st->free_cleanups;
  st->free_cleanups = c;
  account_records(-(int64_t)sizeof *c);
}

/* The public call, and its object, that is taking records on this thread
   (set by lock_live): what an out-of-memory message names.  The object is
   kept hidden (complemented): thread-local storage is scanned, and it must
   not keep the object alive. */
static __thread const char *rec_call;
static __thread uintptr_t rec_ptr_hidden;

/* Carve a slab of metadata into a free list of records whose link field is
   at offset link_off. */
static CGC_NOINLINE void *slab_refill(size_t size, size_t link_off) {
  char *r = _cgc_meta_alloc(SLAB_BYTES);
  if (!r)
    _cgc_fatal("%s: out of memory for the records of %p", rec_call ? rec_call : "cgc_add_cleanup",
               (void *)~rec_ptr_hidden);
  void *head = NULL;
  for (size_t i = SLAB_BYTES / size; i-- > 0;) {
    memcpy(r + i * size + link_off, &head, sizeof head);
    head = r + i * size;
  }
  return head;
}

static CGC_ALWAYS_INLINE obj_rec_t *new_obj_rec(stripe_t *st) {
  if (!st->free_objs) st->free_objs = slab_refill(sizeof(obj_rec_t), offsetof(obj_rec_t, next));
  obj_rec_t *o = st->free_objs;
  st->free_objs = o->next;
  memset(o, 0, sizeof *o);
  return o;
}

static weak_node_t *new_weak_node(stripe_t *st) {
  if (!st->free_weaks) st->free_weaks = slab_refill(sizeof(weak_node_t), offsetof(weak_node_t, next));
  weak_node_t *w = st->free_weaks;
  st->free_weaks = w->next;
  return w;
}

/* New tables and chunks come from slabs of fresh (zero) metadata, so they
   too are zero but their link. */
static CGC_NOINLINE specials_arr_t *take_array(stripe_t *st) {
  if (!st->free_arrays)
    st->free_arrays = slab_refill(sizeof(specials_arr_t), offsetof(specials_arr_t, next_free));
  specials_arr_t *a = st->free_arrays;
  st->free_arrays = a->next_free;
  a->next_free = NULL;
  return a;
}

static CGC_NOINLINE spc_chunk_t *take_chunk(stripe_t *st) {
  if (!st->free_chunks)
    st->free_chunks = slab_refill(sizeof(spc_chunk_t), offsetof(spc_chunk_t, slot));
  spc_chunk_t *c = st->free_chunks;
  st->free_chunks = (spc_chunk_t *)c->slot[0];
  c->slot[0] = NULL;
  return c;
}

/* A span's table whose last record went (every slot is NULL again). */
static void free_array(stripe_t *st, specials_arr_t *a) {
  for (int i = 0; i < SPC_NCHUNK; i++)
    if (a->chunk[i]) {
      a->chunk[i]->slot[0] = (obj_rec_t *)st->free_chunks;
      st->free_chunks = a->chunk[i];
      a->chunk[i] = NULL;
    }
  a->next_free = st->free_arrays;
  st->free_arrays = a;
}

static inline obj_rec_t **slot_of(stripe_t *st, specials_arr_t *a, uint32_t idx, bool create) {
  spc_chunk_t *c = a->chunk[idx / SPC_CHUNK];
  if (!c) {
    if (!create) return NULL;
    c = a->chunk[idx / SPC_CHUNK] = take_chunk(st);
  }
  return &c->slot[idx % SPC_CHUNK];
}

/* s->specials is NULL, a table (specials_arr_t), or, while a single object
   of the span has specials, that object's record tagged with bit 0: the
   first special of a span then costs one record, not a table and a chunk. */
#define SOLE_TAG ((uintptr_t)1)
static inline bool is_sole(const struct cgc_specials *p) { return (uintptr_t)p & SOLE_TAG; }
static inline obj_rec_t *sole_rec(const struct cgc_specials *p) { return (obj_rec_t *)((uintptr_t)p & ~SOLE_TAG); }
static inline struct cgc_specials *sole_tag(obj_rec_t *o) { return (struct cgc_specials *)((uintptr_t)o | SOLE_TAG); }

/* A new record for slot idx of span s, on the stripe's list. */
static CGC_ALWAYS_INLINE obj_rec_t *make_obj_rec(stripe_t *st, cgc_span_t *s, uint32_t idx) {
  obj_rec_t *o = new_obj_rec(st);
  o->span = s;
  o->idx = idx;
  o->stripe = (uint32_t)(st - stripes);
  o->next = st->objs;
  if (st->objs) st->objs->prev = o;
  st->objs = o;
  return o;
}

/* The record for slot idx of span s, created if create; stripe held. */
static CGC_ALWAYS_INLINE obj_rec_t *obj_rec(stripe_t *st, cgc_span_t *s, uint32_t idx, bool create) {
  struct cgc_specials *sp = s->specials;
  specials_arr_t *a;
  if (!sp) {
    if (!create) return NULL;
    obj_rec_t *o = make_obj_rec(st, s, idx);
    s->specials = sole_tag(o);
    return o;
  }
  if (is_sole(sp)) {
    obj_rec_t *only = sole_rec(sp);
    if (only->idx == idx) return only;
    if (!create) return NULL;
    a = take_array(st); /* a second object: the span gets its table */
    *slot_of(st, a, only->idx, true) = only;
    a->count = 1;
    s->specials = a;
  } else {
    a = sp;
  }
  obj_rec_t **slot = slot_of(st, a, idx, create);
  if (!slot) return NULL;
  obj_rec_t *o = *slot;
  if (o || !create) return o;
  o = make_obj_rec(st, s, idx);
  *slot = o;
  a->count++;
  return o;
}

static void drop_obj_rec(stripe_t *st, obj_rec_t *o) {
  struct cgc_specials *sp = o->span->specials;
  if (is_sole(sp)) {
    cgc_assert(sole_rec(sp) == o);
    o->span->specials = NULL;
  } else {
    specials_arr_t *a = sp;
    *slot_of(st, a, o->idx, false) = NULL;
    if (--a->count == 0) {
      o->span->specials = NULL;
      free_array(st, a);
    }
  }
  if (o->prev) o->prev->next = o->next;
  else st->objs = o->next;
  if (o->next) o->next->prev = o->prev;
  o->next = st->free_objs;
  st->free_objs = o;
}

static bool obj_rec_empty(const obj_rec_t *o) { return !o->cleanups && !o->finalizer && !o->weaks && !o->freeing; }

/* ---- the queue ----------------------------------------------------------------------- */

typedef struct {
  void (*fn)(void *);
  void *arg;
  int finalizer;
} work_t;

typedef struct qchunk {
  struct qchunk *next;
  size_t head, tail; /* items [head, tail) are pending */
  work_t items[QCHUNK_ITEMS];
} qchunk_t;

static CGC_STATE pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static CGC_STATE pthread_cond_t queue_cond = PTHREAD_COND_INITIALIZER;
/* Emptied chunks are kept for the next collection's pushes (up to
   Q_SPARE_MAX of them) rather than unmapped and mapped again each cycle. */
#define Q_SPARE_MAX 64
static CGC_STATE qchunk_t *q_first, *q_last, *q_spare; /* queue_lock; q_spare linked through next */
static CGC_STATE size_t q_nspare;                       /* queue_lock */
static CGC_STATE uint64_t q_pushed, q_done;            /* queue_lock */
static CGC_STATE size_t q_running;                     /* items taken and not finished: queue_lock */
/* Items are taken in push order, so item k (counting pushes from 0) has
   been taken once q_taken > k, and has finished unless a batch in flight
   holds it.  A batch in flight is described by a record on its runner's
   stack, linked here while it runs: cgc_wait_cleanups waits for the items
   pushed before it by position, not by count (a count of finished items
   would also count items pushed later that finished first). */
typedef struct batch_rec {
  uint64_t start;          /* the batch holds items [start, start + n) */
  const void *owner;       /* its runner's &my_running (fork keeps its own) */
  struct batch_rec *next;
  /* Items run so far, and finalizers among them: written by the runner
     only; read by a fork child, for whom another thread's batch ends
     where it stood (the counters are added once per batch otherwise). */
  _Atomic size_t ran, ran_fins;
} batch_rec_t;
static CGC_STATE uint64_t q_taken;                     /* queue_lock */
static CGC_STATE batch_rec_t *q_inflight;              /* queue_lock */
static CGC_STATE _Atomic uint32_t runner_kick;
static CGC_STATE int runner_started;                   /* queue_lock */
static CGC_STATE _Atomic uint64_t n_cleanups_run, n_finalizers_run;
static __thread int in_cleanup;

static CGC_STATE bool q_full_warned;
static CGC_STATE bool q_map_failed; /* in this pause: do not try again for every item */

/* Append (the world stopped, queue_lock held).  False when the queue cannot
   grow (out of memory): the caller keeps the work on its object and
   resurrects the object, so that the next collection queues it again. */
static bool q_push(void (*fn)(void *), void *arg, int finalizer) {
  if (!q_last || q_last->tail == QCHUNK_ITEMS) {
    qchunk_t *c = q_spare;
    if (c) {
      q_spare = c->next;
      q_nspare--;
    } else {
      c = q_map_failed ? NULL : _cgc_os_map(sizeof *c); /* no locks: usable with the world stopped */
      if (!c) {
        q_map_failed = true;
        if (!q_full_warned) {
          q_full_warned = true;
          _cgc_warn("collection: out of memory for the cleanup queue: cleanups and finalizers of unreachable "
                    "objects wait for a later collection (their objects are kept)");
        }
        return false;
      }
    }
    c->next = NULL;
    c->head = c->tail = 0;
    if (q_last) q_last->next = c;
    else q_first = c;
    q_last = c;
  }
  q_last->items[q_last->tail++] = (work_t){fn, arg, finalizer};
  q_pushed++;
  return true;
}

/* Take up to max items (queue_lock held). */
static __thread size_t my_running;     /* items this thread took and has not finished */

/* Take up to max items into out, in push order; a batch taken is recorded
   in rec and linked in flight until run_work finishes it (queue_lock). */
static size_t q_take(work_t *out, size_t max, batch_rec_t *rec) {
  size_t n = 0;
  while (n < max && q_first) {
    qchunk_t *c = q_first;
    while (n < max && c->head < c->tail) {
      out[n++] = c->items[c->head];
      c->items[c->head].arg = NULL;
      c->head++;
    }
    if (c->head < c->tail) break;
    if (c == q_last) { /* empty: keep it for the next pushes */
      c->head = c->tail = 0;
      break;
    }
    q_first = c->next;
    if (q_nspare < Q_SPARE_MAX) {
      c->next = q_spare;
      q_spare = c;
      q_nspare++;
    } else {
      _cgc_os_unmap(c, sizeof *c);
    }
  }
  q_running += n;
  if (n) {
    rec->start = q_taken;
    atomic_store_explicit(&rec->ran, 0, memory_order_relaxed);
    atomic_store_explicit(&rec->ran_fins, 0, memory_order_relaxed);
    rec->owner = &my_running;
    rec->next = q_inflight;
    q_inflight = rec;
    q_taken += n;
  }
  return n;
}

/* Have all items pushed before the target-th finished?  (queue_lock) */
static bool q_done_before(uint64_t target) {
  if (q_taken < target) return false;
  for (const batch_rec_t *r = q_inflight; r; r = r->next)
    if (r->start < target) return false;
  return true;
}

/* Drop the copies of arguments a batch just run left on this thread: in the
   vector registers (the copies of work items) and on the stack below the
   caller's frame (frames of the callbacks and of what they called).  The idle
   thread's stop saves its registers in a signal frame there and scans it, so
   a stale copy kept an object alive until the next batch, which a quiet
   program may never run: a finalizer chain A -> B stopped at A.  It runs
   before the batch counts as done, so a collection that cgc_wait_cleanups
   let start finds no copy either. */
static CGC_NOINLINE void forget_batch(void) {
  volatile char buf[16384];
  memset((char *)buf, 0, sizeof buf);
  __asm__ volatile("" ::"r"(buf) : "memory");
  _cgc_os_clear_vector_registers();
}

static CGC_STATE size_t q_waiters;              /* threads in cgc_wait_cleanups: queue_lock */

/* Run a batch taken with q_take; the bookkeeping is once per batch.
   forget: scrub the batch's copies off this thread (forget_batch; the
   cleanup thread, whose stack nothing else overwrites). */
static void run_work(work_t *w, size_t n, batch_rec_t *rec, const char *call, bool forget) {
  size_t fins = 0;
  _cgc_barrier_t bar CGC_BARRIER = {.armed = false};
  _cgc_barrier_push(&bar, call);
  in_cleanup++;
  my_running += n;
  for (size_t i = 0; i < n; i++) {
    _cgc_barrier_set(&bar, w[i].finalizer ? "the finalizer" : "the cleanup", w[i].fn, w[i].arg);
    w[i].fn(w[i].arg);
    fins += (size_t)w[i].finalizer;
    w[i].arg = NULL;
    atomic_store_explicit(&rec->ran_fins, fins, memory_order_relaxed);
    atomic_store_explicit(&rec->ran, i + 1, memory_order_relaxed);
  }
  in_cleanup--;
  _cgc_barrier_pop(&bar);
  if (forget) forget_batch();
  atomic_fetch_add_explicit(&n_finalizers_run, fins, memory_order_relaxed);
  atomic_fetch_add_explicit(&n_cleanups_run, n - fins, memory_order_relaxed);
  pthread_mutex_lock(&queue_lock);
  batch_rec_t **pp = &q_inflight;
  while (*pp != rec) pp = &(*pp)->next;
  *pp = rec->next;
  my_running -= n;
  q_running -= n;
  q_done += n;
  if (q_waiters) pthread_cond_broadcast(&queue_cond);
  pthread_mutex_unlock(&queue_lock);
}

/* cgc_unregister_thread called by a callback takes effect once this
   thread's callbacks are over (their work items lie on its stack, which must
   stay scanned); on the cleanup thread it does nothing. */
static __thread bool unregister_after, is_runner;
static __thread int run_depth; /* nested cgc_run_cleanups/cgc_wait_cleanups calls from callbacks */
#define RUN_DEPTH_MAX 8

bool _cgc_specials_defer_unregister(void) {
  if (!in_cleanup) return false;
  unregister_after = !is_runner;
  return true;
}

static void after_callbacks(void) {
  if (in_cleanup || !unregister_after) return;
  unregister_after = false;
  cgc_unregister_thread();
}

static size_t run_cleanups_as(const char *call) {
  _cgc_ensure_init();
  /* A taken batch lives on this thread's stack only (q_take clears the
     queue's copy): the stack must be scanned, so the thread registered. */
  if (!_cgc_self && !_cgc_thread_register_self(false)) {
    _cgc_warn("%s: cannot register the calling thread (out of memory): nothing run", call);
    return 0;
  }
  /* A callback that waits for cleanups runs the queue from its own frame,
     and a callback of that batch may wait again: each level holds a batch
     on the stack, so a long queue of waiting callbacks overflowed it.  Past
     a few levels the call returns and the levels above run the rest. */
  if (run_depth >= RUN_DEPTH_MAX) return 0;
  run_depth++;
  size_t total = 0;
  work_t batch[64];
  batch_rec_t rec;
  for (;;) {
    pthread_mutex_lock(&queue_lock);
    size_t n = q_take(batch, 64, &rec);
    pthread_mutex_unlock(&queue_lock);
    if (!n) break;
    run_work(batch, n, &rec, call, false);
    total += n;
  }
  run_depth--;
  after_callbacks();
  return total;
}

size_t cgc_run_cleanups(void) { return run_cleanups_as("cgc_run_cleanups"); }

static void *runner_main(void *arg) {
  (void)arg;
  _cgc_os_set_thread_name("cgc-cleanup");
  is_runner = true;
  _cgc_thread_register_self(true);
  work_t batch[64];
  batch_rec_t rec;
  int unblocked = 0;
  for (;;) {
    /* Created with every signal blocked (it must not take the program's
       signals, which a program may want only in sigwait or a signalfd), it
       must let the suspend signal in, or collections wait for it for ever,
       and the faults a cleanup may cause; moving the suspend signal
       (cgc_set_suspend_signal) wakes it to follow. */
    int sig = _cgc_g.suspend_signal;
    if (sig != unblocked) {
      _cgc_os_block_async_but(sig);
      unblocked = sig;
    }
    uint32_t seen = atomic_load(&runner_kick);
    pthread_mutex_lock(&queue_lock);
    size_t n = q_take(batch, 64, &rec);
    pthread_mutex_unlock(&queue_lock);
    if (n) {
      /* With the program's signals blocked, callbacks included: a process
         or thread a cleanup starts inherits that mask (docs/specials.md). */
      run_work(batch, n, &rec, "the cleanup thread", true);
      continue;
    }
    while (atomic_load(&runner_kick) == seen) _cgc_os_wait(&runner_kick, seen);
  }
  return NULL;
}

static void runner_kick_all(void) {
  atomic_fetch_add(&runner_kick, 1);
  _cgc_os_wake_all(&runner_kick);
}

static void runner_wake(void) {
  if (_cgc_g.opt.cleanups_manual) return;
  pthread_mutex_lock(&queue_lock);
  bool start = !runner_started && q_first != NULL;
  if (start) runner_started = 1;
  pthread_mutex_unlock(&queue_lock);
  /* Detached, with every signal blocked until runner_main sets its mask. */
  int rc = start ? _cgc_os_thread_create(runner_main, NULL) : 0;
  if (rc != 0) {
    pthread_mutex_lock(&queue_lock);
    runner_started = 0;
    /* Waiters that saw runner_started set sleep for a runner that never
       came: they must look again and run the queue themselves. */
    pthread_cond_broadcast(&queue_cond);
    pthread_mutex_unlock(&queue_lock);
    /* Each wake tries again; the first failure is reported. */
    static atomic_bool warned;
    if (!atomic_exchange(&warned, true))
      _cgc_warn("cannot start the cleanup thread (%s); until it can be, cleanups run in "
                "cgc_run_cleanups/cgc_wait_cleanups",
                strerror(rc));
  }
  runner_kick_all();
}

/* The suspend signal moved: the cleanup thread must let the new one in. */
void _cgc_specials_signal_moved(void) { runner_kick_all(); }

static void wait_cancelled(void *unused) {
  (void)unused;
  q_waiters--;
  pthread_mutex_unlock(&queue_lock);
}

void cgc_wait_cleanups(void) {
  _cgc_ensure_init();
  if (in_cleanup) { /* from a cleanup: waiting for ourselves would never end */
    run_cleanups_as("cgc_wait_cleanups");
    return;
  }
  pthread_mutex_lock(&queue_lock);
  uint64_t target = q_pushed;
  while (!q_done_before(target)) {
    if (_cgc_g.opt.cleanups_manual || !runner_started) {
      pthread_mutex_unlock(&queue_lock);
      size_t n = run_cleanups_as("cgc_wait_cleanups");
      pthread_mutex_lock(&queue_lock);
      if (n) continue;
      if (q_done_before(target)) break;
      /* Others are running the rest. */
    }
    q_waiters++;
    /* A cancellation point: a thread cancelled here must not leave
       queue_lock held (the next collection would wait for it for ever). */
    pthread_cleanup_push(wait_cancelled, NULL);
    pthread_cond_wait(&queue_cond, &queue_lock);
    pthread_cleanup_pop(0);
    q_waiters--;
  }
  pthread_mutex_unlock(&queue_lock);
}

/* ---- public: cleanups ------------------------------------------------------------------ */

typedef enum { PTR_HEAP, PTR_STATIC } ptr_kind_t;

static CGC_COLD _Noreturn void not_live(const char *fn, const void *ptr) {
  _cgc_fatal("%s: %p is not a live object (freed with cgc_free?)", fn, ptr);
}

/* classify's slow path: ptr is not in a small or large span. */
static CGC_NOINLINE ptr_kind_t classify_slow(const char *fn, const void *ptr) {
  cgc_span_t *any = _cgc_span_of_any((uintptr_t)ptr);
  if (any && atomic_load(&any->state) == CGC_SPAN_ARENA)
    _cgc_fatal("%s: %p points into an arena (arena memory is not collected)", fn, ptr);
  if (_cgc_os_is_static(ptr)) return PTR_STATIC;
  /* Heap pages in no live span: a freed large object, or pages freed since. */
  uintptr_t a = (uintptr_t)ptr;
  if (a >= atomic_load(&_cgc_g.heap_lo) && a < atomic_load(&_cgc_g.heap_hi)) not_live(fn, ptr);
  _cgc_fatal("%s: %p is not in the collected heap or in static storage (malloc or stack memory?)", fn, ptr);
}

/* Classify ptr for call fn: a heap object (span/idx set), static storage, or
   misuse (abort).  Inline: the public calls' fast path. */
static CGC_ALWAYS_INLINE ptr_kind_t classify(const char *fn, const void *ptr, cgc_span_t **sp, uint32_t *idx) {
  cgc_span_t *s = _cgc_span_of((uintptr_t)ptr);
  if (cgc_unlikely(!s)) {
    *sp = NULL; /* (never used: the slow path returns PTR_STATIC or aborts) */
    *idx = 0;
    return classify_slow(fn, ptr);
  }
  *sp = s;
  *idx = _cgc_slot_index(s, (uintptr_t)ptr);
  uintptr_t base = _cgc_slot_base(s, *idx);
  if (cgc_unlikely(_cgc_word0_may_link(base)) && _cgc_slot_looks_free(s, base)) not_live(fn, ptr);
  if (cgc_unlikely(_cgc_g.opt.checkfree) && _cgc_checkfree_holds(base)) not_live(fn, ptr);
  return PTR_HEAP;
}

/* lock_live's refusal: unlock and report. */
static CGC_COLD _Noreturn void refuse_dead(stripe_t *st, const char *fn, const void *ptr, bool unreachable) {
  cgc_spin_unlock(&st->lock);
  if (unreachable)
    _cgc_fatal("%s: %p was unreachable at the last collection (was its only reference hidden from the "
               "collector?)",
               fn, ptr);
  _cgc_fatal("%s: %p is not a live object", fn, ptr);
}

/* Lock the stripe of heap object (s, idx) for public call fn, refusing an
   object that is not live.  Under a stripe lock the last collection's cycle
   and marks are settled (the collector holds every stripe from before it
   stops the world until after gc_cycle moves), so the test is exact: an
   object that collection found unreachable, in a span not swept since, is
   dead although its slot is not free yet.  A record on it would outlive
   it: the sweep frees the slot and the next object allocated there would
   inherit the cleanup, finalizer or weak handle. */
static CGC_ALWAYS_INLINE stripe_t *lock_live(const char *fn, const void *ptr, cgc_span_t *s, uint32_t idx) {
  rec_call = fn;
  rec_ptr_hidden = ~(uintptr_t)ptr;
  stripe_t *st = stripe_of(s);
  cgc_spin_lock(&st->lock);
  uint8_t state = atomic_load_explicit(&s->state, memory_order_relaxed);
  if (cgc_unlikely(state != CGC_SPAN_SMALL && state != CGC_SPAN_LARGE)) refuse_dead(st, fn, ptr, false);
  if (cgc_unlikely(_cgc_unmarked_unswept(s, idx, atomic_load_explicit(&_cgc_g.gc_cycle, memory_order_relaxed))))
    refuse_dead(st, fn, ptr, true);
  return st;
}

cgc_cleanup_t cgc_add_cleanup(void *ptr, void (*fn)(void *arg), void *arg) {
  cgc_cleanup_t none = {0, NULL};
  _cgc_ensure_init();
  if (!fn) _cgc_fatal("cgc_add_cleanup: %p: the cleanup function is NULL", ptr);
  cgc_span_t *s;
  uint32_t idx;
  if (!ptr) _cgc_fatal("cgc_add_cleanup: the object pointer is NULL");
  if (classify("cgc_add_cleanup", ptr, &s, &idx) == PTR_STATIC) return none;
  uintptr_t base = _cgc_slot_base(s, idx);
  if ((uintptr_t)arg >= base && (uintptr_t)arg < base + s->elemsize)
    _cgc_fatal("cgc_add_cleanup: the argument %p points into the object %p: the cleanup keeps the object alive and "
               "could never run",
               arg, ptr);
  stripe_t *st = lock_live("cgc_add_cleanup", ptr, s, idx);
  obj_rec_t *o = obj_rec(st, s, idx, true);
  if (!st->free_cleanups) refill_cleanups(st);
  cleanup_rec_t *c = st->free_cleanups;
  st->free_cleanups = c->next;
  st->ncleanups++;
  *c->argp = arg;
  c->fn = fn;
  c->id = ++st->next_id * NSTRIPES + (uint64_t)(st - stripes);
  c->obj = o;
  c->prev = NULL;
  c->next = o->cleanups;
  if (o->cleanups) o->cleanups->prev = c;
  o->cleanups = c;
  cgc_cleanup_t h = {c->id, c};
  cgc_spin_unlock(&st->lock);
  account_records((int64_t)sizeof(cleanup_rec_t));
  return h;
}

static bool on_list(const cleanup_rec_t *list, const cleanup_rec_t *c) {
  for (; list; list = list->next)
    if (list == c) return true;
  return false;
}

void cgc_cleanup_stop(cgc_cleanup_t h) {
  cleanup_rec_t *c = h._obj;
  if (!c || !h.id) return;
  for (;;) {
    obj_rec_t *o = __atomic_load_n(&c->obj, __ATOMIC_ACQUIRE);
    if (!o || __atomic_load_n(&c->id, __ATOMIC_RELAXED) != h.id) return; /* ran, queued or stopped */
    stripe_t *st = &stripes[o->stripe];
    cgc_spin_lock(&st->lock);
    if (c->obj != o || c->id != h.id) { /* changed while we locked: look again */
      cgc_spin_unlock(&st->lock);
      continue;
    }
    if (o->freeing && on_list(o->running, c)) { /* a cgc_free's finalizer stops it before it runs */
      c->fn = NULL;
      cgc_spin_unlock(&st->lock);
      return;
    }
    if (c->prev) c->prev->next = c->next;
    else o->cleanups = c->next;
    if (c->next) c->next->prev = c->prev;
    free_cleanup(st, c);
    if (obj_rec_empty(o)) drop_obj_rec(st, o);
    cgc_spin_unlock(&st->lock);
    return;
  }
}

/* ---- public: finalizers ------------------------------------------------------------------ */

int cgc_set_finalizer(void *ptr, void (*fn)(void *obj)) {
  _cgc_ensure_init();
  if (!ptr) _cgc_fatal("cgc_set_finalizer: the object pointer is NULL");
  cgc_span_t *s;
  uint32_t idx;
  if (classify("cgc_set_finalizer", ptr, &s, &idx) == PTR_STATIC) return 0;
  if (_cgc_slot_base(s, idx) != (uintptr_t)ptr)
    _cgc_fatal("cgc_set_finalizer: %p is not the start of an object (it starts at %p)", ptr,
               (void *)_cgc_slot_base(s, idx));
  stripe_t *st = lock_live("cgc_set_finalizer", ptr, s, idx);
  obj_rec_t *o = obj_rec(st, s, idx, fn != NULL);
  int rc = 0;
  if (!fn) {
    if (o && o->finalizer) {
      o->finalizer = NULL;
      atomic_fetch_sub(&nfinalizers, 1);
      if (obj_rec_empty(o)) drop_obj_rec(st, o);
    }
  } else if (o->finalizer && o->finalizer != fn) {
    rc = -1;
    errno = EEXIST;
  } else {
    if (!o->finalizer) atomic_fetch_add(&nfinalizers, 1);
    o->finalizer = fn;
  }
  cgc_spin_unlock(&st->lock);
  return rc;
}

/* ---- public: weak handles ------------------------------------------------------------------ */

/* Handles of pointers to static storage: a small table, handles held weakly. */
typedef struct {
  uintptr_t key;
  struct cgc_weak *handle;
} static_weak_t;
static CGC_STATE static_weak_t *static_tab; /* stripes[0].lock */
static CGC_STATE size_t static_cap, static_n;

static size_t static_hash(uintptr_t key, size_t cap) {
  return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

static struct cgc_weak **static_find(uintptr_t p, bool create) {
  if (create && (static_n + 1) * 2 > static_cap) {
    size_t ncap = static_cap ? static_cap * 2 : 64;
    static_weak_t *n = _cgc_os_map(ncap * sizeof *n);
    if (!n) _cgc_fatal("cgc_weak_make: out of memory");
    for (size_t i = 0; i < static_cap; i++)
      if (static_tab[i].handle) {
        size_t h = static_hash(static_tab[i].key, ncap);
        while (n[h].handle) h = (h + 1) & (ncap - 1);
        n[h] = static_tab[i];
      }
    if (static_tab) _cgc_os_unmap(static_tab, static_cap * sizeof *static_tab);
    static_tab = n;
    static_cap = ncap;
  }
  if (!static_cap) return NULL;
  uintptr_t key = p ^ _cgc_g.key;
  size_t h = static_hash(key, static_cap);
  while (static_tab[h].handle) {
    if (static_tab[h].key == key) return &static_tab[h].handle;
    h = (h + 1) & (static_cap - 1);
  }
  if (!create) return NULL;
  static_tab[h].key = key;
  static_n++;
  return &static_tab[h].handle;
}

/* Close the holes removals left in the probe chains, in place (it runs in
   the collection's pause, so it must not fail): every entry moves to the
   first empty slot of its chain before it, and passes repeat until none
   moves.  Each move shortens an entry's chain, so this ends; when a pass
   moves nothing, no chain has a hole.  Usually one pass, two at most in
   practice. */
static void static_rehash_after_removals(void) {
  size_t n = 0;
  for (size_t i = 0; i < static_cap; i++) n += static_tab[i].handle != NULL;
  static_n = n;
  for (bool moved = true; moved;) {
    moved = false;
    for (size_t i = 0; i < static_cap; i++) {
      if (!static_tab[i].handle) continue;
      size_t h = static_hash(static_tab[i].key, static_cap);
      while (h != i && static_tab[h].handle) h = (h + 1) & (static_cap - 1);
      if (h == i) continue;
      static_tab[h] = static_tab[i];
      static_tab[i].handle = NULL;
      static_tab[i].key = 0;
      moved = true;
    }
  }
}

/* The handle of ptr (object s, idx; key its key), if one was made; else
   fresh, inserted (NULL: look only). */
static struct cgc_weak *weak_get(ptr_kind_t kind, void *ptr, cgc_span_t *s, uint32_t idx, uintptr_t key,
                                 struct cgc_weak *fresh) {
  struct cgc_weak *h = NULL;
  if (kind == PTR_STATIC) {
    stripe_t *st = &stripes[0];
    cgc_spin_lock(&st->lock);
    struct cgc_weak **slot = static_find((uintptr_t)ptr, fresh != NULL);
    if (slot && !*slot) {
      *slot = fresh;
      atomic_fetch_add(&nweak, 1);
    }
    if (slot) h = *slot;
    cgc_spin_unlock(&st->lock);
    return h;
  }
  stripe_t *st = lock_live("cgc_weak_make", ptr, s, idx);
  obj_rec_t *o = obj_rec(st, s, idx, fresh != NULL);
  for (weak_node_t *w = o ? o->weaks : NULL; w && !h; w = w->next)
    if (w->key == key) h = w->handle;
  if (!h && fresh) {
    weak_node_t *w = new_weak_node(st);
    w->handle = fresh;
    w->key = key;
    w->next = o->weaks;
    o->weaks = w;
    h = fresh;
    atomic_fetch_add(&nweak, 1);
  }
  cgc_spin_unlock(&st->lock);
  return h;
}

cgc_weak_t cgc_weak_make(void *ptr) {
  if (!ptr) return NULL;
  _cgc_ensure_init();
  cgc_span_t *s;
  uint32_t idx;
  ptr_kind_t kind = classify("cgc_weak_make", ptr, &s, &idx);
  uintptr_t key = (uintptr_t)ptr ^ _cgc_g.key;
  struct cgc_weak *h = weak_get(kind, ptr, s, idx, key, NULL);
  if (h) return h;
  /* None yet: allocate one, with no stripe held (allocation may collect,
     and the collector takes the stripes), then insert it unless another
     thread did first.  If another thread's handle won, ours is garbage for
     the collector (a cgc_free would count as one of the program's frees). */
  struct cgc_weak *fresh = cgc_alloc_noscan(sizeof *fresh);
  if (!fresh) _cgc_fatal("cgc_weak_make: out of memory");
  atomic_store_explicit(&fresh->ptr, (uintptr_t)ptr | weak_tag(), memory_order_relaxed);
  fresh->self = (uintptr_t)fresh ^ _cgc_g.weak_key;
  return weak_get(kind, ptr, s, idx, key, fresh);
}

static CGC_COLD _Noreturn void not_a_handle(cgc_weak_t w) {
  _cgc_fatal("cgc_weak_value: %p is not a weak handle (one cgc_weak_make returned, kept reachable)", (void *)w);
}

void *cgc_weak_value(cgc_weak_t w) {
  if (!w) return NULL;
  /* A handle lies in a small span and names itself; anything else (an
     object passed for its handle, a forged or collected handle) is refused.
     The span is looked up before the handle is read: the heap's address
     range has holes (freed arenas fault, other mappings lie between
     chunks), and a small span's pages are always readable. */
  uintptr_t a = (uintptr_t)w;
  cgc_span_t *s = _cgc_span_of_any(a);
  if (cgc_unlikely((a & 15) || !s || atomic_load_explicit(&s->state, memory_order_relaxed) != CGC_SPAN_SMALL ||
                   w->self != (a ^ _cgc_g.weak_key)))
    not_a_handle(w);
  return (void *)(atomic_load_explicit(&w->ptr, memory_order_acquire) & WEAK_ADDR);
}

/* ---- the collector's side ---------------------------------------------------------------- */

/* Lock order: stripes, then slab_lock, queue_lock (mutators take a stripe
   and then at most one of the others). */
void _cgc_specials_lock(void) {
  for (int i = 0; i < NSTRIPES; i++) cgc_spin_lock(&stripes[i].lock);
  pthread_mutex_lock(&slab_lock);
  pthread_mutex_lock(&queue_lock);
}

void _cgc_specials_unlock(void) {
  pthread_mutex_unlock(&queue_lock);
  pthread_mutex_unlock(&slab_lock);
  for (int i = NSTRIPES; i-- > 0;) cgc_spin_unlock(&stripes[i].lock);
}

void _cgc_specials_init(void) {
}

void _cgc_specials_enumerate_roots(void (*fn)(void *, uintptr_t, uintptr_t), void *ctx) {
  for (slab_t *sl = cleanup_slabs; sl; sl = sl->next)
    fn(ctx, (uintptr_t)slab_args(sl), (uintptr_t)(slab_args(sl) + sl->n));
  for (qchunk_t *c = q_first; c; c = c->next)
    fn(ctx, (uintptr_t)&c->items[c->head], (uintptr_t)&c->items[c->tail]);
}

const char *_cgc_specials_root_name(uintptr_t where) {
  for (slab_t *sl = cleanup_slabs; sl; sl = sl->next)
    if (where >= (uintptr_t)slab_args(sl) && where < (uintptr_t)(slab_args(sl) + sl->n))
      return "the argument of a cleanup registered with cgc_add_cleanup";
  for (qchunk_t *c = q_first; c; c = c->next)
    if (where >= (uintptr_t)&c->items[c->head] && where < (uintptr_t)&c->items[c->tail])
      return "a cleanup or finalizer queued to run";
  return NULL;
}

static inline uintptr_t rec_base(const obj_rec_t *o) { return _cgc_slot_base(o->span, o->idx); }
static inline bool rec_marked(const obj_rec_t *o) { return _cgc_slot_marked(o->span, o->idx); }
/* Whether the collection must leave o's object alone: marked, or being
   freed by cgc_free (which then holds it; it drops the record itself). */
static inline bool rec_live(const obj_rec_t *o) { return o->freeing || rec_marked(o); }

/* checkfinalizers: is target reachable from the words in [lo, hi)?  A
   bounded single-threaded search with its own visited set. */
typedef struct {
  uintptr_t *set;
  size_t cap;
  uintptr_t *stack;
  size_t sp, stack_cap;
  bool full;       /* this search ran out of room (set or stack): objects past it went unvisited */
  size_t truncated; /* searches that did */
} search_t;

static bool search_visit(search_t *S, uintptr_t v, uintptr_t target) {
  cgc_span_t *s = _cgc_span_of(v);
  if (!s) return false;
  uintptr_t base = _cgc_slot_base(s, _cgc_slot_index(s, v));
  if (base == target) return true;
  size_t h = (base >> 3) * 0x9E3779B97F4A7C15ull & (S->cap - 1);
  for (size_t probes = 0; S->set[h]; probes++) {
    if (S->set[h] == base) return false;
    if (probes > S->cap / 2) {
      S->full = true;
      return false;
    }
    h = (h + 1) & (S->cap - 1);
  }
  S->set[h] = base;
  if (!s->noscan) {
    if (S->sp < S->stack_cap) S->stack[S->sp++] = base;
    else S->full = true;
  }
  return false;
}

/* Does [lo, hi) reach target?  A search that runs out of room without
   finding it is counted in S->truncated. */
static bool reaches(search_t *S, uintptr_t lo, uintptr_t hi, uintptr_t target) {
  memset(S->set, 0, S->cap * sizeof(uintptr_t));
  S->sp = 0;
  S->full = false;
  for (uintptr_t p = lo; p + sizeof(uintptr_t) <= hi; p += sizeof(uintptr_t))
    if (search_visit(S, *(uintptr_t *)p, target)) return true;
  while (S->sp) {
    uintptr_t b = S->stack[--S->sp];
    cgc_span_t *s = _cgc_span_of(b);
    for (uintptr_t p = b; p + sizeof(uintptr_t) <= b + s->elemsize; p += sizeof(uintptr_t))
      if (search_visit(S, *(uintptr_t *)p, target)) return true;
  }
  S->truncated += S->full;
  return false;
}

static void check_finalizers(void) {
  search_t S;
  S.cap = 1 << 16;
  S.stack_cap = 1 << 16;
  S.truncated = 0;
  S.set = _cgc_os_map(S.cap * sizeof(uintptr_t));
  S.stack = _cgc_os_map(S.stack_cap * sizeof(uintptr_t));
  if (!S.set || !S.stack) {
    _cgc_warn("checkfinalizers: out of memory for the search; this collection is not checked");
    if (S.set) _cgc_os_unmap(S.set, S.cap * sizeof(uintptr_t));
    if (S.stack) _cgc_os_unmap(S.stack, S.stack_cap * sizeof(uintptr_t));
    return;
  }
  for (int i = 0; i < NSTRIPES; i++)
    for (obj_rec_t *o = stripes[i].objs; o; o = o->next) {
      uintptr_t base = rec_base(o);
      for (cleanup_rec_t *c = o->cleanups; c; c = c->next)
        if (reaches(&S, (uintptr_t)c->argp, (uintptr_t)(c->argp + 1), base))
          _cgc_warn("checkfinalizers: object %p (%zu bytes) is reachable from the argument %p of its own cleanup: "
                    "it can never be collected",
                    (void *)base, o->span->elemsize, *c->argp);
      /* A noscan object's words are never scanned: they cannot keep it. */
      if (o->finalizer && !o->span->noscan && reaches(&S, base, base + o->span->elemsize, base))
        _cgc_warn("checkfinalizers: object %p (%zu bytes) with a finalizer is reachable from itself: a cycle with a "
                  "finalizer is never finalized",
                  (void *)base, o->span->elemsize);
    }
  if (S.truncated)
    _cgc_warn("checkfinalizers: %zu searches stopped after at most %zu objects each: an object reached only through "
              "more is not checked", S.truncated, S.cap);
  _cgc_os_unmap(S.set, S.cap * sizeof(uintptr_t));
  _cgc_os_unmap(S.stack, S.stack_cap * sizeof(uintptr_t));
}

/* Step 2 for one record: clear its weak handles if the object is unmarked;
   if prune, also drop the nodes of handles that died (unmarked).  With
   finalizers, pruning waits until step 3 resurrected what it will: a
   finalizer may keep a handle alive (one set on the handle itself, or on an
   object that reaches it), and a handle without a node would never be
   cleared. */
static void weaks_at_gc(stripe_t *st, obj_rec_t *o, bool prune) {
  bool dead = !rec_live(o);
  weak_node_t **pw = &o->weaks;
  while (*pw) {
    weak_node_t *w = *pw;
    bool handle_dead = prune && !_cgc_is_marked((uintptr_t)w->handle);
    if (dead || handle_dead) {
      if (dead) weak_clear(w->handle);
      if (handle_dead) w->handle->self = 0; /* reclaimed: cgc_weak_value refuses it from now on */
      *pw = w->next;
      w->next = st->free_weaks;
      st->free_weaks = w;
      atomic_fetch_sub(&nweak, 1);
    } else {
      pw = &w->next;
    }
  }
}

/* Step 4 for one record: queue the cleanups of an unmarked object; drop the
   record if nothing is left on it. */
static void cleanups_at_gc(stripe_t *st, obj_rec_t *o) {
  if (o->cleanups && !rec_live(o)) {
    cleanup_rec_t *cn;
    for (cleanup_rec_t *c = o->cleanups; c; c = cn) {
      cn = c->next;
      if (!q_push(c->fn, *c->argp, 0)) { /* the rest stay on the object, kept for the next collection */
        o->cleanups = c;
        c->prev = NULL;
        _cgc_mark_from(rec_base(o));
        return;
      }
      free_cleanup(st, c);
    }
    o->cleanups = NULL;
  }
  if (obj_rec_empty(o)) drop_obj_rec(st, o);
}

/* Step 2 for the handles of static pointers: drop those that died. */
static void static_weaks_at_gc(void) {
  bool removed = false;
  for (size_t i = 0; i < static_cap; i++)
    if (static_tab[i].handle && !_cgc_is_marked((uintptr_t)static_tab[i].handle)) {
      static_tab[i].handle->self = 0; /* reclaimed: cgc_weak_value refuses it from now on */
      static_tab[i].handle = NULL;
      atomic_fetch_sub(&nweak, 1);
      removed = true;
    }
  if (removed) static_rehash_after_removals();
}

void _cgc_specials_process_stw(void) {
  q_map_failed = false;
  if (_cgc_g.opt.checkfinalizers) check_finalizers();
  bool any_fin = atomic_load(&nfinalizers) > 0, any_weak = atomic_load(&nweak) > 0;
  if (any_fin) {
    /* 1. Mark what unmarked finalizable objects reach (not the objects). */
    for (int i = 0; i < NSTRIPES; i++)
      for (obj_rec_t *o = stripes[i].objs; o; o = o->next)
        if (o->finalizer && !rec_live(o)) _cgc_mark_children(rec_base(o));
    /* 2. Weak handles: clear those of unmarked objects. */
    for (int i = 0; i < NSTRIPES && any_weak; i++)
      for (obj_rec_t *o = stripes[i].objs; o; o = o->next)
        if (o->weaks) weaks_at_gc(&stripes[i], o, false);
    /* 3. Finalizers of unmarked objects: queue them, resurrect the objects. */
    for (int i = 0; i < NSTRIPES; i++)
      for (obj_rec_t *o = stripes[i].objs; o; o = o->next)
        if (o->finalizer && !rec_live(o)) {
          uintptr_t base = rec_base(o);
          if (q_push(o->finalizer, (void *)base, 1)) { /* else kept for the next collection */
            o->finalizer = NULL;
            atomic_fetch_sub(&nfinalizers, 1);
          }
          _cgc_mark_from(base);
        }
  }
  /* 4. Drop the nodes of handles that died (after step 3 resurrected what
     it will); queue the cleanups of objects still unmarked; drop empty
     records.  Without finalizers nothing is resurrected, so this one walk
     over the records also does step 2 (each walk is a cache miss per
     record). */
  static_weaks_at_gc();
  for (int i = 0; i < NSTRIPES; i++) {
    obj_rec_t *next;
    for (obj_rec_t *o = stripes[i].objs; o; o = next) {
      next = o->next;
      if (any_weak && o->weaks) weaks_at_gc(&stripes[i], o, true);
      cleanups_at_gc(&stripes[i], o);
    }
  }
}

void _cgc_specials_after_gc(void) {
  pthread_mutex_lock(&queue_lock);
  /* A spare chunk ready for the next pause, which cannot wait for memory
     (and the queue's work, if the address space runs out, waits a cycle). */
  if (!q_spare && q_pushed) { /* a program that queues work at all */
    qchunk_t *c = _cgc_os_map(sizeof *c);
    if (c) {
      c->next = NULL;
      q_spare = c;
      q_nspare++;
    }
  }
  bool pending = q_first != NULL;
  pthread_mutex_unlock(&queue_lock);
  if (pending) runner_wake();
}

/* Under the stripe lock: clear o's weak handles (dropping their nodes) and
   take its finalizer and its cleanups off it.  The cleanups keep their
   records but lose their object, so cgc_cleanup_stop on them returns at
   once. */
/* From now on cgc_cleanup_stop of these does nothing (they run, or ran). */
static void unlink_cleanups(cleanup_rec_t *list) {
  for (cleanup_rec_t *c = list; c; c = c->next) __atomic_store_n(&c->obj, NULL, __ATOMIC_RELEASE);
}

/* keep_links: the cleanups still name the record, so that a finalizer that
   runs before them can stop them (cgc_cleanup_stop marks them, fn NULL). */
static void (*detach_specials(stripe_t *st, obj_rec_t *o, cleanup_rec_t **list, bool keep_links))(void *) {
  for (weak_node_t *w = o->weaks, *wn; w; w = wn) {
    wn = w->next;
    weak_clear(w->handle);
    w->next = st->free_weaks;
    st->free_weaks = w;
    atomic_fetch_sub(&nweak, 1);
  }
  o->weaks = NULL;
  void (*fin)(void *) = o->finalizer;
  if (fin) atomic_fetch_sub(&nfinalizers, 1);
  o->finalizer = NULL;
  *list = o->cleanups;
  if (!keep_links) unlink_cleanups(*list);
  o->cleanups = NULL;
  return fin;
}

static void free_cleanup_list(stripe_t *st, cleanup_rec_t *list) {
  for (cleanup_rec_t *c = list, *cn; c; c = cn) {
    cn = c->next;
    free_cleanup(st, c);
  }
}

/* The end of a free with specials (stripe held): what the callbacks
   attached to the dying object meanwhile is dropped unrun (weak handles
   cleared), the cleanups that ran are freed, and so is the record. */
static void finish_free(stripe_t *st, obj_rec_t *o) {
  cleanup_rec_t *late;
  detach_specials(st, o, &late, false);
  free_cleanup_list(st, late);
  free_cleanup_list(st, o->running);
  o->running = NULL;
  o->freeing = 0;
  drop_obj_rec(st, o);
}

/* Identifies the thread freeing an object (obj_rec_t.freeing); its address
   is the same in a child process for the thread that forked. */
static __thread char free_token;

/* cgc_free of an object with specials: weak handles become NULL, then the
   finalizer and the cleanups run here, before cgc_free returns.  The record
   stays in place, marked as being freed, until they ran: a cgc_free of the
   same object from inside them (a finalizer that frees its object, as it may
   when the collector calls it) finds it and does nothing, and the outer call
   frees the object once.  The cleanups' arguments stay in the scanned slabs
   until they ran. */
int _cgc_specials_on_free(cgc_span_t *s, uint32_t idx, uintptr_t base, const char *call) {
  /* The arguments move to this stack while their cleanups run, and the
     object stays alive through the callbacks only by the caller's reference:
     both need the stack scanned, so an unregistered caller (a thread made
     behind cgc's back, or one that unregistered) registers first, as the
     free's push of the slot would afterwards.  If it cannot, the arguments
     stay in the slabs until the record is freed. */
  bool on_stack = _cgc_self || _cgc_thread_register_self(false);
  stripe_t *st = stripe_of(s);
  cgc_spin_lock(&st->lock);
  obj_rec_t *o = s->specials ? obj_rec(st, s, idx, false) : NULL;
  if (!o || o->freeing) {
    bool other = o && o->freeing != (uintptr_t)&free_token;
    cgc_spin_unlock(&st->lock);
    if (cgc_unlikely(other))
      _cgc_fatal("%s: double free of %p: another thread's cgc_free is freeing it (running its "
                 "finalizer or cleanups)", call, (void *)base);
    return o ? CGC_ONFREE_NESTED : CGC_ONFREE_NONE;
  }
  cleanup_rec_t *list;
  void (*fin)(void *) = detach_specials(st, o, &list, o->finalizer != NULL);
  o->running = list;
  o->freeing = (uintptr_t)&free_token;
  cgc_spin_unlock(&st->lock);
  _cgc_barrier_t bar CGC_BARRIER = {.armed = false};
  _cgc_barrier_push(&bar, call);
  in_cleanup++;
  if (fin) {
    _cgc_barrier_set(&bar, "the finalizer", fin, (void *)base);
    fin((void *)base);
    atomic_fetch_add(&n_finalizers_run, 1);
    cgc_spin_lock(&st->lock);
    unlink_cleanups(list);
    cgc_spin_unlock(&st->lock);
  }
  for (cleanup_rec_t *c = list; c; c = c->next) {
    if (!c->fn) continue; /* stopped by the finalizer */
    /* The argument moves to this stack for the call, as a batch's does on
       the cleanup thread: the record's slab word (a root) is cleared, so
       that a cleanup that frees its argument leaves no reference behind
       for checkfree to report. */
    void *arg = *c->argp;
    if (on_stack) *c->argp = NULL;
    _cgc_barrier_set(&bar, "the cleanup", c->fn, arg);
    c->fn(arg); /* bar holds arg on this stack meanwhile */
    atomic_fetch_add(&n_cleanups_run, 1);
  }
  in_cleanup--;
  _cgc_barrier_pop(&bar);
  cgc_spin_lock(&st->lock);
  finish_free(st, o);
  cgc_spin_unlock(&st->lock);
  after_callbacks();
  return CGC_ONFREE_RAN;
}

/* Frees that other threads had in progress when the program forked will
   never finish in the child: drop their records (what had not run does not
   run here, like the work the cleanup thread had taken); the objects stay
   allocated, garbage for a later collection.  Every stripe is held. */
static void orphaned_frees_fork_child(void) {
  for (int i = 0; i < NSTRIPES; i++) {
    obj_rec_t *next;
    for (obj_rec_t *o = stripes[i].objs; o; o = next) {
      next = o->next;
      if (o->freeing && o->freeing != (uintptr_t)&free_token) finish_free(&stripes[i], o);
    }
  }
}

/* Bytes of cleanup records in use; the collector holds every stripe. */
size_t _cgc_specials_record_bytes(void) {
  size_t n = 0;
  for (int i = 0; i < NSTRIPES; i++) n += stripes[i].ncleanups;
  return n * sizeof(cleanup_rec_t);
}

void _cgc_specials_fork_child(void) {
  orphaned_frees_fork_child();
  /* The cleanup thread did not survive the fork, and work it had taken runs
     in the parent only: count it as done here. */
  runner_started = 0;
  q_done += q_running - my_running;
  q_running = my_running;
  for (batch_rec_t **pp = &q_inflight; *pp;) {
    batch_rec_t *r = *pp;
    if (r->owner != &my_running) { /* another thread's: done, as far as the child goes; what it ran counts */
      size_t ran = atomic_load_explicit(&r->ran, memory_order_relaxed);
      size_t fins = atomic_load_explicit(&r->ran_fins, memory_order_relaxed);
      atomic_fetch_add_explicit(&n_finalizers_run, fins, memory_order_relaxed);
      atomic_fetch_add_explicit(&n_cleanups_run, ran - fins, memory_order_relaxed);
      *pp = r->next;
    } else {
      pp = &r->next;
    }
  }
  q_waiters = 0;
  pthread_cond_init(&queue_cond, NULL);
}

uint64_t _cgc_stats_specials(cgc_stats_t *out) {
  out->num_cleanups_run = atomic_load(&n_cleanups_run);
  out->num_finalizers_run = atomic_load(&n_finalizers_run);
  pthread_mutex_lock(&queue_lock);
  out->cleanups_queued = q_pushed - q_done;
  pthread_mutex_unlock(&queue_lock);
  out->num_weak_handles = atomic_load(&nweak);
  return 0;
}
