/*
 * cgc_defer.h — defer, panic and recover for C (see docs/defer.md).
 *
 *   CGC_DEFER(fn, arg);       fn(arg) when the enclosing block is left, LIFO
 *   CGC_DEFER_FREE(p);        cgc_free(p) when the enclosing block is left
 *   CGC_FRAME();              opens the function's dynamic-defer frame (once, at the top)
 *   CGC_DEFER_DYN(fn, arg);   fn(arg) when the block holding CGC_FRAME is left;
 *                             accumulates (loops), LIFO
 *   cgc_panic(v), cgc_panicf(fmt, ...)   unwind to the nearest cgc_protect,
 *                             running every pending defer on the way
 *   cgc_protect(fn, arg, &v)  runs fn(arg); 1 (and the panic value in v) if it panicked
 *   cgc_panic_value()         in a deferred call: the panic running it, else NULL
 *
 * fn is a function taking one pointer argument (its result, if any, is
 * ignored); arg is evaluated when the defer statement runs, as in Go.
 *
 * Which defers run during a panic:
 *   - CGC_DEFER_DYN records (the frame is linked into a per-thread chain): always.
 *   - CGC_DEFER / CGC_DEFER_FREE in a translation unit compiled with
 *     -fexceptions: run by the unwinder, at no cost on the normal path.
 *   - CGC_DEFER / CGC_DEFER_FREE in a unit compiled without -fexceptions:
 *     registered in the per-thread chain (a few instructions each), so they run
 *     too.  Define CGC_DEFER_REGISTER to 0 or 1 before including cgc.h to
 *     override the choice; with 0 and no -fexceptions they do not run when a
 *     panic passes.
 * longjmp, exit, abort and signals never run defers.
 */
#ifndef CGC_DEFER_H
#define CGC_DEFER_H

#ifndef CGC_H
#include "cgc.h"
#endif

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* GNU compilers take the attribute in every language and standard (C99 and
   C++98 included); others get the standard spelling. */
#if defined(__GNUC__) || defined(__clang__)
#define CGC__NORETURN __attribute__((__noreturn__))
#elif defined(__cplusplus)
#define CGC__NORETURN [[noreturn]]
#else
#define CGC__NORETURN _Noreturn
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CGC__COLD __attribute__((cold))
#define CGC__PRINTF __attribute__((format(printf, 1, 2)))
#define CGC__NOTHROW __attribute__((nothrow))
#else
#define CGC__COLD
#define CGC__PRINTF
#define CGC__NOTHROW
#endif

/* Block defers register in the per-thread chain when the unit has no unwind
   cleanups (-fexceptions), so that panics still run them. */
#ifndef CGC_DEFER_REGISTER
#ifdef __EXCEPTIONS
#define CGC_DEFER_REGISTER 0
#else
#define CGC_DEFER_REGISTER 1
#endif
#endif

/* Dynamic-defer records a frame holds on the stack before it spills to chunks
   allocated from the collected heap. */
#define CGC_DEFER_INLINE 8

/* ------------------------------------------------------------------------ */
/* Panic and recover                                                         */
/* ------------------------------------------------------------------------ */

/* Start a panic with the given value.  Unwinds to the innermost cgc_protect on
   this thread, running pending defers innermost first; without one, runs every
   pending defer of the thread, prints "panic: ..." and a backtrace to stderr
   and aborts.  cgc_panic(NULL) panics with the string
   "cgc_panic called with NULL" instead (so that a panic is never NULL). */
CGC__NORETURN CGC_API void cgc_panic(void *value) CGC__COLD;
/* Panic with a formatted string (allocated from the collected heap, never
   scanned) as the value. */
CGC__NORETURN CGC_API void cgc_panicf(const char *fmt, ...) CGC__COLD CGC__PRINTF;
/* Call fn(arg).  Returns 0 if it returned; 1 if a panic reached this call, in
   which case every defer between ran and *panic_value (if panic_value is not
   NULL) is the panic's value.  On a 0 return *panic_value is set to NULL. */
CGC_API int cgc_protect(void (*fn)(void *), void *arg, void **panic_value);
/* Called by a deferred function: the value of the panic that is running it,
   or NULL when it runs because its block or frame was left normally. */
CGC_API void *cgc_panic_value(void) CGC__NOTHROW;

/* The defer macros need __attribute__((cleanup)) (GCC, Clang). */
#if defined(__GNUC__) || defined(__clang__)

/* ------------------------------------------------------------------------ */
/* Internal: used by the macros below                                         */
/* ------------------------------------------------------------------------ */

typedef struct cgc__rec {
  void (*fn)(void *);
  void *arg;
} cgc__rec_t;

typedef struct cgc__chunk cgc__chunk_t;

/* A link in the thread's defer chain: a dynamic-defer frame, or one
   registered block defer.  Records live right after the header, then in
   chunks.  [segment base, top) are pending; limit ends the current segment. */
typedef struct cgc__frame {
  struct cgc__frame *prev;
  cgc__rec_t *top;
  cgc__rec_t *limit;
  cgc__chunk_t *chunk;
} cgc__frame_t;

typedef struct cgc__dframe {
  cgc__frame_t f;
  cgc__rec_t inl[CGC_DEFER_INLINE];
} cgc__dframe_t;

typedef struct cgc__bnode {
  cgc__frame_t f;
  cgc__rec_t rec;
} cgc__bnode_t;

/* Innermost link of this thread's defer chain. */
CGC_API extern __thread cgc__frame_t *cgc__defer_chain __attribute__((tls_model("initial-exec")));
/* Spill: returns a free record in a new chunk (slow path of CGC_DEFER_DYN). */
CGC_API cgc__rec_t *cgc__frame_grow(cgc__frame_t *f);
/* Run a frame's pending records, newest first. */
CGC_API void cgc__frame_run(cgc__frame_t *f);

#define CGC__CAT_(a, b) a##b
#define CGC__CAT(a, b) CGC__CAT_(a, b)

/* fn as void (*)(void *), after checking that fn(arg) is a valid call. */
#define CGC__FN(fn, arg)                                                          \
  ((void)sizeof((fn)(arg), 0), (void (*)(void *))(void (*)(void))(fn))

/* A deferred function is always called, never inlined, and never
   tail-called by the code that runs it:
   - cgc_panic_value tells the deferred function itself from what it calls
     by its frame; a block defer's function inlined into the deferred
     function, or tail-called at its end, would take its place (and answer
     for a panic on its normal exit).
   - Clang makes an unwind that escapes a cleanup run by a landing pad fatal
     (as C++ does).  When a deferred call panics during a panic, the runtime
     resumes such a frame right after that call instead, which needs a real
     call there.
   The cost is an indirect call where a direct one, or inlining, was
   possible. */
#define CGC__CALL_OPAQUE(f) __asm__("" : "+r"(f))
#define CGC__NO_TAIL_CALL() __asm__ volatile("")

static inline __attribute__((always_inline)) void cgc__defer_run(cgc__rec_t *r) {
  void (*f)(void *) = r->fn;
  CGC__CALL_OPAQUE(f);
  f(r->arg);
  CGC__NO_TAIL_CALL();
}

static inline __attribute__((always_inline)) void *cgc__link(cgc__frame_t *f, cgc__rec_t *rec,
                                                           cgc__rec_t *limit) {
  f->prev = cgc__defer_chain;
  f->top = rec;
  f->limit = limit;
  f->chunk = 0;
  cgc__defer_chain = f;
  return f;
}

static inline __attribute__((always_inline)) void *cgc__link_one(cgc__bnode_t *n,
                                                                void (*fn)(void *), void *arg) {
  n->rec.fn = fn;
  n->rec.arg = arg;
  return cgc__link(&n->f, &n->rec + 1, &n->rec + 1);
}

static inline __attribute__((always_inline)) void cgc__bnode_exit(cgc__bnode_t *n) {
  void (*f)(void *) = n->rec.fn;
  CGC__CALL_OPAQUE(f);
  cgc__defer_chain = n->f.prev;
  f(n->rec.arg);
  CGC__NO_TAIL_CALL();
}

static inline __attribute__((always_inline)) void cgc__frame_exit(cgc__dframe_t *d) {
  if (__builtin_expect(d->f.top != d->inl, 1)) cgc__frame_run(&d->f);
  cgc__defer_chain = d->f.prev;
}

static inline __attribute__((always_inline)) void cgc__defer_dyn(cgc__frame_t *f, void (*fn)(void *),
                                                               void *arg) {
  cgc__rec_t *r = f->top;
  if (__builtin_expect(r == f->limit, 0)) r = cgc__frame_grow(f);
  r->fn = fn;
  r->arg = arg;
  f->top = r + 1;
}

/* Unwind mode: one local with a cleanup; the compiler calls fn directly at
   every exit of the block, and from the landing pad when a panic passes. */
/* The attributes follow the type: leading ones would let GCC take
   `if (c) CGC_DEFER(...);` (or a label before it) for attributes on an
   empty statement, drop them, and compile a defer that never runs; here
   that is the error a declaration in such a place is. */
#define CGC__DEFER_UNWIND(n, f_, a_)                                              \
  cgc__rec_t __attribute__((cleanup(cgc__defer_run), unused)) CGC__CAT(cgc__defer_, n) = \
      {CGC__FN(f_, a_), (void *)(a_)}

/* Registered mode: the record is also linked into the thread's chain.  fn
   and arg are evaluated first, into locals of the first declaration (both
   derive from void), before the node's cleanup is in force: an argument
   expression that panics (or is unwound by a thread cancellation) then
   leaves no defer behind, as in unwind mode, and the cleanup never sees an
   uninitialised node.  The link, in the node's own declaration, cannot fail. */
#define CGC__DEFER_REG(n, f_, a_)                                                 \
  void (*CGC__CAT(cgc__defer_fn_, n))(void *) = CGC__FN(f_, a_),                  \
       *CGC__CAT(cgc__defer_arg_, n) = (void *)(a_);                              \
  __attribute__((unused)) cgc__bnode_t CGC__CAT(cgc__defer_, n)                  \
      __attribute__((cleanup(cgc__bnode_exit))),                                 \
      *CGC__CAT(cgc__defer_link_, n) = (cgc__bnode_t *)cgc__link_one(            \
          &CGC__CAT(cgc__defer_, n), CGC__CAT(cgc__defer_fn_, n),                \
          CGC__CAT(cgc__defer_arg_, n))

#if CGC_DEFER_REGISTER
#define CGC__DEFER(n, f_, a_) CGC__DEFER_REG(n, f_, a_)
#else
#define CGC__DEFER(n, f_, a_) CGC__DEFER_UNWIND(n, f_, a_)
#endif

/* The frame variable; its name is what a compiler reports when CGC_DEFER_DYN
   is used in a function without CGC_FRAME(). */
#define CGC__FRAME_VAR cgc_frame__CGC_DEFER_DYN_needs_CGC_FRAME_in_this_function

/* ------------------------------------------------------------------------ */
/* Public macros                                                             */
/* ------------------------------------------------------------------------ */

/* A declaration: it cannot be the direct body of if/for/while or follow a
   label; do not jump (goto, switch case) from before it into its scope. */
#define CGC_DEFER(fn, arg) CGC__DEFER(__COUNTER__, fn, arg)
#define CGC_DEFER_FREE(p) CGC_DEFER(cgc_free, p)

#define CGC_FRAME()                                                               \
  __attribute__((unused)) cgc__dframe_t CGC__FRAME_VAR                            \
      __attribute__((cleanup(cgc__frame_exit))),                                 \
      *cgc__frame_link_ = (cgc__dframe_t *)cgc__link(                             \
          &CGC__FRAME_VAR.f, CGC__FRAME_VAR.inl, CGC__FRAME_VAR.inl + CGC_DEFER_INLINE)

#define CGC_DEFER_DYN(fn, arg)                                                    \
  cgc__defer_dyn(&CGC__FRAME_VAR.f, CGC__FN(fn, arg), (void *)(arg))

#endif /* __GNUC__ || __clang__ */

#ifdef __cplusplus
}
#endif

#endif /* CGC_DEFER_H */
