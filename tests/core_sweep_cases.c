/* Sweeping and clearing right after a collection.  Run as
 * `core_sweep_cases CASE`:
 *
 *   fence        64 MiB of 1 MiB objects die; while the collection that
 *                found them releases its locks (the world restarted), another
 *                thread allocates 48 MiB of 1 MiB objects: they must reuse the
 *                dead memory, not map more.  The collector is held in that
 *                window (this program's pthread_mutex_unlock, which libcgc
 *                calls, pauses after each of the collector's first 160
 *                unlocks, as a descheduled collector would), so that the
 *                window is not missed; the result must not depend on it.
 *   locked_zero  an 80 MiB object on locked pages (mlock: the kernel refuses
 *                to release them), filled and dropped: the next 80 MiB
 *                cgc_alloc, which reuses its pages, must still be all zero.
 *                Not run without the privilege to lock that much.
 */
#include <dlfcn.h>
#include <sys/mman.h>

#include "core_util.h"

#define MIB ((size_t)1 << 20)

/* ---- fence ------------------------------------------------------------------------------ */

static pthread_t fence_collector;
static atomic_int fence_armed, fence_unlocks;
static int fence_go[2];

int pthread_mutex_unlock(pthread_mutex_t *m) {
  static int (*real)(pthread_mutex_t *);
  if (!real) real = (int (*)(pthread_mutex_t *))dlsym(RTLD_NEXT, "pthread_mutex_unlock");
  int rc = real(m);
  if (atomic_load(&fence_armed) && pthread_equal(pthread_self(), fence_collector)) {
    int n = atomic_fetch_add(&fence_unlocks, 1) + 1;
    if (n == 1) CHECK(write(fence_go[1], "g", 1) == 1); /* the allocating thread starts */
    if (n <= 160) {
      struct timespec ts = {0, 200 * 1000};
      while (nanosleep(&ts, &ts) != 0) {
      }
    }
  }
  return rc;
}

#define FENCE_LIVE 64
#define FENCE_GARBAGE 64
#define FENCE_AFTER 48
static void *volatile fence_live[FENCE_LIVE];
static void *volatile fence_after[FENCE_AFTER];

static uint64_t mapped(void) { return stats_now().mapped_bytes; }

static void *fence_allocator(void *unused) {
  (void)unused;
  char c;
  while (read(fence_go[0], &c, 1) != 1) {
  }
  for (int i = 0; i < FENCE_AFTER; i++) fence_after[i] = cgc_alloc(MIB);
  return NULL;
}

static __attribute__((noinline)) void fence_garbage(void) {
  for (int i = 0; i < FENCE_GARBAGE; i++) ((volatile char *)cgc_alloc(MIB))[0] = 1;
}

static void case_fence(void) {
  CHECK(pipe(fence_go) == 0);
  fence_collector = pthread_self();
  cgc_set_gc_percent(-1); /* only the collections below */
  pthread_t t;
  CHECK(pthread_create(&t, NULL, fence_allocator, NULL) == 0);
  for (int i = 0; i < FENCE_LIVE; i++) fence_live[i] = cgc_alloc(MIB);
  cgc_collect();
  fence_garbage();
  clear_stack();
  uint64_t before = mapped();
  atomic_store(&fence_armed, 1);
  cgc_collect();
  atomic_store(&fence_armed, 0);
  CHECK(pthread_join(t, NULL) == 0);
  uint64_t after = mapped();
  CHECKF(after <= before + 8 * MIB,
         "mapped %llu MiB before the collection, %llu MiB after %d MiB allocated over %d MiB it found dead",
         (unsigned long long)(before / MIB), (unsigned long long)(after / MIB), FENCE_AFTER, FENCE_GARBAGE);
}

/* ---- locked_zero ------------------------------------------------------------------------ */

#define LZ_SIZE ((size_t)80 << 20)

static __attribute__((noinline)) bool lz_fill(void) {
  unsigned char *p = cgc_alloc_noscan(LZ_SIZE);
  CHECK(p != NULL);
  if (mlock(p, LZ_SIZE) != 0) return false;
  memset(p, 0xab, LZ_SIZE);
  return true;
}

static void case_locked_zero(void) {
  if (!lz_fill()) {
    printf("mlock of %zu MiB refused (%s); case not run\n", LZ_SIZE / MIB, strerror(errno));
    return;
  }
  clear_stack();
  cgc_collect(); /* the object's pages go back to the page heap, locked and dirty */
  cgc_collect();
  unsigned char *q = cgc_alloc(LZ_SIZE);
  CHECK(q != NULL);
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < LZ_SIZE; i += 4096)
    if (q[i] && !bad++) first = i;
  CHECKF(bad == 0, "cgc_alloc(%zu) returned %p with %zu pages not zero (the first at offset %zu: %#x)", LZ_SIZE,
         (void *)q, bad, first, q[first]);
  munlock(q, LZ_SIZE);
}

static const test_case_t cases[] = {{"fence", case_fence}, {"locked_zero", case_locked_zero}};

int main(int argc, char **argv) {
  cgc_init();
  return RUN_NAMED_CASE(argc, argv, "core_sweep_cases", cases);
}
