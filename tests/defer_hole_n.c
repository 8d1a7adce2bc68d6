/* For defer_hole_protect: a frame without unwind information (compiled with
   -fno-exceptions -fno-asynchronous-unwind-tables -fno-unwind-tables), where
   the unwinder of a panic stops early. */
void hole_call(void (*fn)(void *), void *arg);
void hole_call(void (*fn)(void *), void *arg) {
  fn(arg);
  __asm__ volatile("" ::: "memory"); /* not a tail call: the frame stays */
}
