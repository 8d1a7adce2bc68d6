# Explicit free, growable buffers, arenas and the checkfree mode
# (tests/free_*.c, tests/arena_*.c; see docs/free.md).

# LIFO reuse, zeroing, statistics, large objects, every cgc_realloc case.
cgc_test(free_basic SOURCES free_basic.c TIMEOUT 60)
# Allocate/free loops (10M small pairs, large objects, growing buffers): no
# collection, mapped and live bytes flat.
cgc_test(free_loop SOURCES free_loop.c TIMEOUT 60)
# Cross-thread free under stress with concurrent collections (seeded).
cgc_test(free_threads SOURCES free_threads.c TIMEOUT 120)
# Large objects against other threads: live_bytes exact under concurrent
# collections; a shrinking cgc_realloc racing a cgc_free (forked children).
cgc_test(free_large_races SOURCES free_large_races.c ARGS live_bytes TIMEOUT 120)
core_cases(free_large_races realloc_free_race)

# Misuse aborts with a `cgc: <call>: ...` message naming the pointer.
add_executable(free_abort free_abort.c)
target_include_directories(free_abort PRIVATE ${CGC_TEST_DIR})
target_compile_options(free_abort PRIVATE ${CGC_WARN})
target_compile_definitions(free_abort PRIVATE _GNU_SOURCE)
target_link_libraries(free_abort PRIVATE cgc)
set(_hex "0x[0-9a-fA-F]+")
# A slot that is free says so ("double free?"), not that a collection
# found the object unreachable.
foreach(case double_free_small double_free_noscan double_free_noscan_big double_free_later double_free_after_move)
  cgc_abort_test(free_abort_${case} PROGRAM free_abort CASE ${case}
    REGEX "cgc: cgc_free: ${_hex} is not an allocated object \\(double free\\?\\)$")
endforeach()
cgc_abort_test(free_abort_double_free_large PROGRAM free_abort CASE double_free_large
  REGEX "cgc: cgc_free: ${_hex} is not an allocated object \\((freed already|double free)")
foreach(case interior_small interior_large)
  cgc_abort_test(free_abort_${case} PROGRAM free_abort CASE ${case}
    REGEX "cgc: cgc_free: ${_hex} is an interior pointer \\(object starts at ${_hex}\\)")
endforeach()
foreach(case stack malloc static wild)
  cgc_abort_test(free_abort_${case} PROGRAM free_abort CASE ${case}
    REGEX "cgc: cgc_free: ${_hex} is not a pointer into the collected heap")
endforeach()
foreach(case arena arena_freed)
  cgc_abort_test(free_abort_${case} PROGRAM free_abort CASE ${case}
    REGEX "cgc: cgc_free: ${_hex} points into an arena")
endforeach()
cgc_abort_test(free_abort_realloc_double_free PROGRAM free_abort CASE realloc_double_free
  REGEX "cgc: cgc_realloc: ${_hex} is not an allocated object \\(double free")
cgc_abort_test(free_abort_realloc_interior PROGRAM free_abort CASE realloc_interior
  REGEX "cgc: cgc_realloc: ${_hex} is an interior pointer")
cgc_abort_test(free_abort_realloc_stack PROGRAM free_abort CASE realloc_stack
  REGEX "cgc: cgc_realloc: ${_hex} is not a pointer into the collected heap")
cgc_abort_test(free_abort_realloc_arena PROGRAM free_abort CASE realloc_arena
  REGEX "cgc: cgc_realloc: ${_hex} points into an arena")
cgc_abort_test(free_abort_arena_alloc_after_free PROGRAM free_abort CASE arena_alloc_after_free
  REGEX "cgc: cgc_arena_alloc: arena ${_hex} has been freed")
cgc_abort_test(free_abort_arena_alloc_after_reuse PROGRAM free_abort CASE arena_alloc_after_reuse
  REGEX "cgc: cgc_arena_alloc: arena ${_hex} has been freed")
cgc_abort_test(free_abort_arena_alloc_noscan_after_free PROGRAM free_abort CASE arena_alloc_noscan_after_free
  REGEX "cgc: cgc_arena_alloc_noscan: arena ${_hex} has been freed")
cgc_abort_test(free_abort_free_trimmed_tail PROGRAM free_abort CASE free_trimmed_tail
  REGEX "cgc: cgc_free: ${_hex} is not an allocated object \\(freed already\\?\\)")
cgc_abort_test(free_abort_roots_arena PROGRAM free_abort CASE roots_arena
  REGEX "cgc: cgc_add_roots: range ${_hex} \\+ 32 holds arena memory \\(${_hex}\\)")
cgc_abort_test(free_abort_roots_recycled PROGRAM free_abort CASE roots_recycled
  REGEX "cgc: cgc_arena_free: arena ${_hex}'s memory \\[${_hex}, ${_hex}\\) lies in the range ${_hex} \\+ 262144 registered with cgc_add_roots")
cgc_abort_test(free_abort_arena_double_free PROGRAM free_abort CASE arena_double_free
  REGEX "cgc: cgc_arena_free: arena ${_hex} has been freed")
foreach(case arena_free_bogus arena_free_heap)
  cgc_abort_test(free_abort_${case} PROGRAM free_abort CASE ${case}
    REGEX "cgc: cgc_arena_free: ${_hex} is not an arena")
endforeach()
foreach(case checkfree_double_small checkfree_double_large checkfree_rehash)
  cgc_abort_test(free_abort_${case} PROGRAM free_abort CASE ${case} ENV "CGC_DEBUG=checkfree=1"
    REGEX "cgc: cgc_free: ${_hex} is not an allocated object \\(double free: it was freed already and is in the checkfree quarantine")
endforeach()
cgc_abort_test(free_abort_checkfree_collected PROGRAM free_abort CASE checkfree_collected
  ENV "CGC_DEBUG=checkfree=1" REGEX "cgc: cgc_free: ${_hex} is not an allocated object \\(double free\\? it was unreachable")
cgc_abort_test(free_abort_checkfree_double_unswept PROGRAM free_abort CASE checkfree_double_unswept
  ENV "CGC_DEBUG=checkfree=1,bgsweep=0" REGEX "cgc: cgc_free: ${_hex} is not an allocated object \\(double free")
cgc_abort_test(free_abort_checkfree_realloc_double PROGRAM free_abort CASE checkfree_realloc_double
  ENV "CGC_DEBUG=checkfree=1" REGEX "cgc: cgc_realloc: ${_hex} is not an allocated object \\(double free")
cgc_abort_test(free_abort_checkfree_global PROGRAM free_abort CASE checkfree_global ENV "CGC_DEBUG=checkfree=1"
  REGEX "cgc: use after free: object ${_hex} \\(64 bytes\\) freed with cgc_free is still referenced from ${_hex} \\(in a global")
# A thread's own thread-local variable (its static TLS lies in its stack
# block, not its frames); a global, when the freeing thread goes on with
# large objects or arena memory only (calls that count as progress).
foreach(case checkfree_thread_tls checkfree_thread_tsd checkfree_progress_large checkfree_progress_arena)
  cgc_abort_test(free_abort_${case} PROGRAM free_abort CASE ${case} ENV "CGC_DEBUG=checkfree=1"
    REGEX "cgc: use after free: object ${_hex} \\(64 bytes\\) freed with cgc_free is still referenced from ${_hex} \\(in a global or thread-local variable")
endforeach()
# The argument of a cleanup in the queue (CGC_DEBUG=cleanups=manual keeps it
# there), freed: the report names the queue.
cgc_abort_test(free_abort_checkfree_queued_arg PROGRAM free_abort CASE checkfree_queued_arg
  ENV "CGC_DEBUG=checkfree=1,cleanups=manual"
  REGEX "cgc: use after free: object ${_hex} \\(48 bytes\\) freed with cgc_free is still referenced from ${_hex} \\(in a cleanup or finalizer queued to run\\)")

# checkfree: poison, quarantine, release, stack references, clean runs, and
# the exact report for references from globals, heap objects, arenas and roots.
cgc_test(free_checkfree SOURCES free_checkfree.c TIMEOUT 120 ENV "CGC_DEBUG=checkfree=1")

# Arenas: sizes, alignment, zeroing, big requests, 1M objects, arena_bytes,
# roots while alive (noscan memory is not), arena objects never collected.
cgc_test(arena_basic SOURCES arena_basic.c TIMEOUT 60)
# cgc_arena_free: faults everywhere (child processes), time by chunks,
# quarantine until a collection proves a range unreferenced, reuse, loops
# bounded in mapped bytes, address space and mappings.
cgc_test(arena_fault SOURCES arena_fault.c TIMEOUT 120)
# Arenas on several threads under collections; arenas freed by another thread.
cgc_test(arena_threads SOURCES arena_threads.c TIMEOUT 120)
# cgc_free of live objects from a thread that collections do not stop, in
# the middle of markings (seeded).
cgc_test(free_unregistered SOURCES free_unregistered.c TIMEOUT 120)
# cgc_usable_size of an object the last collection found unreachable (its
# span, the allocating thread's own, not swept yet).
cgc_abort_test(free_abort_usable_size_collected PROGRAM free_abort CASE usable_size_collected
  REGEX "cgc: cgc_usable_size: ${_hex} is not an allocated object .*unreachable at the last collection")
# A handle that is no arena (room in what would be its bump regions): the
# inline path must not bump-allocate in it.
foreach(fn arena_alloc arena_alloc_noscan)
  cgc_abort_test(free_abort_${fn}_bogus PROGRAM free_abort CASE ${fn}_bogus
    REGEX "cgc: cgc_${fn}: ${_hex} is not an arena made by cgc_arena_new")
  # A NULL handle (cgc_arena_new failed and the caller did not check): a
  # message, not a segmentation fault.
  cgc_abort_test(free_abort_${fn}_null PROGRAM free_abort CASE ${fn}_null
    REGEX "cgc: cgc_${fn}: 0x0 is not an arena made by cgc_arena_new")
  # A wild pointer (unreadable): the inline path must not read it.
  cgc_abort_test(free_abort_${fn}_wild PROGRAM free_abort CASE ${fn}_wild
    REGEX "cgc: cgc_${fn}: 0x10 is not an arena made by cgc_arena_new")
endforeach()
foreach(case arena_alloc_inside arena_alloc_range_end)
  cgc_abort_test(free_abort_${case} PROGRAM free_abort CASE ${case}
    REGEX "cgc: cgc_arena_alloc: ${_hex} is not an arena made by cgc_arena_new")
endforeach()
# checkfree: a quarantined object is refused by every call that takes a
# live object, not only by a second cgc_free.
foreach(case realloc_inplace realloc_large usable_size)
  string(REGEX REPLACE "_(inplace|large)$" "" fn ${case}) # the call: realloc or usable_size
  cgc_abort_test(free_abort_checkfree_${case} PROGRAM free_abort CASE checkfree_${case} ENV "CGC_DEBUG=checkfree=1"
    REGEX "cgc: cgc_${fn}: ${_hex} is not an allocated object \\(double free: it was freed already and is in the checkfree quarantine")
endforeach()

# Misuse with the heap in a prepared state: objects the last collection found
# unreachable (inline paths too), a moved buffer under checkfree, span slack.
add_executable(free_abort_state free_abort_state.c)
target_include_directories(free_abort_state PRIVATE ${CGC_TEST_DIR})
target_compile_options(free_abort_state PRIVATE ${CGC_WARN})
target_compile_definitions(free_abort_state PRIVATE _GNU_SOURCE)
target_link_libraries(free_abort_state PRIVATE cgc)
foreach(fn free realloc)
  cgc_abort_test(free_abort_${fn}_collected PROGRAM free_abort_state CASE ${fn}_collected
    REGEX "cgc: cgc_${fn}: ${_hex} is not an allocated object \\(double free\\? it was unreachable at the last collection")
endforeach()
# The same after the span was swept for a cgc_realloc moving a noscan buffer
# (a sweep that leaves freed slots' bytes as they were).
cgc_abort_test(free_abort_free_swept_for_move PROGRAM free_abort_state CASE free_swept_for_move
  ENV "CGC_DEBUG=bgsweep=0" REGEX "cgc: cgc_free: ${_hex} is not an allocated object \\(double free\\?\\)")
cgc_abort_test(free_abort_checkfree_realloc_moved PROGRAM free_abort_state CASE checkfree_realloc_moved
  ENV "CGC_DEBUG=checkfree=1"
  REGEX "cgc: cgc_free: ${_hex} is not an allocated object \\(double free: it was freed already and is in the checkfree quarantine")
foreach(fn free realloc usable_size)
  cgc_abort_test(free_abort_${fn}_slack PROGRAM free_abort_state CASE ${fn}_slack
    REGEX "cgc: cgc_${fn}: ${_hex} is not an allocated object \\(freed already\\?\\)")
endforeach()
# The same with the span cached for the slack's page (its last slot freed
# first): the inline paths must check the slot range, not only the span.
foreach(fn free realloc)
  cgc_abort_test(free_abort_${fn}_slack_hinted PROGRAM free_abort_state CASE ${fn}_slack_hinted
    REGEX "cgc: cgc_${fn}: ${_hex} is not an allocated object \\(freed already\\?\\)")
endforeach()
# Frees by an unregistered thread count in total_free_bytes.
cgc_test(free_stats_unregistered SOURCES free_stats_unregistered.c TIMEOUT 60)
# checkfree: 16 report lines then the total; unregistered freers reported at
# once; frees are progress; an emptied big table goes back.
cgc_test(free_checkfree_reports SOURCES free_checkfree_reports.c TIMEOUT 60 ENV "CGC_DEBUG=checkfree=1")
# checkfree with gctrace=1: a reference not reported yet (another thread's
# collection) is mentioned and the object kept in quarantine.
cgc_test(free_checkfree_trace SOURCES free_checkfree_trace.c TIMEOUT 60 ENV "CGC_DEBUG=checkfree=1,gctrace=1")
# cgc_realloc in a fresh process: a noscan move into a new span of dirty pages
# leaves its other slots free; large buffers grown in place and dropped bring
# on collections.
cgc_test(free_realloc_fresh SOURCES free_realloc_fresh.c TIMEOUT 60)
# Noscan arena memory in non-current chunks keeps nothing alive.
cgc_test(arena_noscan_roots SOURCES arena_noscan_roots.c TIMEOUT 60)
