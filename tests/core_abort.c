/* Bad input to the collector core: each case must print a `cgc: <call>: ...`
   message naming the call (and the pointer, where there is one) and abort.
   Run as `core_abort CASE`; tests/core.cmake checks the status and stderr. */
#include "core_util.h"

#include <sys/mman.h>

static int g_static_word = 7;

/* sweep_corrupt_list: objects of 1536 bytes made by a thread that exits, so
   that their span is the central lists' (swept by cgc_collect), not a
   thread's.  The first stays reachable from g_kept, the second only through
   g_dead_hidden. */
void *g_kept; /* not static: the store must stay */
static uintptr_t g_dead_hidden;

static void *worker_make_span(void *arg) {
  (void)arg;
  g_kept = cgc_alloc(1536);
  void *dead = cgc_alloc(1536);
  CHECK(g_kept != NULL && dead != NULL);
  g_dead_hidden = hide_ptr(dead);
  return NULL;
}

/* register_clone_no_tls: a thread made by clone() without a thread-local
   storage of its own (no CLONE_SETTLS) sees its creator's registration. */
static int clone_register(void *arg) {
  (void)arg;
  (void)cgc_register_thread(); /* aborts */
  syscall(SYS_exit, 0);
  return 0;
}

static void register_clone_no_tls(void) {
  size_t sz = (size_t)1 << 20;
  char *stk = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  CHECK(stk != MAP_FAILED);
  int flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
  CHECK(clone(clone_register, stk + sz, flags, NULL) > 0);
  for (;;) pause(); /* the clone's abort ends the process */
}

static void *worker_unregister_twice(void *arg) {
  (void)arg;
  cgc_unregister_thread();
  cgc_unregister_thread(); /* not registered any more */
  return NULL;
}

/* A program that writes into an object after cgc_free: the word it writes is
   where the freed slot keeps its link on the thread's free list.  The next
   collection, which marks the slots on that list, finds the link leading out
   of the list's size class and aborts with a message.  `garbage` writes a
   value that leads outside the heap; `other_class` copies the link of a freed
   128-byte object into a freed 64-byte one. */
static __attribute__((noinline)) void free_list_written(int other_class) {
  uintptr_t *small = (uintptr_t *)cgc_alloc(64);
  CHECK(small != NULL);
  cgc_free(small);
  if (other_class) {
    uintptr_t *big = (uintptr_t *)cgc_alloc(128);
    CHECK(big != NULL);
    cgc_free(big);
    ((volatile uintptr_t *)small)[0] = ((volatile uintptr_t *)big)[0];
  } else {
    ((volatile uintptr_t *)small)[0] = (uintptr_t)0x5a5a5a5a5a5a5a5aull;
  }
  cgc_collect(); /* aborts */
}

int main(int argc, char **argv) {
  CHECKF(argc == 2, "usage: core_abort CASE");
  const char *c = argv[1];
  cgc_init();
  void *heap = cgc_alloc(100);
  CHECK(heap != NULL);
  size_t r = 0;
  if (strcmp(c, "usable_size_stack") == 0) {
    int local = 1;
    r = cgc_usable_size(&local);
  } else if (strcmp(c, "usable_size_malloc") == 0) {
    void *m = malloc(64);
    r = cgc_usable_size(m);
    free(m);
  } else if (strcmp(c, "usable_size_static") == 0) {
    r = cgc_usable_size(&g_static_word);
  } else if (strcmp(c, "usable_size_interior") == 0) {
    r = cgc_usable_size((char *)heap + 8);
  } else if (strcmp(c, "usable_size_interior_large") == 0) {
    char *big = (char *)cgc_alloc(200000);
    CHECK(big != NULL);
    r = cgc_usable_size(big + 100000);
  } else if (strcmp(c, "usable_size_interior_noscan") == 0) {
    char *s = (char *)cgc_alloc_noscan(64);
    CHECK(s != NULL);
    r = cgc_usable_size(s + 63);
  } else if (strcmp(c, "usable_size_wild") == 0) {
    r = cgc_usable_size((void *)(uintptr_t)0x10);
  } else if (strcmp(c, "remove_roots_unknown") == 0) {
    cgc_remove_roots(&g_static_word);
  } else if (strcmp(c, "remove_roots_twice") == 0) {
    void **m = (void **)calloc(16, sizeof(void *));
    CHECK(m != NULL);
    cgc_add_roots(m, 16 * sizeof(void *));
    cgc_remove_roots(m);
    cgc_remove_roots(m);
  } else if (strcmp(c, "remove_roots_interior") == 0) {
    void **m = (void **)calloc(16, sizeof(void *));
    CHECK(m != NULL);
    cgc_add_roots(m, 16 * sizeof(void *));
    cgc_remove_roots(m + 4);
  } else if (strcmp(c, "add_roots_unmapped") == 0) {
    cgc_add_roots((void *)(uintptr_t)0x1000, 4096);
  } else if (strcmp(c, "add_roots_prot_none") == 0) {
    void *m = mmap(NULL, 8192, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    cgc_add_roots(m, 8192);
  } else if (strcmp(c, "add_roots_past_end") == 0) { /* readable at first, not all of it */
    char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    CHECK(munmap(m + 4096, 4096) == 0);
    cgc_add_roots(m, 8192);
  } else if (strcmp(c, "add_roots_hole") == 0) { /* readable at both ends, an unmapped page between */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    CHECK(munmap(m + page, page) == 0);
    cgc_add_roots(m, 3 * page);
  } else if (strcmp(c, "add_roots_huge") == 0) {
    void **m = (void **)calloc(16, sizeof(void *));
    CHECK(m != NULL);
    cgc_add_roots(m, SIZE_MAX / 2);
  } else if (strcmp(c, "add_roots_past_eof") == 0) { /* readable by its mapping, but past the file's end: SIGBUS */
    char path[] = "/tmp/cgc-core-abort-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    CHECK(write(fd, "12345", 5) == 5);
    char *m = mmap(NULL, 16384, PROT_READ, MAP_SHARED, fd, 0);
    CHECK(m != MAP_FAILED);
    cgc_add_roots(m, 16384);
  } else if (strcmp(c, "add_roots_wrap") == 0) { /* m + size wraps to m - 9 */
    char *m = (char *)malloc(64);
    CHECK(m != NULL);
    cgc_add_roots(m, SIZE_MAX - 8);
  } else if (strcmp(c, "add_roots_arena_inner") == 0) { /* an arena object after the first: not page-aligned */
    cgc_arena_t *a = cgc_arena_new();
    CHECK(a != NULL);
    CHECK(cgc_arena_alloc(a, 64) != NULL);
    char *p = (char *)cgc_arena_alloc(a, 64);
    CHECK(p != NULL);
    CHECKF(((uintptr_t)p & 4095) != 0, "arena object %p on a page boundary", (void *)p);
    cgc_add_roots(p, 32);
  } else if (strcmp(c, "strdup_null") == 0) {
    r = (size_t)(uintptr_t)cgc_strdup(NULL);
  } else if (strcmp(c, "read_stats_null") == 0) {
    cgc_read_stats(NULL);
  } else if (strcmp(c, "free_list_garbage") == 0) {
    free_list_written(0);
  } else if (strcmp(c, "free_list_other_class") == 0) {
    free_list_written(1);
  } else if (strcmp(c, "register_clone_no_tls") == 0) {
    register_clone_no_tls();
  } else if (strcmp(c, "unregister_unregistered") == 0) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, worker_unregister_twice, NULL) == 0);
    pthread_join(t, NULL);
  } else if (strcmp(c, "sweep_corrupt_list") == 0) {
    /* A write into an object after a collection found it unreachable (a
       use after free): its first word is now the link of its span's free
       list, and the next sweep of the span reports the bad link instead of
       following it. */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, worker_make_span, NULL) == 0);
    pthread_join(t, NULL);
    clear_stack();
    cgc_collect(); /* the second object dies; the span is swept, its free slots listed */
    CHECK(cgc_base(g_kept) == g_kept);
    *(volatile uint64_t *)reveal_ptr(g_dead_hidden) = 0x4141414141414141ull;
    cgc_collect(); /* sweeps the span again: the corrupted link is found */
  } else {
    fprintf(stderr, "unknown case %s\n", c);
    return 2;
  }
  /* Reaching here means the bad call returned. */
  fprintf(stderr, "core_abort: case %s: the call returned (%zu) instead of aborting\n", c, r);
  return 1;
}
