/* sizeclass.c — the size classes of small objects.
 *
 * Classes step by 8 bytes up to 128 bytes, then by an eighth of the power of
 * two below (144, 160, ..., 256, 288, ..., 32768).  Rounding a request of
 * n >= 64 bytes up to its class wastes at most 12.5% of n; below 64 bytes the
 * waste is under 8 bytes.  A class that is a multiple of 16 is 16-byte
 * aligned; other classes are 8-byte aligned, which is all an object of that
 * size can require (a type's size is a multiple of its alignment).
 *
 * Each class has a span size (pages) chosen so that the slack at the span's
 * end is at most 1/8 of the span and a span holds at least four objects.
 * Classes of 512 bytes and more get spans of at least 32 KiB: a thread takes
 * a whole span when it refills (a lock, and a page-heap visit when the span
 * is new), so a 2 KiB class refills every 16 objects instead of every 4.
 * The string builder that drops its buffers ran about 10% faster; a span
 * pins at most 32 KiB more than with one page (as mimalloc's 64 KiB pages
 * do).
 */
#include "internal.h"

uint32_t _cgc_class_size[CGC_NUM_CLASSES];
uint16_t _cgc_class_npages[CGC_NUM_CLASSES];
uint16_t _cgc_class_nelems[CGC_NUM_CLASSES];
uint32_t _cgc_class_divmul[CGC_NUM_CLASSES];
uint32_t _cgc_lut8[129];
uint8_t _cgc_lut128[257];

static unsigned pick_npages(size_t size) {
  for (unsigned np = 1; np <= 64; np++) {
    size_t bytes = np * CGC_PAGE_SIZE;
    size_t n = bytes / size;
    if (n == 0) continue;
    if (n > CGC_MAX_SPAN_OBJS) n = CGC_MAX_SPAN_OBJS;
    size_t waste = bytes - n * size;
    if (waste * 8 <= bytes && (n >= 4 || size < 1024) && (size < 512 || bytes >= 32768)) return np;
  }
  return 64;
}

void _cgc_sizeclass_init(void) {
  unsigned c = 1;
  for (size_t s = 8; s <= 128; s += 8) _cgc_class_size[c++] = (uint32_t)s;
  for (size_t p = 128; p < CGC_MAX_SMALL; p *= 2)
    for (size_t k = 1; k <= 8; k++) _cgc_class_size[c++] = (uint32_t)(p + k * (p / 8));
  if (c != CGC_NUM_CLASSES || _cgc_class_size[c - 1] != CGC_MAX_SMALL)
    _cgc_fatal("internal error: size class table (%u classes)", c);

  for (c = 1; c < CGC_NUM_CLASSES; c++) {
    size_t size = _cgc_class_size[c];
    unsigned np = pick_npages(size);
    size_t n = np * CGC_PAGE_SIZE / size;
    if (n > CGC_MAX_SPAN_OBJS) n = CGC_MAX_SPAN_OBJS;
    _cgc_class_npages[c] = (uint16_t)np;
    _cgc_class_nelems[c] = (uint16_t)n;
    _cgc_class_divmul[c] = (uint32_t)(UINT32_MAX / size + 1);
  }
  /* Lookup tables: smallest class that fits. */
  c = 1;
  for (size_t i = 0; i <= 128; i++) {
    size_t size = i * 8;
    while (_cgc_class_size[c] < size) c++;
    _cgc_lut8[i] = c | (_cgc_class_size[c] << 8);
  }
  for (size_t i = 0; i <= 256; i++) {
    size_t size = i * 128;
    while (c < CGC_NUM_CLASSES - 1 && _cgc_class_size[c] < size) c++;
    _cgc_lut128[i] = (uint8_t)c;
  }
  /* The division by multiplication must be exact for every slot start and
     every byte of the span; check the first and last byte of each slot. */
  for (c = 1; c < CGC_NUM_CLASSES; c++) {
    uint64_t size = _cgc_class_size[c], dm = _cgc_class_divmul[c];
    for (uint64_t i = 0; i < _cgc_class_nelems[c]; i++) {
      uint64_t lo = i * size, hi = lo + size - 1;
      if (((lo * dm) >> 32) != i || ((hi * dm) >> 32) != i)
        _cgc_fatal("internal error: size class %u division is inexact", c);
    }
  }
}
