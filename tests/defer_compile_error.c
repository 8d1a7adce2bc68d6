/* Misuse of the defer macros that must not compile (built by the tests with
   -fsyntax-only and -DCASE=n; CASE=0 is the correct use). */
#include "cgc.h"

static __attribute__((unused)) void one(void *p) { (void)p; }
static __attribute__((unused)) void two(void *p, int x) { (void)p; (void)x; }

void use(void);
#if CASE == 1
/* CGC_DEFER_DYN without CGC_FRAME in the function. */
void use(void) { CGC_DEFER_DYN(one, 0); }
#elif CASE == 2
/* fn(arg) is not a valid call. */
void use(void) { CGC_DEFER(two, 0); }
#elif CASE == 3
/* Two frames in one block. */
void use(void) {
  CGC_FRAME();
  CGC_FRAME();
}
#elif CASE == 4
/* CGC_DEFER as the body of an if (unwind mode: GCC dropped the attributes
   and compiled a defer that never runs). */
int flag;
void use(void) {
  if (flag) CGC_DEFER(one, 0);
}
#else
void use(void) {
  CGC_FRAME();
  CGC_DEFER_DYN(one, 0);
  CGC_DEFER(one, 0);
  CGC_DEFER_FREE(NULL);
}
#endif
