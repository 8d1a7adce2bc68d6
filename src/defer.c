/* defer.c — dynamic-defer frames, panic and recover (see docs/defer.md).
 *
 * Per-thread state, all of it LIFO and ordered by stack address (the stack
 * grows down: an inner frame has a lower address):
 *
 *   cgc__defer_chain  dynamic-defer frames (CGC_FRAME) and registered block
 *                     defers.  Linked by the macros in cgc_defer.h, unlinked
 *                     when their scope exits or when a panic runs them.
 *   ts.protect        active cgc_protect calls.  Each holds a jmp_buf and the
 *                     record of the panic that unwinds to it.
 *   ts.panic          the record of the panic in flight, or NULL.
 *
 * A panic unwinds with _Unwind_ForcedUnwind.  The unwinder hands every frame,
 * innermost first, to panic_stop before it runs the frame's landing pad (the
 * cleanups of units compiled with -fexceptions: block defers and CGC_FRAME).
 * panic_stop first runs the chain links below that frame (frames already
 * passed that had no landing pad for them); when the unwinder gets past the
 * cgc_protect frame, the rest below it runs and cgc_protect is longjmp'ed to.
 *
 * Nested panics.  A panic raised while another one with the same target is
 * running a deferred call supersedes it (Go: the first is aborted; the
 * remaining deferred calls run for the new one).  Here the new panic unwinds
 * the deferred call and everything it called, then returns to the point that
 * called the deferred function, as if it had returned, and the first unwind
 * goes on, now carrying the new value.  That point is a defer runner (a
 * setjmp in run_panic) or a landing pad.  For a landing pad the frame is
 * resumed right after its call of the deferred function (x86-64); where the
 * compiler's landing pad lets an unwind continue through its cleanup calls
 * (GCC), the new unwind simply goes on.  Each unwind in progress is an
 * "instance" of the record; superseding pushes one.
 */
#include <execinfo.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <unwind.h>

#include "cgc.h"
#include "internal.h"

#ifdef CGC_ASAN
void __asan_handle_no_return(void);
#endif

/* ------------------------------------------------------------------------ */
/* State                                                                     */
/* ------------------------------------------------------------------------ */

__thread cgc__frame_t *cgc__defer_chain;

struct cgc__chunk {
  struct cgc__chunk *prev; /* previous segment's chunk, NULL: the inline records */
  cgc__rec_t *prev_limit;  /* the previous segment's limit (it was full) */
  size_t cap;
  cgc__rec_t recs[];
};

#define CHUNK_FIRST 32
#define CHUNK_LEVELS 9 /* capacities 32 << 0 ... 32 << 8 = 8192 records */
#define CHUNK_MAX (CHUNK_FIRST << (CHUNK_LEVELS - 1))
#define BACKTRACE_MAX 64
#define ABORTED_MAX 8
#define INST_INLINE 3
/* "cgc\0PANC": the exception class of a panic's forced unwind. */
#define PANIC_CLASS 0x6367630050414e43ULL

enum { PANIC_DONE = 0, PANIC_UNWINDING = 1 };

/* A defer runner working for a panic; superseding panics come back here. */
struct runner {
  jmp_buf jb;
};

/* One unwind in progress. */
struct inst {
  uintptr_t lp_sp;        /* stack pointer of the frame whose landing pad may run now */
  struct runner *runner;  /* the runner working for this unwind, if any */
  /* Where this unwind ends when it superseded another: that one's runner, or
     the frame whose landing pad called the deferred function (b_sp). */
  struct runner *b_runner;
  uintptr_t b_sp;
};

struct panic {
  struct _Unwind_Exception exc;
  void *value;
  int is_str;               /* value is a C string (cgc_panicf, cgc_panic(NULL)) */
  int state;
  uintptr_t target;         /* the struct protect it unwinds to, or UINTPTR_MAX */
  int depth;                /* instances in use */
  struct inst *top;
  struct inst inl[INST_INLINE];
  struct inst **more;       /* instances past the inline ones (malloc) */
  int more_cap;
};

/* The record of panics no cgc_protect catches (one per thread, kept until the
   process aborts), with what the report needs. */
struct uncaught {
  struct panic p;
  int naborted;
  void *aborted[ABORTED_MAX];
  int aborted_str[ABORTED_MAX];
  int nframes;
  void *frames[BACKTRACE_MAX];
};

struct protect {
  jmp_buf jb;
  struct protect *prev;
  cgc__frame_t *chain;       /* cgc__defer_chain at entry */
  struct panic *panic_saved; /* ts.panic at entry */
  struct panic rec;          /* the panic that unwinds to here */
};

/* Spill chunks given back by frames, one per capacity, for the next frame
   that spills: no allocation (and no zeroing) when a thread repeatedly runs
   functions with many dynamic defers.  Reachable from here, so kept; their
   records' arguments were cleared when popped, so they hold nothing alive. */
static __thread struct cgc__chunk *spare[CHUNK_LEVELS];

/* A frame whose normal exit is running its records (run_normal): a node on
   run_normal's stack, linked while it runs. */
struct exiting {
  cgc__frame_t *f;
  struct exiting *prev;
};

static __thread struct {
  struct protect *protect;
  struct panic *panic;
  struct exiting *exiting;   /* innermost first; nodes lie on run_normal's stack */
  struct uncaught *uncaught;
  void *recovered;           /* value handed from panic_finish to cgc_protect */
} ts;

/* ------------------------------------------------------------------------ */
/* Dynamic-defer frames                                                      */
/* ------------------------------------------------------------------------ */

static inline cgc__rec_t *seg_base(cgc__frame_t *f) {
  return f->chunk ? f->chunk->recs : (cgc__rec_t *)(f + 1);
}

static inline unsigned chunk_level(size_t cap) {
  return (unsigned)__builtin_ctzl(cap / CHUNK_FIRST);
}

cgc__rec_t *cgc__frame_grow(cgc__frame_t *f) {
  cgc_assert(f->top == f->limit);
  unsigned level = f->chunk ? chunk_level(f->chunk->cap) + 1 : 0;
  if (level >= CHUNK_LEVELS) level = CHUNK_LEVELS - 1;
  struct cgc__chunk *c = spare[level];
  if (c) {
    spare[level] = NULL;
  } else {
    /* Scanned memory: a pointer held only by a pending record stays visible.
       The chunk is reachable from the frame on the stack, and earlier chunks
       from later ones. */
    size_t cap = (size_t)CHUNK_FIRST << level;
    c = cgc_alloc(sizeof *c + cap * sizeof(cgc__rec_t));
    if (cgc_unlikely(!c)) _cgc_fatal("CGC_DEFER_DYN: out of memory for %zu defer records", cap);
    c->cap = cap;
  }
  c->prev = f->chunk;
  c->prev_limit = f->limit;
  f->chunk = c;
  f->limit = c->recs + c->cap;
  f->top = c->recs;
  return c->recs;
}

/* A chunk whose records all ran (their arguments cleared). */
static void chunk_release(cgc__frame_t *f, struct cgc__chunk *c) {
  f->chunk = c->prev;
  f->top = f->limit = c->prev_limit;
  unsigned level = chunk_level(c->cap);
  if (!spare[level]) {
    /* A spare must keep nothing alive: not the frame's older chunk, nor
       (through prev_limit, the end of that chunk's records) whatever is
       allocated where that chunk was once it is freed. */
    c->prev = NULL;
    c->prev_limit = NULL;
    spare[level] = c;
  } else {
    cgc_free(c);
  }
}

static CGC_COLD _Noreturn void null_defer(void) {
  _cgc_fatal("CGC_DEFER_DYN (or a registered CGC_DEFER): deferred function is NULL");
}

/* Pop f's newest pending record into *out; 0 when none is left.  A record is
   popped before it is called, so a panic in a deferred call leaves exactly the
   older ones pending; the frame stays linked until all of them ran. */
static inline int pop_record(cgc__frame_t *f, cgc__rec_t *out) {
  for (;;) {
    cgc__rec_t *top = f->top;
    if (cgc_likely(top != seg_base(f))) {
      f->top = --top;
      *out = *top;
      top->arg = NULL;
      if (cgc_unlikely(!out->fn)) null_defer();
      return 1;
    }
    struct cgc__chunk *c = f->chunk;
    if (!c) return 0;
    chunk_release(f, c);
  }
}

/* Normal exit: run the records newest first.  The frame stays linked, and
   is noted as exiting: if a record panics, the panic runs the rest of them
   as soon as it has left run_normal, before the landing pads of the frame
   holding f (whose older block defers must run after them). */
static CGC_NOINLINE void run_normal(cgc__frame_t *f) {
  struct exiting ex = {f, ts.exiting};
  ts.exiting = &ex;
  /* Chunk segments: clear each argument, the chunk may be kept as a spare. */
  struct cgc__chunk *c;
  while ((c = f->chunk) != NULL) {
    cgc__rec_t *base = c->recs, *top = f->top;
    while (top != base) {
      --top;
      void (*fn)(void *) = top->fn;
      void *arg = top->arg;
      top->arg = NULL;
      f->top = top;
      if (cgc_unlikely(!fn)) null_defer();
      fn(arg);
    }
    chunk_release(f, c);
  }
  /* The inline records, in the frame on the stack. */
  cgc__rec_t *base = (cgc__rec_t *)(f + 1), *top = f->top;
  while (top != base) {
    --top;
    void (*fn)(void *) = top->fn;
    void *arg = top->arg;
    f->top = top;
    if (cgc_unlikely(!fn)) null_defer();
    fn(arg);
  }
  ts.exiting = ex.prev;
}

/* Run the records on behalf of panic p.  The runner is the boundary that a
   panic raised in one of these calls and superseding p returns to. */
static CGC_NOINLINE void run_panic(cgc__frame_t *f, struct panic *p) {
  struct runner rc;
  struct inst *in = p->top;
  struct runner *saved = in->runner;
  in->runner = &rc;
  /* Returns twice: the second time a superseding panic has unwound the
     deferred call; go on with the next record. */
  (void)_setjmp(rc.jb);
  cgc_assert(p->top == in);
  cgc__rec_t r;
  while (pop_record(f, &r)) r.fn(r.arg);
  in->runner = saved;
}

void cgc__frame_run(cgc__frame_t *f) {
  struct panic *p = ts.panic;
  /* From a landing pad of the frame the panic is unwinding, f lies in that
     frame, at or above its stack pointer (frames further up cannot be left
     while the panic is here).  Frames left normally, possibly inside a
     deferred call that the panic runs, lie below. */
  if (p && p->state == PANIC_UNWINDING && (uintptr_t)f >= p->top->lp_sp)
    run_panic(f, p);
  else
    run_normal(f);
}

/* Run and unlink every chain link below limit, inner ones first. */
static void run_links_below(struct panic *p, uintptr_t limit) {
  cgc__frame_t *n;
  while ((n = cgc__defer_chain) != NULL && (uintptr_t)n < limit) {
    run_panic(n, p);
    cgc_assert(cgc__defer_chain == n);
    cgc__defer_chain = n->prev;
  }
}

/* Everything pending below limit that the panic has got past, for it: the
   links, and first the frames whose normal exit it interrupted (their
   run_normal nodes lie below limit), each after the links inner to it, so
   that they run before the landing pads of the frames holding them. */
static void run_chain_below(struct panic *p, uintptr_t limit) {
  struct exiting *ex;
  while ((ex = ts.exiting) != NULL && (uintptr_t)ex < limit) {
    ts.exiting = ex->prev;
    run_links_below(p, (uintptr_t)ex->f);
    if (cgc__defer_chain == ex->f) {
      run_panic(ex->f, p);
      cgc__defer_chain = ex->f->prev;
    }
  }
  run_links_below(p, limit);
}

/* Links and protects below the current stack pointer belong to frames that
   were left without running their exits (longjmp): forget them. */
static void prune_stale(uintptr_t sp) {
  while (ts.exiting && (uintptr_t)ts.exiting < sp) ts.exiting = ts.exiting->prev;
  while (cgc__defer_chain && (uintptr_t)cgc__defer_chain < sp)
    cgc__defer_chain = cgc__defer_chain->prev;
  while (ts.protect && (uintptr_t)ts.protect < sp) {
    ts.panic = ts.protect->panic_saved;
    ts.protect = ts.protect->prev;
  }
}

/* ------------------------------------------------------------------------ */
/* Instances                                                                 */
/* ------------------------------------------------------------------------ */

static struct inst *inst_push(struct panic *p) {
  struct inst *in;
  int d = p->depth;
  if (d < INST_INLINE) {
    in = &p->inl[d];
  } else {
    int k = d - INST_INLINE;
    if (k >= p->more_cap) {
      int cap = p->more_cap ? 2 * p->more_cap : 8;
      struct inst **m = realloc(p->more, sizeof *m * (size_t)cap);
      if (!m) _cgc_fatal("cgc_panic: out of memory for nested panics");
      memset(m + p->more_cap, 0, sizeof *m * (size_t)(cap - p->more_cap));
      p->more = m;
      p->more_cap = cap;
    }
    if (!p->more[k] && !(p->more[k] = malloc(sizeof *in)))
      _cgc_fatal("cgc_panic: out of memory for nested panics");
    in = p->more[k];
  }
  memset(in, 0, sizeof *in);
  p->depth = d + 1;
  p->top = in;
  return in;
}

static void inst_pop(struct panic *p) {
  cgc_assert(p->depth > 1);
  int d = --p->depth - 1;
  p->top = d < INST_INLINE ? &p->inl[d] : p->more[d - INST_INLINE];
}

static void inst_release(struct panic *p) {
  for (int k = 0; k < p->more_cap; k++) free(p->more[k]);
  free(p->more);
  p->more = NULL;
  p->more_cap = 0;
  p->depth = 0;
  p->top = NULL;
}

/* ------------------------------------------------------------------------ */
/* Resuming a landing pad after its deferred call                            */
/* ------------------------------------------------------------------------ */

#if defined(__x86_64__)
#define DEFER_LP_RESUME 1

static uintptr_t read_uleb(const uint8_t **pp) {
  uintptr_t v = 0;
  unsigned shift = 0;
  uint8_t b;
  do {
    b = *(*pp)++;
    if (shift < sizeof v * 8) v |= (uintptr_t)(b & 0x7f) << shift;
    shift += 7;
  } while (b & 0x80);
  return v;
}

/* A call-site table value in one of the encodings compilers use there;
   0 on an encoding this reader does not know. */
static int read_cs(uint8_t enc, const uint8_t **pp, uintptr_t *out) {
  const uint8_t *q = *pp;
  switch (enc & 0x0f) {
  case 0x01: *out = read_uleb(pp); return 1;
  case 0x02: { uint16_t v; memcpy(&v, q, 2); *out = v; *pp = q + 2; return 1; }
  case 0x03: { uint32_t v; memcpy(&v, q, 4); *out = v; *pp = q + 4; return 1; }
  case 0x00:
  case 0x04: { uint64_t v; memcpy(&v, q, 8); *out = (uintptr_t)v; *pp = q + 8; return 1; }
  case 0x0b: { int32_t v; memcpy(&v, q, 4); *out = (uintptr_t)(intptr_t)v; *pp = q + 4; return 1; }
  default: return 0;
  }
}

/* Does the frame's landing pad for the call it is in catch everything (the
   handler Clang puts around cleanup calls in landing pads, which aborts)?
   A C cleanup region has action 0. */
static int lp_catches(struct _Unwind_Context *ctx) {
  const uint8_t *q = _Unwind_GetLanguageSpecificData(ctx);
  if (!q) return 0;
  uintptr_t func = _Unwind_GetRegionStart(ctx);
  uintptr_t ip = _Unwind_GetIP(ctx) - 1;
  uint8_t lpstart_enc = *q++;
  if (lpstart_enc != 0xff) return 0; /* not produced for C; not handled */
  uint8_t ttype_enc = *q++;
  if (ttype_enc != 0xff) (void)read_uleb(&q);
  uint8_t cs_enc = *q++;
  uintptr_t len = read_uleb(&q);
  const uint8_t *end = q + len;
  while (q < end) {
    uintptr_t start, size, lp, action;
    if (!read_cs(cs_enc, &q, &start) || !read_cs(cs_enc, &q, &size) || !read_cs(cs_enc, &q, &lp))
      return 0;
    action = read_uleb(&q);
    if (ip < func + start) return 0;
    if (ip < func + start + size) return lp != 0 && action != 0;
  }
  return 0;
}

/* Continue the frame described by ctx at its return address, with its
   callee-saved registers and stack pointer: the call it made returns. */
static CGC_NOINLINE _Noreturn void resume_frame(struct _Unwind_Context *ctx) {
  uintptr_t regs[6] = {
      (uintptr_t)_Unwind_GetGR(ctx, 3),  (uintptr_t)_Unwind_GetGR(ctx, 6),  /* rbx rbp */
      (uintptr_t)_Unwind_GetGR(ctx, 12), (uintptr_t)_Unwind_GetGR(ctx, 13), /* r12 r13 */
      (uintptr_t)_Unwind_GetGR(ctx, 14), (uintptr_t)_Unwind_GetGR(ctx, 15), /* r14 r15 */
  };
  uintptr_t sp = (uintptr_t)_Unwind_GetCFA(ctx), ip = (uintptr_t)_Unwind_GetIP(ctx);
#ifdef CGC_ASAN
  __asan_handle_no_return();
#endif
  __asm__ volatile("movq 0(%0), %%rbx\n\t"
                   "movq 8(%0), %%rbp\n\t"
                   "movq 16(%0), %%r12\n\t"
                   "movq 24(%0), %%r13\n\t"
                   "movq 32(%0), %%r14\n\t"
                   "movq 40(%0), %%r15\n\t"
                   "movq %1, %%rsp\n\t"
                   "jmp *%2"
                   :
                   : "a"(regs), "c"(sp), "d"(ip)
                   : "memory");
  __builtin_unreachable();
}
#else
#define DEFER_LP_RESUME 0
#endif

/* ------------------------------------------------------------------------ */
/* Uncaught panics                                                           */
/* ------------------------------------------------------------------------ */

static void put(const char *s) { _cgc_write_all(2, s, strlen(s)); }

static void print_value(void *value, int is_str) {
  if (is_str) {
    put((const char *)value);
  } else {
    char buf[64];
    _cgc_format(buf, sizeof buf, "(void *) %p", value);
    put(buf);
  }
}

static CGC_COLD _Noreturn void die_uncaught(struct uncaught *u) {
  /* Oldest first, as Go prints a chain of panics. */
  for (int i = 0; i < u->naborted; i++) {
    put(i ? "\tpanic: " : "panic: ");
    print_value(u->aborted[i], u->aborted_str[i]);
    put("\n");
  }
  put(u->naborted ? "\tpanic: " : "panic: ");
  print_value(u->p.value, u->p.is_str);
  put("\n");
  char buf[96];
  _cgc_format(buf, sizeof buf, "\nthread %ld [panic, deferred calls run]:\n", (long)gettid());
  put(buf);
  if (u->nframes > 0)
    backtrace_symbols_fd(u->frames, u->nframes, 2);
  else
    put("(no backtrace)\n");
  abort();
}

struct bt_walk {
  void *ra;        /* the return address into the caller of cgc_panic */
  int found;
  struct uncaught *u;
};

static _Unwind_Reason_Code bt_collect(struct _Unwind_Context *ctx, void *arg) {
  struct bt_walk *w = arg;
  void *ip = (void *)_Unwind_GetIP(ctx);
  if (!ip) return _URC_END_OF_STACK;
  if (!w->found) {
    if (ip != w->ra) return _URC_NO_REASON;
    w->found = 1;
  }
  w->u->frames[w->u->nframes++] = ip;
  return w->u->nframes == BACKTRACE_MAX ? _URC_END_OF_STACK : _URC_NO_REASON;
}

static void capture_backtrace(struct uncaught *u, void *ra) {
  struct bt_walk w = {ra, 0, u};
  u->nframes = 0;
  _Unwind_Backtrace(bt_collect, &w);
  if (!w.found) { /* the caller's frame was not seen: keep everything */
    w.found = 1;
    u->nframes = 0;
    _Unwind_Backtrace(bt_collect, &w);
  }
}

static struct panic *uncaught_record(void *value, int is_str) {
  if (!ts.uncaught) {
    struct uncaught *u = calloc(1, sizeof *u);
    if (!u) {
      put("panic: ");
      print_value(value, is_str);
      put("\n[out of memory: deferred calls not run]\n");
      abort();
    }
    /* The values stay reachable while deferred calls run (and collect). */
    cgc_add_roots(u, sizeof *u);
    ts.uncaught = u;
  }
  return &ts.uncaught->p;
}

/* ------------------------------------------------------------------------ */
/* Raising and unwinding                                                     */
/* ------------------------------------------------------------------------ */

static void exc_cleanup(_Unwind_Reason_Code reason, struct _Unwind_Exception *exc) {
  (void)reason;
  (void)exc;
  _cgc_fatal("cgc_panic: a panic was stopped by a foreign handler "
             "(C++ catch (...) must rethrow)");
}

/* Reached the target, or (early) the unwinder could not go on: run what is
   left below it, then recover or die. */
static CGC_COLD _Noreturn void panic_finish(struct panic *p, int early) {
  while (p->depth > 1) {
    struct inst *in = p->top;
    inst_pop(p);
    /* An unwind that stopped early inside a deferred call still returns to
       its runner (a landing pad cannot be resumed without the unwinder's
       context).  Reaching the target, every live boundary was passed. */
    if (early && in->b_runner) {
      run_chain_below(p, (uintptr_t)in->b_runner);
      _longjmp(in->b_runner->jb, 1);
    }
  }
  run_chain_below(p, p->target);
  if (p->target != UINTPTR_MAX) {
    struct protect *pr = (struct protect *)p->target;
    cgc__defer_chain = pr->chain;
    ts.protect = pr->prev;
    ts.panic = pr->panic_saved;
    ts.recovered = p->value;
    p->state = PANIC_DONE;
    inst_release(p);
    _longjmp(pr->jb, 1);
  }
  die_uncaught(ts.uncaught);
}

static _Unwind_Reason_Code panic_stop(int version, _Unwind_Action actions,
                                      _Unwind_Exception_Class cls,
                                      struct _Unwind_Exception *exc,
                                      struct _Unwind_Context *ctx, void *param) {
  (void)version;
  (void)cls;
  (void)exc;
  struct panic *p = param;
  /* The unwinder's CFA of a context is the stack pointer of the frame it
     describes, at its call into the frame below. */
  uintptr_t sp = (actions & _UA_END_OF_STACK) ? UINTPTR_MAX : (uintptr_t)_Unwind_GetCFA(ctx);
  if (sp == UINTPTR_MAX) panic_finish(p, 1);
  for (;;) {
    struct inst *in = p->top;
    if (in->b_runner && sp >= (uintptr_t)in->b_runner) {
      /* Past the deferred call a runner made: back into the runner. */
      run_chain_below(p, (uintptr_t)in->b_runner);
      inst_pop(p);
      _longjmp(in->b_runner->jb, 1);
    }
    if (!in->b_sp || sp < in->b_sp) break;
    /* At the frame whose landing pad called the deferred function. */
    run_chain_below(p, in->b_sp);
    inst_pop(p);
#if DEFER_LP_RESUME
    /* Its handler would abort: return from the deferred call instead. */
    if (sp == in->b_sp && lp_catches(ctx)) resume_frame(ctx);
#endif
    /* Otherwise the landing pad runs the rest of the frame's cleanups for
       this unwind, which carries on in place of the one it superseded. */
    p->top->runner = NULL;
  }
  /* Past the cgc_protect frame: finish here. */
  if (sp >= p->target) panic_finish(p, 0);
  /* What the frames already passed left (links without a landing pad for
     them, exits the panic interrupted). */
  run_chain_below(p, sp);
  /* The frame's landing pad, if any, runs next. */
  p->top->lp_sp = sp;
  return _URC_NO_REASON;
}

/* Inlined into cgc_panic and cgc_panicf: one frame less for the unwinder. */
static inline __attribute__((always_inline)) _Noreturn void panic_raise(void *value, int is_str,
                                                                       void *ra) {
  volatile char here;
  uintptr_t sp = (uintptr_t)&here;
  prune_stale(sp);
  struct protect *pr = ts.protect;
  struct panic *p = pr ? &pr->rec : uncaught_record(value, is_str);
  struct inst *in;
  /* Raised inside a deferred call run for the panic in flight with the same
     target: supersede it, and come back to where that call was made, which
     lies above.  (Otherwise that panic was abandoned by a longjmp.) */
  if (p->state == PANIC_UNWINDING &&
      (p->top->runner ? (uintptr_t)p->top->runner : p->top->lp_sp) <= sp)
    p->state = PANIC_DONE;
  if (p->state == PANIC_UNWINDING) {
    struct inst *cur = p->top;
    in = inst_push(p);
    if (cur->runner)
      in->b_runner = cur->runner;
    else
      in->b_sp = cur->lp_sp;
    if (!pr) {
      struct uncaught *u = ts.uncaught;
      if (u->naborted == ABORTED_MAX) {
        memmove(u->aborted, u->aborted + 1, sizeof u->aborted[0] * (ABORTED_MAX - 1));
        memmove(u->aborted_str, u->aborted_str + 1, sizeof u->aborted_str[0] * (ABORTED_MAX - 1));
        u->naborted--;
      }
      u->aborted[u->naborted] = p->value;
      u->aborted_str[u->naborted++] = p->is_str;
    }
  } else {
    p->state = PANIC_UNWINDING;
    p->depth = 0;
    in = inst_push(p);
  }
  if (!pr) capture_backtrace(ts.uncaught, ra);
  in->lp_sp = sp;
  p->value = value;
  p->is_str = is_str;
  p->target = pr ? (uintptr_t)pr : UINTPTR_MAX;
  memset(&p->exc, 0, sizeof p->exc);
  p->exc.exception_class = PANIC_CLASS;
  p->exc.exception_cleanup = exc_cleanup;
  ts.panic = p;
#ifdef CGC_ASAN
  /* These frames are never left normally: drop their stack poisoning now,
     or code that later runs on this stack would see it. */
  __asan_handle_no_return();
#endif
  _Unwind_ForcedUnwind(&p->exc, panic_stop, p);
  /* The unwinder stopped without reaching the target: a frame without unwind
     information.  Chain links still run; landing pads above it do not. */
  panic_finish(p, 1);
}

void cgc_panic(void *value) {
  int is_str = 0;
  if (!value) {
    value = (void *)"cgc_panic called with NULL";
    is_str = 1;
  }
  panic_raise(value, is_str, __builtin_return_address(0));
}

void cgc_panicf(const char *fmt, ...) {
  if (!fmt) _cgc_fatal("cgc_panicf: fmt is NULL");
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) {
    n = 0;
    buf[0] = 0;
  }
  /* The value: a string in the collected heap, not scanned. */
  char *s = cgc_alloc_noscan((size_t)n + 1);
  if (!s) _cgc_fatal("cgc_panicf: out of memory for the panic message");
  if ((size_t)n < sizeof buf) {
    memcpy(s, buf, (size_t)n + 1);
  } else {
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
  }
  panic_raise(s, 1, __builtin_return_address(0));
}

/* ------------------------------------------------------------------------ */
/* Recover                                                                   */
/* ------------------------------------------------------------------------ */

/* A C++ exception, or a thread exit, unwinding through cgc_protect restores
   the thread's state as a normal return does, and goes on.  A panic that this
   cgc_protect recovers runs the landing pad too: the panic stops at the
   caller's frame (the CFA of cgc_protect's frame lies below &pr), after it.
   So the state is restored here first and again by panic_finish (from the
   same record, to the same values), which must not rely on seeing it
   unrestored; defer_panic's protect_through_hole covers panic_finish alone
   (an unwind that stops short of this landing pad). */
struct protect_guard {
  struct protect *pr;
  volatile bool done;
};
static void protect_unwound(struct protect_guard *g) {
  if (g->done) return;
  struct protect *pr = g->pr;
  while (ts.exiting && (uintptr_t)ts.exiting < (uintptr_t)pr) ts.exiting = ts.exiting->prev;
  ts.protect = pr->prev;
  ts.panic = pr->panic_saved;
  cgc__defer_chain = pr->chain;
}

int cgc_protect(void (*fn)(void *), void *arg, void **panic_value) {
  if (cgc_unlikely(!fn)) _cgc_fatal("cgc_protect: fn is NULL");
  struct protect pr;
  struct protect_guard guard __attribute__((cleanup(protect_unwound))) = {&pr, false};
  pr.prev = ts.protect;
  pr.chain = cgc__defer_chain;
  pr.panic_saved = ts.panic;
  pr.rec.state = PANIC_DONE;
  pr.rec.more = NULL;
  pr.rec.more_cap = 0;
  ts.protect = &pr;
  if (_setjmp(pr.jb) == 0) {
    fn(arg);
    /* Also forgets links, exits and protects that a longjmp inside fn skipped. */
    while (ts.exiting && (uintptr_t)ts.exiting < (uintptr_t)&pr) ts.exiting = ts.exiting->prev;
    ts.protect = pr.prev;
    ts.panic = pr.panic_saved;
    cgc__defer_chain = pr.chain;
    guard.done = true;
    if (panic_value) *panic_value = NULL;
    return 0;
  }
  /* Recovered: protect_unwound and panic_finish restored the thread's state. */
  guard.done = true;
  void *v = ts.recovered;
  ts.recovered = NULL;
  if (panic_value) *panic_value = v;
  return 1;
}

struct cfa_walk {
  uintptr_t lo;
  int n;
  uintptr_t sp[3];
};

static _Unwind_Reason_Code cfa_collect(struct _Unwind_Context *ctx, void *arg) {
  struct cfa_walk *w = arg;
  uintptr_t c = (uintptr_t)_Unwind_GetCFA(ctx);
  if (c <= w->lo) return _URC_NO_REASON; /* cgc_panic_value and the unwinder */
  w->sp[w->n++] = c;
  return w->n == 3 ? _URC_END_OF_STACK : _URC_NO_REASON;
}

void *cgc_panic_value(void) {
  struct panic *p = ts.panic;
  if (cgc_likely(!p) || p->state != PANIC_UNWINDING) return NULL;
  struct inst *in = p->top;
  /* Stack pointers of the caller (the deferred function), of its caller (a
     landing pad's frame, or a defer runner) and of the next frame up. */
  struct cfa_walk w = {(uintptr_t)&w, 0, {0, 0, 0}};
  _Unwind_Backtrace(cfa_collect, &w);
  if (w.n < 2) return NULL;
  /* Called by the runner working for the panic: the runner's state lies in
     the caller's frame (bounded by the next frame up; without it, say no). */
  uintptr_t mark = (uintptr_t)in->runner;
  if (mark && w.n == 3 && w.sp[1] <= mark && mark < w.sp[2]) return p->value;
  /* Called by the landing pad of the frame the panic is unwinding (the
     deferred function may have been inlined into that frame). */
  if (w.sp[0] == in->lp_sp || w.sp[1] == in->lp_sp) return p->value;
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Panic barriers                                                            */
/* ------------------------------------------------------------------------ */

/* Something unwound out of the callback a barrier guards (its frame's
   landing pad found it armed): a panic (whose unwinder runs the landing pad
   of a frame before the chain links in it), a C++ exception or a thread
   exit. */
void _cgc_barrier_unwound(const _cgc_barrier_t *b) {
  if (ts.panic && ts.panic->state == PANIC_UNWINDING) _cgc_panic_barrier_hit((void *)b);
  void *fn;
  memcpy(&fn, &b->fn, sizeof fn);
  _cgc_fatal("%s: an exception or a thread exit (pthread_exit, cancellation) left %s %p (on %p), which must "
             "return", b->call, b->what ? b->what : "a callback", fn, b->arg);
}

/* The record of a barrier (internal.h) ran: only a panic runs it, on its
   way out of the callback the barrier guards. */
void _cgc_panic_barrier_hit(void *arg) {
  const _cgc_barrier_t *b = arg;
  const struct panic *p = ts.panic;
  void *fn;
  memcpy(&fn, &b->fn, sizeof fn);
  char value[96];
  if (p && p->is_str) _cgc_format(value, sizeof value, "%s", (const char *)p->value);
  else _cgc_format(value, sizeof value, "(void *) %p", p ? p->value : NULL);
  _cgc_fatal("%s: a panic left %s %p (on %p), which must recover it: panic: %s", b->call, b->what, fn,
             b->arg, value);
}
