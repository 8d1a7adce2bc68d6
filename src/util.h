/* util.h — small shared helpers: branch hints, fatal errors, checked-build asserts.
 *
 * Assert levels:
 *   cgc_check(c)  — always on: cheap checks at the public boundary.
 *   cgc_assert(c) — only in checked builds (CGC_CHECKED=1): internal invariants.
 */
#ifndef CGC_UTIL_H
#define CGC_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define cgc_likely(x)   __builtin_expect(!!(x), 1)
#define cgc_unlikely(x) __builtin_expect(!!(x), 0)
#define CGC_NOINLINE    __attribute__((noinline))
#define CGC_COLD        __attribute__((cold, noinline))
#define CGC_HIDDEN      __attribute__((visibility("hidden")))
#define CGC_ALWAYS_INLINE inline __attribute__((always_inline))
#define CGC_UNUSED      __attribute__((unused))

/* cgc's own mutable statics live in one section that the collector does not
   scan (invariant I6): words there may hold heap addresses, or add up to one
   (two adjacent counters can read as a pointer). */
#define CGC_STATE __attribute__((section("cgc_state")))

/* For code that reads memory it does not own by design (conservative scans,
   loader structures in a forked child). */
#if defined(__clang__)
#define CGC_NO_SANITIZE __attribute__((no_sanitize("address", "thread", "undefined", "hwaddress")))
#else
#define CGC_NO_SANITIZE __attribute__((no_sanitize_address, no_sanitize_thread, no_sanitize_undefined))
#endif

/* Built with AddressSanitizer (GCC's macro, or Clang's feature test). */
#if defined(__SANITIZE_ADDRESS__)
#define CGC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CGC_ASAN 1
#endif
#endif

#ifndef CGC_CHECKED
#define CGC_CHECKED 0
#endif

/* Print "cgc: <message>" to stderr (async-signal-safe formatting, no malloc) and abort. */
_Noreturn void _cgc_fatal(const char *fmt, ...) CGC_HIDDEN __attribute__((format(printf, 1, 2), cold));
/* Print "cgc: <message>" to stderr and continue. */
void _cgc_warn(const char *fmt, ...) CGC_HIDDEN __attribute__((format(printf, 1, 2), cold));
/* Format into buf like snprintf but async-signal-safe (supports %s %d %u %ld %lu %lld %llu %zu %zd %p %x %lx %llx %c %%). */
int _cgc_vformat(char *buf, size_t size, const char *fmt, va_list ap) CGC_HIDDEN;
int _cgc_format(char *buf, size_t size, const char *fmt, ...) CGC_HIDDEN __attribute__((format(printf, 3, 4)));
/* Write a whole buffer to a file descriptor, retrying on EINTR. */
void _cgc_write_all(int fd, const char *buf, size_t len) CGC_HIDDEN;

#define cgc_check(cond, ...)                                                   \
  do {                                                                         \
    if (cgc_unlikely(!(cond))) _cgc_fatal(__VA_ARGS__);                        \
  } while (0)

#if CGC_CHECKED
#define cgc_assert(cond)                                                       \
  do {                                                                         \
    if (cgc_unlikely(!(cond)))                                                 \
      _cgc_fatal("internal error: %s:%d: assertion failed: %s", __FILE__,      \
                 __LINE__, #cond);                                             \
  } while (0)
#else
#define cgc_assert(cond) ((void)0)
#endif

/* A spin lock for short critical sections on hot paths (a lock and an
   unlock are one atomic exchange and one store).  Spins, then yields. */
#include <stdatomic.h>
#include <sched.h>
typedef struct {
  _Atomic int held;
} cgc_spin_t;

static inline void cgc_spin_lock(cgc_spin_t *l) {
  while (atomic_exchange_explicit(&l->held, 1, memory_order_acquire)) {
    for (unsigned n = 0; atomic_load_explicit(&l->held, memory_order_relaxed); n++)
      if (n > 100) sched_yield();
  }
}

static inline void cgc_spin_unlock(cgc_spin_t *l) { atomic_store_explicit(&l->held, 0, memory_order_release); }

#define CGC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CGC_MAX(a, b) ((a) > (b) ? (a) : (b))
#define CGC_ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((uintptr_t)(a) - 1))
#define CGC_ALIGN_DOWN(x, a) ((x) & ~((uintptr_t)(a) - 1))

#endif
