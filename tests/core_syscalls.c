/* Threads blocked in system calls while collections stop the world: each keeps
   the roots on its stack, and calls that Linux restarts under SA_RESTART
   (read, write, recv, futex waits behind mutexes and condition variables) are
   not failed with EINTR.  poll is never restarted by Linux; it may return
   EINTR, and the thread just retries.
   Also runs as `core_syscalls signal`: the program's own handler for the
   default stop signal (which it moved with CGC_SIGNAL) keeps working. */
#include "core_util.h"

#include <poll.h>
#include <sys/socket.h>

enum { K_READ, K_WRITE, K_RECV, K_POLL, K_COND, K_MUTEX, K_COUNT };
static const char *const kind_name[K_COUNT] = {"read", "write", "recv", "poll", "pthread_cond_wait",
                                               "pthread_mutex_lock"};

static int rd_pipe[2], wr_pipe[2], sock[2], poll_pipe[2];
static size_t wr_filled;
static pthread_mutex_t cond_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond_cv = PTHREAD_COND_INITIALIZER;
static int cond_flag;
static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int tids[K_COUNT];
static core_event_t ev_started = CORE_EVENT_INIT;
static atomic_int poll_eintr;

static __attribute__((noinline)) void blocked_body(int kind) {
  void *volatile slot = NULL;
  hidden_obj_t h = make_obj((void **)&slot, 200 + (size_t)kind * 1000, 70 + (uint64_t)kind);
  clear_stack();
  atomic_store(&tids[kind], (int)core_gettid());
  event_set(&ev_started);
  switch (kind) {
    case K_READ: {
      char buf[64];
      ssize_t n = read(rd_pipe[0], buf, sizeof buf);
      CHECKF(!(n < 0 && errno == EINTR), "read failed with EINTR: the stop signal must be installed with SA_RESTART");
      CHECKF(n == 64, "read returned %zd (errno %d)", n, errno);
      for (int i = 0; i < 64; i++) CHECK(buf[i] == 'R');
      break;
    }
    case K_WRITE: {
      char buf[512];
      memset(buf, 'W', sizeof buf);
      ssize_t n = write(wr_pipe[1], buf, sizeof buf);
      CHECKF(!(n < 0 && errno == EINTR), "write failed with EINTR: the stop signal must be installed with SA_RESTART");
      CHECKF(n == 512, "write returned %zd (errno %d)", n, errno);
      break;
    }
    case K_RECV: {
      char buf[32];
      ssize_t n = recv(sock[0], buf, sizeof buf, 0);
      CHECKF(!(n < 0 && errno == EINTR), "recv failed with EINTR: the stop signal must be installed with SA_RESTART");
      CHECKF(n == 32, "recv returned %zd (errno %d)", n, errno);
      break;
    }
    case K_POLL: {
      struct pollfd pfd = {poll_pipe[0], POLLIN, 0};
      int r;
      while ((r = poll(&pfd, 1, -1)) < 0 && errno == EINTR) atomic_fetch_add(&poll_eintr, 1);
      CHECKF(r == 1 && (pfd.revents & POLLIN), "poll returned %d (errno %d)", r, errno);
      break;
    }
    case K_COND: {
      pthread_mutex_lock(&cond_mu);
      while (!cond_flag) CHECK(pthread_cond_wait(&cond_cv, &cond_mu) == 0);
      pthread_mutex_unlock(&cond_mu);
      break;
    }
    case K_MUTEX: {
      CHECK(pthread_mutex_lock(&held_mu) == 0);
      pthread_mutex_unlock(&held_mu);
      break;
    }
  }
  char what[128];
  snprintf(what, sizeof what, "object referenced from the stack of a thread blocked in %s", kind_name[kind]);
  verify_obj(h, what);
  CHECK(slot == reveal_ptr(h.hbase));
}

static void *blocked_thread(void *arg) {
  blocked_body((int)(intptr_t)arg);
  return NULL;
}

static long kind_syscall(int kind) {
  switch (kind) {
    case K_READ: return SYS_read;
    case K_WRITE: return SYS_write;
#ifdef SYS_recvfrom
    case K_RECV: return SYS_recvfrom;
#endif
#ifdef SYS_futex
    case K_COND:
    case K_MUTEX: return SYS_futex;
#endif
    default: return -1;
  }
}

/* A handler of the program's own, on the signal cgc uses by default. */
static atomic_int own_handler_calls;
static void own_handler(int sig) {
  (void)sig;
  atomic_fetch_add(&own_handler_calls, 1);
}

static void run(int own_signal) {
  if (own_signal) {
    const char *env = getenv("CGC_SIGNAL");
    CHECKF(env != NULL, "the `signal` mode runs with CGC_SIGNAL set");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = own_handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGPWR, &sa, NULL) == 0);
  }
  cgc_init();
  if (own_signal) CHECKF(cgc_suspend_signal() != SIGPWR, "CGC_SIGNAL=%s did not move the stop signal", getenv("CGC_SIGNAL"));

  CHECK(pipe(rd_pipe) == 0 && pipe(wr_pipe) == 0 && pipe(poll_pipe) == 0);
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sock) == 0);
  /* Fill the write pipe so the thread's write blocks. */
  int fl = fcntl(wr_pipe[1], F_GETFL);
  CHECK(fcntl(wr_pipe[1], F_SETFL, fl | O_NONBLOCK) == 0);
  char chunk[4096];
  memset(chunk, 'F', sizeof chunk);
  for (;;) {
    ssize_t n = write(wr_pipe[1], chunk, sizeof chunk);
    if (n < 0) {
      CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
      break;
    }
    wr_filled += (size_t)n;
  }
  for (;;) { /* top up to the last byte */
    ssize_t n = write(wr_pipe[1], chunk, 1);
    if (n < 0) break;
    wr_filled += (size_t)n;
  }
  CHECK(fcntl(wr_pipe[1], F_SETFL, fl) == 0);
  CHECK(pthread_mutex_lock(&held_mu) == 0);

  pthread_t t[K_COUNT];
  for (int k = 0; k < K_COUNT; k++) CHECK(pthread_create(&t[k], NULL, blocked_thread, (void *)(intptr_t)k) == 0);
  event_wait_at_least(&ev_started, K_COUNT);
  for (int k = 0; k < K_COUNT; k++)
    if (!wait_blocked_in((pid_t)atomic_load(&tids[k]), kind_syscall(k)))
      fprintf(stderr, "note: the %s thread was not seen blocked\n", kind_name[k]);

  uint64_t gc0 = cgc_gc_count();
  for (int r = 0; r < 2; r++)
    for (int k = 0; k < K_COUNT; k++) churn(200 + (size_t)k * 1000, 4);
  CHECK(cgc_gc_count() >= gc0 + 6);
  if (own_signal) {
    /* The program's handler is still installed and works. */
    struct sigaction cur;
    CHECK(sigaction(SIGPWR, NULL, &cur) == 0);
    CHECKF(cur.sa_handler == own_handler, "the program's SIGPWR handler was replaced");
    CHECK(pthread_kill(t[K_READ], SIGPWR) == 0);
    CHECK(raise(SIGPWR) == 0);
    churn(100, 2);
  }

  /* Release every thread. */
  char msg[64];
  memset(msg, 'R', sizeof msg);
  CHECK(write(rd_pipe[1], msg, sizeof msg) == (ssize_t)sizeof msg);
  size_t want = wr_filled + 512, got = 0;
  char drain[8192];
  while (got < want) {
    ssize_t n = read(wr_pipe[0], drain, sizeof drain);
    CHECK(n > 0);
    for (ssize_t i = 0; i < n; i++) CHECK(drain[i] == (got + (size_t)i < wr_filled ? 'F' : 'W'));
    got += (size_t)n;
  }
  CHECK(send(sock[1], msg, 32, 0) == 32);
  CHECK(write(poll_pipe[1], msg, 1) == 1);
  pthread_mutex_lock(&cond_mu);
  cond_flag = 1;
  pthread_cond_broadcast(&cond_cv);
  pthread_mutex_unlock(&cond_mu);
  pthread_mutex_unlock(&held_mu);
  for (int k = 0; k < K_COUNT; k++) CHECK(pthread_join(t[k], NULL) == 0);
  if (own_signal) {
    uint64_t deadline = now_ns() + 10ull * 1000000000ull;
    while (atomic_load(&own_handler_calls) < 2 && now_ns() < deadline) sched_yield();
    CHECKF(atomic_load(&own_handler_calls) == 2, "the program's SIGPWR handler ran %d times, expected 2",
           atomic_load(&own_handler_calls));
  }
  fprintf(stderr, "poll EINTRs: %d\n", atomic_load(&poll_eintr));
}

int main(int argc, char **argv) {
  test_seed();
  int own_signal = argc > 1 && strcmp(argv[1], "signal") == 0;
  run(own_signal);
  printf("core_syscalls: ok\n");
  return 0;
}
