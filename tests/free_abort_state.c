/* Misuse, with the heap in a prepared state, that must abort with a `cgc: <call>: ...` message (run as
   `free_abort_state CASE`; tests/free.cmake checks the status and stderr).

   free_collected, realloc_collected: cgc_free / cgc_realloc of an object
   the last collection found unreachable (its only pointer hidden), in a
   span not swept since (the allocating thread's own span, which a paced
   collection leaves unswept).  The inline paths must refuse it as the slow
   paths do: a slot the sweep frees as well would be handed out twice.
   Every other object of the class is freed first, so that the span is in
   cgc_free's span cache for every page (cgc_realloc's inline path needs
   that).

   free_swept_for_move: cgc_free of an object the last collection found
   unreachable, after its span was swept for a cgc_realloc that moved a
   noscan buffer into the class (a sweep that leaves the freed slots' bytes
   as they were, for the move to overwrite): the slots it freed must still
   be recognised as free (run with CGC_DEBUG=bgsweep=0, so that no sweeper
   thread sweeps the span first). */
#include "free_util.h"

#define NH 16

/* Objects known only through hidden pointers, their neighbours freed. */
static __attribute__((noinline)) void hidden_objects(uintptr_t *h, size_t n, int noscan) {
  void *objs[2 * NH];
  for (int i = 0; i < 2 * NH; i++) {
    objs[i] = noscan ? cgc_alloc_noscan(n) : cgc_alloc(n);
    CHECK(objs[i] != NULL);
    fill(objs[i], n, 1); /* no zero word: nothing looks like a free slot */
  }
  for (int i = 0; i < NH; i++) {
    h[i] = hide_ptr(objs[2 * i]);
    cgc_free(objs[2 * i + 1]);
  }
  memset(objs, 0, sizeof objs);
  consume(objs);
}

void *volatile g_keep;

/* free_swept_for_move: a full span of 2000-byte noscan objects (16 to a
   span) made by a thread that exits, so that it goes to the central lists;
   the first object stays reachable, the others are known only hidden. */
static uintptr_t g_moved_h[16];
static void *make_span_for_move(void *arg) {
  (void)arg;
  for (int i = 0; i < 16; i++) {
    unsigned char *p = cgc_alloc_noscan(2000);
    CHECK(p != NULL);
    fill(p, 2000, 1); /* no zero word: nothing looks like a free slot */
    if (i == 0) g_keep = p;
    else g_moved_h[i] = hide_ptr(p);
  }
  return NULL;
}

int main(int argc, char **argv) {
  CHECKF(argc == 2, "usage: free_abort_state CASE");
  const char *c = argv[1];
  cgc_init();
  if (strcmp(c, "free_collected") == 0 || strcmp(c, "realloc_collected") == 0) {
    int realloc_case = strcmp(c, "realloc_collected") == 0; /* the inline path takes noscan buffers */
    uintptr_t h[NH];
    hidden_objects(h, 200, realloc_case);
    clear_stack();
    until_paced_collection(1000); /* another class: the 200-byte span stays unswept */
    for (int i = 0; i < NH; i++) {
      void *p = reveal_ptr(h[i]);
      if (realloc_case) g_keep = cgc_realloc(p, 150); /* would stay in place */
      else cgc_free(p);
    }
    printf("free_abort_state: %s: no abort\n", c);
    return 0;
  }
  if (strcmp(c, "free_swept_for_move") == 0) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, make_span_for_move, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    clear_stack();
    until_paced_collection(1000); /* another class: the span is left unswept */
    unsigned char *b = cgc_alloc_noscan(40);
    CHECK(b != NULL);
    b = cgc_realloc(b, 2000); /* sweeps the span for the move, takes its first free slot */
    CHECK(b != NULL);
    for (int i = 2; i < 16; i++) cgc_free(reveal_ptr(g_moved_h[i])); /* aborts at the first one found dead */
    printf("free_abort_state: %s: no abort\n", c);
    return 0;
  }
  if (strcmp(c, "checkfree_realloc_moved") == 0) {
    unsigned char *p = cgc_alloc_noscan(40);
    fill(p, 40, 3);
    g_keep = cgc_realloc(p, 4000);
    CHECK(g_keep != p);
    for (int i = 0; i < 40; i++) CHECKF(p[i] == 0xA5, "the moved-from slot %p is not poisoned at byte %d", (void *)p, i);
    cgc_free(p); /* aborts: in the quarantine */
    printf("free_abort_state: %s: no abort\n", c);
    return 0;
  }
  if (strncmp(c, "free_slack", 10) == 0 || strncmp(c, "realloc_slack", 13) == 0 ||
      strcmp(c, "usable_size_slack") == 0) {
    /* A slot whose end is not a heap pointer but lies on the slot's own
       page: the span's slack.  *_slack_hinted: that last slot is freed
       first, so that the thread's span cache holds the span for the page
       of the slack too; the slack must still be refused. */
    int hinted = strstr(c, "_hinted") != NULL;
    static const size_t ssz[] = {48, 80, 96, 112, 144, 176, 208, 240, 272, 320, 352, 416, 448, 480, 576, 640, 704, 768, 896};
    unsigned char *slack = NULL, *last = NULL;
    for (size_t k = 0; k < sizeof ssz / sizeof ssz[0] && !slack; k++) {
      for (int i = 0; i < 4000 && !slack; i++) {
        unsigned char *p = cgc_alloc(ssz[k]);
        CHECK(p != NULL);
        size_t n = cgc_usable_size(p);
        unsigned char *q = p + n;
        if (((uintptr_t)q & 8191) != 0 && ((uintptr_t)q >> 13) == ((uintptr_t)p >> 13) && !cgc_is_heap_ptr(q)) {
          slack = q;
          last = p;
        }
      }
    }
    CHECKF(slack != NULL, "no small span with slack found");
    CHECK(cgc_base(slack) == NULL);
    if (hinted) cgc_free(last);
    if (c[0] == 'f') cgc_free(slack);
    else if (c[0] == 'r') g_keep = cgc_realloc(slack, 10);
    else consume((void *)cgc_usable_size(slack));
    printf("free_abort_state: %s: no abort\n", c);
    return 0;
  }
  CHECKF(0, "unknown case %s", c);
  return 0;
}
