#include "internal.h"
void _cgc_checkfree_stw(void) {}
void _cgc_checkfree_after_gc(void) {}
bool _cgc_checkfree_take(cgc_span_t *s, uintptr_t base) { (void)s; (void)base; return false; }
void _cgc_arenas_enumerate_roots(void (*fn)(void *, uintptr_t, uintptr_t), void *ctx) { (void)fn; (void)ctx; }
void _cgc_arenas_after_mark_stw(void) {}
void _cgc_arenas_after_gc(void) {}
void _cgc_arena_note_hit(cgc_span_t *s) { (void)s; }
uint64_t _cgc_arena_stats_bytes(void) { return 0; }
