/* A runtime library built on cgc (linked against libcgc.so); the program
   core_indirect links only this library, so libcgc.so comes after the C
   library in the lookup order. */
#include <cgc.h>
#include <stdint.h>

__attribute__((visibility("default"))) uint64_t rt_list_sum(int n);

uint64_t rt_list_sum(int n) {
  void **head = NULL;
  for (int i = 0; i < n; i++) {
    void **node = cgc_alloc(2 * sizeof(void *));
    if (!node) return 0;
    node[0] = head;
    node[1] = (void *)(uintptr_t)i;
    head = node;
  }
  cgc_collect();
  uint64_t sum = 0;
  for (void **p = head; p; p = p[0]) sum += (uintptr_t)p[1];
  return sum;
}
