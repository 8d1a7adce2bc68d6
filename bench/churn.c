/*
 * Small-object churn: allocate 16-byte objects and drop them.
 *
 * Each thread keeps the last K objects in a ring on its stack (so the work
 * cannot be optimised away and a small live set remains); an object leaves
 * the ring when it is overwritten.  The malloc backends free the object that
 * leaves the ring; the collected backends just drop it.
 *
 *   churn [-t THREADS] [-n TOTAL_OBJECTS] [-k RING] [-s SIZE]
 *
 * With several threads the total is split evenly and the threads start
 * together.  Reported:
 *   ns_per_obj         wall time / total objects
 *   thread_ns_per_obj  mean per-thread elapsed time / objects per thread
 *   cpu_ns_per_obj     process CPU time (all threads, collector helpers
 *                      included) / total objects
 *
 * Output: RESULT bench=churn alloc=<name> threads=<t> ns_per_obj=<x> ...
 */
#include "backend.h"

#include <errno.h>
#include <unistd.h>

#define MAX_THREADS 64
#define MAX_RING    (1 << 16)   /* the ring lives on the stack, sized k */

typedef struct {
  long n;              /* objects to allocate */
  int k;               /* ring size */
  size_t size;         /* object size */
  uint64_t elapsed_ns;
  uint64_t checksum;
} job_t;

static pthread_barrier_t start_barrier;
static int use_barrier;

static BK_NOINLINE void churn(job_t *job)
{
  const int k = job->k;
  void *ring[k];
  const long n = job->n;
  const size_t size = job->size;
  for (int i = 0; i < k; i++)
    ring[i] = NULL;

  if (use_barrier)
    pthread_barrier_wait(&start_barrier);
  uint64_t t0 = bk_now_ns();
  int slot = 0;
  for (long i = 0; i < n; i++) {
    uint64_t *p = bk_alloc(size);
    p[0] = (uint64_t)i;
    p[1] = (uint64_t)slot;
#if BK_MANUAL
    bk_free(ring[slot]);
#endif
    ring[slot] = p;
    if (++slot == k) slot = 0;
  }
  uint64_t t1 = bk_now_ns();

  /* The survivors must still hold what was written. */
  uint64_t sum = 0;
  for (int i = 0; i < k; i++) {
    uint64_t *p = ring[i];
    if (!p) continue;
    if (p[1] != (uint64_t)i || p[0] % (uint64_t)k != (uint64_t)i) {
      fprintf(stderr, "churn: ring slot %d holds a damaged object\n", i);
      exit(1);
    }
    sum += p[0];
#if BK_MANUAL
    bk_free(p);
#endif
    ring[i] = NULL;
  }
  job->checksum = sum;
  job->elapsed_ns = t1 - t0;
}

static void *thread_main(void *arg)
{
  churn(arg);
  return NULL;
}

static long parse_long(const char *s, const char *what)
{
  char *end;
  errno = 0;
  double v = strtod(s, &end);   /* accepts 1e8 */
  if (errno || end == s || *end || v < 1) {
    fprintf(stderr, "churn: bad %s '%s'\n", what, s);
    exit(2);
  }
  return (long)v;
}

int main(int argc, char **argv)
{
  int threads = 1, k = 1000;
  long total = 100000000;
  size_t size = 16;
  int opt;
  while ((opt = getopt(argc, argv, "t:n:k:s:")) != -1) {
    switch (opt) {
    case 't': threads = (int)parse_long(optarg, "thread count"); break;
    case 'n': total = parse_long(optarg, "object count"); break;
    case 'k': k = (int)parse_long(optarg, "ring size"); break;
    case 's': size = (size_t)parse_long(optarg, "object size"); break;
    default:
      fprintf(stderr, "usage: %s [-t threads] [-n objects] [-k ring] [-s size]\n", argv[0]);
      return 2;
    }
  }
  if (threads > MAX_THREADS || k > MAX_RING || size < 2 * sizeof(uint64_t)) {
    fprintf(stderr, "churn: threads <= %d, ring <= %d, size >= 16\n", MAX_THREADS, MAX_RING);
    return 2;
  }

  bk_init();
  bk_describe(stdout);

  job_t jobs[MAX_THREADS];
  long per = total / threads;
  for (int i = 0; i < threads; i++)
    jobs[i] = (job_t){ .n = per, .k = k, .size = size };
  total = per * threads;

  uint64_t gc0 = bk_gc_count();
  uint64_t c0 = bk_cpu_ns(), t0, t1;
  if (threads == 1) {
    t0 = bk_now_ns();
    churn(&jobs[0]);
    t1 = bk_now_ns();
  } else {
    pthread_t tid[MAX_THREADS];
    use_barrier = 1;
    pthread_barrier_init(&start_barrier, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++) {
      int e = pthread_create(&tid[i], NULL, thread_main, &jobs[i]);
      if (e) {
        fprintf(stderr, "churn: pthread_create: %s\n", strerror(e));
        return 1;
      }
    }
    pthread_barrier_wait(&start_barrier);
    t0 = bk_now_ns();
    for (int i = 0; i < threads; i++)
      pthread_join(tid[i], NULL);
    t1 = bk_now_ns();
    pthread_barrier_destroy(&start_barrier);
  }
  uint64_t c1 = bk_cpu_ns();

  uint64_t thread_sum = 0, checksum = 0;
  for (int i = 0; i < threads; i++) {
    thread_sum += jobs[i].elapsed_ns;
    checksum += jobs[i].checksum;
  }
  double wall = (double)(t1 - t0);
  printf("RESULT bench=churn alloc=%s threads=%d objects=%ld size=%zu ring=%d ns_per_obj=%.2f"
         " thread_ns_per_obj=%.2f cpu_ns_per_obj=%.2f time_ms=%.1f gcs=%" PRIu64
         " maxrss_kib=%ld checksum=%" PRIu64 "\n",
         BK_NAME, threads, total, size, k, wall / (double)total,
         (double)thread_sum / threads / (double)per, (double)(c1 - c0) / (double)total,
         wall / 1e6, bk_gc_count() - gc0, bk_maxrss_kib(), checksum);
  return 0;
}
