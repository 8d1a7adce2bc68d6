/* cgc_panic / cgc_protect / cgc_panic_value: panics through frames of every
   defer mode (random mixes), nested panics with Go's rules, panic values,
   threads.  This unit is compiled with -fexceptions; the frames it mixes come
   from defer_frames_{u,c,b,n}.c. */
#include <pthread.h>
#include <setjmp.h>
#include <unwind.h>
#include <wchar.h>

#include "cgc.h"
#include "testutil.h"
#define DEFER_FRAMES_DECLARE_ONLY
#include "defer_frames_tmpl.c"

#define LOG_MAX 2048
static __thread int log_id[LOG_MAX];
static __thread void *log_pv[LOG_MAX];
static __thread int nlog;

/* Deferred everywhere: records its id and what cgc_panic_value reports.
   Never inlined: a direct call from a deferred function is not deferred. */
__attribute__((noinline)) void logrec(void *id) {
  CHECK(nlog < LOG_MAX);
  log_pv[nlog] = cgc_panic_value();
  log_id[nlog++] = (int)(intptr_t)id;
}

static void expect_entry(int k, int id, void *pv, int line) {
  CHECKF(k < nlog, "line %d: only %d entries, want entry %d (%d)", line, nlog, k, id);
  CHECKF(log_id[k] == id, "line %d: entry %d is %d, want %d", line, k, log_id[k], id);
  CHECKF(log_pv[k] == pv, "line %d: entry %d (%d): panic value %p, want %p", line, k, id,
         log_pv[k], pv);
}
static void expect_count(int n, int line) {
  CHECKF(nlog == n, "line %d: %d entries, want %d", line, nlog, n);
  nlog = 0;
}

static void *const FIRST = (void *)"first";
static void *const SECOND = (void *)"second";
static void *const INNER = (void *)"inner";
static void *const WRAPPED = (void *)"wrapped";

static void panic_with(void *v) { cgc_panic(v); }
static void nothing(void *a) { (void)a; }

/* ------------------------------------------------------------------------ */
/* Random chains of frames of all modes                                      */
/* ------------------------------------------------------------------------ */

void next_frame(const struct plan *pl, int i) {
  if (i == pl->depth) {
    pl->leaf(pl->leaf_arg);
    return;
  }
  switch (pl->modes[i]) {
  case 'u': u_frame(pl, i); break;
  case 'c': c_frame(pl, i); break;
  case 'b': b_frame(pl, i); break;
  case 'n': n_frame(pl, i); break;
  default: CHECK(0);
  }
}

/* Does the unwinder stop at frames of defer_frames_n.c?  (It does when they
   have no unwind tables; instrumented builds may add them.) */
static _Unwind_Reason_Code count_cb(struct _Unwind_Context *ctx, void *arg) {
  (void)ctx;
  (*(int *)arg)++;
  return _URC_NO_REASON;
}
static void count_frames(void *out) {
  int n = 0;
  _Unwind_Backtrace(count_cb, &n);
  *(int *)out = n;
}
static int n_is_hole;

static void start_plan(void *p) { next_frame(p, 0); }

static void run_plan(const struct plan *pl, int panics) {
  static __thread int want_id[LOG_MAX];
  int nw = 0;
  void *v = FIRST;
  int hole = -1;
  if (panics && n_is_hole)
    for (int i = 0; i < pl->depth; i++)
      if (pl->modes[i] == 'n') hole = i;
  for (int i = pl->depth - 1; i >= 0; i--) {
    char m = pl->modes[i];
    int blocks;
    if (!panics) {
      want_id[nw++] = (int)(intptr_t)LOG_ID(i, K_RETURNED, 0);
      blocks = 1;
    } else if (i > hole) { /* passed by the unwinder */
      blocks = m != 'b';
    } else {               /* run from the chain only */
      blocks = m == 'c' || m == 'n';
    }
    if (blocks) {
      want_id[nw++] = (int)(intptr_t)LOG_ID(i, K_BLOCK, 1);
      want_id[nw++] = (int)(intptr_t)LOG_ID(i, K_BLOCK, 0);
    }
    for (int k = pl->ndyn[i] - 1; k >= 0; k--) want_id[nw++] = (int)(intptr_t)LOG_ID(i, K_DYN, k);
  }
  struct plan p = *pl;
  p.leaf = panics ? panic_with : nothing;
  p.leaf_arg = v;
  nlog = 0;
  void *got = (void *)1;
  int r = cgc_protect(start_plan, &p, &got);
  CHECKF(r == panics, "plan %s: protect returned %d", pl->modes, r);
  CHECK(got == (panics ? v : NULL));
  if (nlog != nw) {
    fprintf(stderr, "plan %s (depth %d, panics %d, hole %d):\n got", pl->modes, pl->depth, panics, hole);
    for (int k = 0; k < nlog; k++) fprintf(stderr, " %d", log_id[k]);
    fprintf(stderr, "\nwant");
    for (int k = 0; k < nw; k++) fprintf(stderr, " %d", want_id[k]);
    fputc('\n', stderr);
    abort();
  }
  for (int k = 0; k < nw; k++) {
    void *pv = log_id[k] % 1000 / 100 == K_RETURNED ? NULL : (panics ? v : NULL);
    if (log_id[k] != want_id[k] || log_pv[k] != pv) {
      fprintf(stderr, "plan %s (panics %d): entry %d is %d (pv %p), want %d (pv %p)\n", pl->modes,
              panics, k, log_id[k], log_pv[k], want_id[k], pv);
      abort();
    }
  }
  nlog = 0;
  CHECK(cgc__defer_chain == NULL);
  CHECK(cgc_panic_value() == NULL);
}

static __thread uint64_t plan_rng;

static void random_plans(int count, const char *modes, int maxdyn) {
  size_t nm = strlen(modes);
#define test_rand() rng_next(&plan_rng)
  for (int t = 0; t < count; t++) {
    struct plan pl;
    memset(&pl, 0, sizeof pl);
    pl.depth = 1 + (int)(test_rand() % FRAMES_MAX);
    for (int i = 0; i < pl.depth; i++) {
      pl.modes[i] = modes[test_rand() % nm];
      pl.ndyn[i] = (int)(test_rand() % (uint64_t)(maxdyn + 1));
    }
    pl.modes[pl.depth] = 0;
    run_plan(&pl, 1);
    run_plan(&pl, 0);
  }
#undef test_rand
}

/* ------------------------------------------------------------------------ */
/* Nested panics, Go's rules                                                 */
/* ------------------------------------------------------------------------ */

typedef void (*with_fn)(void (*)(void *), void *, void (*)(void *), void *);
/* Frames whose defers run during a panic. */
static const with_fn withs[] = {u_with_block, c_with_block, u_with_dyn, c_with_dyn, b_with_dyn};
#define NWITH ((int)(sizeof withs / sizeof *withs))
static __thread with_fn W1, W2, W3;

#define ID_O ((void *)(intptr_t)1)
#define ID_B ((void *)(intptr_t)2)
#define ID_G ((void *)(intptr_t)3)
#define ID_D ((void *)(intptr_t)4)

/* A panic in a deferred call during a panic supersedes it: the rest of the
   defers run with the new value, which cgc_protect returns. */
static void panic_second(void *a) {
  (void)a;
  CHECK(cgc_panic_value() == FIRST);
  cgc_panic(SECOND);
}
static void s1_inner(void *a) { W3(logrec, ID_B, panic_with, FIRST); (void)a; }
static void s1_mid(void *a) { W2(panic_second, NULL, s1_inner, NULL); (void)a; }
static void s1_outer(void *a) { W1(logrec, ID_O, s1_mid, NULL); (void)a; }

/* A cgc_protect inside a deferred call recovers only the panic raised inside
   it; the first panic then goes on. */
static void s2_g(void *a) { W3(logrec, ID_G, panic_with, INNER); (void)a; }
static void s2_defer(void *a) {
  (void)a;
  CHECK(cgc_panic_value() == FIRST);
  void *v = NULL;
  CHECK(cgc_protect(s2_g, NULL, &v) == 1);
  CHECK(v == INNER);
  CHECK(cgc_panic_value() == FIRST);
  logrec(ID_D); /* a plain call, not deferred: NULL */
  __asm__ volatile("" ::: "memory");
}
static void s2_f(void *a) { W2(s2_defer, NULL, panic_with, FIRST); (void)a; }
static void s2_outer(void *a) { W1(logrec, ID_O, s2_f, NULL); (void)a; }

/* Recover-and-repanic from a deferred call. */
static void s3_defer(void *a) {
  (void)a;
  void *v = NULL;
  CHECK(cgc_panic_value() == FIRST);
  /* A protected call that does not panic changes nothing. */
  CHECK(cgc_protect(nothing, NULL, &v) == 0 && v == NULL);
  CHECK(cgc_panic_value() == FIRST);
  cgc_panic(WRAPPED);
}
static void s3_f(void *a) { W2(s3_defer, NULL, panic_with, FIRST); (void)a; }
static void s3_outer(void *a) { W1(logrec, ID_O, s3_f, NULL); (void)a; }

static void nested_rules(void) {
  void *v;
  for (int a = 0; a < NWITH; a++)
    for (int b = 0; b < NWITH; b++)
      for (int c = 0; c < NWITH; c++) {
        W1 = withs[a], W2 = withs[b], W3 = withs[c];
        nlog = 0;
        CHECK(cgc_protect(s1_outer, NULL, &v) == 1);
        CHECK(v == SECOND);
        expect_entry(0, 2, FIRST, __LINE__);
        expect_entry(1, 1, SECOND, __LINE__);
        expect_count(2, __LINE__);

        CHECK(cgc_protect(s2_outer, NULL, &v) == 1);
        CHECK(v == FIRST);
        expect_entry(0, 3, INNER, __LINE__);
        expect_entry(1, 4, NULL, __LINE__);
        expect_entry(2, 1, FIRST, __LINE__);
        expect_count(3, __LINE__);

        CHECK(cgc_protect(s3_outer, NULL, &v) == 1);
        CHECK(v == WRAPPED);
        expect_entry(0, 1, WRAPPED, __LINE__);
        expect_count(1, __LINE__);
        CHECK(cgc__defer_chain == NULL);
      }
}

/* Panics nested five deep, each level recovering the one below it. */
#define LEVEL_VAL(k) ((void *)(intptr_t)(0x100 + (k)))
static void s5_level(void *kp);
static void s5_panic(void *kp) { cgc_panic(LEVEL_VAL((intptr_t)kp)); }
static void s5_defer(void *kp) {
  intptr_t k = (intptr_t)kp;
  CHECK(cgc_panic_value() == LEVEL_VAL(k));
  if (k > 0) {
    void *v = NULL;
    CHECK(cgc_protect(s5_level, (void *)(k - 1), &v) == 1);
    CHECK(v == LEVEL_VAL(k - 1));
    CHECK(cgc_panic_value() == LEVEL_VAL(k));
  }
  logrec((void *)k);
  __asm__ volatile("" ::: "memory"); /* a tail call would make logrec the deferred call */
}
static void s5_level(void *kp) {
  withs[(intptr_t)kp % NWITH](s5_defer, kp, s5_panic, kp);
}

static void deep_nesting(void) {
  void *v;
  nlog = 0;
  CHECK(cgc_protect(s5_level, (void *)5, &v) == 1);
  CHECK(v == LEVEL_VAL(5));
  for (int k = 0; k <= 5; k++) expect_entry(k, k, NULL, __LINE__);
  expect_count(6, __LINE__);
}

/* A panic raised by a deferred call on a normal exit: the older defers of the
   same frame still run, during the panic. */
static void panic_plain(void *a) {
  (void)a;
  CHECK(cgc_panic_value() == NULL);
  cgc_panic(SECOND);
}
static void s4_blocks_u(void *a) { u_two_blocks(logrec, panic_plain, a); }
static void s4_blocks_c(void *a) { c_two_blocks(logrec, panic_plain, a); }
static void s4_blocks_b(void *a) { b_two_blocks(logrec, panic_plain, a); }
static void s4_dyn_u(void *a) { u_three_dyn(logrec, panic_plain, logrec, a); }
static void s4_dyn_c(void *a) { c_three_dyn(logrec, panic_plain, logrec, a); }
static void s4_dyn_b(void *a) { b_three_dyn(logrec, panic_plain, logrec, a); }

static void panic_in_normal_exit(void) {
  void (*const blocks[])(void *) = {s4_blocks_u, s4_blocks_c};
  void (*const dyns[])(void *) = {s4_dyn_u, s4_dyn_c, s4_dyn_b};
  void *v;
  for (int i = 0; i < 2; i++) {
    nlog = 0;
    CHECK(cgc_protect(blocks[i], ID_O, &v) == 1 && v == SECOND);
    expect_entry(0, 1, SECOND, __LINE__);
    expect_count(1, __LINE__);
  }
  /* Block defers of a unit built with CGC_DEFER_REGISTER=0 and no
     -fexceptions are not run by panics. */
  CHECK(cgc_protect(s4_blocks_b, ID_O, &v) == 1 && v == SECOND);
  expect_count(0, __LINE__);
  for (int i = 0; i < 3; i++) {
    nlog = 0;
    CHECK(cgc_protect(dyns[i], ID_O, &v) == 1 && v == SECOND);
    expect_entry(0, 1, NULL, __LINE__);   /* c: the normal exit */
    expect_entry(1, 1, SECOND, __LINE__); /* a: run by the panic */
    expect_count(2, __LINE__);
  }
  CHECK(cgc__defer_chain == NULL);
}

/* cgc_panic_value is NULL in defers run by normal exits inside a deferred
   call that a panic runs, and in functions a deferred call calls. */
static __attribute__((noinline)) void *helper_value(void) {
  void *v = cgc_panic_value();
  __asm__ volatile("" ::: "memory");
  return v;
}
static void s7_defer(void *a) {
  (void)a;
  CHECK(cgc_panic_value() == FIRST);
  CHECK(helper_value() == NULL);
  u_two_blocks(logrec, logrec, ID_B);
  c_two_blocks(logrec, logrec, ID_B);
  b_two_blocks(logrec, logrec, ID_B);
  n_two_blocks(logrec, logrec, ID_B);
  u_three_dyn(logrec, logrec, logrec, ID_G);
  c_three_dyn(logrec, logrec, logrec, ID_G);
  b_three_dyn(logrec, logrec, logrec, ID_G);
  n_three_dyn(logrec, logrec, logrec, ID_G);
  CHECK(cgc_panic_value() == FIRST);
}
static void s7_body(void *a) { W1(s7_defer, NULL, panic_with, FIRST); (void)a; }

static void value_scope(void) {
  void *v;
  CHECK(cgc_panic_value() == NULL);
  for (int a = 0; a < NWITH; a++) {
    W1 = withs[a];
    nlog = 0;
    CHECK(cgc_protect(s7_body, NULL, &v) == 1 && v == FIRST);
    CHECK(nlog == 8 + 12);
    for (int k = 0; k < nlog; k++) CHECKF(log_pv[k] == NULL, "entry %d", k);
    nlog = 0;
  }
  CHECK(cgc_panic_value() == NULL);
}

/* ------------------------------------------------------------------------ */
/* Values, nesting of protects, deep stacks, longjmp, threads                */
/* ------------------------------------------------------------------------ */

static void panicf_long(void *a) {
  (void)a;
  char big[1001];
  memset(big, 'x', 1000);
  big[1000] = 0;
  cgc_panicf("<%s|%d>", big, 7);
}
static void panicf_short(void *a) { cgc_panicf("code %d: %s", 42, (const char *)a); }
static void panic_null(void *a) { (void)a; cgc_panic(NULL); }

/* cgc_panicf's value is the whole formatted string at every length, the
   lengths around its 256-byte stack buffer included (255 characters fit
   with their terminator, 256 do not). */
static char xs[600];
static void panicf_len(void *a) { cgc_panicf("%.*s|", (int)(intptr_t)a - 1, xs); }
static void panicf_lengths(void) {
  memset(xs, 'x', sizeof xs - 1);
  static const int lens[] = {1, 254, 255, 256, 257, 258, 511, 512, 513};
  for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
    int n = lens[i];
    void *v = NULL;
    CHECK(cgc_protect(panicf_len, (void *)(intptr_t)n, &v) == 1 && v);
    const char *s = v;
    CHECKF(strlen(s) == (size_t)n, "cgc_panicf of %d characters gave %zu", n, strlen(s));
    CHECKF(strspn(s, "x") == (size_t)n - 1 && s[n - 1] == '|', "cgc_panicf of %d characters: \"%.20s...\"",
           n, s);
  }
}

/* A format that fails (a wide character the C locale cannot encode: the
   program never called setlocale) panics with an empty string. */
static const wchar_t unencodable[] = {0xe9, 0};
static void panicf_bad_format(void *a) { (void)a; cgc_panicf("%ls", unencodable); }

static void values(void) {
  void *v = (void *)1;
  int obj;
  CHECK(cgc_protect(nothing, NULL, &v) == 0 && v == NULL);
  CHECK(cgc_protect(panic_with, &obj, &v) == 1 && v == &obj);
  CHECK(cgc_protect(panic_with, &obj, NULL) == 1);
  CHECK(cgc_protect(panicf_short, "bad", &v) == 1);
  CHECK(strcmp(v, "code 42: bad") == 0);
  CHECK(cgc_protect(panicf_long, NULL, &v) == 1);
  CHECK(strlen(v) == 1004 && memcmp(v, "<xxxx", 5) == 0 && strcmp((char *)v + 1001, "|7>") == 0);
  CHECK(cgc_protect(panic_null, NULL, &v) == 1);
  CHECK(v && strcmp(v, "cgc_panic called with NULL") == 0);
  panicf_lengths();
  v = NULL;
  CHECK(cgc_protect(panicf_bad_format, NULL, &v) == 1);
  CHECKF(v && strcmp(v, "") == 0, "a failed format gave %s", v ? "a non-empty string" : "NULL");
}

static void inner_protected(void *a) {
  void *v;
  CHECK(cgc_protect(panic_with, a, &v) == 1 && v == a);
  /* The outer protect is still in force. */
  cgc_panic(SECOND);
}
static void nested_protects(void) {
  void *v;
  for (int i = 0; i < 3; i++) {
    CHECK(cgc_protect(inner_protected, FIRST, &v) == 1 && v == SECOND);
    CHECK(cgc_panic_value() == NULL);
  }
}

static long deep_count;
static void bump(void *a) { (void)a; deep_count++; }
static void (*volatile raise_fn)(void *) = panic_with;
static void deep(int n) {
  CGC_FRAME();
  CGC_DEFER(bump, NULL);
  CGC_DEFER_DYN(bump, NULL);
  CGC_DEFER_DYN(bump, NULL);
  if (n == 0)
    raise_fn(FIRST);
  else
    deep(n - 1);
  __asm__ volatile("" ::: "memory");
}
static void deep_body(void *a) { deep((int)(intptr_t)a); }

/* A panic whose unwinder stops early, at a frame without unwind information
   (an n frame, when they lack it), leaves the thread's state as any
   recovered panic does: the cgc_protect that recovers restores the protect
   stack and the panic in flight, so that
   - a later panic from deeper in the stack reaches the enclosing
     cgc_protect, not the one that already returned;
   - inside a deferred call that a panic runs, cgc_panic_value() still
     reports that panic after a cgc_protect in the deferred call recovered
     its own panic through such a frame. */
static void through_hole(void *v) {
  n_probe(panic_with, v);
  __asm__ volatile("" ::: "memory");
}

/* Uses about 4 KiB of stack per level, then panics with SECOND. */
static __attribute__((noinline)) void deep_then_panic(int n) {
  volatile char pad[4096];
  memset((char *)pad, n, sizeof pad);
  if (n > 0) deep_then_panic(n - 1);
  else raise_fn(SECOND);
  consume((const void *)pad);
}

static int hole_ran;
static void hole_mark_ran(void *a) {
  CHECK(cgc_panic_value() == SECOND);
  hole_ran += (int)(intptr_t)a;
}
static void hole_outer_body(void *a) {
  (void)a;
  CGC_DEFER(hole_mark_ran, (void *)(intptr_t)1);
  void *v = NULL;
  CHECK(cgc_protect(through_hole, FIRST, &v) == 1 && v == FIRST);
  deep_then_panic(32); /* to the enclosing cgc_protect */
  __asm__ volatile("" ::: "memory");
}
static void hole_recover_in_defer(void *a) {
  (void)a;
  CHECK(cgc_panic_value() == FIRST);
  void *v = NULL;
  CHECK(cgc_protect(through_hole, INNER, &v) == 1 && v == INNER);
  CHECKF(cgc_panic_value() == FIRST, "after the inner recovery cgc_panic_value() is %p, want FIRST",
         cgc_panic_value());
  hole_ran += 10;
  __asm__ volatile("" ::: "memory");
}
static void hole_defer_body(void *a) {
  (void)a;
  CGC_DEFER(hole_recover_in_defer, NULL);
  raise_fn(FIRST);
  __asm__ volatile("" ::: "memory");
}
static void protect_through_hole(void) {
  void *v = NULL;
  for (int r = 0; r < 3; r++) {
    hole_ran = 0;
    CHECK(cgc_protect(hole_outer_body, NULL, &v) == 1);
    CHECKF(v == SECOND, "recovered %p, want SECOND", v);
    CHECK(hole_ran == 1);
    CHECK(cgc_panic_value() == NULL);
    hole_ran = 0;
    CHECK(cgc_protect(hole_defer_body, NULL, &v) == 1 && v == FIRST);
    CHECK(hole_ran == 10);
    CHECK(cgc__defer_chain == NULL);
    CHECK(cgc_panic_value() == NULL);
  }
}

/* cgc_protect restores the defer chain even when fn longjmps over frames. */
static jmp_buf jb;
static void jump_out(void *a) { (void)a; longjmp(jb, 1); }
static void longjmp_body(void *a) {
  (void)a;
  if (setjmp(jb) == 0) c_with_dyn(logrec, ID_O, jump_out, NULL);
}
static void longjmp_inside_protect(void) {
  void *v;
  nlog = 0;
  CHECK(cgc_protect(longjmp_body, NULL, &v) == 0);
  CHECK(cgc__defer_chain == NULL);
  CHECK(nlog == 0); /* longjmp runs no defers */
  CHECK(cgc_protect(deep_body, (void *)(intptr_t)3, &v) == 1 && v == FIRST);
  CHECK(cgc__defer_chain == NULL);
}

/* A panic raised right after a longjmp out of deeper frames, with no
   cgc_protect returning in between, drops their links and exits: the
   records those frames left pending never run (longjmp runs no defers), and
   the panic runs the live frames' records and reaches its cgc_protect.
   (The frames jumped over lie below a padding frame: cgc_panic's own frame
   does not reuse their stack before the panic drops them.) */
static jmp_buf jb_deep;
static void jump_deep(void *a) { (void)a; longjmp(jb_deep, 1); }
static __attribute__((noinline)) void stale_frames(int n) {
  CGC_FRAME();
  CGC_DEFER_DYN(logrec, ID_G); /* left pending by the jump */
  if (n > 0) {
    stale_frames(n - 1);
  } else {
    CGC_DEFER_DYN(logrec, ID_B);    /* also left pending */
    CGC_DEFER_DYN(jump_deep, NULL); /* jumps out of the frame's normal exit */
  }
  __asm__ volatile("" ::: "memory");
}
static __attribute__((noinline)) void padded_stale_frames(void) {
  volatile char pad[4096];
  memset((char *)pad, 0, sizeof pad);
  stale_frames(8);
  consume((const void *)pad);
}
static void stale_then_panic(void *a) {
  (void)a;
  CGC_FRAME();
  CGC_DEFER_DYN(logrec, ID_O); /* runs for the panic */
  if (setjmp(jb_deep) == 0) padded_stale_frames();
  cgc_panic(FIRST);
}
static void panic_after_longjmp(void) {
  /* The repair reads the dead frames below the stack pointer, as
     docs/defer.md says; memcheck rightly reports those reads. */
  const char *pre = getenv("LD_PRELOAD");
  if (pre && strstr(pre, "vgpreload")) return;
  for (int r = 0; r < 3; r++) {
    void *v = NULL;
    nlog = 0;
    CHECK(cgc_protect(stale_then_panic, NULL, &v) == 1 && v == FIRST);
    expect_entry(0, 1, FIRST, __LINE__);
    expect_count(1, __LINE__);
    CHECK(cgc__defer_chain == NULL);
    CHECK(cgc_panic_value() == NULL);
  }
}

/* A chain of panics, each raised by a deferred call that the previous one
   runs (so each supersedes the previous): the deferred calls see the panic
   that runs them, and cgc_protect returns the last one.  Repeated, so that
   later chains reuse what earlier ones left. */
#define CHAIN_LEN 12
#define CHAIN_VAL(k) ((void *)(intptr_t)(0x200 + (k)))
static void chain_link(void *kp) {
  intptr_t k = (intptr_t)kp;
  CHECKF(cgc_panic_value() == (k ? CHAIN_VAL(k - 1) : NULL), "link %d: panic value %p", (int)k,
         cgc_panic_value());
  CGC_FRAME();
  if (k + 1 < CHAIN_LEN) CGC_DEFER_DYN(chain_link, (void *)(k + 1));
  CGC_DEFER(logrec, (void *)k);
  cgc_panic(CHAIN_VAL(k));
}
static void panic_chains(void) {
  for (int r = 0; r < 4; r++) {
    void *v = NULL;
    nlog = 0;
    CHECK(cgc_protect(chain_link, (void *)(intptr_t)0, &v) == 1);
    CHECKF(v == CHAIN_VAL(CHAIN_LEN - 1), "recovered %p", v);
    for (int k = 0; k < CHAIN_LEN; k++) expect_entry(k, k, CHAIN_VAL(k), __LINE__);
    expect_count(CHAIN_LEN, __LINE__);
    CHECK(cgc__defer_chain == NULL);
    CHECK(cgc_panic_value() == NULL);
  }
}

static void *thread_main(void *arg) {
  plan_rng = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ULL + 1;
  random_plans(150, n_is_hole ? "ucbn" : "ucb", 20);
  nested_rules();
  return NULL;
}

int main(void) {
  clear_stack();
  plan_rng = test_seed();
  CHECK(cgc_panic_value() == NULL);
  int cu = 0, cn = 0;
  u_probe(count_frames, &cu);
  n_probe(count_frames, &cn);
  n_is_hole = cn < cu;
  printf("frames of defer_frames_n.c %s unwind information\n", n_is_hole ? "lack" : "have");

  values();
  nested_protects();
  random_plans(400, "ucb", 12);
  random_plans(100, "ucbn", 40);
  random_plans(50, "n", 3);
  nested_rules();
  deep_nesting();
  panic_chains();
  panic_in_normal_exit();
  value_scope();

  void *v;
  deep_count = 0;
  CHECK(cgc_protect(deep_body, (void *)(intptr_t)2000, &v) == 1 && v == FIRST);
  CHECK(deep_count == 3 * 2001);

  longjmp_inside_protect();
  panic_after_longjmp();
  if (n_is_hole) protect_through_hole();

  for (int i = 0; i < 20000; i++) CHECK(cgc_protect(deep_body, (void *)(intptr_t)2, &v) == 1);

  pthread_t th[4];
  for (int i = 0; i < 4; i++) CHECK(pthread_create(&th[i], NULL, thread_main, (void *)(intptr_t)(i + test_rand())) == 0);
  for (int i = 0; i < 4; i++) CHECK(pthread_join(th[i], NULL) == 0);

  CHECK(cgc__defer_chain == NULL);
  CHECK(cgc_panic_value() == NULL);
  printf("defer_panic: ok\n");
  return 0;
}
