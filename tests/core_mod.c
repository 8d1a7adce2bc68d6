/* A shared library that holds pointers for the root tests: linked at start-up
   (core_shlib) and loaded later with dlopen (core_dlopen, core_dlopen_tls).
   Every accessor returns the address of one slot. */
#include <stddef.h>

#define MOD_API __attribute__((visibility("default")))

MOD_API void **mod_bss(void);
MOD_API void **mod_data(void);
MOD_API void **mod_big(void);
MOD_API void **mod_tls(void);
MOD_API void **mod_tls_data(void);
MOD_API void **mod_tls_big(void);
MOD_API int mod_generation(void);

static int mod_anchor = 1;
static void *mod_bss_slot;                   /* .bss */
static void *mod_data_slot = &mod_anchor;    /* .data */
static void *mod_big_arr[1 << 16];           /* 512 KiB of .bss */
static __thread void *mod_tls_slot;          /* .tbss */
static __thread void *mod_tls_data_slot = &mod_anchor; /* .tdata */
static __thread void *mod_tls_big_arr[2048];

/* Counts calls since this copy of the library was loaded (0 when fresh). */
static int mod_gen;

void **mod_bss(void) { return &mod_bss_slot; }
void **mod_data(void) { return &mod_data_slot; }
void **mod_big(void) { return &mod_big_arr[(1 << 16) - 100]; }
void **mod_tls(void) { return &mod_tls_slot; }
void **mod_tls_data(void) { return &mod_tls_data_slot; }
void **mod_tls_big(void) { return &mod_tls_big_arr[1500]; }
int mod_generation(void) { return mod_gen++; }
