/* exec from a program whose other threads collect.

     core_exec race    each trial forks a child that starts a thread looping on
                  cgc_collect, waits for its first collection and execs
                  /bin/true through one of the nine exec calls in turn (with a
                  long argument: execve then spends a while copying it).  A
                  stop signal sent while the exec'ing thread is inside execve
                  stayed pending across the exec and killed the new program
                  (SIGPWR's default action); every /bin/true must exit 0.
     core_exec failed  exec calls that fail (no such file) return -1 with errno
                  ENOENT while another thread collects, and collections go on
                  (the lock held across the call is released).
     core_exec vfork   vfork children exec /bin/true while a thread collects:
                  the child shares the parent's memory and must not leave the
                  collection lock held there.
     core_exec passed  each of the nine exec calls hands the new program its
                  arguments, and the environment it was given (execve, execvpe,
                  execle, fexecve, execveat) or else the program's own: /bin/sh
                  checks both. */
#include "core_util.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int stop_collecting;
static void *collector(void *arg) {
  (void)arg;
  while (!atomic_load(&stop_collecting)) cgc_collect();
  return NULL;
}

static void start_collector(pthread_t *t) {
  uint64_t first = cgc_gc_count();
  CHECK(pthread_create(t, NULL, collector, NULL) == 0);
  while (cgc_gc_count() < first + 2) sched_yield(); /* collections under way */
}

static void stop_collector(pthread_t t) {
  atomic_store(&stop_collecting, 1);
  CHECK(pthread_join(t, NULL) == 0);
  atomic_store(&stop_collecting, 0);
}

enum { NCALLS = 9 };
static const char *const call_name[NCALLS] = {"execve", "execv",  "execvp",  "execvpe", "execl",
                                              "execle", "execlp", "fexecve", "execveat"};
static char *const true_env[] = {"PATH=/usr/bin:/bin", NULL};

/* Exec /bin/true through call k with argv; returns only on failure. */
static void exec_with(int k, const char *path, char *const *argv) {
  const char *file = strrchr(path, '/') + 1;
  switch (k) {
  case 0: execve(path, argv, true_env); break;
  case 1: execv(path, argv); break;
  case 2: execvp(file, argv); break;
  case 3: execvpe(file, argv, true_env); break;
  case 4: execl(path, argv[0], argv[1], (char *)NULL); break;
  case 5: execle(path, argv[0], argv[1], (char *)NULL, true_env); break;
  case 6: execlp(file, argv[0], argv[1], (char *)NULL); break;
  case 7: {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) fexecve(fd, argv, true_env);
    break;
  }
  case 8: execveat(AT_FDCWD, path, argv, true_env, 0); break;
  }
}

/* Exec /bin/sh through call k with the four arguments of argv; the calls that
   take an environment get env.  Returns only on failure. */
static void exec_sh(int k, char *const *argv, char *const *env) {
  static const char path[] = "/bin/sh";
  switch (k) {
  case 0: execve(path, argv, env); break;
  case 1: execv(path, argv); break;
  case 2: execvp("sh", argv); break;
  case 3: execvpe("sh", argv, env); break;
  case 4: execl(path, argv[0], argv[1], argv[2], argv[3], (char *)NULL); break;
  case 5: execle(path, argv[0], argv[1], argv[2], argv[3], (char *)NULL, env); break;
  case 6: execlp("sh", argv[0], argv[1], argv[2], argv[3], (char *)NULL); break;
  case 7: {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) fexecve(fd, argv, env);
    break;
  }
  case 8: execveat(AT_FDCWD, path, argv, env, 0); break;
  }
}

static bool takes_env(int k) { return k == 0 || k == 3 || k == 5 || k == 7 || k == 8; }

static void passed(void) {
  CHECK(setenv("CORE_EXEC_ENV", "inherited", 1) == 0);
  const char *path_var = getenv("PATH");
  char path_entry[4096];
  snprintf(path_entry, sizeof path_entry, "PATH=%s", path_var ? path_var : "/usr/bin:/bin");
  char *const env[] = {"CORE_EXEC_ENV=given", path_entry, NULL};
  for (int k = 0; k < NCALLS; k++) {
    /* sh -c SCRIPT NAME: the script sees NAME as $0. */
    char *argv[] = {"sh", "-c", "test \"$CORE_EXEC_ENV\" = \"$0\"", takes_env(k) ? "given" : "inherited", NULL};
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      exec_sh(k, argv, env);
      _exit(127);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0,
           "%s: /bin/sh did not see its arguments and CORE_EXEC_ENV=%s (status %#x)", call_name[k], argv[3], st);
  }
}

static char *long_arg(void) {
  size_t n = 100 << 10; /* below the kernel's 128 KiB a string */
  char *s = malloc(n + 1);
  CHECK(s != NULL);
  memset(s, 'x', n);
  s[n] = 0;
  return s;
}

static void race(void) {
  char *argv[] = {"true", long_arg(), NULL};
  int trials = CORE_ASAN ? 90 : 180, killed = 0;
  for (int i = 0; i < trials; i++) {
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      pthread_t t;
      start_collector(&t);
      exec_with(i % NCALLS, "/bin/true", argv);
      _exit(127);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    if (WIFSIGNALED(st)) {
      if (killed++ < 5)
        fprintf(stderr, "trial %d (%s): /bin/true was killed by signal %d (%s)\n", i, call_name[i % NCALLS],
                WTERMSIG(st), strsignal(WTERMSIG(st)));
    } else {
      CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "trial %d (%s): exit status %d", i, call_name[i % NCALLS],
             WEXITSTATUS(st));
    }
  }
  CHECKF(killed == 0, "%d of %d exec'd programs were killed by a signal", killed, trials);
}

static void failed(void) {
  pthread_t t;
  start_collector(&t);
  char *argv[] = {"none", "x", NULL};
  for (int i = 0; i < 10 * NCALLS; i++) {
    errno = 0;
    exec_with(i % NCALLS, "/nonexistent-cgc-dir/none", argv);
    CHECKF(errno == ENOENT, "%s of a missing file: errno %d, not ENOENT", call_name[i % NCALLS], errno);
  }
  uint64_t n = cgc_gc_count();
  while (cgc_gc_count() < n + 3) sched_yield(); /* the collector is not stuck */
  stop_collector(t);
  cgc_collect();
}

static void vforked(void) {
  pthread_t t;
  start_collector(&t);
  char *argv[] = {"true", NULL};
  for (int i = 0; i < 60; i++) {
    pid_t pid = vfork();
    CHECK(pid >= 0);
    if (pid == 0) {
      execv("/bin/true", argv);
      _exit(127);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "vfork child %d: status %#x", i, st);
    uint64_t n = cgc_gc_count();
    while (cgc_gc_count() < n + 1) sched_yield(); /* the lock was not left held */
  }
  stop_collector(t);
  cgc_collect();
}

int main(int argc, char **argv) {
  CHECKF(argc == 2, "usage: core_exec race|failed|vfork|passed");
  test_seed();
  cgc_init();
  if (strcmp(argv[1], "race") == 0) race();
  else if (strcmp(argv[1], "failed") == 0) failed();
  else if (strcmp(argv[1], "vfork") == 0) vforked();
  else if (strcmp(argv[1], "passed") == 0) passed();
  else CHECKF(0, "unknown case %s", argv[1]);
  printf("core_exec %s: ok\n", argv[1]);
  return 0;
}
