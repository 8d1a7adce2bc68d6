/* C frames for cxx_exceptions, compiled without -fexceptions: their
   dynamic and (registered) block defers have no landing pad, so a C++
   exception passes them without running them (docs/defer.md). */
#include "cgc.h"

void cxx_c_frames(void (*fn)(void *), void *arg);

static void nothing(void *a) { (void)a; }

void cxx_c_frames(void (*fn)(void *), void *arg) {
  CGC_FRAME();
  CGC_DEFER_DYN(nothing, NULL);
  CGC_DEFER(nothing, NULL);
  fn(arg);
}
