/* A library that a program linked with cgc loads by name through its own
   $ORIGIN RUNPATH (tests/core_dlopen_origin.c).  Its constructor allocates
   and collects from inside the dlopen that loads it. */
#include <cgc.h>

void *origin_keep;

__attribute__((constructor)) static void origin_ctor(void) {
  origin_keep = cgc_alloc(64);
  cgc_collect(); /* from inside dlopen: the library is on the loader's list already */
}

int origin_mod_alive(void) { return cgc_base(origin_keep) == origin_keep; }
