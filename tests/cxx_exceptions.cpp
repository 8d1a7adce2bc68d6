/* C++ exceptions and cgc.

     cxx_exceptions protect         an exception thrown inside cgc_protect and
                  caught outside it leaves the thread as a normal return does:
                  a later panic is recovered by the next cgc_protect, and a
                  panic nested in an outer cgc_protect reaches that one (the
                  stale record it left made a later panic crash); the same
                  through C frames without -fexceptions (cxx_frames.c) leaves
                  no link of theirs in the thread's defer chain.
     cxx_exceptions protect_then_unrecovered   the same, then a panic nothing
                  recovers: the documented report and abort (must-abort test).
     cxx_exceptions cleanup_throw   a cleanup run by cgc_free throws: cgc
                  aborts naming it, as for a panic (the exception used to leave
                  the thread's defer chain pointing into a dead frame).
     cxx_exceptions panic_swallow   a catch (...) that swallows a panic (does
                  not rethrow): a fatal error naming the cause, never a
                  cgc_protect that returns as if nothing happened. */
#include <cgc.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#define CHECK(c)                                                              \
  do {                                                                        \
    if (!(c)) {                                                               \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
      std::exit(1);                                                           \
    }                                                                         \
  } while (0)

static void thrower(void *) { throw std::runtime_error("boom"); }
static void panicker(void *) { cgc_panicf("later"); }

static bool throws_through_protect() {
  try {
    cgc_protect(thrower, nullptr, nullptr);
  } catch (const std::runtime_error &e) {
    return std::strcmp(e.what(), "boom") == 0;
  }
  return false;
}

extern "C" void cxx_c_frames(void (*fn)(void *), void *arg);
static void thrower_in_c_frames(void *) { cxx_c_frames(thrower, nullptr); }

/* Through C frames whose defers are linked into the thread's chain: the
   exception leaves them linked, cgc_protect unlinks them. */
static bool throws_through_c_frames() {
  try {
    cgc_protect(thrower_in_c_frames, nullptr, nullptr);
  } catch (const std::runtime_error &e) {
    return std::strcmp(e.what(), "boom") == 0 && cgc__defer_chain == nullptr;
  }
  return false;
}

/* Inside an outer cgc_protect: an exception through an inner one, then a
   panic, which the outer one must recover. */
static void inner_then_panic(void *) {
  CHECK(throws_through_protect());
  CHECK(throws_through_c_frames());
  cgc_panicf("outer");
}

static void protect_case() {
  for (int i = 0; i < 3; i++) {
    CHECK(throws_through_protect());
    CHECK(throws_through_c_frames());
    void *v = nullptr;
    CHECK(cgc_protect(panicker, nullptr, &v) == 1);
    CHECK(v && std::strcmp(static_cast<const char *>(v), "later") == 0);
    v = nullptr;
    CHECK(cgc_protect(inner_then_panic, nullptr, &v) == 1);
    CHECK(v && std::strcmp(static_cast<const char *>(v), "outer") == 0);
  }
}

static void cleanup_throws(void *) { throw std::runtime_error("cleanup"); }

static void swallow(void *) {
  try {
    cgc_panicf("swallowed");
  } catch (...) {
  }
}

int main(int argc, char **argv) {
  CHECK(argc == 2);
  const char *c = argv[1];
  if (std::strcmp(c, "protect") == 0) {
    protect_case();
  } else if (std::strcmp(c, "protect_then_unrecovered") == 0) {
    CHECK(throws_through_protect());
    cgc_panicf("nobody recovers this");
  } else if (std::strcmp(c, "cleanup_throw") == 0) {
    void *p = cgc_alloc(32);
    cgc_add_cleanup(p, cleanup_throws, nullptr);
    try {
      cgc_free(p);
    } catch (...) {
    }
    std::fprintf(stderr, "cxx_exceptions cleanup_throw: no abort\n");
    return 1;
  } else if (std::strcmp(c, "panic_swallow") == 0) {
    void *v = nullptr;
    int r = cgc_protect(swallow, nullptr, &v);
    std::fprintf(stderr, "cxx_exceptions panic_swallow: no abort (cgc_protect returned %d)\n", r);
    return 1;
  } else {
    return 2;
  }
  std::printf("cxx_exceptions %s: ok\n", c);
  return 0;
}
