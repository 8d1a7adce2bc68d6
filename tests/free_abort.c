/* Misuse of cgc_free, cgc_realloc and the arena calls: each case must print
   a `cgc: <call>: ...` message (with the pointer) and abort.  Run as
   `free_abort CASE`; tests/free.cmake checks the status and stderr. */
#include "free_util.h"

static long g_static_word = 7;
void *volatile g_keep;

/* An object known only through a hidden pointer; freed first if asked. */
static __attribute__((noinline)) uintptr_t hidden_object(size_t n, int free_it) {
  void *p = cgc_alloc(n);
  uintptr_t h = hide_ptr(p);
  if (free_it) cgc_free(p);
  return h;
}

/* checkfree's quarantine keeps its open-addressing table valid when a
   collection releases entries from the middle of probe runs: entries whose
   slots (by the table's hash, 1024 slots at first) run 1021, 1022, 1023, 0,
   1, 2, 3, of which the 2nd, 3rd and 5th are released and the others stay
   (referenced from this stack).  The last one must still be found: freeing
   it again is a double free.  (Rehashing from a hole the releases made lost
   it.) */
#define RH_N 60000
static void **rh_cand; /* malloc: not scanned */
static size_t rh_hash(uintptr_t base) { return (size_t)((base >> 3) * 0x9E3779B97F4A7C15ull) & 1023; }
static __attribute__((noinline)) void *rh_pick(size_t h) {
  for (int i = 0; i < RH_N; i++)
    if (rh_cand[i] && rh_hash((uintptr_t)rh_cand[i]) == h) {
      void *p = rh_cand[i];
      rh_cand[i] = NULL;
      return p;
    }
  CHECKF(0, "no candidate object for slot %zu", h);
  return NULL;
}
static __attribute__((noinline)) void rh_release_free(size_t h) { cgc_free(rh_pick(h)); }
static __attribute__((noinline)) void checkfree_rehash(void) {
  cgc_set_gc_percent(-1);
  rh_cand = malloc(RH_N * sizeof *rh_cand);
  CHECK(rh_cand != NULL);
  for (int i = 0; i < RH_N; i++) rh_cand[i] = cgc_alloc(i % 2 ? 24 : 8);
  void *volatile e1 = rh_pick(1021);
  cgc_free(e1);
  rh_release_free(1022);
  rh_release_free(1023);
  void *volatile e4 = rh_pick(1021);
  cgc_free(e4);
  rh_release_free(1021);
  void *volatile e6 = rh_pick(0);
  cgc_free(e6);
  void *volatile e7 = rh_pick(1);
  cgc_free(e7);
  clear_stack();
  cgc_collect();
  cgc_free(e7); /* aborts */
  (void)e1;
  (void)e4;
}

/* The argument of a cleanup that a collection queued (its object was found
   unreachable; CGC_DEBUG=cleanups=manual keeps it in the queue), freed:
   checkfree reports the reference and names the queue as its place. */
#define QA_N 64
static void qa_nop(void *arg) { (void)arg; }
static cgc_cleanup_t qa_handles[QA_N];
static __attribute__((noinline)) void qa_owners(void *arg) {
  for (int i = 0; i < QA_N; i++) qa_handles[i] = cgc_add_cleanup(cgc_alloc(32), qa_nop, arg);
}
static __attribute__((noinline)) void checkfree_queued_arg(void) {
  void *arg = cgc_alloc(48);
  qa_owners(arg);
  clear_stack();
  cgc_collect();
  /* An owner a stale word kept still holds its cleanup, registered: stop
     those, so that only the queue refers to the argument (stopping a queued
     cleanup changes nothing). */
  for (int i = 0; i < QA_N; i++) cgc_cleanup_stop(qa_handles[i]);
  cgc_stats_t s;
  cgc_read_stats(&s);
  CHECKF(s.cleanups_queued > 0, "no owner was found unreachable");
  cgc_free(arg);
  cgc_collect(); /* aborts */
}

/* checkfree_thread_tls: a thread's own thread-local variable left dangling
   (glibc keeps a thread's static TLS inside its stack block, which must not
   make the variable pass for a stale stack slot). */
static __thread void *volatile tls_keep;
static void *tls_dangle(void *unused) {
  (void)unused;
  void *x = cgc_alloc(64);
  tls_keep = x;
  cgc_free(x);
  x = NULL;
  cgc_collect(); /* aborts */
  return NULL;
}

/* checkfree_thread_tsd: the same with a pthread_setspecific value (glibc
   keeps the first ones in the thread's descriptor, at the top of its stack
   block). */
static pthread_key_t tsd_key;
static void *tsd_dangle(void *unused) {
  (void)unused;
  void *x = cgc_alloc(64);
  CHECK(pthread_setspecific(tsd_key, x) == 0);
  cgc_free(x);
  x = NULL;
  cgc_collect(); /* aborts */
  return NULL;
}

/* checkfree_progress_large / _arena: after the free the thread allocates
   only large objects, or arena memory: calls that count as it running on,
   so that the second collection to see the dangling global reports it. */
static __attribute__((noinline)) void progress_case(bool arena) {
  char *x = cgc_alloc(64);
  g_keep = x;
  cgc_free(x);
  x = NULL;
  uint64_t gc0 = cgc_gc_count();
  cgc_arena_t *a = NULL;
  for (long i = 0; i < 400000 && cgc_gc_count() - gc0 < 40; i++) {
    if (arena) {
      if (i % 64 == 0) {
        if (a) cgc_arena_free(a);
        a = cgc_arena_new();
      }
      consume(cgc_arena_alloc(a, 60000));
    } else {
      consume(cgc_alloc(200000));
    }
  }
  fprintf(stderr, "%llu paced collections after the free, no report\n", (unsigned long long)(cgc_gc_count() - gc0));
}

int main(int argc, char **argv) {
  CHECKF(argc == 2, "usage: free_abort CASE");
  const char *c = argv[1];
  cgc_init();
  char *small = cgc_alloc(64);
  char *large = cgc_alloc(100000);
  char *noscan = cgc_alloc_noscan(64);
  cgc_arena_t *a = cgc_arena_new();
  char *in_arena = cgc_arena_alloc(a, 32);
  CHECK(small && large && noscan && a && in_arena);
  long local = 1;

  /* ---- cgc_free ---- */
  if (strcmp(c, "double_free_small") == 0) {
    cgc_free(small);
    cgc_free(small);
  } else if (strcmp(c, "double_free_noscan") == 0) {
    cgc_free(noscan);
    cgc_free(noscan);
  } else if (strcmp(c, "double_free_noscan_big") == 0) { /* its slot is not cleared */
    char *b = cgc_alloc_noscan(5000);
    memset(b, 0x5a, 5000);
    cgc_free(b);
    cgc_free(b);
  } else if (strcmp(c, "double_free_later") == 0) { /* other frees in between */
    char *b = cgc_alloc(64), *d = cgc_alloc(64);
    cgc_free(small);
    cgc_free(b);
    cgc_free(d);
    cgc_free(small);
  } else if (strcmp(c, "double_free_after_move") == 0) {
    /* The slot a noscan buffer moved out of (cgc_realloc's inline path) is on
       a list uncleared but for its first two words; freeing it is still a
       double free. */
    cgc_free(cgc_alloc_noscan(40));  /* the span of the 40-byte class is in cgc_free's span cache */
    cgc_free(cgc_alloc_noscan(200)); /* a slot of the new class is on the list */
    char *b = cgc_alloc_noscan(40);
    memset(b, 'x', 40);
    g_keep = cgc_realloc(b, 200);
    CHECK(g_keep != b);
    cgc_free(b);
  } else if (strcmp(c, "double_free_large") == 0) {
    cgc_free(large);
    cgc_free(large);
  } else if (strcmp(c, "interior_small") == 0) {
    cgc_free(small + 8);
  } else if (strcmp(c, "interior_large") == 0) {
    cgc_free(large + 8192);
  } else if (strcmp(c, "stack") == 0) {
    cgc_free(&local);
  } else if (strcmp(c, "malloc") == 0) {
    void *m = malloc(64);
    cgc_free(m);
  } else if (strcmp(c, "static") == 0) {
    cgc_free(&g_static_word);
  } else if (strcmp(c, "wild") == 0) {
    cgc_free((void *)(uintptr_t)0x1000);
  } else if (strcmp(c, "arena") == 0) {
    cgc_free(in_arena);
  } else if (strcmp(c, "arena_freed") == 0) {
    cgc_arena_free(a);
    cgc_free(in_arena);
  } else if (strcmp(c, "checkfree_collected") == 0) { /* an object the collector found unreachable */
    volatile uintptr_t h = hidden_object(200, 0);
    clear_stack();
    until_paced_collection(1000); /* another class: the slot is not reused */
    clear_stack();
    cgc_collect();
    cgc_free(reveal_ptr(h));

  } else if (strcmp(c, "usable_size_collected") == 0) { /* found unreachable, span not swept */
    uintptr_t h[16];
    for (int i = 0; i < 16; i++) h[i] = hidden_object(200, 0);
    clear_stack();
    until_paced_collection(1000);
    for (int i = 0; i < 16; i++) consume((void *)cgc_usable_size(reveal_ptr(h[i])));

  /* ---- cgc_realloc ---- */
  } else if (strcmp(c, "realloc_double_free") == 0) {
    cgc_free(small);
    g_keep = cgc_realloc(small, 200);
  } else if (strcmp(c, "realloc_interior") == 0) {
    g_keep = cgc_realloc(small + 16, 200);
  } else if (strcmp(c, "realloc_stack") == 0) {
    g_keep = cgc_realloc(&local, 200);
  } else if (strcmp(c, "realloc_arena") == 0) {
    g_keep = cgc_realloc(in_arena, 200);

  /* ---- arenas ---- */
  } else if (strcmp(c, "arena_alloc_after_free") == 0) {
    cgc_arena_free(a);
    g_keep = cgc_arena_alloc(a, 16);
  } else if (strcmp(c, "arena_alloc_noscan_after_free") == 0) {
    cgc_arena_free(a);
    g_keep = cgc_arena_alloc_noscan(a, 16);
  } else if (strcmp(c, "arena_alloc_after_reuse") == 0) {
    /* A freed handle is not given to a new arena while never-used ones are
       left (about 150000), so using it is still caught after many arenas
       were made and freed (64 sufficed before). */
    cgc_arena_free(a);
    for (int i = 0; i < 100000; i++) {
      cgc_arena_t *t = cgc_arena_new();
      CHECK(t != NULL && t != a);
      cgc_arena_free(t);
    }
    cgc_arena_t *b = cgc_arena_new();
    CHECK(b != NULL && b != a);
    g_keep = cgc_arena_alloc(a, 16);
  } else if (strcmp(c, "free_trimmed_tail") == 0) {
    /* Pages a large object gave back when it shrank in place: freed memory,
       not "not in the collected heap". */
    char *p = cgc_alloc(100000);
    CHECK(p != NULL);
    p = cgc_realloc(p, 40000);
    g_keep = p;
    cgc_free(p + 6 * 8192);
  } else if (strcmp(c, "roots_arena") == 0) {
    cgc_add_roots(in_arena, 32); /* scanned already; would fault once the arena is freed */
  } else if (strcmp(c, "roots_recycled") == 0) {
    /* A range registered over a large object that is freed while registered;
       an arena chunk then takes its pages: freeing that arena would make the
       next collection fault scanning the range. */
    char *big = cgc_alloc(256 << 10);
    CHECK(big != NULL);
    cgc_add_roots(big, 256 << 10);
    cgc_free(big);
    for (int i = 0; i < 4000; i++) {
      cgc_arena_t *t = cgc_arena_new();
      char *p = cgc_arena_alloc_noscan(t, 60 << 10);
      CHECK(p != NULL);
      if (p < big + (256 << 10) && p + (60 << 10) > big) {
        cgc_arena_free(t); /* aborts */
        break;
      }
    }
    CHECKF(0, "no arena chunk took the freed object's pages");
  } else if (strcmp(c, "arena_double_free") == 0) {
    cgc_arena_free(a);
    cgc_arena_free(a);
  } else if (strcmp(c, "arena_free_bogus") == 0) {
    cgc_arena_free((cgc_arena_t *)&local);
  } else if (strcmp(c, "arena_alloc_bogus") == 0 || strcmp(c, "arena_alloc_noscan_bogus") == 0) {
    /* Memory that looks like a handle with room in its bump regions. */
    static char room[256];
    uintptr_t fake[16] = {(uintptr_t)room, (uintptr_t)room + sizeof room, (uintptr_t)room,
                          (uintptr_t)room + sizeof room};
    if (strstr(c, "noscan")) g_keep = cgc_arena_alloc_noscan((cgc_arena_t *)fake, 16);
    else g_keep = cgc_arena_alloc((cgc_arena_t *)fake, 16);
  } else if (strcmp(c, "arena_alloc_wild") == 0 || strcmp(c, "arena_alloc_noscan_wild") == 0) {
    /* Not even readable: a message, not a fault. */
    cgc_arena_t *wild = (cgc_arena_t *)(uintptr_t)0x10;
    if (strstr(c, "noscan")) g_keep = cgc_arena_alloc_noscan(wild, 16);
    else g_keep = cgc_arena_alloc(wild, 16);
  } else if (strcmp(c, "arena_alloc_inside") == 0) {
    /* Inside the handle range, but between two handles. */
    cgc_arena_t *b = cgc_arena_new();
    CHECK(b != NULL);
    g_keep = cgc_arena_alloc((cgc_arena_t *)((char *)b + 8), 16);
  } else if (strcmp(c, "arena_alloc_range_end") == 0) {
    /* 8 bytes before the end of the readable part of the handle range (the
       first 64 KiB, from the program's first handle): a handle there would
       reach past it. */
    cgc_arena_t *b = cgc_arena_new();
    CHECK(b != NULL);
    g_keep = cgc_arena_alloc((cgc_arena_t *)((char *)a + (64 << 10) - 8), 16);
  } else if (strcmp(c, "arena_alloc_null") == 0) { /* cgc_arena_new's NULL, unchecked */
    g_keep = cgc_arena_alloc(NULL, 16);
  } else if (strcmp(c, "arena_alloc_noscan_null") == 0) {
    g_keep = cgc_arena_alloc_noscan(NULL, 16);
  } else if (strcmp(c, "arena_free_heap") == 0) {
    cgc_arena_free((cgc_arena_t *)small);

  /* ---- checkfree (CGC_DEBUG=checkfree=1) ---- */
  } else if (strcmp(c, "checkfree_rehash") == 0) {
    checkfree_rehash();
  } else if (strcmp(c, "checkfree_double_small") == 0) {
    cgc_free(small);
    cgc_free(small);
  } else if (strcmp(c, "checkfree_double_large") == 0) {
    cgc_free(large);
    cgc_free(large);
  } else if (strcmp(c, "checkfree_realloc_inplace") == 0) {
    cgc_free(small); /* quarantined: its first word is poison, not a free-list link */
    g_keep = cgc_realloc(small, 8);
  } else if (strcmp(c, "checkfree_realloc_large") == 0) {
    cgc_free(large);
    g_keep = cgc_realloc(large, 200000); /* grows in place when the pages after it are free */
  } else if (strcmp(c, "checkfree_usable_size") == 0) {
    cgc_free(small);
    g_keep = (void *)cgc_usable_size(small);
  } else if (strcmp(c, "checkfree_double_unswept") == 0) {
    /* Freed, released by a collection, not swept yet (bgsweep=0 and other
       classes allocated), then freed again. */
    volatile uintptr_t h = hidden_object(200, 1);
    clear_stack();
    until_paced_collection(1000);
    cgc_free(reveal_ptr(h));
  } else if (strcmp(c, "checkfree_realloc_double") == 0) {
    cgc_free(small);
    g_keep = cgc_realloc(small, 1000);
  } else if (strcmp(c, "checkfree_queued_arg") == 0) {
    checkfree_queued_arg();
  } else if (strcmp(c, "checkfree_thread_tls") == 0) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, tls_dangle, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
  } else if (strcmp(c, "checkfree_thread_tsd") == 0) {
    CHECK(pthread_key_create(&tsd_key, NULL) == 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, tsd_dangle, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
  } else if (strcmp(c, "checkfree_progress_large") == 0) {
    progress_case(false);
  } else if (strcmp(c, "checkfree_progress_arena") == 0) {
    progress_case(true);
  } else if (strcmp(c, "checkfree_global") == 0) {
    g_keep = small;
    cgc_free(small);
    small = NULL;
    cgc_collect();
  } else {
    fprintf(stderr, "unknown case %s\n", c);
    return 2;
  }
  consume(small);
  consume(large);
  consume(noscan);
  fprintf(stderr, "case %s: no abort\n", c);
  return 1;
}
