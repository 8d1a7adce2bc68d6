/* Heaps past 4 GiB: every offset, page count and byte count that could be
   kept in 32 bits is crossed here.
   - `object`: a noscan object of more than 5 GiB, kept alive only by an
     interior pointer past its first 4 GiB; cgc_base and cgc_usable_size
     answer for it; shrunk in place by cgc_realloc; once dropped, collected,
     its pages given back to the OS (released_bytes, mapped_bytes), and a new
     huge object made in them reads as zeros where the old one was written.
   - `scanned`: a scanned object of 4.5 GiB whose only pointer to a small
     object lies past its first 4 GiB: the small object survives collections
     and garbage, and dies once that word is cleared.
   - `many`: more than 4 GiB of the heap's address space in use by small
     objects' spans of every class behind a 4 GiB spacer, 256 MiB of them
     live in a linked structure checked after collections, then all dropped.
   Only the pages written are resident (about 300 MiB at most). */
#include "core_util.h"

#define GIB ((size_t)1 << 30)

static void *volatile g_root;

static void *must_alloc(size_t n, int noscan) {
  void *p = noscan ? cgc_alloc_noscan(n) : cgc_alloc(n);
  CHECKF(p != NULL, "allocation of %zu bytes failed (errno %d)", n, errno);
  return p;
}

static __attribute__((noinline)) uintptr_t make_huge(size_t n, size_t interior) {
  unsigned char *p = must_alloc(n, 1);
  CHECKF(cgc_usable_size(p) >= n && cgc_usable_size(p) < n + 8192,
         "cgc_usable_size of a %zu-byte object: %zu", n, cgc_usable_size(p));
  CHECKF(cgc_base(p + interior) == p && cgc_base(p + n - 1) == p,
         "cgc_base past 4 GiB in %p (%zu bytes): %p and %p", (void *)p, n, cgc_base(p + interior),
         cgc_base(p + n - 1));
  CHECK(cgc_is_heap_ptr(p + n - 1));
  CHECK(p[0] == 0 && p[interior] == 0 && p[n - 1] == 0);
  p[0] = 0x11;
  p[interior] = 0x22;
  p[n - 1] = 0x33;
  g_root = p + interior;
  return hide_ptr(p);
}

/* Check the huge object survived, then shrink it in place to m bytes,
   keeping the byte past 4 GiB.  Its pointer stays in this frame. */
static __attribute__((noinline)) void survive_and_shrink(uintptr_t hp, size_t n, size_t interior, size_t m) {
  unsigned char *p = reveal_ptr(hp);
  CHECKF(cgc_base(p) == p && p[0] == 0x11 && p[interior] == 0x22 && p[n - 1] == 0x33,
         "the huge object at %p did not survive", (void *)p);
  unsigned char *q = cgc_realloc(p, m);
  CHECKF(q == p, "cgc_realloc shrinking %zu to %zu bytes moved %p to %p", n, m, (void *)p, (void *)q);
  CHECKF(cgc_usable_size(q) >= m && cgc_usable_size(q) < m + 8192, "usable size after shrinking: %zu",
         cgc_usable_size(q));
  CHECK(q[interior] == 0x22);
  CHECKF(cgc_base(p + m + 8192) != p, "cgc_base still finds the object %p past its new end", (void *)p);
}

static const size_t obj_n = 5 * GIB + 12345, obj_interior = 4 * GIB + 100, obj_m = 4 * GIB + GIB / 4;

/* Each case runs in two phases with the stack below cleared between
   them: the frames of the first may keep stale copies of its pointers (more
   of them in unoptimised builds), which must not keep what the second
   expects to die. */
static uint64_t live_start;
static uintptr_t hidden_huge;

static __attribute__((noinline)) void object_keep(void) {
  size_t n = obj_n, interior = obj_interior, m = obj_m;
  uint64_t live0 = live_start = live_after_collect();
  uintptr_t hp = hidden_huge = make_huge(n, interior);
  uint64_t live1 = live_after_collect();
  CHECKF(live1 >= live0 + n, "a %zu-byte object held by a pointer %zu bytes into it: live %llu -> %llu", n,
         interior, (unsigned long long)live0, (unsigned long long)live1);
  churn(0, 8);
  survive_and_shrink(hp, n, interior, m);
  uint64_t live2 = live_after_collect();
  CHECKF(live2 >= live0 + m && live2 < live0 + m + 64 * CORE_MIB, "after shrinking to %zu bytes: live %llu", m,
         (unsigned long long)live2);
  g_root = NULL;
}

/* The dropped object is collected, its pages given back. */
static __attribute__((noinline)) void object_drop(void) {
  size_t n = obj_n, interior = obj_interior;
  uint64_t live0 = live_start;
  uintptr_t hp = hidden_huge;
  uint64_t live3 = live_after_collect();
  CHECKF(live3 < live0 + 64 * CORE_MIB, "the dropped huge object is still live: %llu bytes",
         (unsigned long long)live3);
  cgc_stats_t before = stats_now();
  cgc_release_memory();
  cgc_stats_t after = stats_now();
  CHECKF(after.released_bytes >= before.released_bytes + 4 * GIB && after.mapped_bytes + 4 * GIB <= before.mapped_bytes,
         "releasing a dead 4.25 GiB object: released %llu -> %llu, mapped %llu -> %llu",
         (unsigned long long)before.released_bytes, (unsigned long long)after.released_bytes,
         (unsigned long long)before.mapped_bytes, (unsigned long long)after.mapped_bytes);

  /* A new huge object in those pages reads as zeros where the old was written
     (make_huge checks); it is freed at once. */
  uintptr_t h2 = make_huge(n, interior);
  CHECKF(h2 == hp, "a second %zu-byte object went to %p, not to the pages of the first (%p)", n, reveal_ptr(h2),
         reveal_ptr(hp));
  g_root = NULL;
  cgc_free(reveal_ptr(h2));
  CHECKF(stats_now().live_bytes < live0 + 64 * CORE_MIB, "cgc_free of a huge object left live_bytes %llu",
         (unsigned long long)stats_now().live_bytes);
}

static _Atomic int small_dead;
static void on_small_dead(void *arg) {
  (void)arg;
  atomic_store(&small_dead, 1);
}

static __attribute__((noinline)) hidden_obj_t make_scanned(size_t n, size_t at) {
  void **big = must_alloc(n, 0);
  hidden_obj_t h = make_obj(&big[at / sizeof(void *)], 48, 77);
  cgc_add_cleanup(reveal_ptr(h.hbase), on_small_dead, NULL);
  g_root = big;
  return h;
}

/* mib MiB of garbage in objects of size bytes, each filled, with no
   collection (each one here reads the 4.5 GiB object). */
static __attribute__((noinline)) void garbage(size_t size, size_t mib) {
  for (size_t done = 0; done < mib * CORE_MIB; done += size) {
    void *g = must_alloc(size, 0);
    memset(g, 0xdd, size);
    consume(g);
  }
}

static __attribute__((noinline)) void clear_word(size_t at) {
  void **big = g_root;
  big[at / sizeof(void *)] = NULL;
}

static const size_t scan_n = 4 * GIB + GIB / 2, scan_at = 4 * GIB + 4096 + 8 * 3;

static __attribute__((noinline)) void scanned_keep(void) {
  size_t n = scan_n, at = scan_at;
  hidden_obj_t h = make_scanned(n, at);
  for (int i = 0; i < 2; i++) { /* each collection reads the 4.5 GiB */
    garbage(48, 4);
    clear_stack();
    cgc_collect();
    verify_obj(h, "the object referenced only from past 4 GiB into a scanned object");
    cgc_wait_cleanups();
    CHECK(!atomic_load(&small_dead));
  }
}

static __attribute__((noinline)) void scanned_drop(void) {
  clear_word(scan_at);
  clear_stack();
  cgc_collect();
  cgc_wait_cleanups();
  CHECKF(atomic_load(&small_dead), "the small object stayed alive after its only reference was cleared");
  g_root = NULL;
}

struct node {
  struct node *next;
  uint64_t check;
  unsigned char pad[];
};

static size_t node_size(uint64_t i) {
  static const size_t sizes[] = {16, 32, 48, 64, 96, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768};
  return sizes[i % (sizeof sizes / sizeof sizes[0])];
}

static __attribute__((noinline)) void build_list(size_t bytes) {
  struct node *head = NULL;
  size_t done = 0;
  for (uint64_t i = 0; done < bytes; i++) {
    size_t sz = node_size(i);
    struct node *x = must_alloc(sz, 0);
    x->next = head;
    x->check = i * 0x9E3779B97F4A7C15ULL ^ sz;
    head = x;
    done += sz;
  }
  g_root = head;
}

static __attribute__((noinline)) uint64_t check_list(void) {
  uint64_t count = 0;
  struct node *x = g_root;
  uint64_t i = 0;
  for (struct node *y = x; y; y = y->next) count++;
  for (; x; x = x->next) {
    uint64_t idx = count - 1 - i++;
    size_t sz = node_size(idx);
    CHECKF(x->check == (idx * 0x9E3779B97F4A7C15ULL ^ sz) && cgc_base(x) == x && cgc_usable_size(x) >= sz,
           "node %llu at %p (%zu bytes) is damaged", (unsigned long long)idx, (void *)x, sz);
  }
  return count;
}

static void *volatile g_spacer;

static __attribute__((noinline)) void many_keep(void) {
  /* A spacer first, so that the heap spans more than 4 GiB of address
     space and its page map more than 64 granules. */
  g_spacer = must_alloc(4 * GIB, 1);
  uint64_t live0 = live_after_collect();
  CHECKF(live0 >= 4 * GIB, "the 4 GiB spacer died: live %llu", (unsigned long long)live0);
  build_list(256 * CORE_MIB);
  uint64_t n1 = check_list();
  uint64_t live1 = live_after_collect();
  CHECKF(live1 >= live0 + 256 * CORE_MIB, "256 MiB in a list past 4 GiB: live %llu -> %llu",
         (unsigned long long)live0, (unsigned long long)live1);
  churn(64, 16);
  CHECKF(check_list() == n1, "the list lost nodes");
  g_root = NULL;
  cgc_free(g_spacer);
  g_spacer = NULL;
}

static __attribute__((noinline)) void many_drop(void) {
  uint64_t live2 = live_after_collect();
  CHECKF(live2 < 64 * CORE_MIB, "after dropping the list and freeing the spacer: live %llu",
         (unsigned long long)live2);
}

static void object(void) {
  object_keep();
  clear_stack();
  object_drop();
}

static void scanned(void) {
  scanned_keep();
  clear_stack();
  scanned_drop();
}

static void many(void) {
  many_keep();
  clear_stack();
  many_drop();
}

static const test_case_t cases[] = {{"object", object}, {"scanned", scanned}, {"many", many}};

int main(int argc, char **argv) {
  cgc_init();
  return RUN_NAMED_CASE(argc, argv, "core_huge", cases);
}
