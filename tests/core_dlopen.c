/* The data and bss of a library loaded later with dlopen are roots; after
   dlclose its (unmapped) segments are no longer scanned; loading and unloading
   on one thread while others collect and allocate is safe. */
#include "core_util.h"

#include <dlfcn.h>

#ifndef CORE_DLMOD_PATH
#error "CORE_DLMOD_PATH must name the test module"
#endif

typedef void **(*slot_fn)(void);
typedef int (*gen_fn)(void);

typedef struct {
  void *h;
  slot_fn bss, data, big;
  gen_fn generation;
} mod_t;

static mod_t mod_open(void) {
  mod_t m;
  m.h = dlopen(CORE_DLMOD_PATH, RTLD_NOW | RTLD_LOCAL);
  CHECKF(m.h != NULL, "dlopen(%s): %s", CORE_DLMOD_PATH, dlerror());
  m.bss = (slot_fn)dlsym(m.h, "mod_bss");
  m.data = (slot_fn)dlsym(m.h, "mod_data");
  m.big = (slot_fn)dlsym(m.h, "mod_big");
  m.generation = (gen_fn)dlsym(m.h, "mod_generation");
  CHECK(m.bss && m.data && m.big && m.generation);
  return m;
}

static bool mod_mapped(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  CHECK(f != NULL);
  char line[4096];
  bool found = false;
  const char *name = strrchr(CORE_DLMOD_PATH, '/');
  name = name ? name + 1 : CORE_DLMOD_PATH;
  while (fgets(line, sizeof line, f))
    if (strstr(line, name)) found = true;
  fclose(f);
  return found;
}

static void test_roots(void) {
  CHECK(!mod_mapped());
  mod_t m = mod_open();
  CHECK(m.generation() == 0);
  hidden_obj_t a = make_obj(m.bss(), 88, 1);
  hidden_obj_t b = make_obj(m.data(), 4000, 2);
  hidden_obj_t c = make_obj(m.big(), 70000, 3);
  for (int r = 0; r < 2; r++) {
    churn(88, 8);
    churn(4000, 8);
    churn(70000, 16);
  }
  verify_obj(a, "object referenced from a dlopen'ed library's .bss");
  verify_obj(b, "object referenced from a dlopen'ed library's .data");
  verify_obj(c, "object referenced from a large array in a dlopen'ed library's .bss");

  /* Unload: the library's segments go away and must not be scanned again. */
  *m.bss() = *m.data() = *m.big() = NULL;
  CHECK(dlclose(m.h) == 0);
  if (mod_mapped()) fprintf(stderr, "note: the module stayed mapped after dlclose\n");
  churn(88, 8);
  cgc_collect();
}

static void test_reload(void) {
  for (int i = 0; i < 20; i++) {
    mod_t m = mod_open();
    hidden_obj_t a = make_obj(m.bss(), 200 + (size_t)i, 100 + (uint64_t)i);
    hidden_obj_t b = make_obj(m.big(), 3000 + (size_t)i, 200 + (uint64_t)i);
    churn(200 + (size_t)i, 2);
    verify_obj(a, "object referenced from a re-loaded library's .bss");
    verify_obj(b, "object referenced from a re-loaded library's .bss array");
    CHECK(dlclose(m.h) == 0);
    cgc_collect();
  }
}

/* One thread loads, uses and unloads the library while another collects
   continuously and a third allocates. */
static atomic_int loader_done;

static __attribute__((noinline)) void alloc_garbage(size_t bytes) {
  for (size_t done = 0; done < bytes;) {
    size_t n = 16 + (done * 7919) % 3000;
    char *p = (char *)cgc_alloc(n);
    CHECK(p != NULL);
    memset(p, 0xee, n);
    done += n;
  }
}

static void *loader(void *arg) {
  (void)arg;
  for (int i = 0; i < 40; i++) {
    mod_t m = mod_open();
    hidden_obj_t a = make_obj(m.bss(), 300, 1000 + (uint64_t)i);
    hidden_obj_t b = make_obj(m.data(), 5000, 2000 + (uint64_t)i);
    clear_stack();
    alloc_garbage(2 * CORE_MIB);
    verify_obj(a, "object in a library's .bss loaded by another thread during collections");
    verify_obj(b, "object in a library's .data loaded by another thread during collections");
    CHECK(dlclose(m.h) == 0);
  }
  atomic_store(&loader_done, 1);
  return NULL;
}

static void *allocator(void *arg) {
  (void)arg;
  while (!atomic_load(&loader_done)) alloc_garbage(CORE_MIB);
  return NULL;
}

static void test_concurrent(void) {
  pthread_t l, a;
  CHECK(pthread_create(&l, NULL, loader, NULL) == 0);
  CHECK(pthread_create(&a, NULL, allocator, NULL) == 0);
  uint64_t n = 0;
  while (!atomic_load(&loader_done)) {
    cgc_collect();
    n++;
  }
  CHECK(pthread_join(l, NULL) == 0);
  CHECK(pthread_join(a, NULL) == 0);
  fprintf(stderr, "collections during load/unload: %llu\n", (unsigned long long)n);
}

int main(void) {
  test_seed();
  cgc_init();
  test_roots();
  test_reload();
  test_concurrent();
  printf("core_dlopen: ok\n");
  return 0;
}
