#include "internal.h"
void _cgc_specials_process_stw(void) {}
void _cgc_specials_after_gc(void) {}
void _cgc_specials_on_free(cgc_span_t *s, uint32_t idx, uintptr_t base) { (void)s; (void)idx; (void)base; }
void _cgc_specials_fork_child(void) {}
void _cgc_specials_init(void) {}
void _cgc_specials_lock(void) {}
void _cgc_specials_unlock(void) {}
void _cgc_specials_enumerate_roots(void (*fn)(void *, uintptr_t, uintptr_t), void *ctx) { (void)fn; (void)ctx; }
uint64_t _cgc_stats_specials(cgc_stats_t *out) { (void)out; return 0; }
void _cgc_checkfree_stw(void) {}
void _cgc_checkfree_after_gc(void) {}
bool _cgc_checkfree_take(cgc_span_t *s, uintptr_t base) { (void)s; (void)base; return false; }
void _cgc_arenas_enumerate_roots(void (*fn)(void *, uintptr_t, uintptr_t), void *ctx) { (void)fn; (void)ctx; }
void _cgc_arenas_after_mark_stw(void) {}
void _cgc_arenas_after_gc(void) {}
void _cgc_arena_note_hit(cgc_span_t *s) { (void)s; }
uint64_t _cgc_arena_stats_bytes(void) { return 0; }
