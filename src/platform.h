/* platform.h — every operating-system call cgc makes goes through this layer.
 *
 * Contract: functions here are thin, have no knowledge of the collector's data
 * structures, and report failure by return value (never abort, except where
 * documented).  The only implementation is platform_linux.c (Linux + glibc,
 * x86_64 and aarch64).  Logic files contain no platform #ifdefs.
 */
#ifndef CGC_PLATFORM_H
#define CGC_PLATFORM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

/* ---- memory -------------------------------------------------------------- */

/* Map size bytes of zeroed read-write memory exactly at addr (which must be free
   address space); NULL if that is impossible (occupied, or out of memory; errno
   set: EEXIST for occupied, ENOMEM for no memory). */
void *_cgc_os_map_at(void *addr, size_t size) CGC_HIDDEN;
/* Map size bytes of zeroed read-write memory anywhere, aligned to align (a power
   of two >= the OS page size); NULL with errno on failure. */
void *_cgc_os_map_aligned(size_t size, size_t align) CGC_HIDDEN;
/* Map size bytes anywhere (OS page aligned).  NULL on failure. */
void *_cgc_os_map(size_t size) CGC_HIDDEN;
void _cgc_os_unmap(void *p, size_t size) CGC_HIDDEN;
/* Give the physical memory behind [p, p+size) back to the OS; the range stays
   mapped and reads as zero afterwards.  Returns 0 on success. */
int _cgc_os_release(void *p, size_t size) CGC_HIDDEN;
/* Reserve size bytes of address space anywhere, inaccessible (any access
   faults) until _cgc_os_protect_rw; NULL on failure. */
void *_cgc_os_reserve(size_t size) CGC_HIDDEN;
/* Make [p, p+size) inaccessible (any access faults) and drop its contents. */
int _cgc_os_protect_none(void *p, size_t size) CGC_HIDDEN;
/* Make [p, p+size) read-write zeroed memory again. */
int _cgc_os_protect_rw(void *p, size_t size) CGC_HIDDEN;
size_t _cgc_os_page_size(void) CGC_HIDDEN;
uint64_t _cgc_os_phys_memory(void) CGC_HIDDEN; /* bytes of RAM, 0 if unknown */

/* ---- time, CPUs, environment -------------------------------------------- */

uint64_t _cgc_os_now_ns(void) CGC_HIDDEN;       /* monotonic */
int _cgc_os_ncpus(void) CGC_HIDDEN;             /* CPUs this process may run on */
const char *_cgc_os_getenv(const char *name) CGC_HIDDEN;
uint64_t _cgc_os_random(void) CGC_HIDDEN;       /* 64 random bits (not cryptographic) */

/* ---- futex-style waiting -------------------------------------------------- */

/* Sleep while *addr == val (may return spuriously).  Async-signal-safe. */
void _cgc_os_wait(_Atomic uint32_t *addr, uint32_t val) CGC_HIDDEN;
/* Same, for at most timeout_ns. */
void _cgc_os_wait_timeout(_Atomic uint32_t *addr, uint32_t val, uint64_t timeout_ns) CGC_HIDDEN;
/* Wake every waiter on addr.  Async-signal-safe. */
void _cgc_os_wake_all(_Atomic uint32_t *addr) CGC_HIDDEN;
void _cgc_os_yield(void) CGC_HIDDEN;
static inline void _cgc_os_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

/* ---- threads -------------------------------------------------------------- */

pid_t _cgc_os_gettid(void) CGC_HIDDEN;
/* Bounds of the calling thread's stack: [*lo, *hi).  0 on success. */
int _cgc_os_thread_stack(uintptr_t *lo, uintptr_t *hi) CGC_HIDDEN;
/* The calling thread's thread pointer (TLS base). */
uintptr_t _cgc_os_thread_pointer(void) CGC_HIDDEN;
/* Zero the vector registers (their contents are saved in the signal frame a
   stop scans): an idle thread drops the copies of pointers they hold. */
void _cgc_os_clear_vector_registers(void) CGC_HIDDEN;
void _cgc_os_set_thread_name(const char *name) CGC_HIDDEN;
/* In a signal handler, given its context and a stack address of its own
   frame: the end of the alternate signal stack if it runs on it, else 0. */
uintptr_t _cgc_os_altstack_end(const void *uctx, uintptr_t sp) CGC_HIDDEN;
/* Create an internal thread (not registered with the collector, all signals
   blocked).  Bypasses cgc's own pthread_create.  0 on success. */
int _cgc_os_thread_create(void *(*fn)(void *), void *arg) CGC_HIDDEN;
/* The real pthread_create (the next definition after cgc's). */
typedef int (*_cgc_pthread_create_fn)(void *, const void *, void *(*)(void *), void *);
_cgc_pthread_create_fn _cgc_os_real_pthread_create(void) CGC_HIDDEN;
void *_cgc_os_real_symbol(const char *name) CGC_HIDDEN;
/* Keep the object cgc's code is in loaded for the life of the process. */
void _cgc_os_pin_self(void) CGC_HIDDEN;
/* In a function that interposes name: declare f, the C library's definition
   (looked up once). */
#define CGC_REAL(type, name)                                                   \
  static _Atomic(__typeof__(type)) real_;                                      \
  __typeof__(type) f = atomic_load_explicit(&real_, memory_order_acquire);     \
  if (!f) atomic_store_explicit(&real_, f = (__typeof__(type))_cgc_os_real_symbol(name), memory_order_release)

/* Install handler for sig (SA_SIGINFO|SA_RESTART, all signals blocked while it runs). */
int _cgc_os_install_handler(int sig, void (*handler)(int, void *, void *)) CGC_HIDDEN;
/* Give sig back its default disposition. */
void _cgc_os_restore_default(int sig) CGC_HIDDEN;
/* Send sig to a thread of this process with value attached (the handler
   reads it with _cgc_os_signal_value); 0 on success, else an errno value
   (ESRCH: gone). */
int _cgc_os_signal_thread(int tid, int sig, uint64_t value) CGC_HIDDEN;
/* In a handler: the value _cgc_os_signal_thread attached to the signal
   being handled (info is the handler's second argument), else 0. */
uint64_t _cgc_os_signal_value(const void *info) CGC_HIDDEN;
/* Now, in the clock ticks since boot that /proc reports threads' start
   times in (a thread's start precedes anything it does). */
uint64_t _cgc_os_boot_ticks(void) CGC_HIDDEN;
/* Is the thread of this process that had id tid at tick `since` still
   running?  False if that tid is gone, a zombie, or a thread started after
   `since` (another one); true when it cannot tell. */
bool _cgc_os_thread_alive_since(int tid, uint64_t since) CGC_HIDDEN;
bool _cgc_os_handler_is(int sig, void (*handler)(int, void *, void *)) CGC_HIDDEN;
void *_cgc_os_handler(int sig) CGC_HIDDEN;
/* The file name of the object holding sig's handler when that object is not
   cgc's own and defines cgc_init (another copy of cgc), else NULL. */
const char *_cgc_os_handler_of_other_copy(int sig) CGC_HIDDEN;
/* "its default action (SIG_DFL)" or "SIG_IGN" when sig has no handler, else NULL. */
const char *_cgc_os_handler_disposition(int sig) CGC_HIDDEN; /* the installed handler's address, or NULL if unknown */
void _cgc_os_block_async_but(int sig) CGC_HIDDEN;

/* Parse a signal number or name ("SIGPWR", "PWR", "30", "SIGRTMIN+3"); -1 if invalid. */
int _cgc_os_parse_signal(const char *s) CGC_HIDDEN;
int _cgc_os_default_suspend_signal(void) CGC_HIDDEN;


/* ---- loaded objects ------------------------------------------------------- */

/* Calls fn for every writable loaded segment of the executable and of every
   shared object: [lo, hi). */
/* Returns a signature of the loaded objects, taken with the segments (under
   the loader's lock) for _cgc_os_loader_changed. */
uint64_t _cgc_os_for_each_data_segment(void (*fn)(void *ctx, uintptr_t lo, uintptr_t hi), void *ctx) CGC_HIDDEN;
/* Has an object been loaded or unloaded since the signature was taken, or is
   a load or unload under way?  Takes no lock (usable with the world stopped). */
bool _cgc_os_loader_changed(uint64_t since) CGC_HIDDEN;

/* A module with a TLS segment. */
typedef struct {
  size_t modid;    /* TLS module id (index into each thread's DTV) */
  size_t size;     /* size of each thread's block (p_memsz) */
} cgc_tls_module_t;
/* Fill up to max modules; returns the number of TLS modules (may exceed max). */
size_t _cgc_os_tls_modules(cgc_tls_module_t *out, size_t max) CGC_HIDDEN;
/* The address of module modid's TLS block for the thread whose thread pointer is
   tp, or 0 if that thread has not allocated it, and in *avail the bytes that
   may be read there (SIZE_MAX: the module's whole block; less when the vector
   is outdated and the block is an older module's).  Reads the thread's
   dynamic thread vector; only call while that thread cannot change it
   (stopped, or self).  _cgc_os_tls_init must have returned 1. */
uintptr_t _cgc_os_tls_block_sized(uintptr_t tp, size_t modid, size_t *avail) CGC_HIDDEN;
/* Check that _cgc_os_tls_block_sized agrees with the loader for the calling thread.
   Returns 1 if thread-local storage of other threads can be found. */
int _cgc_os_tls_init(void) CGC_HIDDEN;

/* 1 if p lies inside the image of the executable or of a loaded shared
   object (code, constants, data, bss): static storage that never dies. */
int _cgc_os_is_static(const void *p) CGC_HIDDEN;

/* The bounds of the mapping that contains addr, read from /proc/self/maps
   with plain system calls (no locks, no malloc: usable with the world
   stopped).  0 on success. */
int _cgc_os_mapping_bounds(uintptr_t addr, uintptr_t *lo, uintptr_t *hi) CGC_HIDDEN;
/* Is all of [lo, hi) mapped readable?  1 yes, 0 no, -1 cannot tell. */
int _cgc_os_range_readable(uintptr_t lo, uintptr_t hi) CGC_HIDDEN;

/* ---- running under valgrind ------------------------------------------------ */

/* 1 when the program runs under valgrind's memcheck (a tool with V bits). */
int _cgc_os_on_valgrind(void) CGC_HIDDEN;
/* Read a word of memory that may be uninitialised (a stack slot) as a
   defined value for valgrind's memcheck, leaving the memory as it was. */
uintptr_t _cgc_os_read_defined(const uintptr_t *p) CGC_HIDDEN;

/* ---- process --------------------------------------------------------------- */
int _cgc_os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void)) CGC_HIDDEN;

#endif
