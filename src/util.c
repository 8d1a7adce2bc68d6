/* util.c — error reporting without malloc or stdio (usable in any state). */
#include <errno.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

void _cgc_write_all(int fd, const char *buf, size_t len) {
  while (len) {
    /* The raw call: write() is a cancellation point, and messages are
       written with locks held (a collection's warnings, with the world
       stopped) that a cancelled thread would never release. */
    ssize_t n = (ssize_t)syscall(SYS_write, fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    buf += n;
    len -= (size_t)n;
  }
}

static size_t put_u(char *out, size_t room, unsigned long long v, unsigned base, int minw) {
  char tmp[32];
  int n = 0;
  do {
    unsigned d = (unsigned)(v % base);
    tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
    v /= base;
  } while (v);
  while (n < minw && n < (int)sizeof tmp) tmp[n++] = '0';
  size_t w = 0;
  while (n > 0) {
    if (w < room) out[w] = tmp[n - 1];
    w++;
    n--;
  }
  return w;
}

int _cgc_vformat(char *buf, size_t size, const char *fmt, va_list ap) {
  size_t o = 0;
#define ROOM (o < size ? size - o : 0)
  for (const char *f = fmt; *f; f++) {
    if (*f != '%') {
      if (o < size) buf[o] = *f;
      o++;
      continue;
    }
    f++;
    int minw = 0;
    if (*f == '0') f++;
    while (*f >= '0' && *f <= '9') minw = minw * 10 + (*f++ - '0');
    int lng = 0, sz = 0;
    while (*f == 'l') { lng++; f++; }
    if (*f == 'z') { sz = 1; f++; }
    switch (*f) {
    case 's': {
      const char *s = va_arg(ap, const char *);
      if (!s) s = "(null)";
      while (*s) { if (o < size) buf[o] = *s; o++; s++; }
      break;
    }
    case 'c': if (o < size) buf[o] = (char)va_arg(ap, int); o++; break;
    case 'd': {
      long long v = sz ? (long long)va_arg(ap, ssize_t) : lng >= 2 ? va_arg(ap, long long) : lng ? va_arg(ap, long) : va_arg(ap, int);
      unsigned long long u = (unsigned long long)v;
      if (v < 0) { if (o < size) buf[o] = '-'; o++; u = 0 - u; }
      o += put_u(buf + CGC_MIN(o, size), ROOM, u, 10, minw);
      break;
    }
    case 'u': case 'x': {
      unsigned long long v = sz ? va_arg(ap, size_t) : lng >= 2 ? va_arg(ap, unsigned long long) : lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
      o += put_u(buf + CGC_MIN(o, size), ROOM, v, *f == 'x' ? 16 : 10, minw);
      break;
    }
    case 'p': {
      uintptr_t v = (uintptr_t)va_arg(ap, void *);
      if (o + 1 < size) {
        buf[o] = '0';
        buf[o + 1] = 'x';
      }
      o += 2;
      o += put_u(buf + CGC_MIN(o, size), ROOM, v, 16, 0);
      break;
    }
    case '%': if (o < size) buf[o] = '%'; o++; break;
    default: if (o < size) buf[o] = '?'; o++; break;
    }
  }
  if (size) buf[o < size ? o : size - 1] = 0;
#undef ROOM
  return (int)(o < size ? o : (size ? size - 1 : 0));
}

int _cgc_format(char *buf, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = _cgc_vformat(buf, size, fmt, ap);
  va_end(ap);
  return n;
}

static void vreport(const char *fmt, va_list ap) {
  char buf[1024];
  int n = _cgc_format(buf, sizeof buf, "%s", "cgc: ");
  n += _cgc_vformat(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
  buf[n++] = '\n';
  _cgc_write_all(2, buf, (size_t)n);
}

void _cgc_fatal(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(fmt, ap);
  va_end(ap);
  abort();
}

void _cgc_warn(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(fmt, ap);
  va_end(ap);
}
