/* Records that a panic runs are cleared like those of a normal exit: once a
   panic has run a frame that spilled into heap chunks, the chunks the thread
   keeps as spares hold nothing alive (docs/defer.md, "The collector": "each
   record's argument is cleared when the record runs, so spares keep nothing
   alive").  Built with and without -fexceptions. */
#include "cgc.h"
#include "testutil.h"

#define N 20000

struct obj {
  uint64_t pad[32]; /* 256 bytes */
};

static long ran;
static void hold(void *p) {
  CHECK(p != NULL);
  ran++;
}

static __attribute__((noinline)) void spill_and_panic(void *v) {
  CGC_FRAME();
  for (int i = 0; i < N; i++) {
    struct obj *o = cgc_alloc(sizeof *o);
    CHECK(o);
    o->pad[0] = (uint64_t)i;
    CGC_DEFER_DYN(hold, o);
  }
  cgc_panic(v);
}

static __attribute__((noinline)) void collect_and_churn(void) {
  clear_stack();
  cgc_collect();
  cgc_collect();
  for (int i = 0; i < 20000; i++) consume(cgc_alloc(sizeof(struct obj)));
  clear_stack();
  cgc_collect();
}

int main(void) {
  cgc_init();
  clear_stack();
  void *v = NULL;
  CHECK(cgc_protect(spill_and_panic, (void *)"spilled", &v) == 1);
  CHECK(v && strcmp(v, "spilled") == 0);
  CHECK(ran == N);
  CHECK(cgc__defer_chain == NULL);
  collect_and_churn();
  cgc_stats_t st;
  cgc_read_stats(&st);
  /* N objects of 256 bytes were held by the records (5 MB); after the panic
     ran them nothing refers to them any more. */
  CHECKF(st.last_live_bytes < (uint64_t)(N / 2) * sizeof(struct obj),
         "%llu bytes still live after a panic ran the frame's records",
         (unsigned long long)st.last_live_bytes);
  printf("defer_spare_panic: ok (CGC_DEFER_REGISTER=%d)\n", CGC_DEFER_REGISTER);
  return 0;
}
