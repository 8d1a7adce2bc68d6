/* Helpers shared by the collector-core tests (tests/core_*.c).
 *
 * Survival tests fill an object with a pattern that has no zero byte, keep the
 * only reference in the place under test, hide every other copy, collect
 * several times while allocating garbage (so freed memory is reused, and reused
 * memory comes back zeroed), then check that the object is still a live heap
 * object with its pattern intact.
 *
 * Death tests keep many objects referenced only from a place that must not be
 * scanned and measure cgc_stats_t.last_live_bytes after a collection. */
#ifndef CGC_CORE_UTIL_H
#define CGC_CORE_UTIL_H

#include <cgc.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#define CORE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORE_ASAN 1
#endif
#endif
#ifndef CORE_ASAN
#define CORE_ASAN 0
#endif

/* For a function whose frame is unwound by pthread_cancel: AddressSanitizer
   leaves the redzones of such frames poisoned and then reports its own thread
   teardown writing there (google/sanitizers#1399). */
#define CORE_NO_ASAN_FRAME __attribute__((no_sanitize("address")))

#define CORE_MIB ((size_t)1 << 20)

/* Use a value so the compiler cannot drop the call that produced it. */

static inline pid_t core_gettid(void) { return (pid_t)syscall(SYS_gettid); }

/* ---- patterns -------------------------------------------------------------- */

/* A byte of the pattern for (seed, i); never zero. */
static inline unsigned char pat_byte(uint64_t seed, size_t i) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ULL + (uint64_t)i * 0x2545F4914F6CDD1DULL;
  x ^= x >> 29;
  return (unsigned char)(x % 255u + 1u);
}

static inline void fill_pattern(void *p, size_t n, uint64_t seed) {
  unsigned char *b = (unsigned char *)p;
  for (size_t i = 0; i < n; i++) b[i] = pat_byte(seed, i);
}

/* Returns the index of the first wrong byte, or (size_t)-1 if all are right. */
static inline size_t pattern_mismatch(const void *p, size_t n, uint64_t seed) {
  const unsigned char *b = (const unsigned char *)p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != pat_byte(seed, i)) return i;
  return (size_t)-1;
}

static inline bool all_zero(const void *p, size_t n) {
  const unsigned char *b = (const unsigned char *)p;
  for (size_t i = 0; i < n; i++)
    if (b[i]) return false;
  return true;
}

/* ---- hidden objects ------------------------------------------------------- */

/* A test object known only through a hidden pointer.  `base` is the object's
   start; `ref` the (possibly interior) pointer stored in the place under test. */
typedef struct {
  uintptr_t hbase;
  size_t size;
  uint64_t seed;
} hidden_obj_t;

/* Allocate an object of n bytes filled with the pattern for seed, store
   base + offset into *slot (the root under test) and return a hidden record. */
static __attribute__((noinline, unused)) hidden_obj_t make_obj_at(void **slot, size_t n, size_t offset,
                                                          uint64_t seed, int noscan) {
  unsigned char *p = (unsigned char *)(noscan ? cgc_alloc_noscan(n) : cgc_alloc(n));
  CHECKF(p != NULL, "allocation of %zu bytes failed", n);
  fill_pattern(p, n, seed);
  hidden_obj_t h = {hide_ptr(p), n, seed};
  *(void *volatile *)slot = p + offset;
  p = NULL;
  return h;
}

static inline hidden_obj_t make_obj(void **slot, size_t n, uint64_t seed) {
  return make_obj_at(slot, n, 0, seed, 0);
}

/* Check that the object is still a live heap object with its pattern. */
static __attribute__((noinline, unused)) void verify_obj_(hidden_obj_t h, const char *what, const char *file,
                                                  int line) {
  void *p = reveal_ptr(h.hbase);
  if (cgc_base(p) != p) {
    fprintf(stderr, "%s:%d: %s: object %p (%zu bytes) is no longer a live heap object (cgc_base -> %p)\n",
            file, line, what, p, h.size, cgc_base(p));
    abort();
  }
  size_t bad = pattern_mismatch(p, h.size, h.seed);
  if (bad != (size_t)-1) {
    fprintf(stderr,
            "%s:%d: %s: object %p (%zu bytes) was freed and reused: byte %zu is 0x%02x, expected 0x%02x\n",
            file, line, what, p, h.size, bad, ((unsigned char *)p)[bad], pat_byte(h.seed, bad));
    abort();
  }
  CHECKF(cgc_usable_size(p) >= h.size, "%s: usable size %zu < %zu", what, cgc_usable_size(p), h.size);
}
#define verify_obj(h, what) verify_obj_((h), (what), __FILE__, __LINE__)

/* ---- garbage -------------------------------------------------------------- */

/* Allocate about `mib` MiB of garbage, half of it in objects of `size` bytes
   (if size > 0, so that a freed object of that size is reused), the rest in
   mixed sizes, each filled with 0xdd; collect at the start, the middle and the
   end.  Keeps no reference to anything. */
static __attribute__((noinline, unused)) void churn(size_t size, size_t mib) {
  size_t total = mib * CORE_MIB;
  clear_stack();
  cgc_collect();
  size_t done = 0;
  uint64_t st = 0x1234567ULL + size;
  int collected_mid = 0;
  for (uint64_t i = 0; done < total; i++) {
    size_t n;
    if (size > 0 && i % 2 == 0)
      n = size;
    else {
      uint64_t r = rng_next(&st);
      switch (r % 8) {
        case 0: n = 16 + (r >> 8) % 64; break;
        case 1: n = 64 + (r >> 8) % 512; break;
        case 2: n = 512 + (r >> 8) % 4096; break;
        case 3: n = 4096 + (r >> 8) % 28672; break;
        case 4: n = 40000 + (r >> 8) % 100000; break;
        default: n = 8 + (r >> 8) % 256; break;
      }
    }
    unsigned char *g = (unsigned char *)((i % 3 == 1) ? cgc_alloc_noscan(n) : cgc_alloc(n));
    CHECKF(g != NULL, "garbage allocation of %zu bytes failed", n);
    memset(g, 0xdd, n);
    consume(g);
    g = NULL;
    done += n;
    if (!collected_mid && done >= total / 2) {
      collected_mid = 1;
      clear_stack();
      cgc_collect();
    }
  }
  clear_stack();
  cgc_collect();
}

/* ---- address space ---------------------------------------------------------- */

/* The end of the mapping (in /proc/self/maps) that holds address a. */
static __attribute__((unused)) uintptr_t mapping_end(uintptr_t a) {
  FILE *f = fopen("/proc/self/maps", "r");
  CHECK(f != NULL);
  char line[512];
  uintptr_t end = 0;
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi) {
      end = hi;
      break;
    }
  }
  fclose(f);
  CHECKF(end != 0, "%p is in no mapping", (void *)a);
  return end;
}

/* Takes `block` bytes of address space at exactly `at` (inaccessible, no
   part of cgc's heap), so that the heap cannot grow there.  Returns the
   mapping, MAP_FAILED if the space was taken already, or NULL (after saying
   why, under `name`) if this kernel cannot map at a fixed address without
   replacing what is there. */
static __attribute__((unused)) void *map_wall_at(uintptr_t at, size_t block, const char *name) {
  void *wall = mmap((void *)at, block, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
                    -1, 0);
  CHECKF(wall != MAP_FAILED || errno == EEXIST, "%s: mmap at %p: %s", name, (void *)at, strerror(errno));
  if (wall != MAP_FAILED && wall != (void *)at) { /* a kernel without MAP_FIXED_NOREPLACE */
    munmap(wall, block);
    printf("%s: skipped (no MAP_FIXED_NOREPLACE)\n", name);
    return NULL;
  }
  return wall;
}

/* ---- measurements --------------------------------------------------------- */

static inline cgc_stats_t stats_now(void) {
  cgc_stats_t s;
  memset(&s, 0, sizeof s);
  cgc_read_stats(&s);
  return s;
}

/* Bytes found reachable by a fresh full collection.  Inlined, so that
   clear_stack() runs from the caller's frame and wipes the frames of the
   functions the caller called before. */
static inline __attribute__((always_inline)) uint64_t live_after_collect(void) {
  clear_stack();
  cgc_collect();
  return stats_now().last_live_bytes;
}

/* n fresh objects of `size` bytes, each referenced only from its slot in
   slots[0..n); rec gets their records (seeds from seed0 on). */
static __attribute__((noinline, unused)) void fill_slots(void **slots, hidden_obj_t *rec, int n, size_t size,
                                                         uint64_t seed0) {
  for (int i = 0; i < n; i++) rec[i] = make_obj(&slots[i], size, seed0 + (uint64_t)i);
}

/* Bytes of n fresh objects of `size` bytes, referenced only from
   slots[0..n), that a collection finds reachable: about n * size when
   slots is scanned as a root, 0 when it is not. */
static __attribute__((noinline, unused)) uint64_t reachable_from(void **slots, hidden_obj_t *rec, int n, size_t size,
                                                                 uint64_t seed0) {
  memset(slots, 0, (size_t)n * sizeof(void *));
  uint64_t before = live_after_collect();
  fill_slots(slots, rec, n, size, seed0);
  uint64_t after = live_after_collect();
  return after > before ? after - before : 0;
}

static inline int cpus_available(void) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

/* ---- threads -------------------------------------------------------------- */

/* A one-shot event for handing control between threads. */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int value;
} core_event_t;
#define CORE_EVENT_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0}

static inline void event_add(core_event_t *e, int d) {
  pthread_mutex_lock(&e->mu);
  e->value += d;
  pthread_cond_broadcast(&e->cv);
  pthread_mutex_unlock(&e->mu);
}
static inline void event_set(core_event_t *e) { event_add(e, 1); }
static inline void event_wait_at_least(core_event_t *e, int v) {
  pthread_mutex_lock(&e->mu);
  while (e->value < v) pthread_cond_wait(&e->cv, &e->mu);
  pthread_mutex_unlock(&e->mu);
}
static inline void event_wait(core_event_t *e) { event_wait_at_least(e, 1); }

/* Make rt_tgsigqueueinfo fail with EPERM in this process from now on, as a
   sandbox's seccomp filter may (cgc then stops threads with tgkill). */
static __attribute__((unused)) void refuse_sigqueueinfo(void) {
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_rt_tgsigqueueinfo, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
  CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
  CHECK(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0);
  errno = 0;
  CHECK(syscall(SYS_rt_tgsigqueueinfo, getpid(), (int)core_gettid(), 0, NULL) == -1 && errno == EPERM);
}

/* A bound on a wait that must end: if watchdog_stop() is not reached within
   `seconds`, print msg and exit 1 (instead of hanging the test). */
static const char *watchdog_msg;
static __attribute__((unused)) void watchdog_fire(int sig) {
  (void)sig;
  (void)!write(2, watchdog_msg, strlen(watchdog_msg));
  (void)!write(2, "\n", 1);
  _exit(1);
}
static __attribute__((unused)) void watchdog_start(unsigned seconds, const char *msg) {
  watchdog_msg = msg;
  signal(SIGALRM, watchdog_fire);
  alarm(seconds);
}
static __attribute__((unused)) void watchdog_stop(void) { alarm(0); }

#endif
