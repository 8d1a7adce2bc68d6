/* cgc_add_roots corners (docs/roots.md, section 1):
   - registering the same start again replaces its size: after registering
     a range twice, one cgc_remove_roots removes it, and a re-registration
     with a smaller size stops scanning the words past it;
   - a range whose start is not 8-byte aligned is scanned from its first
     aligned word (the marker aligns the start up), so pointers stored in
     the aligned words inside it are roots;
   - a word only partly inside a range (its end not 8-byte aligned) is not a
     root;
   - an empty range inside an arena chunk is accepted (it holds nothing);
   - many ranges at once (more than the first table holds): every one of
     them stays a root as the table grows. */
#include "core_util.h"

enum { NOBJ = 1000, OBJ_SIZE = 1024 };

static __attribute__((noinline)) void fill_big(void **slot) { *slot = cgc_alloc(1 << 20); }

int main(void) {
  test_seed();
  const uint64_t all = (uint64_t)NOBJ * OBJ_SIZE;
  hidden_obj_t *rec = (hidden_obj_t *)malloc(NOBJ * sizeof *rec);
  CHECK(rec != NULL);
  /* One spare word in front, for the unaligned start. */
  void **buf = (void **)calloc(NOBJ + 1, sizeof(void *));
  CHECK(buf != NULL);
  void **m = buf + 1;

  /* Registered twice, removed once: no longer a root. */
  cgc_add_roots(m, NOBJ * sizeof(void *));
  cgc_add_roots(m, NOBJ * sizeof(void *));
  uint64_t got = reachable_from(m, rec, NOBJ, OBJ_SIZE, 100);
  CHECKF(got >= all - all / 16, "registered range: only %llu of %llu bytes reachable", (unsigned long long)got,
         (unsigned long long)all);
  cgc_remove_roots(m);
  got = reachable_from(m, rec, NOBJ, OBJ_SIZE, 200);
  CHECKF(got < all / 4, "a range registered twice and removed once still retains %llu of %llu bytes",
         (unsigned long long)got, (unsigned long long)all);

  /* Re-registered smaller: only the first 8 words are scanned. */
  cgc_add_roots(m, NOBJ * sizeof(void *));
  cgc_add_roots(m, 8 * sizeof(void *));
  got = reachable_from(m, rec, NOBJ, OBJ_SIZE, 300);
  CHECKF(got < all / 4, "re-registered with 8 words, the range still retains %llu of %llu bytes",
         (unsigned long long)got, (unsigned long long)all);
  cgc_remove_roots(m);

  /* An unaligned start: the aligned words after it are scanned. */
  char *odd = (char *)buf + 4; /* covers m[0 .. NOBJ-1) and half of m[NOBJ-1] */
  cgc_add_roots(odd, NOBJ * sizeof(void *));
  got = reachable_from(m, rec, NOBJ, OBJ_SIZE, 400);
  CHECKF(got >= all - all / 16, "range starting at %p (unaligned): only %llu of %llu bytes reachable", (void *)odd,
         (unsigned long long)got, (unsigned long long)all);
  churn(OBJ_SIZE, 8);
  for (int i = 0; i < NOBJ - 1; i++) verify_obj(rec[i], "object referenced from an unaligned cgc_add_roots range");
  cgc_remove_roots(odd);
  got = reachable_from(m, rec, NOBJ, OBJ_SIZE, 500);
  CHECKF(got < all / 4, "removed: %llu of %llu bytes still reachable", (unsigned long long)got,
         (unsigned long long)all);

  /* A range ending 4 bytes into m[1]: the object only m[1] holds dies. */
  memset(m, 0, 2 * sizeof(void *));
  cgc_add_roots(m, sizeof(void *) + 4);
  uint64_t before = live_after_collect();
  fill_big(&m[1]);
  uint64_t after = live_after_collect();
  /* (Under AddressSanitizer the object stays reachable through a stale stack word.) */
  CHECKF(CORE_ASAN || after < before + (1 << 19), "a word half inside a root range retained %llu bytes",
         (unsigned long long)(after - before));
  cgc_remove_roots(m);

  /* NOBJ ranges of one word each, registered one after the other. */
  void ***one = (void ***)malloc(NOBJ * sizeof *one);
  CHECK(one != NULL);
  for (int i = 0; i < NOBJ; i++) {
    one[i] = (void **)calloc(1, sizeof(void *));
    CHECK(one[i] != NULL);
    cgc_add_roots(one[i], sizeof(void *));
    rec[i] = make_obj(one[i], OBJ_SIZE, 600 + (uint64_t)i);
  }
  churn(OBJ_SIZE, 8);
  for (int i = 0; i < NOBJ; i++) verify_obj(rec[i], "object referenced from one of many cgc_add_roots ranges");
  for (int i = 0; i < NOBJ; i++) {
    cgc_remove_roots(one[i]);
    free(one[i]);
  }
  free(one);

  /* An empty range holds no arena memory, wherever it starts. */
  cgc_arena_t *ar = cgc_arena_new();
  CHECK(ar != NULL);
  CHECK(cgc_arena_alloc(ar, 64) != NULL);
  char *inner = (char *)cgc_arena_alloc(ar, 64);
  CHECK(inner != NULL && ((uintptr_t)inner & 4095) != 0);
  cgc_add_roots(inner, 0);
  cgc_remove_roots(inner);
  cgc_arena_free(ar);
  free(buf);
  free(rec);
  printf("core_roots_more: ok\n");
  return 0;
}
