/* The public headers on their own, in every C standard from C99 and in C++
   (compiled by the tests with -fsyntax-only -Wpedantic -Werror and each
   standard).  With CORE_HEADER_MAIN, a program: core_static_exe links it
   -static, which cgc must refuse at start-up, and install_check builds it
   against an installed cgc. */
#include "cgc.h"
#include "cgc_defer.h"

int use_headers(void);
int use_headers(void) {
  void *p = cgc_alloc(16);
  if (!p) cgc_panic(0);
  cgc_free(p);
  return 0;
}

#ifdef CORE_HEADER_MAIN
#include <stdio.h>
int main(void) {
  int rc = use_headers();
  puts("core_header: ok");
  return rc;
}
#endif
