/* Panic-test frames: registered mode, compiled without unwind tables, so the
   unwinder cannot step through these frames. */
#ifdef __EXCEPTIONS
#error "defer_frames_n.c must be compiled without -fexceptions"
#endif
#define MODE_PREFIX n
#include "defer_frames_tmpl.c"
