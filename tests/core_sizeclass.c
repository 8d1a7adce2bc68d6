/* Size classes: for every request n up to 32 KiB, cgc_usable_size(cgc_alloc(n))
   is at least n and wastes at most 12.5% (n >= 64; rounded up to 8 bytes) or
   less than 8 bytes (n < 64).  Large objects (> 32 KiB) are exact-fit up to
   page rounding and are distinct page-heap objects. */
#include "core_util.h"

static size_t align8(size_t x) { return (x + 7) & ~(size_t)7; }

/* Largest usable size allowed for a request of n bytes (1 <= n <= 32 KiB). */
static size_t max_usable(size_t n) {
  if (n < 64) return align8(n);
  size_t ninth = (n * 9 + 7) / 8; /* ceil(n * 1.125) */
  return align8(ninth);
}

static void check_size(size_t n, int noscan) {
  unsigned char *p = (unsigned char *)(noscan ? cgc_alloc_noscan(n) : cgc_alloc(n));
  CHECKF(p != NULL, "alloc(%zu) failed", n);
  size_t us = cgc_usable_size(p);
  CHECKF(us >= n, "cgc_usable_size(cgc_alloc%s(%zu)) = %zu < n", noscan ? "_noscan" : "", n, us);
  CHECKF(us <= max_usable(n), "cgc_usable_size(cgc_alloc%s(%zu)) = %zu > %zu (more than 12.5%% waste)",
         noscan ? "_noscan" : "", n, us, max_usable(n));
  CHECK(cgc_base(p) == p);
  CHECK(cgc_base(p + us - 1) == p);
  /* The first and last usable bytes are writable and zero. */
  CHECK(p[0] == 0 && p[us - 1] == 0);
  p[0] = 1;
  p[us - 1] = 1;
}

int main(void) {
  test_seed();
  for (size_t n = 1; n <= 32768; n++) check_size(n, 0);
  for (size_t n = 1; n <= 32768; n++) check_size(n, 1);

  /* The same class is used every time: the usable size depends on n only. */
  for (size_t n = 1; n <= 32768; n += 1 + (size_t)(test_rand() % 97)) {
    void *a = cgc_alloc(n), *b = cgc_alloc_noscan(n);
    CHECK(a && b);
    CHECK(cgc_usable_size(a) == cgc_usable_size(b));
  }

  /* Large objects: at least n, bounded slack, one object per allocation. */
  static const size_t large[] = {32769, 32768 + 4096, 40000, 65536, 65537, 100000, 131072,
                                 1 << 20, (1 << 20) + 1, 5 << 20};
  unsigned char *prev = NULL;
  size_t prev_us = 0;
  for (size_t i = 0; i < sizeof large / sizeof large[0]; i++) {
    size_t n = large[i];
    unsigned char *p = (unsigned char *)cgc_alloc(n);
    CHECKF(p != NULL, "alloc(%zu)", n);
    size_t us = cgc_usable_size(p);
    CHECKF(us >= n && us - n < 64 * 1024, "large alloc(%zu): usable %zu", n, us);
    CHECKF(((uintptr_t)p & 4095) == 0, "large object %p (%zu bytes) is not page aligned", (void *)p, n);
    CHECK(cgc_base(p + us - 1) == p);
    memset(p, 0x5a, us);
    if (prev) {
      /* Not overlapping the previous one. */
      CHECK(p + us <= prev || prev + prev_us <= p);
      CHECK(prev[0] == 0x5a && prev[prev_us - 1] == 0x5a);
    }
    prev = p;
    prev_us = us;
  }
  printf("core_sizeclass: ok\n");
  return 0;
}
