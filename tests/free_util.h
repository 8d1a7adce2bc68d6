/* Helpers shared by the explicit-free and arena tests (tests/free_*.c,
   tests/arena_*.c). */
#ifndef CGC_FREE_UTIL_H
#define CGC_FREE_UTIL_H

#include <cgc.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#define FREE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FREE_ASAN 1
#endif
#endif
#ifndef FREE_ASAN
#define FREE_ASAN 0
#endif

#define MIB ((size_t)1 << 20)

/* Not every test calls clear_stack (testutil.h). */
static inline void free_util_uses_(void) { (void)clear_stack; }


static inline cgc_stats_t stats(void) {
  cgc_stats_t s;
  cgc_read_stats(&s);
  return s;
}

/* A byte of the pattern for (seed, i); never zero. */
static inline unsigned char pat(uint64_t seed, size_t i) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ULL + (uint64_t)i * 0x2545F4914F6CDD1DULL;
  x ^= x >> 29;
  return (unsigned char)(x % 255u + 1u);
}
static inline void fill(void *p, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; i++) ((unsigned char *)p)[i] = pat(seed, i);
}
static inline bool intact(const void *p, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; i++)
    if (((const unsigned char *)p)[i] != pat(seed, i)) return false;
  return true;
}
static inline bool zeroed(const void *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (((const unsigned char *)p)[i]) return false;
  return true;
}

/* Can the process read the byte at p?  Asks the kernel to copy it into a
   pipe: EFAULT means the address is inaccessible.  The raw system call keeps
   sanitizer interceptors out of it. */
static inline bool readable(const void *p) {
  int fd[2];
  CHECK(pipe(fd) == 0);
  long r = syscall(SYS_write, fd[1], p, 1);
  int err = errno;
  close(fd[0]);
  close(fd[1]);
  if (r == 1) return true;
  CHECKF(err == EFAULT, "write from %p: errno %d", p, err);
  return false;
}

/* Fork; the child restores the default SIGSEGV action (with the raw system
   call, so no runtime handler stays in the way) and runs fn(arg).  Returns
   the signal that killed the child, or 0 if it exited. */
struct kernel_sigaction_ {
  void (*handler)(int);
  unsigned long flags;
  void (*restorer)(void);
  unsigned long mask;
};
static inline int in_child(void (*fn)(void *), void *arg) {
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    struct kernel_sigaction_ ksa;
    memset(&ksa, 0, sizeof ksa); /* SIG_DFL */
    syscall(SYS_rt_sigaction, SIGSEGV, &ksa, NULL, sizeof(unsigned long));
    syscall(SYS_rt_sigaction, SIGBUS, &ksa, NULL, sizeof(unsigned long));
    fn(arg);
    _exit(0);
  }
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  if (WIFSIGNALED(st)) return WTERMSIG(st);
  CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
  return 0;
}

/* Run fn() in a child process and return what it wrote to stderr (a static
   buffer, valid until the next call), its wait status in *status.  A child
   whose fn returns writes "no abort" and exits 0. */
static __attribute__((unused)) const char *child_stderr(void (*fn)(void), int *status) {
  int fd[2];
  CHECK(pipe(fd) == 0);
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    close(fd[0]);
    dup2(fd[1], 2);
    fn();
    fprintf(stderr, "\nno abort\n");
    _exit(0);
  }
  close(fd[1]);
  static char out[1 << 16];
  size_t len = 0;
  ssize_t r;
  while ((r = read(fd[0], out + len, sizeof out - 1 - len)) > 0) len += (size_t)r;
  out[len] = 0;
  close(fd[0]);
  CHECK(waitpid(pid, status, 0) == pid);
  return out;
}

/* Run fn(arg) on a new thread and wait for it.  Work whose results must not
   be retained by stale stack words goes there: once the thread has exited,
   its stack is no longer scanned. */
struct in_thread_ {
  void (*fn)(void *);
  void *arg;
};
static inline void *in_thread_main_(void *p) {
  struct in_thread_ *t = (struct in_thread_ *)p;
  t->fn(t->arg);
  return NULL;
}
static inline void in_thread(void (*fn)(void *), void *arg) {
  static struct in_thread_ t; /* a root while the thread starts */
  t.fn = fn;
  t.arg = arg;
  pthread_t th;
  CHECK(pthread_create(&th, NULL, in_thread_main_, &t) == 0);
  CHECK(pthread_join(th, NULL) == 0);
}

static inline void touch_read(void *p) {
  volatile unsigned char *b = (volatile unsigned char *)p;
  (void)*b;
}
static inline void touch_write(void *p) {
  volatile unsigned char *b = (volatile unsigned char *)p;
  *b = 1;
}

#endif
