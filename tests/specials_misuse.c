/* Misuse of cleanups, finalizers and weak handles: each case must print a
 * `cgc: <call>: ...` message and abort.  Run as `specials_misuse CASE`;
 * tests/specials.cmake checks the status and stderr (cgc_abort_test).
 * The case "none" uses everything correctly and must exit 0.
 *
 *   arg_*          the argument points into the object (the cleanup could never run)
 *   cleanup_*      ptr is malloc'd, on the stack, thread-local, arena memory, NULL; fn NULL
 *   finalizer_*    interior pointers (small, large), malloc, stack, NULL
 *   weak_*         malloc, stack
 *   free_weak*, realloc_weak*  a weak handle passed to cgc_free or cgc_realloc,
 *                  also once it reads NULL (its referent freed, or found
 *                  unreachable by a collection)
 *   *_collected    an object the last collection found unreachable, its span
 *                  not swept yet (run with CGC_DEBUG=bgsweep=0)
 *   free_while_freeing  cgc_free from a second thread while the first one's
 *                  cgc_free runs the object's finalizer (a double free)
 */
#include "specials_util.h"

static void nop(void *arg) { (void)arg; }

static int global_arg;
static __thread long tls_var;

/* Objects known only through hidden pointers.  They must be dead for the
   collector: several, so that a conservative survivor does not matter. */
#define NHIDDEN 16
static uintptr_t hidden[NHIDDEN];
static NOINLINE void make_hidden(void) {
  for (int i = 0; i < NHIDDEN; i++) hidden[i] = hide_ptr(cgc_alloc(200));
}

/* Weak handles (kept: this array is scanned) of objects known to nobody. */
static cgc_weak_t hidden_weak[NHIDDEN];
static NOINLINE void make_hidden_weak(void) {
  for (int i = 0; i < NHIDDEN; i++) hidden_weak[i] = cgc_weak_make(cgc_alloc(200));
}

static __attribute__((noinline)) void make_unreachable_handle(cgc_weak_t *kept, void *referent) {
  *kept = cgc_weak_make(referent);
}

/* free_while_freeing: the finalizer, run by the main thread's cgc_free,
   has a second thread free the object too and waits for it. */
static void *second_free(void *obj) {
  cgc_free(obj);
  return NULL;
}
static void free_from_other_thread(void *obj) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, second_free, obj) == 0);
  CHECK(pthread_join(t, NULL) == 0);
}

int main(int argc, char **argv) {
  CHECKF(argc == 2, "usage: specials_misuse CASE");
  const char *c = argv[1];
  cgc_init();
  char *heap = cgc_alloc(100);
  char *big = cgc_alloc(100000);
  char *other = cgc_alloc(100);
  CHECK(heap && big && other);
  int local = 0;
  char *m = malloc(64);
  CHECK(m);
  if (strcmp(c, "arg_is_ptr") == 0) {
    cgc_add_cleanup(heap, nop, heap);
  } else if (strcmp(c, "arg_inside") == 0) {
    cgc_add_cleanup(heap, nop, heap + 50);
  } else if (strcmp(c, "arg_base_ptr_interior") == 0) {
    cgc_add_cleanup(heap + 40, nop, heap); /* ptr interior, arg the base */
  } else if (strcmp(c, "arg_inside_large") == 0) {
    cgc_add_cleanup(big, nop, big + 99999);
  } else if (strcmp(c, "arg_inside_noscan") == 0) {
    char *n = cgc_alloc_noscan(64);
    cgc_add_cleanup(n + 8, nop, n + 63);
  } else if (strcmp(c, "cleanup_malloc") == 0) {
    cgc_add_cleanup(m, nop, NULL);
  } else if (strcmp(c, "cleanup_stack") == 0) {
    cgc_add_cleanup(&local, nop, NULL);
  } else if (strcmp(c, "cleanup_tls") == 0) {
    cgc_add_cleanup(&tls_var, nop, NULL);
  } else if (strcmp(c, "cleanup_arena") == 0) {
    cgc_arena_t *a = cgc_arena_new();
    CHECK(a);
    cgc_add_cleanup(cgc_arena_alloc(a, 64), nop, NULL);
  } else if (strcmp(c, "cleanup_null_ptr") == 0) {
    cgc_add_cleanup(NULL, nop, NULL);
  } else if (strcmp(c, "cleanup_null_fn") == 0) {
    cgc_add_cleanup(heap, NULL, NULL);
  } else if (strcmp(c, "finalizer_interior") == 0) {
    cgc_set_finalizer(heap + 8, nop);
  } else if (strcmp(c, "finalizer_interior_large") == 0) {
    cgc_set_finalizer(big + 8192, nop);
  } else if (strcmp(c, "finalizer_malloc") == 0) {
    cgc_set_finalizer(m, nop);
  } else if (strcmp(c, "finalizer_stack") == 0) {
    cgc_set_finalizer(&local, nop);
  } else if (strcmp(c, "finalizer_null_ptr") == 0) {
    cgc_set_finalizer(NULL, nop);
  } else if (strcmp(c, "weak_malloc") == 0) {
    consume(cgc_weak_make(m));
  } else if (strcmp(c, "weak_stack") == 0) {
    consume(cgc_weak_make(&local));
  } else if (strcmp(c, "cleanup_collected") == 0 || strcmp(c, "finalizer_collected") == 0 ||
             strcmp(c, "weak_collected") == 0) {
    /* A record on such an object would pass to the next object allocated in
       its slot once the span is swept. */
    make_hidden();
    clear_stack();
    until_paced_collection(1000); /* another class; bgsweep=0 leaves their span unswept */
    for (int i = 0; i < NHIDDEN; i++) {
      void *p = reveal_ptr(hidden[i]);
      if (c[0] == 'c') cgc_add_cleanup(p, nop, NULL);
      else if (c[0] == 'f') CHECK(cgc_set_finalizer(p, nop) == 0);
      else consume(cgc_weak_make(p));
    }
  } else if (strncmp(c, "cleanup_freed", 13) == 0 || strncmp(c, "finalizer_freed", 15) == 0 ||
             strncmp(c, "weak_freed", 10) == 0) {
    /* Freed with cgc_free (also under checkfree, where it is quarantined,
       poisoned and on no free list); _large: a large object, whose pages
       went back to the page heap. */
    char *f = cgc_alloc(strstr(c, "_large") ? 100000 : 100);
    cgc_free(f);
    if (c[0] == 'c') cgc_add_cleanup(f, nop, NULL);
    else if (c[0] == 'f') CHECK(cgc_set_finalizer(f, nop) == 0);
    else consume(cgc_weak_make(f));
  } else if (strcmp(c, "free_weak") == 0 || strcmp(c, "realloc_weak") == 0 ||
             strcmp(c, "free_weak_checkfree") == 0) {
    /* A weak handle converts to void * silently: freeing it must be caught
       (the collector would later clear a word of whatever reused the slot). */
    cgc_weak_t w = cgc_weak_make(heap);
    if (c[0] == 'r') consume(cgc_realloc(w, 64));
    else cgc_free(w);
  } else if (strcmp(c, "free_weak_cleared") == 0) {
    /* A handle whose referent was freed reads NULL, and is still a handle. */
    cgc_weak_t w = cgc_weak_make(heap);
    cgc_free(heap);
    CHECK(cgc_weak_value(w) == NULL);
    cgc_free(w);
  } else if (strcmp(c, "realloc_weak_collected") == 0) {
    /* The same for a handle the collector cleared. */
    make_hidden_weak();
    clear_stack();
    cgc_collect();
    cgc_weak_t w = NULL;
    for (int i = 0; i < NHIDDEN && !w; i++)
      if (cgc_weak_value(hidden_weak[i]) == NULL) w = hidden_weak[i];
    CHECKF(w != NULL, "none of %d unreachable referents was found unreachable", NHIDDEN);
    consume(cgc_realloc(w, 64));
  } else if (strcmp(c, "weak_value_object") == 0) {
    consume(cgc_weak_value((cgc_weak_t)(void *)other)); /* the object for its handle */
  } else if (strcmp(c, "weak_value_forged") == 0) {
    consume(cgc_weak_value((cgc_weak_t)(uintptr_t)0x1234));
  } else if (strcmp(c, "weak_value_freed_arena") == 0) {
    /* An address inside the heap's range whose memory faults (a freed
       arena): refused before it is read. */
    cgc_arena_t *a = cgc_arena_new();
    CHECK(a != NULL);
    char *p = cgc_arena_alloc(a, 64);
    CHECK(p != NULL);
    cgc_arena_free(a);
    consume(cgc_weak_value((cgc_weak_t)(void *)p));
  } else if (strcmp(c, "free_while_freeing") == 0) {
    CHECK(cgc_set_finalizer(other, free_from_other_thread) == 0);
    cgc_free(other);
  } else if (strcmp(c, "weak_value_static") == 0) {
    consume(cgc_weak_value((cgc_weak_t)(void *)&global_arg));
  } else if (strcmp(c, "weak_value_reclaimed") == 0) {
    /* A handle the collector reclaimed (kept only in malloc'd memory, which
       is not scanned), its slot not reused yet. */
    cgc_weak_t *kept = malloc(sizeof *kept);
    CHECK(kept != NULL);
    make_unreachable_handle(kept, other);
    clear_stack();
    cgc_collect();
    cgc_collect();
    consume(cgc_weak_value(*kept));
  } else if (strcmp(c, "none") == 0) {
    /* Correct uses next to the misuses above. */
    cgc_add_cleanup(heap, nop, other);            /* another object */
    cgc_add_cleanup(heap, nop, (void *)((uintptr_t)heap + 4096)); /* outside the object */
    cgc_add_cleanup(heap + 99, nop, &global_arg); /* the last byte, static arg */
    cgc_add_cleanup(big + 99999, nop, NULL);
    cgc_add_cleanup(&global_arg, nop, heap);      /* static storage: no-op */
    CHECK(cgc_set_finalizer(big, nop) == 0);
    CHECK(cgc_set_finalizer(&global_arg, nop) == 0);
    consume(cgc_weak_make(&global_arg));
    consume(cgc_weak_make(big + 5));
    cgc_weak_t hw = cgc_weak_make(heap), sw = cgc_weak_make(&global_arg);
    CHECK(cgc_weak_value(hw) == heap && cgc_weak_value(sw) == &global_arg);
    cgc_collect();
    CHECK(cgc_weak_value(hw) == heap && cgc_weak_value(sw) == &global_arg);
    free(m);
    return 0;
  } else {
    fprintf(stderr, "unknown case %s\n", c);
    return 2;
  }
  fprintf(stderr, "case %s did not abort\n", c);
  free(m);
  return 3;
}
