/* Panic-test frames: registered mode (no -fexceptions). */
#ifdef __EXCEPTIONS
#error "defer_frames_c.c must be compiled without -fexceptions"
#endif
#define MODE_PREFIX c
#include "defer_frames_tmpl.c"
#if !CGC_DEFER_REGISTER
#error "registered mode expected"
#endif
