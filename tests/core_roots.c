/* Roots of the main thread and the executable: the stack (deep frames too),
   callee-saved registers, .data and .bss, interior pointers (cgc_base maps them
   to the base), cgc_add_roots / cgc_remove_roots ranges in malloc and mmap
   memory, and memory from malloc or mmap that is not registered is not
   scanned. */
#include "core_util.h"

#include <limits.h>

#include <sys/stat.h>

#include <sys/mman.h>

/* .bss */
static void *g_bss_slot;
static void *g_bss_big[1 << 17]; /* 1 MiB */
/* .data (initialized to a non-zero value so the variables land in .data) */
static int g_anchor;
static void *g_data_slot = &g_anchor;
static void *g_data_arr[64] = {&g_anchor, &g_anchor};
/* Interior pointers */
static void *g_interior_mid;
static void *g_interior_last;
static void *g_interior_large;

static void test_globals(void) {
  hidden_obj_t a = make_obj(&g_bss_slot, 200, 1);
  hidden_obj_t b = make_obj(&g_bss_big[(1 << 17) - 3], 3000, 2);
  hidden_obj_t c = make_obj(&g_data_slot, 64, 3);
  hidden_obj_t d = make_obj(&g_data_arr[40], 100000, 4);
  hidden_obj_t e = make_obj(&g_bss_big[12345], 24, 5);
  static void *fn_static = &g_anchor; /* function-level static, .data */
  hidden_obj_t f = make_obj(&fn_static, 40, 6);
  for (int i = 0; i < 3; i++) {
    churn(200, 16);
    churn(3000, 8);
    churn(24, 4);
  }
  verify_obj(a, ".bss variable");
  verify_obj(b, "end of a large .bss array");
  verify_obj(c, ".data variable");
  verify_obj(d, ".data array element (large object)");
  verify_obj(e, "middle of a large .bss array");
  verify_obj(f, "function-level static");
  g_bss_slot = g_bss_big[(1 << 17) - 3] = g_bss_big[12345] = NULL;
  g_data_slot = g_data_arr[40] = fn_static = NULL;
}

static void test_interior(void) {
  hidden_obj_t mid = make_obj_at(&g_interior_mid, 1000, 500, 11, 0);
  hidden_obj_t last = make_obj_at(&g_interior_last, 100, 99, 12, 0);
  hidden_obj_t lg = make_obj_at(&g_interior_large, 256 * 1024, 200 * 1024 + 8, 13, 1);
  for (int i = 0; i < 3; i++) {
    churn(1000, 8);
    churn(100, 8);
    churn(256 * 1024, 16);
  }
  verify_obj(mid, "object reached only by a pointer to its middle");
  verify_obj(last, "object reached only by a pointer to its last byte");
  verify_obj(lg, "large object reached only by an interior pointer");
  CHECK(cgc_base(g_interior_mid) == reveal_ptr(mid.hbase));
  CHECK(cgc_base(g_interior_last) == reveal_ptr(last.hbase));
  CHECK(cgc_base(g_interior_large) == reveal_ptr(lg.hbase));
  g_interior_mid = g_interior_last = g_interior_large = NULL;
}

/* The stack of the main thread, through many frames. */
static int g_depth_verified;

static __attribute__((noinline)) void recurse(int depth) {
  void *volatile slot = NULL;
  hidden_obj_t h = make_obj((void **)&slot, 64 + (size_t)depth * 8, 100 + (uint64_t)depth);
  if (depth < 150)
    recurse(depth + 1);
  else {
    churn(64, 8);
    churn(64 + 150 * 8, 8);
  }
  verify_obj(h, "object referenced from a deep stack frame");
  CHECK(slot == reveal_ptr(h.hbase));
  g_depth_verified++;
}

static __attribute__((noinline)) void test_stack(void) {
  void *volatile slot = NULL;
  hidden_obj_t h = make_obj((void **)&slot, 5000, 21);
  char big_frame[64 * 1024];
  memset(big_frame, 0, sizeof big_frame);
  void *volatile *far_slot = (void *volatile *)(big_frame + 40000);
  hidden_obj_t h2 = make_obj((void **)far_slot, 300, 22);
  g_depth_verified = 0;
  recurse(0);
  CHECK(g_depth_verified == 151);
  churn(5000, 16);
  churn(300, 8);
  verify_obj(h, "object referenced from a main-thread stack variable");
  verify_obj(h2, "object referenced from inside a large stack array");
  CHECK(*far_slot == reveal_ptr(h2.hbase));
  consume(big_frame);
}

#if defined(__x86_64__)
/* A pointer held only in a callee-saved register across collections. */
static __attribute__((noinline)) uintptr_t hold_in_register(uintptr_t hidden) {
  register void *r __asm__("rbx") = reveal_ptr(hidden);
  __asm__ volatile("" : "+r"(r));
  churn(777, 8);
  __asm__ volatile("" : "+r"(r));
  churn(777, 8);
  __asm__ volatile("" : "+r"(r));
  return hide_ptr(r);
}

static void test_register(void) {
  void *tmp = NULL;
  hidden_obj_t h = make_obj(&tmp, 777, 31);
  tmp = NULL;
  uintptr_t back = hold_in_register(h.hbase);
  CHECK(back == h.hbase);
  verify_obj(h, "object referenced only from a callee-saved register");
}
#endif

/* N objects referenced only from `slots`; returns how many bytes of them a
   collection found reachable (measured as the growth of last_live_bytes). */
enum { NOBJ = 1000, OBJ_SIZE = 1024 };

static void test_malloc_and_mmap(void) {
  const uint64_t all = (uint64_t)NOBJ * OBJ_SIZE;
  hidden_obj_t *rec = (hidden_obj_t *)malloc(NOBJ * sizeof *rec);
  CHECK(rec != NULL);

  /* malloc'd memory is not scanned. */
  void **m = (void **)malloc(NOBJ * sizeof(void *));
  CHECK(m != NULL);
  uint64_t got = reachable_from(m, rec, NOBJ, OBJ_SIZE, 1000);
  CHECKF(got < all / 4, "objects referenced only from malloc memory survived: %llu of %llu bytes",
         (unsigned long long)got, (unsigned long long)all);

  /* Registered, it is. */
  cgc_add_roots(m, NOBJ * sizeof(void *));
  got = reachable_from(m, rec, NOBJ, OBJ_SIZE, 2000);
  CHECKF(got >= all - all / 16, "objects referenced from an add_roots range: only %llu of %llu bytes reachable",
         (unsigned long long)got, (unsigned long long)all);
  for (int r = 0; r < 2; r++) churn(OBJ_SIZE, 16);
  for (int i = 0; i < NOBJ; i++) verify_obj(rec[i], "object referenced from a cgc_add_roots range (malloc)");

  /* Removed, it is not. */
  cgc_remove_roots(m);
  /* An empty range registers and removes like any other (a buffer that may be
     empty; removing one used to abort), and NULL is ignored by both calls. */
  cgc_add_roots(m, 0);
  cgc_remove_roots(m);
  cgc_add_roots(NULL, 64);
  cgc_remove_roots(NULL);
  got = reachable_from(m, rec, NOBJ, OBJ_SIZE, 3000);
  CHECKF(got < all / 4, "objects referenced only from a removed root range survived: %llu of %llu bytes",
         (unsigned long long)got, (unsigned long long)all);
  free(m);

  /* mmap'd memory: not scanned; registered, only the registered part is. */
  size_t len = 2 * NOBJ * sizeof(void *) + 8192;
  void **mm = (void **)mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(mm != MAP_FAILED);
  got = reachable_from(mm, rec, NOBJ, OBJ_SIZE, 4000);
  CHECKF(got < all / 4, "objects referenced only from mmap memory survived: %llu of %llu bytes",
         (unsigned long long)got, (unsigned long long)all);

  void **hi = mm + NOBJ + 16; /* the registered half */
  cgc_add_roots(hi, NOBJ * sizeof(void *));
  got = reachable_from(mm, rec, NOBJ, OBJ_SIZE, 5000); /* the unregistered half */
  CHECKF(got < all / 4, "objects referenced from outside a registered range survived: %llu of %llu bytes",
         (unsigned long long)got, (unsigned long long)all);
  got = reachable_from(hi, rec, NOBJ, OBJ_SIZE, 6000);
  CHECKF(got >= all - all / 16, "objects referenced from a registered mmap range: only %llu of %llu bytes reachable",
         (unsigned long long)got, (unsigned long long)all);
  for (int r = 0; r < 2; r++) churn(OBJ_SIZE, 16);
  for (int i = 0; i < NOBJ; i++) verify_obj(rec[i], "object referenced from a cgc_add_roots range (mmap)");

  /* Two ranges: removing one leaves the other. */
  void **m2 = (void **)calloc(NOBJ, sizeof(void *));
  CHECK(m2 != NULL);
  cgc_add_roots(m2, NOBJ * sizeof(void *));
  cgc_remove_roots(hi);
  got = reachable_from(hi, rec, NOBJ, OBJ_SIZE, 7000);
  CHECKF(got < all / 4, "objects referenced from a removed mmap range survived: %llu of %llu bytes",
         (unsigned long long)got, (unsigned long long)all);
  got = reachable_from(m2, rec, NOBJ, OBJ_SIZE, 8000);
  CHECKF(got >= all - all / 16, "objects referenced from the remaining range: only %llu of %llu bytes reachable",
         (unsigned long long)got, (unsigned long long)all);
  churn(OBJ_SIZE, 16);
  for (int i = 0; i < NOBJ; i++) verify_obj(rec[i], "object referenced from the remaining root range");
  cgc_remove_roots(m2);
  free(m2);
  munmap(mm, len);

  /* A shared file mapping within the file's size: accepted (its pages are
     probed for faults past the file's end) and scanned. */
  char path[] = "/tmp/cgc-core-roots-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  unlink(path);
  size_t flen = NOBJ * sizeof(void *);
  CHECK(ftruncate(fd, (off_t)flen) == 0);
  void **fm = (void **)mmap(NULL, flen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  CHECK(fm != MAP_FAILED);
  cgc_add_roots(fm, flen);
  got = reachable_from(fm, rec, NOBJ, OBJ_SIZE, 9000);
  CHECKF(got >= all - all / 16, "objects referenced from a registered file mapping: only %llu of %llu bytes reachable",
         (unsigned long long)got, (unsigned long long)all);
  cgc_remove_roots(fm);
  munmap(fm, flen);
  close(fd);
  /* Unmapped memory that was a root once must not be touched again. */
  cgc_collect();
  free(rec);
}

/* cgc_add_roots from a thread with the smallest stack (16 KiB), on a file
   mapping (its pages are probed) whose path is longer than the buffer
   /proc/self/maps is read with: the range is accepted, nothing overflows. */
static void *tiny_stack_roots(void *arg) {
  void **m = arg;
  cgc_add_roots(m, 1 << 20);
  m[5] = cgc_alloc(32);
  cgc_collect();
  CHECK(cgc_base(m[5]) == m[5]);
  cgc_remove_roots(m);
  /* An empty range registers and removes like any other (a buffer that may be
     empty; removing one used to abort), and NULL is ignored by both calls. */
  cgc_add_roots(m, 0);
  cgc_remove_roots(m);
  cgc_add_roots(NULL, 64);
  cgc_remove_roots(NULL);
  return NULL;
}

static void test_tiny_stack_long_path(void) {
  char path[2048];
  int len = snprintf(path, sizeof path, "/tmp/cgc-core-roots-%d", (int)getpid());
  CHECK(mkdir(path, 0700) == 0);
  char name[201];
  memset(name, 'd', 200);
  name[200] = 0;
  for (int i = 0; i < 6; i++) { /* a path of about 1240 bytes */
    len += snprintf(path + len, sizeof path - (size_t)len, "/%s", name);
    CHECK(mkdir(path, 0700) == 0);
  }
  snprintf(path + len, sizeof path - (size_t)len, "/file");
  int fd = open(path, O_RDWR | O_CREAT, 0600);
  CHECK(fd >= 0);
  CHECK(ftruncate(fd, 1 << 20) == 0);
  void **m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  CHECK(m != MAP_FAILED);
  pthread_attr_t attr;
  CHECK(pthread_attr_init(&attr) == 0);
  CHECK(pthread_attr_setstacksize(&attr, PTHREAD_STACK_MIN) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, &attr, tiny_stack_roots, m) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  pthread_attr_destroy(&attr);
  munmap(m, 1 << 20);
  close(fd);
  unlink(path);
  for (int i = 6; i >= 0; i--) { /* remove the directories, deepest first */
    char *slash = strrchr(path, '/');
    *slash = 0;
    CHECK(rmdir(path) == 0 || i == 6);
  }
}

/* Objects referenced only from dead objects die with them; scanned objects
   keep what they point to; the words of noscan objects are not pointers.
   Twenty holders of fifty objects each, so that a stale word keeping one
   holder alive does not decide the outcome. */
enum { NHOLD = 20, PER_HOLD = NOBJ / NHOLD };
static void *g_holders[NHOLD];

static __attribute__((noinline)) void build_holders(int noscan_holder) {
  for (int h = 0; h < NHOLD; h++) {
    void **holder = (void **)(noscan_holder ? cgc_alloc_noscan(PER_HOLD * sizeof(void *))
                                            : cgc_alloc(PER_HOLD * sizeof(void *)));
    CHECK(holder != NULL);
    for (int i = 0; i < PER_HOLD; i++) {
      holder[i] = cgc_alloc_noscan(OBJ_SIZE);
      CHECK(holder[i] != NULL);
      memset(holder[i], 0x11, OBJ_SIZE);
    }
    *(void *volatile *)&g_holders[h] = holder;
  }
}

static void test_scan_noscan(void) {
  const uint64_t all = (uint64_t)NOBJ * OBJ_SIZE;
  uint64_t base = live_after_collect();
  build_holders(0);
  uint64_t live = live_after_collect();
  CHECKF(live >= base + all - all / 16, "objects referenced from scanned objects: live %llu, base %llu",
         (unsigned long long)live, (unsigned long long)base);
  memset(g_holders, 0, sizeof g_holders);
  live = live_after_collect();
  CHECKF(live < base + all / 4, "objects referenced from dead objects survived: live %llu, base %llu",
         (unsigned long long)live, (unsigned long long)base);
  build_holders(1);
  live = live_after_collect();
  CHECKF(live < base + all / 4,
         "objects referenced only from noscan objects survived: live %llu, base %llu",
         (unsigned long long)live, (unsigned long long)base);
  for (int h = 0; h < NHOLD; h++) CHECK(cgc_base(g_holders[h]) == g_holders[h]);
  memset(g_holders, 0, sizeof g_holders);
}

int main(void) {
  test_seed();
  cgc_init();
  test_globals();
  test_interior();
  test_stack();
#if defined(__x86_64__)
  test_register();
#endif
  test_malloc_and_mmap();
  test_scan_noscan();
  test_tiny_stack_long_path();
  printf("core_roots: ok\n");
  return 0;
}
