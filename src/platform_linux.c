/* platform_linux.c — the Linux/glibc implementation of platform.h. */
#include "platform.h"

#include <dlfcn.h>
#include <malloc.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif

static const int map_prot = PROT_READ | PROT_WRITE;
static const int map_flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

void *_cgc_os_map_at(void *addr, size_t size) {
  void *p = mmap(addr, size, map_prot, map_flags | MAP_FIXED_NOREPLACE, -1, 0);
  if (p == MAP_FAILED) return NULL;
  if (p != addr) { /* a kernel that ignores MAP_FIXED_NOREPLACE */
    munmap(p, size);
    errno = EEXIST;
    return NULL;
  }
  return p;
}

void *_cgc_os_map(size_t size) {
  void *p = mmap(NULL, size, map_prot, map_flags, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void *_cgc_os_map_aligned(size_t size, size_t align) {
  size_t os = _cgc_os_page_size();
  if (align <= os) return _cgc_os_map(size);
  size_t over = size + align - os;
  char *p = mmap(NULL, over, map_prot, map_flags, -1, 0);
  if (p == MAP_FAILED) return NULL;
  uintptr_t a = CGC_ALIGN_UP((uintptr_t)p, align);
  size_t head = a - (uintptr_t)p, tail = over - head - size;
  if (head) munmap(p, head);
  if (tail) munmap((char *)a + size, tail);
  return (void *)a;
}

void _cgc_os_unmap(void *p, size_t size) { munmap(p, size); }

int _cgc_os_release(void *p, size_t size) { return madvise(p, size, MADV_DONTNEED); }

void *_cgc_os_reserve(size_t size) {
  void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

int _cgc_os_protect_none(void *p, size_t size) {
  /* Replace the range by a fresh inaccessible mapping: drops the pages too. */
  void *q = mmap(p, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  return q == MAP_FAILED ? -1 : 0;
}

int _cgc_os_protect_rw(void *p, size_t size) {
  void *q = mmap(p, size, map_prot, map_flags | MAP_FIXED, -1, 0);
  return q == MAP_FAILED ? -1 : 0;
}

size_t _cgc_os_page_size(void) {
  static size_t ps;
  if (!ps) ps = (size_t)sysconf(_SC_PAGESIZE);
  return ps;
}

uint64_t _cgc_os_phys_memory(void) {
  long pages = sysconf(_SC_PHYS_PAGES), ps = sysconf(_SC_PAGESIZE);
  return pages > 0 && ps > 0 ? (uint64_t)pages * (uint64_t)ps : 0;
}

uint64_t _cgc_os_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int _cgc_os_ncpus(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

const char *_cgc_os_getenv(const char *name) { return getenv(name); }

uint64_t _cgc_os_random(void) {
  uint64_t r = 0;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
    r = _cgc_os_now_ns() * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid() << 17;
  return r;
}

void _cgc_os_wait(_Atomic uint32_t *addr, uint32_t val) {
  syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

void _cgc_os_wake_all(_Atomic uint32_t *addr) {
  syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

void _cgc_os_yield(void) { sched_yield(); }

pid_t _cgc_os_gettid(void) { return (pid_t)syscall(SYS_gettid); }

int _cgc_os_thread_stack(uintptr_t *lo, uintptr_t *hi) {
  pthread_attr_t attr;
  void *addr;
  size_t size;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    int rc = pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_destroy(&attr);
    if (rc == 0) {
      *lo = (uintptr_t)addr;
      *hi = (uintptr_t)addr + size;
      return 0;
    }
  }
  /* pthread_getattr_np allocates (a CPU set; for the main thread, a stdio
     read of /proc/self/maps), so under memory pressure (RLIMIT_AS, a cgroup
     limit) it fails.  The mapping that holds this frame bounds the stack
     too: glibc puts a thread's stack and its descriptor in one mapping,
     with the guard page a mapping of its own. */
  return _cgc_os_mapping_bounds((uintptr_t)__builtin_frame_address(0), lo, hi);
}

uintptr_t _cgc_os_thread_pointer(void) { return (uintptr_t)__builtin_thread_pointer(); }

void _cgc_os_clear_vector_registers(void) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx")) {
    __asm__ volatile("vzeroall" ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
                     "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
  } else {
    __asm__ volatile("pxor %%xmm0, %%xmm0\n\tpxor %%xmm1, %%xmm1\n\tpxor %%xmm2, %%xmm2\n\tpxor %%xmm3, %%xmm3\n\t"
                     "pxor %%xmm4, %%xmm4\n\tpxor %%xmm5, %%xmm5\n\tpxor %%xmm6, %%xmm6\n\tpxor %%xmm7, %%xmm7\n\t"
                     "pxor %%xmm8, %%xmm8\n\tpxor %%xmm9, %%xmm9\n\tpxor %%xmm10, %%xmm10\n\tpxor %%xmm11, %%xmm11\n\t"
                     "pxor %%xmm12, %%xmm12\n\tpxor %%xmm13, %%xmm13\n\tpxor %%xmm14, %%xmm14\n\tpxor %%xmm15, %%xmm15"
                     ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
                     "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
  }
  /* The C library's string functions use these on AVX-512 machines (the
     compiler does not, without -mavx512f, so no clobbers are needed). */
  if (__builtin_cpu_supports("avx512f"))
    __asm__ volatile("vpxord %%zmm16, %%zmm16, %%zmm16\n\tvpxord %%zmm17, %%zmm17, %%zmm17\n\t"
                     "vpxord %%zmm18, %%zmm18, %%zmm18\n\tvpxord %%zmm19, %%zmm19, %%zmm19\n\t"
                     "vpxord %%zmm20, %%zmm20, %%zmm20\n\tvpxord %%zmm21, %%zmm21, %%zmm21\n\t"
                     "vpxord %%zmm22, %%zmm22, %%zmm22\n\tvpxord %%zmm23, %%zmm23, %%zmm23\n\t"
                     "vpxord %%zmm24, %%zmm24, %%zmm24\n\tvpxord %%zmm25, %%zmm25, %%zmm25\n\t"
                     "vpxord %%zmm26, %%zmm26, %%zmm26\n\tvpxord %%zmm27, %%zmm27, %%zmm27\n\t"
                     "vpxord %%zmm28, %%zmm28, %%zmm28\n\tvpxord %%zmm29, %%zmm29, %%zmm29\n\t"
                     "vpxord %%zmm30, %%zmm30, %%zmm30\n\tvpxord %%zmm31, %%zmm31, %%zmm31" ::: "memory");
#endif
}

void _cgc_os_set_thread_name(const char *name) { prctl(PR_SET_NAME, name, 0, 0, 0); }

uintptr_t _cgc_os_altstack_end(const void *uctx, uintptr_t sp) {
  /* The kernel saves the thread's alternate stack settings in the signal
     frame (its SS_ONSTACK flag is not reliable there: 0 was seen on the
     alternate stack), so compare the handler's own stack pointer. */
  const ucontext_t *uc = uctx;
  if (!uc || (uc->uc_stack.ss_flags & SS_DISABLE) || !uc->uc_stack.ss_size) return 0;
  uintptr_t lo = (uintptr_t)uc->uc_stack.ss_sp, hi = lo + uc->uc_stack.ss_size;
  return sp >= lo && sp < hi ? hi : 0;
}

/* The definition of name that cgc's own one stands in front of.  Usually the
   next one in lookup order.  But when cgc's definition is the first in the
   program (a static link) and a sanitizer runtime interposes the same call,
   the sanitizer's interceptor would be skipped: call it instead (it calls the
   C library's in turn). */
void *_cgc_os_real_symbol(const char *name) {
  void *first = dlsym(RTLD_DEFAULT, name);
  Dl_info mine, theirs;
  bool first_is_mine = first && dladdr((void *)_cgc_os_real_symbol, &mine) && dladdr(first, &theirs) &&
                       mine.dli_fbase == theirs.dli_fbase;
  if (first_is_mine) {
    char buf[128];
    _cgc_format(buf, sizeof buf, "__interceptor_%s", name);
    void *icpt = dlsym(RTLD_DEFAULT, buf);
    if (icpt) return icpt;
  }
  void *next = dlsym(RTLD_NEXT, name);
  /* Nothing after cgc defines it when cgc comes after the C library in the
     lookup order (libcgc.so a dependency of a library the program links,
     not of the program): the first definition, the C library's, then. */
  if (!next && first && !first_is_mine) next = first;
  /* Only a fully static executable has no dynamic linker to ask. */
  if (!next)
    _cgc_fatal("a fully static executable (-static) cannot use cgc: it finds the C library's %s, which it "
               "stands in front of, with the dynamic linker (%s); link the C library dynamically (libcgc.a "
               "itself is fine)",
               name, dlerror());
  return next;
}

/* Keep the object cgc's code is in loaded for ever: its threads never exit,
   and its signal handler and thread-exit destructor stay installed (a plugin
   that links libcgc.a, unloaded, crashed at the next thread exit). */
void _cgc_os_pin_self(void) {
  Dl_info self;
  if (!dladdr((void *)_cgc_os_pin_self, &self) || !self.dli_fname) return;
  void *h = dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
  (void)h; /* the reference is never dropped; NULL: the main program, never unloaded */
}

_cgc_pthread_create_fn _cgc_os_real_pthread_create(void) {
  static _Atomic(_cgc_pthread_create_fn) real;
  _cgc_pthread_create_fn f = atomic_load_explicit(&real, memory_order_acquire);
  if (!f) {
    f = (_cgc_pthread_create_fn)_cgc_os_real_symbol("pthread_create");
    atomic_store_explicit(&real, f, memory_order_release);
  }
  return f;
}

#ifdef CGC_ASAN
/* cgc's threads start past AddressSanitizer's pthread_create interceptor
   (they must not be registered as the program's), so nothing clears the
   shadow of their stacks: one reused from the C library's stack cache (as
   in a fork child, which inherits the dead threads' stacks) would carry
   another thread's stale poisoning.  Clear it first.  The start block is
   the new thread's to free, and LeakSanitizer cannot see it in the thread
   it does not know of.  A block whose thread has not run yet when the
   program exits, or that a fork child inherits without the thread, is
   not a leak. */
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
void __lsan_ignore_object(const void *p);
struct asan_start {
  void *(*fn)(void *);
  void *arg;
};
static void *asan_start(void *p) {
  struct asan_start st = *(struct asan_start *)p;
  free(p);
  uintptr_t lo, hi;
  if (_cgc_os_thread_stack(&lo, &hi) == 0) __asan_unpoison_memory_region((void *)lo, hi - lo);
  return st.fn(st.arg);
}
#endif

int _cgc_os_thread_create(void *(*fn)(void *), void *arg) {
  pthread_t t;
  pthread_attr_t attr;
  sigset_t all, old;
#ifdef CGC_ASAN
  struct asan_start *st = malloc(sizeof *st);
  if (!st) return ENOMEM;
  __lsan_ignore_object(st);
  st->fn = fn;
  st->arg = arg;
  fn = asan_start;
  arg = st;
#endif
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old); /* the new thread inherits "all blocked" */
  int rc = _cgc_os_real_pthread_create()(&t, &attr, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
#ifdef CGC_ASAN
  if (rc != 0) free(st);
#endif
  return rc;
}

int _cgc_os_install_handler(int sig, void (*handler)(int, void *, void *)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = (void (*)(int, siginfo_t *, void *))(void *)handler;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&sa.sa_mask);
  return sigaction(sig, &sa, NULL);
}

void _cgc_os_restore_default(int sig) { signal(sig, SIG_DFL); }

/* By thread id, not pthread_t: a thread that exited while registered (a
   TSD destructor that allocated after cgc's own ran) has a pthread_t that
   is no longer valid to use; its id gives ESRCH. */
static _Atomic bool no_sigqueueinfo; /* refused (a seccomp filter?): plain tgkill, no value */

int _cgc_os_signal_thread(int tid, int sig, uint64_t value) {
  if (atomic_load_explicit(&no_sigqueueinfo, memory_order_relaxed))
    return syscall(SYS_tgkill, getpid(), tid, sig) == 0 ? 0 : errno;
  siginfo_t si;
  memset(&si, 0, sizeof si);
  si.si_signo = sig;
  si.si_code = SI_QUEUE;
  si.si_pid = getpid();
  si.si_uid = getuid();
  si.si_value.sival_ptr = (void *)(uintptr_t)value;
  if (syscall(SYS_rt_tgsigqueueinfo, getpid(), tid, sig, &si) == 0) return 0;
  if (errno != ENOSYS && errno != EPERM) return errno;
  atomic_store_explicit(&no_sigqueueinfo, true, memory_order_relaxed);
  return _cgc_os_signal_thread(tid, sig, value);
}

/* Only a signal queued by this process with a value counts: another
   process's sigqueue, a plain kill, or a standard signal that found one
   pending (the kernel keeps the first one's information) give 0 or the
   first one's value. */
uint64_t _cgc_os_signal_value(const void *info) {
  const siginfo_t *si = info;
  if (!si || si->si_code != SI_QUEUE || si->si_pid != getpid()) return 0;
  return (uint64_t)(uintptr_t)si->si_value.sival_ptr;
}

uint64_t _cgc_os_boot_ticks(void) {
  struct timespec ts;
  long hz = sysconf(_SC_CLK_TCK);
  if (hz <= 0 || clock_gettime(CLOCK_BOOTTIME, &ts) != 0) return UINT64_MAX; /* nothing counts as later */
  return (uint64_t)ts.tv_sec * (uint64_t)hz + (uint64_t)ts.tv_nsec / (1000000000ull / (uint64_t)hz);
}

/* A thread that exited is gone from /proc/self/task, or (the main thread,
   which stays a zombie while others run) in state Z or X there; tgkill
   succeeds on such a zombie, so it does not tell.  A thread that has the tid
   now but started after `since` (field 22 of stat, in clock ticks since
   boot) is another one. */
bool _cgc_os_thread_alive_since(int tid, uint64_t since) {
  char path[64], buf[512];
  _cgc_format(path, sizeof path, "/proc/self/task/%d/stat", tid);
  int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT && errno != ESRCH) return true; /* cannot tell */
    /* Gone, if /proc shows this process's threads at all: not with no
       /proc, or one of another PID namespace (where /proc/self is the
       outer pid and tids are the inner ones).  Then only the kernel's
       answer to a null signal is left (a zombie main thread passes). */
    _cgc_format(path, sizeof path, "/proc/self/task/%d/stat", (int)syscall(SYS_gettid));
    int own = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (own >= 0) {
      syscall(SYS_close, own);
      return false;
    }
    return syscall(SYS_tgkill, getpid(), tid, 0) == 0 || errno != ESRCH;
  }
  ssize_t n = (ssize_t)syscall(SYS_read, fd, buf, sizeof buf - 1);
  syscall(SYS_close, fd);
  if (n <= 0) return true; /* cannot tell */
  buf[n] = 0;
  const char *p = strrchr(buf, ')'); /* the command name, field 2, may hold anything */
  if (!p || p[1] != ' ') return true;
  if (p[2] == 'Z' || p[2] == 'X') return false;
  for (int field = 2; field < 22; field++) { /* to the space before field 22, the start time */
    p = strchr(p + 1, ' ');
    if (!p) return true;
  }
  char *end;
  unsigned long long start = strtoull(p + 1, &end, 10);
  return end == p + 1 || start <= since;
}

void *_cgc_os_handler(int sig) {
  struct sigaction sa;
  if (sigaction(sig, NULL, &sa) != 0) return NULL;
  return (sa.sa_flags & SA_SIGINFO) ? (void *)sa.sa_sigaction : (void *)sa.sa_handler;
}

const char *_cgc_os_handler_of_other_copy(int sig) {
  void *h = _cgc_os_handler(sig);
  Dl_info mine, theirs;
  if (!h || h == (void *)SIG_IGN || !dladdr(h, &theirs) || !dladdr((void *)_cgc_os_handler_of_other_copy, &mine) ||
      theirs.dli_fbase == mine.dli_fbase || !theirs.dli_fname)
    return NULL;
  void *obj = dlopen(theirs.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
  if (!obj) return NULL;
  bool cgc = dlsym(obj, "cgc_init") != NULL;
  dlclose(obj);
  return cgc ? theirs.dli_fname : NULL;
}

const char *_cgc_os_handler_disposition(int sig) {
  struct sigaction sa;
  if (sigaction(sig, NULL, &sa) != 0 || (sa.sa_flags & SA_SIGINFO)) return NULL;
  return sa.sa_handler == SIG_DFL ? "its default action (SIG_DFL)" : sa.sa_handler == SIG_IGN ? "SIG_IGN" : NULL;
}

bool _cgc_os_handler_is(int sig, void (*handler)(int, void *, void *)) {
  struct sigaction sa;
  if (sigaction(sig, NULL, &sa) != 0) return true; /* cannot tell: assume so */
  return (sa.sa_flags & SA_SIGINFO) && (void *)sa.sa_sigaction == (void *)handler;
}

/* Raised by the faulting instruction itself: never the suspend signal (its
   handler would return to that instruction for ever), never blocked in
   cgc's threads (a blocked fault kills at once, without the program's
   handler or a sanitizer's report). */
static const int fault_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP};

/* Block the signals a program may want delivered elsewhere (to sigwait, a
   signalfd or another thread) in the calling thread: every one but sig and
   the synchronous ones (a fault blocked is fatal at once, without the
   program's handler or a sanitizer's report). */
void _cgc_os_block_async_but(int sig) {
  sigset_t set;
  sigfillset(&set);
  sigdelset(&set, sig);
  for (size_t i = 0; i < sizeof fault_signals / sizeof fault_signals[0]; i++) sigdelset(&set, fault_signals[i]);
  sigdelset(&set, SIGSYS);
  pthread_sigmask(SIG_SETMASK, &set, NULL);
}

static const struct { const char *name; int num; } signal_names[] = {
  {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
  {"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT},
  {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU}, {"URG", SIGURG}, {"XCPU", SIGXCPU},
  {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH},
  {"IO", SIGIO}, {"PWR", SIGPWR}, {"SYS", SIGSYS},
};

int _cgc_os_parse_signal(const char *s) {
  if (!s || !*s) return -1;
  char *end;
  long n = strtol(s, &end, 10);
  if (*end == 0) {
    /* Signals between 32 and SIGRTMIN belong to the C library; faults and
       abort must keep their meaning. */
    if (n <= 0 || n >= NSIG || n == SIGKILL || n == SIGSTOP || (n >= 32 && n < SIGRTMIN) || n == SIGABRT)
      return -1;
    for (size_t i = 0; i < sizeof fault_signals / sizeof fault_signals[0]; i++)
      if (n == fault_signals[i]) return -1;
    return (int)n;
  }
  if (strncmp(s, "SIG", 3) == 0) s += 3;
  if (strncmp(s, "RTMIN", 5) == 0) {
    long off = 0;
    if (s[5] == '+') {
      if (s[6] < '0' || s[6] > '9') return -1; /* "RTMIN+" and "RTMIN+ 1" name no offset */
      off = strtol(s + 6, &end, 10);
    }
    else if (s[5] == 0) end = (char *)s + 5;
    else return -1;
    if (*end || off < 0 || off > SIGRTMAX - SIGRTMIN) return -1;
    return SIGRTMIN + (int)off;
  }
  for (size_t i = 0; i < sizeof signal_names / sizeof signal_names[0]; i++)
    if (strcmp(s, signal_names[i].name) == 0) return signal_names[i].num;
  return -1;
}

int _cgc_os_default_suspend_signal(void) { return SIGPWR; }

void _cgc_os_wait_timeout(_Atomic uint32_t *addr, uint32_t val, uint64_t timeout_ns) {
  struct timespec ts = {(time_t)(timeout_ns / 1000000000u), (long)(timeout_ns % 1000000000u)};
  syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0);
}

/* ---- loaded objects ------------------------------------------------------- */

/* The loader's lists of objects, one per namespace, as its debugger
   interface publishes them (_r_debug, then r_debug_extended.r_next from
   glibc 2.35): a signature of their members (order aside), or
   LOADER_BUSY while a load or unload is under way in any namespace (the
   loader sets r_state before it touches a list and resets it after).  Read
   without the loader's locks, which a stopped thread may hold. */
#define LOADER_BUSY UINT64_MAX
CGC_NO_SANITIZE static uint64_t loader_signature(void) {
  uint64_t sig = 0, n = 0;
  const struct r_debug *r = &_r_debug;
  while (r) {
    if (__atomic_load_n(&r->r_state, __ATOMIC_ACQUIRE) != RT_CONSISTENT) return LOADER_BUSY;
    for (const struct link_map *m = r->r_map; m && n < ((uint64_t)1 << 20); m = m->l_next, n++) {
      uint64_t x = ((uintptr_t)m ^ (m->l_addr << 1) ^ ((uintptr_t)m->l_ld << 2)) * 0x9E3779B97F4A7C15ull;
      sig += x ^ (x >> 29);
    }
    const struct r_debug_extended *e = (const struct r_debug_extended *)r;
    r = r->r_version >= 2 && e->r_next ? &e->r_next->base : NULL;
  }
  sig += n;
  return sig == LOADER_BUSY ? 0 : sig;
}

bool _cgc_os_loader_changed(uint64_t since) { return loader_signature() != since || since == LOADER_BUSY; }

struct seg_ctx {
  void (*fn)(void *, uintptr_t, uintptr_t);
  void *ctx;
  bool signed_;
  uint64_t sig;
};

CGC_NO_SANITIZE static int seg_cb(struct dl_phdr_info *info, size_t size, void *data) {
  struct seg_ctx *c = data;
  (void)size;
  if (!c->signed_) { /* under the lock dl_iterate_phdr holds, which guards the lists */
    c->signed_ = true;
    c->sig = loader_signature();
  }
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W)) continue;
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
    uintptr_t hi = lo + ph->p_memsz;
    c->fn(c->ctx, lo, hi);
  }
  return 0;
}

uint64_t _cgc_os_for_each_data_segment(void (*fn)(void *, uintptr_t, uintptr_t), void *ctx) {
  struct seg_ctx c = {fn, ctx, false, LOADER_BUSY};
  dl_iterate_phdr(seg_cb, &c);
  return c.sig;
}

struct tls_ctx {
  cgc_tls_module_t *out;
  size_t max, n;
  int check, ok;
};

CGC_NO_SANITIZE static int tls_cb(struct dl_phdr_info *info, size_t size, void *data) {
  struct tls_ctx *c = data;
  if (size < offsetof(struct dl_phdr_info, dlpi_tls_data) + sizeof(void *)) return 0;
  if (info->dlpi_tls_modid == 0) return 0;
  size_t memsz = 0;
  for (int i = 0; i < info->dlpi_phnum; i++)
    if (info->dlpi_phdr[i].p_type == PT_TLS) memsz = info->dlpi_phdr[i].p_memsz;
  if (memsz == 0) return 0;
  if (c->check) {
    /* The loader's answer for this thread must match the DTV walk. */
    size_t avail;
    if (info->dlpi_tls_data && (uintptr_t)info->dlpi_tls_data !=
                                   _cgc_os_tls_block_sized(_cgc_os_thread_pointer(), info->dlpi_tls_modid, &avail))
      c->ok = 0;
    return 0;
  }
  if (c->n < c->max) {
    c->out[c->n].modid = info->dlpi_tls_modid;
    c->out[c->n].size = memsz;
  }
  c->n++;
  return 0;
}

size_t _cgc_os_tls_modules(cgc_tls_module_t *out, size_t max) {
  struct tls_ctx c = {out, max, 0, 0, 1};
  dl_iterate_phdr(tls_cb, &c);
  return c.n;
}

/* glibc's dynamic thread vector: an array of 16-byte entries; entry -1 holds
   the number of slots, entry i (i >= 1) the block of module i or -1 when not
   yet allocated.  The TCB holds the DTV pointer: on x86_64 at tp+8 (tp points
   at the TCB, which starts with a self pointer), on aarch64 at tp+0. */
typedef union {
  size_t counter;
  struct {
    void *val;
    void *to_free;
  } pointer;
} glibc_dtv_t;

static CGC_STATE int tls_dtv_ok;

static glibc_dtv_t *dtv_of(uintptr_t tp) {
#if defined(__x86_64__)
  return *(glibc_dtv_t **)(tp + sizeof(void *));
#elif defined(__aarch64__)
  return *(glibc_dtv_t **)tp;
#else
  (void)tp;
  return NULL;
#endif
}

uintptr_t _cgc_os_tls_block_sized(uintptr_t tp, size_t modid, size_t *avail) {
  glibc_dtv_t *dtv = dtv_of(tp);
  *avail = 0;
  if (!dtv) return 0;
  size_t slots = dtv[-1].counter;
  if (modid > slots) return 0;
  uintptr_t v = (uintptr_t)dtv[modid].pointer.val;
  if (v == (uintptr_t)-1 || v == 0) return 0;
  /* A block of the thread's static TLS (to_free NULL), or one the loader
     allocated with malloc, which may belong to an unloaded module whose id
     a newer, larger one now has (the thread has not used TLS since, so its
     vector is outdated): never read past the allocation. */
  uintptr_t start = (uintptr_t)dtv[modid].pointer.to_free;
  if (!start) {
    *avail = SIZE_MAX;
  } else {
    size_t usable = malloc_usable_size((void *)start);
    *avail = v - start < usable ? usable - (v - start) : 0;
  }
  return v;
}

int _cgc_os_tls_init(void) {
  struct tls_ctx c = {NULL, 0, 0, 1, 1};
  if (dtv_of(_cgc_os_thread_pointer())) dl_iterate_phdr(tls_cb, &c);
  else c.ok = 0;
  if (!c.ok)
    _cgc_warn("cannot find other threads' thread-local storage on this system: __thread variables of threads "
              "other than their stacks' static blocks are not scanned");
  return tls_dtv_ok = c.ok;
}

struct static_ctx {
  uintptr_t p;
  int found;
};

CGC_NO_SANITIZE static int static_cb(struct dl_phdr_info *info, size_t size, void *data) {
  struct static_ctx *c = data;
  (void)size;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD) continue;
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
    if (c->p >= lo && c->p < lo + ph->p_memsz) {
      c->found = 1;
      return 1;
    }
  }
  return 0;
}

int _cgc_os_is_static(const void *p) {
  struct static_ctx c = {(uintptr_t)p, 0};
  dl_iterate_phdr(static_cb, &c);
  return c.found;
}

static uintptr_t parse_hex(const char **p) {
  uintptr_t v = 0;
  for (;; (*p)++) {
    char c = **p;
    if (c >= '0' && c <= '9') v = v * 16 + (uintptr_t)(c - '0');
    else if (c >= 'a' && c <= 'f') v = v * 16 + (uintptr_t)(c - 'a' + 10);
    else return v;
  }
}

/* Call fn for each line of /proc/self/maps (start, end, permissions), in
   address order, until it returns nonzero; returns that value, 0 if none
   did, -1 if the file cannot be read. */
typedef int (*maps_fn)(uintptr_t a, uintptr_t b, const char *perms, void *ctx);

/* One line of /proc/self/maps (NUL-terminated): fn's answer. */
static int maps_line(const char *q, maps_fn fn, void *ctx) {
  uintptr_t a = parse_hex(&q);
  if (*q != '-') return 0;
  q++;
  uintptr_t b = parse_hex(&q);
  if (*q == ' ') q++;
  return fn(a, b, q, ctx);
}

static int maps_each(maps_fn fn, void *ctx) {
  int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  /* On the stack (threads registering call this too, and the collector
     with the world stopped), and small: a thread may have a 16 KiB stack.
     A line longer than the buffer (a long path) is read from its start,
     which holds everything a callback looks at, and the rest dropped. */
  char buf[1024];
  size_t have = 0;
  int r = 0;
  bool skip = false; /* dropping the rest of a long line */
  for (;;) {
    ssize_t n = (ssize_t)syscall(SYS_read, fd, buf + have, sizeof buf - 1 - have);
    if (n <= 0) break;
    have += (size_t)n;
    buf[have] = 0;
    char *line = buf, *nl;
    while ((nl = strchr(line, '\n')) != NULL) {
      *nl = 0;
      if (!skip && (r = maps_line(line, fn, ctx)) != 0) break;
      skip = false;
      line = nl + 1;
    }
    if (r) break;
    have = (size_t)(buf + have - line);
    if (have == sizeof buf - 1) {
      if (!skip && (r = maps_line(line, fn, ctx)) != 0) break;
      skip = true;
      have = 0;
      continue;
    }
    memmove(buf, line, have);
  }
  syscall(SYS_close, fd);
  return r;
}

struct bounds_ctx {
  uintptr_t addr, lo, hi;
};
static int bounds_cb(uintptr_t a, uintptr_t b, const char *perms, void *ctx) {
  struct bounds_ctx *c = ctx;
  (void)perms;
  if (c->addr < a || c->addr >= b) return 0;
  c->lo = a;
  c->hi = b;
  return 1;
}

int _cgc_os_mapping_bounds(uintptr_t addr, uintptr_t *lo, uintptr_t *hi) {
  struct bounds_ctx c = {addr, 0, 0};
  if (maps_each(bounds_cb, &c) != 1) return -1;
  *lo = c.lo;
  *hi = c.hi;
  return 0;
}

/* The inode field of a maps line, given what follows the address range
   ("rw-p 00000000 08:01 1234 /path"): nonzero for a file mapping. */
static unsigned long maps_inode(const char *q) {
  for (int field = 0; field < 3; field++) { /* perms, offset, device */
    while (*q && *q != ' ') q++;
    while (*q == ' ') q++;
  }
  unsigned long ino = 0;
  while (*q >= '0' && *q <= '9') ino = ino * 10 + (unsigned long)(*q++ - '0');
  return ino;
}

/* Can every page of [lo, hi) be read without a fault?  A file mapping's
   pages past the file's end (or of a file truncated since) are listed as
   readable but raise SIGBUS; the kernel reads one byte of each page here
   on our behalf and stops at the first that faults.  Where the call is not
   permitted (seccomp), say yes: the maps check still holds. */
static bool pages_readable(uintptr_t lo, uintptr_t hi) {
  enum { BATCH = 32 }; /* small frames: threads with 16 KiB stacks call this */
  struct iovec remote[BATCH];
  char sink[BATCH];
  uintptr_t page = _cgc_os_page_size();
  uintptr_t a = lo & ~(page - 1);
  while (a < hi) {
    size_t n = 0;
    for (; n < BATCH && a < hi; n++, a += page) {
      remote[n].iov_base = (void *)(a < lo ? lo : a);
      remote[n].iov_len = 1;
    }
    struct iovec local = {sink, n};
    ssize_t got = process_vm_readv(getpid(), &local, 1, remote, n, 0);
    if (got < 0) return errno != EFAULT;
    if ((size_t)got < n) return false;
  }
  return true;
}

struct readable_ctx {
  uintptr_t cur, hi;
};
/* 1: [cur, hi) is covered; -2: a gap, an unreadable mapping or a page of a
   file mapping that faults, first. */
static int readable_cb(uintptr_t a, uintptr_t b, const char *perms, void *ctx) {
  struct readable_ctx *c = ctx;
  if (b <= c->cur) return 0;
  if (a > c->cur || perms[0] != 'r') return -2;
  uintptr_t end = b < c->hi ? b : c->hi;
  if (maps_inode(perms) != 0 && !pages_readable(c->cur, end)) return -2;
  c->cur = b;
  return c->cur >= c->hi ? 1 : 0;
}

int _cgc_os_range_readable(uintptr_t lo, uintptr_t hi) {
  if (lo >= hi) return 1;
  struct readable_ctx c = {lo, hi};
  int r = maps_each(readable_cb, &c);
  return r == 1 ? 1 : r == -1 ? -1 : 0;
}

/* memcheck's client requests are a no-op sequence outside valgrind; without
   valgrind's headers cgc builds without them. */
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>

int _cgc_os_on_valgrind(void) {
  if (!RUNNING_ON_VALGRIND) return 0;
  /* Only memcheck tracks V bits.  Under the other tools (callgrind,
     cachegrind, none, ...) the request answers 0 and memory is read as is. */
  uintptr_t probe = 0;
  unsigned char vbits[sizeof probe];
  return VALGRIND_GET_VBITS(&probe, vbits, sizeof vbits) == 1;
}

uintptr_t _cgc_os_read_defined(const uintptr_t *p) {
  /* A word memcheck holds unaddressable (below a stopped thread's stack
     pointer as it tracks it) is dead: read it as no pointer, silently. */
  unsigned char vbits[sizeof(uintptr_t)];
  if (VALGRIND_GET_VBITS(p, vbits, sizeof vbits) != 1) return 0;
  uintptr_t v = *p;
  VALGRIND_MAKE_MEM_DEFINED(&v, sizeof v);
  return v;
}
#else
int _cgc_os_on_valgrind(void) { return 0; }
uintptr_t _cgc_os_read_defined(const uintptr_t *p) { return *p; }
#endif

int _cgc_os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void)) {
  return pthread_atfork(prepare, parent, child);
}
