/* A library with a small TLS block (core_tls_reuse: loaded, used by a thread,
   unloaded). */
__thread char core_tls_small[32];
char *core_tls_small_touch(void) {
  core_tls_small[0] = 1;
  return core_tls_small;
}
