/* Panic-test frames: no -fexceptions and CGC_DEFER_REGISTER=0, so block
   defers are not run by panics (dynamic defers still are). */
#ifdef __EXCEPTIONS
#error "defer_frames_b.c must be compiled without -fexceptions"
#endif
#define CGC_DEFER_REGISTER 0
#define MODE_PREFIX b
#include "defer_frames_tmpl.c"
