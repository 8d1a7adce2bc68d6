/* A library with an 8 MiB TLS block (core_tls_reuse: loaded after the small
   one was unloaded, it gets the same module id). */
__thread char core_tls_large[8 << 20];
char *core_tls_large_touch(void) {
  core_tls_large[0] = 1;
  return core_tls_large;
}
