/* A plugin that uses cgc, loaded with dlopen by a program that does not link
   cgc itself (core_plugin: linked against libcgc.so; core_plugin_static and
   core_two_copies: libcgc.a inside), or a runtime library such a program
   links (core_indirect). */
#include <cgc.h>
#include <stdint.h>

#define PLUGIN_API __attribute__((visibility("default")))

PLUGIN_API uint64_t plugin_work(int n);

/* Allocates a list of n nodes, collects, and returns its checksum. */
uint64_t plugin_work(int n) {
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
