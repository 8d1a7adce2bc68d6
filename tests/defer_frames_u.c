/* Panic-test frames: unwind mode (-fexceptions). */
#ifndef __EXCEPTIONS
#error "defer_frames_u.c must be compiled with -fexceptions"
#endif
#define MODE_PREFIX u
#include "defer_frames_tmpl.c"
