/* A program linked with cgc loads a library by name through its own RUNPATH
   ($ORIGIN/origin_mods): the C library must see the program as the caller of
   dlopen.  (cgc's dlopen wrapper made libcgc the caller, whose RUNPATH and
   $ORIGIN are not the program's: the load failed.)  The library's constructor
   collects from inside the dlopen; its data keeps its object alive. */
#include "core_util.h"

#include <dlfcn.h>

int main(void) {
  test_seed();
  cgc_init();
  void *h = dlopen("libcgc_origin_mod.so", RTLD_NOW | RTLD_LOCAL);
  CHECKF(h != NULL, "dlopen by name through the program's RUNPATH: %s", dlerror());
  void *h2 = dlopen("$ORIGIN/origin_mods/libcgc_origin_mod.so", RTLD_NOW | RTLD_LOCAL);
  CHECKF(h2 == h, "dlopen through $ORIGIN: %s", h2 ? "another handle" : dlerror());
  int (*alive)(void) = (int (*)(void))dlsym(h, "origin_mod_alive");
  CHECK(alive != NULL);
  for (int i = 0; i < 3; i++) {
    churn(64, 8);
    cgc_collect();
  }
  CHECKF(alive(), "an object held only in the loaded library's data was collected");
  CHECK(dlclose(h2) == 0 && dlclose(h) == 0);
  cgc_collect();
  printf("core_dlopen_origin: ok\n");
  return 0;
}
