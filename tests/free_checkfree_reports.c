/* CGC_DEBUG=checkfree=1: a collection that finds many freed objects still
   referenced prints 16 report lines at most, then the total, and aborts
   (docs/free.md section 4: "16 lines at most, then the total").  The child
   frees 20 objects referenced from a global array and collects; the parent
   counts the lines.

   A reference to an object freed by an unregistered thread (collections do
   not stop it, so nothing says where it is) is reported at the first
   collection that finds it (docs/free.md section 4).

   A reference found again after the freeing thread has only freed since
   the first sighting is reported: its frees are progress as its
   allocations are (both are calls into cgc after the statement it was
   stopped in).

   A big quarantine table that a collection empties goes back (its
   metadata bytes leave the memory limit's budget: with the pacer off and
   a limit set, heap_goal_bytes is the limit's room less the metadata). */
#include <semaphore.h>
#include "free_util.h"

#define NREF 20
void *volatile g_refs[NREF];

static void child(void) {
  for (int i = 0; i < NREF; i++) g_refs[i] = cgc_alloc(64);
  for (int i = 0; i < NREF; i++) cgc_free(g_refs[i]);
  cgc_collect(); /* reports and aborts */
}

void *volatile g_dangling;
static void *unregistered_free(void *arg) {
  (void)arg;
  cgc_unregister_thread();
  cgc_free(g_dangling);
  return NULL;
}
static void child_unregistered(void) {
  g_dangling = cgc_alloc(64);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, unregistered_free, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  cgc_collect(); /* reports and aborts */
}

static sem_t s_freed, s_go, s_done, s_never;
static void *freer_then_frees(void *arg) {
  (void)arg;
  void *q = cgc_alloc(32);
  g_dangling = cgc_alloc(64);
  cgc_free(g_dangling);
  CHECK(sem_post(&s_freed) == 0);
  while (sem_wait(&s_go) != 0) CHECK(errno == EINTR);
  cgc_free(q); /* no allocation: only a free */
  CHECK(sem_post(&s_done) == 0);
  while (sem_wait(&s_never) != 0) CHECK(errno == EINTR);
  return NULL;
}
static void child_progress_by_free(void) {
  CHECK(sem_init(&s_freed, 0, 0) == 0 && sem_init(&s_go, 0, 0) == 0 && sem_init(&s_done, 0, 0) == 0 &&
        sem_init(&s_never, 0, 0) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, freer_then_frees, NULL) == 0);
  while (sem_wait(&s_freed) != 0) CHECK(errno == EINTR);
  cgc_collect(); /* the first sighting: noted */
  CHECK(sem_post(&s_go) == 0);
  while (sem_wait(&s_done) != 0) CHECK(errno == EINTR);
  cgc_collect(); /* the freer has run on (one free): reports and aborts */
  cgc_collect();
}

/* 100000 objects freed: the table grows to 262144 entries (18 MiB). */
static void fill_table(void *arg) {
  (void)arg;
  enum { NT = 100000 };
  void **objs = malloc(NT * sizeof *objs); /* not scanned */
  CHECK(objs != NULL);
  for (int i = 0; i < NT; i++) objs[i] = cgc_alloc(16);
  for (int i = 0; i < NT; i++) cgc_free(objs[i]);
  free(objs);
}

int main(void) {
  const char *d = getenv("CGC_DEBUG");
  CHECKF(d && strstr(d, "checkfree=1"), "run with CGC_DEBUG=checkfree=1");
  cgc_init();
  int st;
  const char *out = child_stderr(child, &st);
  CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "the child did not abort (status %d); output:\n%s", st, out);
  int lines = 0;
  for (const char *s = out; (s = strstr(s, "cgc: use after free: object ")) != NULL; s++) lines++;
  CHECKF(lines == 16, "%d report lines, 16 expected; output:\n%s", lines, out);
  CHECKF(strstr(out, "cgc: use after free: 20 objects freed with cgc_free are still referenced") != NULL,
         "no total of 20; output:\n%s", out);
  out = child_stderr(child_unregistered, &st);
  CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "unregistered freer: the child did not abort (status %d); output:\n%s",
         st, out);
  CHECKF(strstr(out, "cgc: use after free: object ") && strstr(out, "(64 bytes) freed with cgc_free is still referenced from"),
         "unregistered freer: no report; output:\n%s", out);
  out = child_stderr(child_progress_by_free, &st);
  CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "freer that only frees: the child did not abort (status %d); output:\n%s",
         st, out);
  CHECKF(strstr(out, "(64 bytes) freed with cgc_free is still referenced from"), "freer that only frees: no report; output:\n%s",
         out);

  cgc_set_gc_percent(-1);
  cgc_set_memory_limit((int64_t)1 << 30);
  cgc_collect();
  uint64_t goal0 = stats().heap_goal_bytes;
  in_thread(fill_table, NULL); /* on a thread of its own: no stale stack copies */
  clear_stack();
  uint64_t goal_full = 0;
  cgc_collect(); /* empties the table; it goes back after the pause */
  cgc_collect();
  goal_full = stats().heap_goal_bytes;
  CHECKF(goal_full + (4u << 20) >= goal0, "heap goal %llu -> %llu: the emptied quarantine table was kept",
         (unsigned long long)goal0, (unsigned long long)goal_full);
  printf("free_checkfree_reports: ok\n");
  return 0;
}
