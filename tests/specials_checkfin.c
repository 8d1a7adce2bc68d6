/* CGC_DEBUG=checkfinalizers=1: collections report objects reachable from
 * their own cleanup's argument or (for a finalizer) from themselves, naming
 * the object.  Run as `specials_checkfin CASE` with the variable set; stderr
 * is captured in a temporary file and searched for the report.
 *
 *   arg    the argument reaches the object through another object
 *   chain  ... through a chain of 5 objects, from an interior pointer
 *   self   an object with a finalizer that points to itself
 *   cycle  an object with a finalizer in a 3-object cycle
 *   clean  correct uses: nothing is reported
 *   older  two cleanups on one object, only the older one's argument reaching
 *          it: reported (every cleanup of an object is searched)
 *   noscan a cleanup whose argument is a noscan buffer holding the object's
 *          address: not a leak (noscan contents keep nothing), nothing is
 *          reported, and the cleanups run once the objects are dropped
 */
#include <fcntl.h>

#include "specials_util.h"

static char captured[1 << 16];
static int saved_fd = -1;
static FILE *capture_file;

static void capture_begin(void) {
  fflush(stderr);
  capture_file = tmpfile();
  CHECK(capture_file);
  saved_fd = dup(2);
  CHECK(saved_fd >= 0);
  CHECK(dup2(fileno(capture_file), 2) == 2);
}

static const char *capture_end(void) {
  fflush(stderr);
  CHECK(dup2(saved_fd, 2) == 2);
  close(saved_fd);
  rewind(capture_file);
  size_t n = fread(captured, 1, sizeof captured - 1, capture_file);
  captured[n] = 0;
  fclose(capture_file);
  fprintf(stderr, "---- captured stderr:\n%s----\n", captured);
  return captured;
}

static void nop(void *arg) { (void)arg; }

typedef struct link {
  struct link *next;
  char pad[24];
} link_t;

/* n new links in front of head; the first of them. */
static link_t *prepend_links(link_t *head, int n) {
  for (int i = 0; i < n; i++) {
    link_t *l = cgc_alloc(sizeof *l);
    CHECK(l != NULL);
    l->next = head;
    head = l;
  }
  return head;
}

static link_t *objs[16]; /* static: the objects stay alive (and leak, as reported) */
static char **cursors[16];

static void expect_report(const char *out, const void *obj) {
  char addr[32];
  snprintf(addr, sizeof addr, "%p", obj);
  const char *line = strstr(out, "checkfinalizers");
  CHECKF(line != NULL, "no checkfinalizers report");
  bool named = false;
  for (const char *p = out; (p = strstr(p, "cgc: checkfinalizers")) != NULL; p++) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    char buf[512];
    snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf - 1 ? len : sizeof buf - 1), p);
    if (strstr(buf, addr)) named = true;
  }
  CHECKF(named, "no report names the object %s", addr);
}

static _Atomic int noscan_ran;
static void noscan_cleanup(void *arg) {
  (void)arg;
  atomic_fetch_add(&noscan_ran, 1);
}
#define NOSCAN_N 16
static __attribute__((noinline)) void make_noscan_args(void) {
  for (int i = 0; i < NOSCAN_N; i++) {
    link_t *x = cgc_alloc(sizeof *x);
    void **buf = cgc_alloc_noscan(64);
    buf[0] = x; /* data, not a reference: noscan */
    cgc_add_cleanup(x, noscan_cleanup, buf);
  }
}

int main(int argc, char **argv) {
  CHECKF(argc == 2, "usage: specials_checkfin CASE");
  const char *c = argv[1];
  const char *dbg = getenv("CGC_DEBUG");
  CHECKF(dbg && strstr(dbg, "checkfinalizers=1"), "run with CGC_DEBUG=checkfinalizers=1");
  cgc_init();
  if (strcmp(c, "arg") == 0) {
    link_t *x = cgc_alloc(sizeof *x), *y = cgc_alloc(sizeof *y);
    y->next = x; /* arg y reaches x */
    cgc_add_cleanup(x, nop, y);
    objs[0] = x;
    capture_begin();
    cgc_collect();
    expect_report(capture_end(), x);
  } else if (strcmp(c, "chain") == 0) {
    link_t *x = cgc_alloc(sizeof *x);
    link_t *last = cgc_alloc(sizeof *last);
    last->next = (link_t *)((char *)x + 16); /* an interior pointer */
    cgc_add_cleanup((char *)x + 8, nop, prepend_links(last, 4));
    objs[0] = x;
    capture_begin();
    cgc_collect();
    expect_report(capture_end(), x);
  } else if (strcmp(c, "deep") == 0) {
    /* The object reached from its cleanup's argument through 70000 links,
       more than the search visits: it says that it stopped short. */
    link_t *x = cgc_alloc(sizeof *x);
    cgc_add_cleanup((char *)x + 8, nop, prepend_links(x, 70000));
    objs[0] = x;
    capture_begin();
    cgc_collect();
    const char *out = capture_end();
    CHECKF(strstr(out, "cgc: checkfinalizers: 1 searches stopped after at most 65536 objects each") != NULL,
           "a search cut short by a 70000-link chain was not reported");
  } else if (strcmp(c, "self") == 0) {
    link_t *x = cgc_alloc(sizeof *x);
    x->next = x;
    CHECK(cgc_set_finalizer(x, nop) == 0);
    objs[0] = x;
    capture_begin();
    cgc_collect();
    expect_report(capture_end(), x);
  } else if (strcmp(c, "cycle") == 0) {
    link_t *a = cgc_alloc(sizeof *a), *b = cgc_alloc(sizeof *b), *d = cgc_alloc(sizeof *d);
    a->next = b;
    b->next = d;
    d->next = a;
    CHECK(cgc_set_finalizer(b, nop) == 0);
    objs[0] = a;
    capture_begin();
    cgc_collect();
    expect_report(capture_end(), b);
  } else if (strcmp(c, "clean") == 0) {
    for (int i = 0; i < 16; i++) {
      link_t *x = cgc_alloc(sizeof *x), *y = cgc_alloc(sizeof *y), *z = cgc_alloc(sizeof *z);
      y->next = z; /* the argument reaches other objects, not x */
      x->next = z; /* x reaches z too: fine */
      cgc_add_cleanup(x, nop, y);
      CHECK(cgc_set_finalizer(z, nop) == 0);
      objs[i] = x;
    }
    /* A noscan object holding its own address (a cursor into its buffer) is
       never kept by it: the collector does not scan it. */
    for (int i = 0; i < 16; i++) {
      char **b = cgc_alloc_noscan(64);
      b[0] = (char *)(b + 1) + 3;
      CHECK(cgc_set_finalizer(b, nop) == 0);
      cursors[i] = b;
    }
    capture_begin();
    cgc_collect();
    cgc_collect();
    const char *out = capture_end();
    CHECKF(strstr(out, "checkfinalizers") == NULL, "a correct use was reported");
  } else if (strcmp(c, "older") == 0) {
    link_t *x = cgc_alloc(sizeof *x), *y = cgc_alloc(sizeof *y), *z = cgc_alloc(sizeof *z);
    y->next = x;                 /* the older cleanup's argument y reaches x */
    cgc_add_cleanup(x, nop, y);
    cgc_add_cleanup(x, nop, z);  /* a newer, harmless cleanup on the same object */
    objs[0] = x;
    capture_begin();
    cgc_collect();
    expect_report(capture_end(), x);
  } else if (strcmp(c, "noscan") == 0) {
    make_noscan_args();
    capture_begin();
    collect_rounds(2);
    const char *out = capture_end();
    CHECKF(strstr(out, "checkfinalizers") == NULL,
           "reported a leak through a noscan argument (its contents are never scanned)");
    CHECKF(atomic_load(&noscan_ran) >= NOSCAN_N / 2, "only %d of %d cleanups ran", atomic_load(&noscan_ran),
           NOSCAN_N);
  } else {
    fprintf(stderr, "unknown case %s\n", c);
    return 2;
  }
  fprintf(stderr, "%s: ok\n", c);
  return 0;
}
