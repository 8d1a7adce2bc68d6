/*
 * cgc — a conservative, non-moving, thread-safe garbage-collected heap for C,
 * with Go's tools on top: cleanups, finalizers, weak pointers, explicit free,
 * arenas, and defer/panic/recover.
 *
 * Link with -lcgc (pkg-config cgc).  Threads made with pthread_create are
 * registered automatically; see README.md for what is and is not scanned.
 */
#ifndef CGC_H
#define CGC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CGC_API __attribute__((visibility("default")))
#define CGC_MALLOC_ATTR(n) __attribute__((malloc, alloc_size(n), warn_unused_result))
#define CGC_CALLOC_ATTR __attribute__((malloc, alloc_size(1, 2), warn_unused_result))
#else
#define CGC_API
#define CGC_MALLOC_ATTR(n)
#define CGC_CALLOC_ATTR
#endif

/* ------------------------------------------------------------------------ */
/* The collector core                                                        */
/* ------------------------------------------------------------------------ */

typedef struct cgc_stats {
  uint64_t num_gc;            /* completed collections */
  uint64_t live_bytes;        /* bytes in allocated objects: survivors of the last collection,
                                 plus allocations since, minus explicit frees */
  uint64_t mapped_bytes;      /* heap memory obtained from the OS and not given back */
  uint64_t total_alloc_bytes; /* cumulative bytes allocated */
  uint64_t pause_total_ns;    /* cumulative stop-the-world time */
  uint64_t pause_max_ns;      /* longest single stop-the-world pause */
  /* Additional fields (cgc extensions). */
  uint64_t heap_goal_bytes;   /* the pacer's goal: the next collection starts when the
                                 heap reaches it */
  uint64_t last_live_bytes;   /* bytes found reachable by the last collection */
  uint64_t released_bytes;    /* cumulative bytes given back to the OS */
  uint64_t total_alloc_objects; /* cumulative objects allocated (with the heap objects cgc makes
                                   for the program: weak handles, thread start records,
                                   cgc_panicf strings) */
  uint64_t total_free_objects;  /* cumulative objects freed explicitly (cgc_free) */
  uint64_t total_free_bytes;    /* cumulative bytes freed explicitly */
  uint64_t mark_total_ns;     /* cumulative time spent marking (inside pauses) */
  uint64_t last_pause_ns;     /* the last collection's pause */
  uint64_t num_forced_gc;     /* collections started by cgc_collect */
  uint64_t num_threads;       /* registered threads now */
  uint64_t mark_workers;      /* threads that mark in parallel (including the collector) */
  uint64_t num_cleanups_run;  /* cleanups run so far */
  uint64_t num_finalizers_run;/* finalizers run so far */
  uint64_t cleanups_queued;   /* cleanups and finalizers queued and not yet run */
  uint64_t num_weak_handles;  /* live weak handles */
  uint64_t arena_bytes;       /* bytes in live arenas' chunks */
} cgc_stats_t;

CGC_API void   cgc_init(void);                          /* optional, idempotent; the first allocation calls it */
CGC_API void  *cgc_alloc(size_t size) CGC_MALLOC_ATTR(1);        /* zeroed; scanned conservatively */
CGC_API void  *cgc_alloc_noscan(size_t size) CGC_MALLOC_ATTR(1); /* zeroed; never scanned */
CGC_API void  *cgc_calloc(size_t count, size_t size) CGC_CALLOC_ATTR; /* NULL + ENOMEM on overflow */
CGC_API char  *cgc_strdup(const char *s);               /* noscan copy */
CGC_API size_t cgc_usable_size(const void *p);          /* p: a base pointer from cgc_alloc*; NULL: 0 */
CGC_API void  *cgc_base(const void *p);                 /* base of the live object containing p, else NULL */
CGC_API void   cgc_collect(void);                       /* full, blocking collection (Go's runtime.GC) */
CGC_API int    cgc_set_gc_percent(int percent);         /* returns the previous value; default 100; < 0 = off */
CGC_API int64_t cgc_set_memory_limit(int64_t bytes);    /* soft limit; returns the previous; < 0 only queries */
CGC_API void   cgc_keep_alive(const void *p);           /* p stays reachable up to this call */
CGC_API void   cgc_add_roots(const void *start, size_t size);  /* scan [start, start+size) as a root */
CGC_API void   cgc_remove_roots(const void *start);
CGC_API int    cgc_register_thread(void);               /* for threads not created with pthread_create */
CGC_API void   cgc_unregister_thread(void);
CGC_API void   cgc_read_stats(cgc_stats_t *out);

/* Extensions. */

/* Is p inside the collected heap (a live object or not)?  Cheap. */
CGC_API int    cgc_is_heap_ptr(const void *p);
/* Choose the signal used to stop threads for a collection (default SIGPWR).
   Works until the first collection; returns 0, or -1 if too late or the
   signal is unusable (SIGKILL, SIGSTOP, the C library's own real-time
   signals).  The environment variable CGC_SIGNAL does the same. */
CGC_API int    cgc_set_suspend_signal(int sig);
/* The signal in use. */
CGC_API int    cgc_suspend_signal(void);
/* Number of completed collections; cheaper than cgc_read_stats. */
CGC_API uint64_t cgc_gc_count(void);
/* Finish all sweeping and give free memory back to the OS now. */
CGC_API void   cgc_release_memory(void);

/* ------------------------------------------------------------------------ */
/* Cleanups, finalizers, weak pointers                                       */
/* ------------------------------------------------------------------------ */

typedef struct { uint64_t id; /* implementation-defined fields allowed */ void *_obj; } cgc_cleanup_t;
CGC_API cgc_cleanup_t cgc_add_cleanup(void *ptr, void (*fn)(void *arg), void *arg);
CGC_API void  cgc_cleanup_stop(cgc_cleanup_t c);
CGC_API int   cgc_set_finalizer(void *ptr, void (*fn)(void *obj));  /* 0 on success; fn NULL removes */
typedef struct cgc_weak *cgc_weak_t;                          /* one machine word */
CGC_API cgc_weak_t cgc_weak_make(void *ptr);
CGC_API void *cgc_weak_value(cgc_weak_t w);
CGC_API size_t cgc_run_cleanups(void);   /* run queued cleanups/finalizers on this thread; returns count */
CGC_API void  cgc_wait_cleanups(void);   /* return once everything queued before the call has run */

/* ------------------------------------------------------------------------ */
/* Explicit free, growable buffers, arenas                                   */
/* ------------------------------------------------------------------------ */

CGC_API void  cgc_free(void *p);                    /* NULL is a no-op */
/* cgc_realloc: p NULL: allocate; size 0: free p and return NULL; keeps p's
   scan/noscan kind.  Bytes past the old size are zero for scanned objects and
   unspecified for noscan ones (as with C's realloc).  On failure NULL with
   errno ENOMEM, and p is left as it was. */
CGC_API void *cgc_realloc(void *p, size_t size);    /* p NULL: allocate; keeps p's scan/noscan kind */
typedef struct cgc_arena cgc_arena_t;
CGC_API cgc_arena_t *cgc_arena_new(void);
CGC_API void *cgc_arena_alloc(cgc_arena_t *a, size_t size);         /* zeroed; scanned */
CGC_API void *cgc_arena_alloc_noscan(cgc_arena_t *a, size_t size);  /* zeroed; not scanned */
CGC_API void  cgc_arena_free(cgc_arena_t *a);

#ifdef __cplusplus
}
#endif

/* defer / panic / recover */
#include "cgc_defer.h"

#endif /* CGC_H */
