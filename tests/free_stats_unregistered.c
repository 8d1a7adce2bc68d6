/* Statistics of explicit frees made by a thread that collections do not
   stop (it called cgc_unregister_thread, so it has no thread cache): a large
   object freed there, and the tail of a large object shrunk in place there,
   count in total_free_objects and total_free_bytes like anyone's. */
#include "free_util.h"

static void *big, *shrunk;
static size_t big_size, shrunk_before, shrunk_after;

static void *unregistered_frees(void *arg) {
  (void)arg;
  cgc_unregister_thread();
  cgc_free(big);
  void *r = cgc_realloc(shrunk, 100000); /* large to large, fewer pages: in place */
  CHECK(r == shrunk);
  shrunk_after = cgc_usable_size(r);
  return NULL;
}

int main(void) {
  cgc_init();
  big = cgc_alloc(3 * MIB);
  shrunk = cgc_alloc_noscan(2 * MIB);
  CHECK(big && shrunk);
  big_size = cgc_usable_size(big);
  shrunk_before = cgc_usable_size(shrunk);
  cgc_stats_t a = stats();
  pthread_t t;
  CHECK(pthread_create(&t, NULL, unregistered_frees, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  cgc_stats_t b = stats();
  CHECK(shrunk_after < shrunk_before);
  uint64_t objs = b.total_free_objects - a.total_free_objects, bytes = b.total_free_bytes - a.total_free_bytes;
  uint64_t want = big_size + (shrunk_before - shrunk_after);
  CHECKF(objs == 1, "%llu objects freed, 1 expected", (unsigned long long)objs);
  CHECKF(bytes == want, "%llu bytes freed, %llu expected (%zu freed, %zu cut)", (unsigned long long)bytes,
         (unsigned long long)want, big_size, shrunk_before - shrunk_after);
  printf("free_stats_unregistered: ok\n");
  return 0;
}
