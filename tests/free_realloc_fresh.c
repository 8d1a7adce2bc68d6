/* cgc_realloc in a fresh process, where the page heap's layout is known:
   - a noscan buffer moved into a size class the thread has no slots of gets
     a new span, made here of pages a freed noscan object left dirty; the
     span's other slots are free all the same: cgc_base answers NULL for
     them (a free slot's second word is zero, docs/heap.md section 8);
   - growing a large object in place counts as allocation for the pacer, as
     the same growth by a move does (docs/free.md section 3): a program that
     grows buffers in place and drops them brings on collections, and its
     heap stays bounded.  Here 32 buffers of 40000 bytes are each grown to
     32 MiB (in place: at the heap's end, where nothing follows them) and
     dropped: 1 GiB in all, under the default pacing. */
#include "free_util.h"

static void test_move_into_dirty_pages(void) {
  unsigned char *big = cgc_alloc_noscan(MIB);
  CHECK(big != NULL);
  memset(big, 0xff, MIB);
  cgc_free(big); /* its pages go back to the page heap as they are */
  unsigned char *b = cgc_alloc_noscan(2000);
  CHECK(b != NULL);
  fill(b, 2000, 1);
  unsigned char *n = cgc_realloc(b, 3000); /* the first slot of a new span of the 3072-byte class */
  CHECK(n != NULL && n != b && intact(n, 2000, 1));
  size_t cs = cgc_usable_size(n);
  CHECK(cs == 3072);
  for (int i = 1; i < 4; i++) {
    unsigned char *slot = n + (size_t)i * cs;
    void *base = cgc_base(slot);
    CHECKF(base == NULL, "cgc_base(%p) = %p: a free slot of the span a noscan buffer moved into is taken for an object",
           (void *)slot, base);
  }
  cgc_free(n);
}

static __attribute__((noinline)) int grow_and_drop(void) {
  unsigned char *p = cgc_alloc_noscan(40000);
  CHECK(p != NULL);
  p[0] = 1;
  unsigned char *q = cgc_realloc(p, 32 * MIB);
  CHECK(q != NULL && q[0] == 1);
  q[32 * MIB - 1] = 2;
  consume(q);
  return q == p;
}

static void test_growth_paces(void) {
  uint64_t g0 = cgc_gc_count();
  int in_place = 0;
  for (int i = 0; i < 32; i++) in_place += grow_and_drop();
  uint64_t n = cgc_gc_count() - g0, mapped = stats().mapped_bytes;
  printf("grown in place %d times of 32: %llu collections, %llu MiB mapped\n", in_place, (unsigned long long)n,
         (unsigned long long)(mapped / MIB));
  CHECKF(n >= 4, "1 GiB of buffers grown by cgc_realloc and dropped brought on %llu collections",
         (unsigned long long)n);
  if (!FREE_ASAN) /* a stale word may keep a buffer or two */
    CHECKF(mapped < 256 * MIB, "%llu MiB mapped after dropping 32 grown buffers of 32 MiB",
           (unsigned long long)(mapped / MIB));
}

int main(void) {
  test_seed();
  cgc_init();
  test_move_into_dirty_pages();
  test_growth_paces();
  printf("free_realloc_fresh: ok\n");
  return 0;
}
