/* CHECK and CHECKF: checks that fail loudly (file, line, the condition and
   a message on stderr, then abort).  On their own for programs that do not
   link cgc (core_plugin); testutil.h includes them. */
#ifndef CGC_TEST_CHECK_H
#define CGC_TEST_CHECK_H
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);      \
      abort();                                                                      \
    }                                                                               \
  } while (0)

#define CHECKF(cond, ...)                                                           \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);      \
      fprintf(stderr, __VA_ARGS__);                                                 \
      fputc('\n', stderr);                                                          \
      abort();                                                                      \
    }                                                                               \
  } while (0)

#endif
