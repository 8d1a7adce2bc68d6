/* The data, bss and __thread variables of shared libraries linked at start-up
   are roots: a test library's globals and TLS (for the main thread and another
   thread), and libc's own data (the stdout FILE holds a buffer we give it). */
#include "core_util.h"

void **mod_bss(void);
void **mod_data(void);
void **mod_big(void);
void **mod_tls(void);
void **mod_tls_data(void);
void **mod_tls_big(void);

static const size_t SZ[6] = {56, 512, 9000, 120, 3000, 40000};

static __attribute__((noinline)) void fill_globals(hidden_obj_t h[3], uint64_t seed) {
  h[0] = make_obj(mod_bss(), SZ[0], seed);
  h[1] = make_obj(mod_data(), SZ[1], seed + 1);
  h[2] = make_obj(mod_big(), SZ[2], seed + 2);
}

static __attribute__((noinline)) void fill_tls(hidden_obj_t h[3], uint64_t seed) {
  h[0] = make_obj(mod_tls(), SZ[3], seed);
  h[1] = make_obj(mod_tls_data(), SZ[4], seed + 1);
  h[2] = make_obj(mod_tls_big(), SZ[5], seed + 2);
}

static void check_globals(const hidden_obj_t h[3]) {
  verify_obj(h[0], "object referenced from a shared library's .bss");
  verify_obj(h[1], "object referenced from a shared library's .data");
  verify_obj(h[2], "object referenced from a large array in a shared library's .bss");
  CHECK(*mod_bss() == reveal_ptr(h[0].hbase));
}

static void check_tls(const hidden_obj_t h[3], const char *who) {
  char what[160];
  snprintf(what, sizeof what, "object referenced from a shared library's .tbss variable (%s)", who);
  verify_obj(h[0], what);
  snprintf(what, sizeof what, "object referenced from a shared library's .tdata variable (%s)", who);
  verify_obj(h[1], what);
  snprintf(what, sizeof what, "object referenced from a shared library's TLS array (%s)", who);
  verify_obj(h[2], what);
  CHECK(*mod_tls() == reveal_ptr(h[0].hbase));
}

static void churn_all(void) {
  for (int r = 0; r < 2; r++)
    for (int i = 0; i < 6; i++) churn(SZ[i], 4);
}

static core_event_t ev_ready = CORE_EVENT_INIT, ev_go = CORE_EVENT_INIT;

static void *tls_thread(void *arg) {
  (void)arg;
  hidden_obj_t h[3];
  fill_tls(h, 300);
  clear_stack();
  event_set(&ev_ready);
  event_wait(&ev_go);
  check_tls(h, "another thread");
  return NULL;
}

/* libc's stdout FILE (in libc's .data) is the only holder of its buffer. */
static const char MARK[] = "core_shlib: stdout buffer still intact";
static uintptr_t g_hidden_buf;

static __attribute__((noinline)) void give_stdout_buffer(void) {
  char *buf = (char *)cgc_alloc_noscan(8192);
  CHECK(buf != NULL);
  g_hidden_buf = hide_ptr(buf);
  CHECK(setvbuf(stdout, buf, _IOFBF, 8192) == 0);
  buf = NULL;
  fputs(MARK, stdout); /* stays in the buffer: no newline flush, buffer not full */
}

int main(void) {
  test_seed();
  give_stdout_buffer();
  cgc_init();
  hidden_obj_t g[3], t[3];
  fill_globals(g, 100);
  fill_tls(t, 200);

  pthread_t th;
  CHECK(pthread_create(&th, NULL, tls_thread, NULL) == 0);
  event_wait(&ev_ready);
  churn_all();
  event_set(&ev_go);
  CHECK(pthread_join(th, NULL) == 0);

  check_globals(g);
  check_tls(t, "the main thread");

  char *buf = (char *)reveal_ptr(g_hidden_buf);
  CHECKF(cgc_base(buf) == buf, "the buffer held by libc's stdout was freed");
  CHECKF(memcmp(buf, MARK, sizeof MARK - 1) == 0, "the buffer held by libc's stdout was reused");
  fputs("\n", stdout);
  fflush(stdout);
  printf("core_shlib: ok\n");
  fflush(stdout);
  return 0;
}
