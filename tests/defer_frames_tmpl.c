/* Frames for the panic tests, compiled once per defer mode.  A wrapper
   defines MODE_PREFIX (u: -fexceptions; c: registered, no -fexceptions;
   b: CGC_DEFER_REGISTER=0 and no -fexceptions; n: registered, no unwind
   tables at all) and includes this file; defer_panic.c includes it with
   DEFER_FRAMES_DECLARE_ONLY for the declarations. */
#ifndef DEFER_FRAMES_DECLS
#define DEFER_FRAMES_DECLS
#include "cgc.h"

#define FRAMES_MAX 16

/* A chain of frames: frame i has mode modes[i], two block defers and ndyn[i]
   dynamic ones; the innermost calls leaf(leaf_arg). */
struct plan {
  char modes[FRAMES_MAX + 1];
  int depth;
  int ndyn[FRAMES_MAX];
  void (*leaf)(void *);
  void *leaf_arg;
};

/* Log entries: frame * 1000 + kind * 100 + k. */
enum { K_BLOCK = 1, K_DYN = 2, K_RETURNED = 3 };
#define LOG_ID(i, kind, k) ((void *)(intptr_t)((i) * 1000 + (kind) * 100 + (k)))

void logrec(void *id);           /* defined by the test */
void next_frame(const struct plan *pl, int i);

#define FRAMES_DECLARE(m)                                                          \
  void m##_frame(const struct plan *pl, int i);                                    \
  void m##_with_block(void (*fn)(void *), void *arg, void (*body)(void *), void *barg); \
  void m##_with_dyn(void (*fn)(void *), void *arg, void (*body)(void *), void *barg); \
  void m##_two_blocks(void (*outer)(void *), void (*inner)(void *), void *arg);    \
  void m##_three_dyn(void (*a)(void *), void (*b)(void *), void (*c)(void *), void *arg); \
  void m##_probe(void (*fn)(void *), void *arg);
FRAMES_DECLARE(u)
FRAMES_DECLARE(c)
FRAMES_DECLARE(b)
FRAMES_DECLARE(n)
#endif

#ifndef DEFER_FRAMES_DECLARE_ONLY
#define FR_CAT_(a, b) a##b
#define FR_CAT(a, b) FR_CAT_(a, b)
#define FR(name) FR_CAT(MODE_PREFIX, FR_CAT(_, name))

void FR(frame)(const struct plan *pl, int i) {
  CGC_FRAME();
  CGC_DEFER(logrec, LOG_ID(i, K_BLOCK, 0));
  for (int k = 0; k < pl->ndyn[i]; k++) CGC_DEFER_DYN(logrec, LOG_ID(i, K_DYN, k));
  CGC_DEFER(logrec, LOG_ID(i, K_BLOCK, 1));
  next_frame(pl, i + 1);
  logrec(LOG_ID(i, K_RETURNED, 0));
}

void FR(with_block)(void (*fn)(void *), void *arg, void (*body)(void *), void *barg) {
  CGC_DEFER(fn, arg);
  body(barg);
}

void FR(with_dyn)(void (*fn)(void *), void *arg, void (*body)(void *), void *barg) {
  CGC_FRAME();
  CGC_DEFER_DYN(fn, arg);
  body(barg);
}

/* Two block defers in nested blocks, left normally. */
void FR(two_blocks)(void (*outer)(void *), void (*inner)(void *), void *arg) {
  CGC_DEFER(outer, arg);
  {
    CGC_DEFER(inner, arg);
  }
}

/* Three dynamic defers, run on the normal exit (c first, a last). */
void FR(three_dyn)(void (*a)(void *), void (*b)(void *), void (*c)(void *), void *arg) {
  CGC_FRAME();
  CGC_DEFER_DYN(a, arg);
  CGC_DEFER_DYN(b, arg);
  CGC_DEFER_DYN(c, arg);
}

/* A frame of this unit on the stack while fn runs. */
void FR(probe)(void (*fn)(void *), void *arg) {
  fn(arg);
  __asm__ volatile("" ::: "memory"); /* not a tail call */
}
#endif
