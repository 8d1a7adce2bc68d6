/* options.c — one table of run-time options, read from CGC_DEBUG
 * (comma-separated name=value pairs, as Go's GODEBUG), plus CGC_PERCENT,
 * CGC_MEMLIMIT and CGC_SIGNAL.  Unknown names and bad values are reported on
 * stderr and ignored.
 */
#include <errno.h>
#include <float.h>
#include <stdlib.h>

#include "internal.h"

typedef struct {
  const char *name;
  int *field;
  int def, min, max;
  const char *help;
} option_t;

static const option_t options[] = {
  {"gctrace", &_cgc_g.opt.gctrace, 0, 0, 2, "print one line per collection to stderr"},
  {"checkmark", &_cgc_g.opt.checkmark, 0, 0, 1, "re-mark single-threaded after each marking and abort on a lost object"},
  {"checkfree", &_cgc_g.opt.checkfree, 0, 0, 1, "quarantine freed objects and report references to them"},
  {"checkfinalizers", &_cgc_g.opt.checkfinalizers, 0, 0, 1, "report objects reachable from their own cleanup or finalizer"},
  {"markworkers", &_cgc_g.opt.markworkers, 0, 0, 64, "threads that mark (0: one per CPU)"},
  {"bgsweep", &_cgc_g.opt.bgsweep, 1, 0, 1, "sweep in a background thread"},
  {"scavenge", &_cgc_g.opt.scavenge, 1, 0, 1, "give free memory back to the OS"},
  {"cleanups", &_cgc_g.opt.cleanups_manual, 0, 0, 1, "cleanups=manual: run cleanups only in cgc_run_cleanups"},
};

static void set_option(const char *name, size_t nlen, const char *val) {
  for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
    const option_t *o = &options[i];
    if (strlen(o->name) != nlen || strncmp(o->name, name, nlen) != 0) continue;
    long v;
    char *end;
    if (o->field == &_cgc_g.opt.cleanups_manual) {
      if (strncmp(val, "manual", 6) == 0 && (val[6] == 0 || val[6] == ',')) v = 1;
      else if (strncmp(val, "thread", 6) == 0 && (val[6] == 0 || val[6] == ',')) v = 0;
      else {
        _cgc_warn("CGC_DEBUG: cleanups takes 'manual' or 'thread'");
        return;
      }
    } else {
      v = strtol(val, &end, 10);
      if (end == val || (*end && *end != ',') || v < o->min || v > o->max) {
        _cgc_warn("CGC_DEBUG: bad value for %s (want %d..%d); ignored", o->name, o->min, o->max);
        return;
      }
    }
    *o->field = (int)v;
    return;
  }
  char buf[64];
  size_t n = nlen < sizeof buf - 1 ? nlen : sizeof buf - 1;
  memcpy(buf, name, n);
  buf[n] = 0;
  _cgc_warn("CGC_DEBUG: unknown option '%s' (ignored)", buf);
}

int64_t _cgc_parse_bytes(const char *s) {
  if (!s) return -2;
  while (*s == ' ') s++;
  if (strcmp(s, "off") == 0 || strcmp(s, "none") == 0) return -1;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || !(v >= 0)) return -2; /* also NaN (strtod takes "nan") */
  if (errno == ERANGE) return -2;       /* "1e999", "1e-400" */
  /* Decimal only: not "inf", "infinity" or hex floats, which strtod takes. */
  if ((*s != '.' && (*s < '0' || *s > '9')) || (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))) return -2;
  while (*end == ' ') end++;
  double mul = 1;
  switch (*end) {
  case 0: break;
  case 'B': case 'b': mul = 1; end++; break;
  case 'k': case 'K': mul = 1024.0; end++; break;
  case 'm': case 'M': mul = 1024.0 * 1024; end++; break;
  case 'g': case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
  case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
  default: return -2;
  }
  if (mul > 1) { /* KiB, KB, K, kB all mean powers of 1024 here */
    if (*end == 'i') end++;
    if (*end == 'B' || *end == 'b') end++;
  }
  if (*end) return -2;
  double r = v * mul;
  if (r > 0 && r < 1) return -2;      /* less than a byte: a typo, not a limit of 0 */
  if (r > DBL_MAX) return -2;         /* out of range, with the unit */
  if (r >= 9.2e18) return INT64_MAX;  /* more than any memory: no limit */
  return (int64_t)r;
}

void _cgc_options_init(void) {
  for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) *options[i].field = options[i].def;
#if CGC_CHECKED
  _cgc_g.opt.checkmark = 1;
#endif
  const char *d = _cgc_os_getenv("CGC_DEBUG");
  while (d && *d) {
    const char *comma = strchr(d, ',');
    size_t len = comma ? (size_t)(comma - d) : strlen(d);
    const char *eq = memchr(d, '=', len);
    if (len == 0) {
    } else if (!eq) {
      set_option(d, len, "1");
    } else {
      set_option(d, (size_t)(eq - d), eq + 1);
    }
    d = comma ? comma + 1 : NULL;
  }
  const char *p = _cgc_os_getenv("CGC_PERCENT");
  if (p && *p) {
    if (strcmp(p, "off") == 0) atomic_store(&_cgc_g.gc_percent, -1);
    else {
      char *end;
      errno = 0;
      long v = strtol(p, &end, 10);
      if (*end || end == p) _cgc_warn("CGC_PERCENT: '%s' is not a number or 'off'; ignored", p);
      else if ((errno == ERANGE && v > 0) || v > 1000000) _cgc_warn("CGC_PERCENT: '%s' is above 1000000; ignored", p);
      else atomic_store(&_cgc_g.gc_percent, v < 0 ? -1 : (int)v);
    }
  }
  const char *m = _cgc_os_getenv("CGC_MEMLIMIT");
  if (m && *m) {
    int64_t v = _cgc_parse_bytes(m);
    if (v == -2) _cgc_warn("CGC_MEMLIMIT: cannot read '%s' (try 512MiB, 2GiB or off); ignored", m);
    else atomic_store(&_cgc_g.memory_limit, v < 0 ? INT64_MAX : v);
  }
  const char *sig = _cgc_os_getenv("CGC_SIGNAL");
  if (sig && *sig) {
    int n = _cgc_os_parse_signal(sig);
    if (n < 0) _cgc_warn("CGC_SIGNAL: '%s' is not a usable signal; keeping %d", sig, _cgc_g.suspend_signal);
    else _cgc_g.suspend_signal = n;
  }
}
