# Tests of cleanups, finalizers and weak handles (tests/specials_*.c; see
# docs/specials.md).  Each program takes a case name; every case is its own
# ctest test, named <program>_<case>.
function(specials_program prog)
  cmake_parse_arguments(T "" "SOURCE" "FLAGS" ${ARGN})
  if(NOT T_SOURCE)
    set(T_SOURCE ${prog}.c)
  endif()
  add_executable(${prog} ${T_SOURCE})
  target_include_directories(${prog} PRIVATE ${CGC_TEST_DIR})
  target_compile_options(${prog} PRIVATE ${CGC_WARN} ${T_FLAGS})
  target_compile_definitions(${prog} PRIVATE _GNU_SOURCE)
  target_link_libraries(${prog} PRIVATE cgc)
endfunction()

# specials_cases(PROGRAM prog CASES a b ... [ENV K=V ...] [TIMEOUT s])
function(specials_cases)
  cmake_parse_arguments(T "" "PROGRAM;TIMEOUT" "CASES;ENV" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  foreach(c ${T_CASES})
    add_test(NAME ${T_PROGRAM}_${c} COMMAND ${T_PROGRAM} ${c})
    set_tests_properties(${T_PROGRAM}_${c} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS specials)
    if(T_ENV)
      set_tests_properties(${T_PROGRAM}_${c} PROPERTIES ENVIRONMENT "${T_ENV}")
    endif()
  endforeach()
endfunction()

# Cleanups: run once, interior pointers, many per object, cycles, the argument
# kept alive, static storage, stop (also from inside), the cleanup thread,
# never for a live object; manual mode.
specials_program(specials_cleanup)
specials_cases(PROGRAM specials_cleanup CASES basic cycle arg static stop stop_inside thread live pacing nothread running)
specials_cases(PROGRAM specials_cleanup CASES manual unregistered wait_order wait_later ENV "CGC_DEBUG=cleanups=manual")

# Finalizers: once, with the object; resurrection; A-reaches-B ordering; with
# cleanups; cycles never finalized; return values; nothing at exit.
specials_program(specials_finalizer)
specials_cases(PROGRAM specials_finalizer CASES basic resurrect order both cycle api exit chain noscan)

# Weak handles: identity, clearing (before and inside callbacks, for ever),
# handles collected, static storage, use during concurrent collections.
specials_program(specials_weak)
specials_cases(PROGRAM specials_weak CASES identity death callbacks collected static static_many concurrent handle_fin)
specials_cases(PROGRAM specials_weak CASES before ENV "CGC_DEBUG=cleanups=manual")

# cgc_free of objects with specials: weak handles NULL, then everything runs on
# the calling thread before cgc_free returns, and nothing later.
specials_program(specials_free)
specials_cases(PROGRAM specials_free CASES run stop reuse threads rearm late_arg others nested unregistered)

# Concurrent registration and stop from several threads while collecting.
specials_program(specials_threads)
specials_cases(PROGRAM specials_threads CASES register stop_race)

# fork: the child's cleanups run, and cgc_wait_cleanups returns in the child
# even when the parent's cleanup thread was inside a cleanup at the fork; a
# fork from inside a cleanup keeps the counts right in the child.
specials_program(specials_fork)
specials_cases(PROGRAM specials_fork CASES child inflight inflight_counts onfree)
specials_cases(PROGRAM specials_fork CASES inside ENV "CGC_DEBUG=cleanups=manual")

# CGC_DEBUG=checkfinalizers=1 reports objects reachable from their own cleanup
# argument or finalizer, naming them; correct uses are not reported.
specials_program(specials_checkfin)
specials_cases(PROGRAM specials_checkfin CASES arg chain self cycle clean older noscan deep ENV "CGC_DEBUG=checkfinalizers=1")

# Misuse aborts with a `cgc: <call>: ...` message.
specials_program(specials_misuse)
add_test(NAME specials_misuse_none COMMAND specials_misuse none)
set_tests_properties(specials_misuse_none PROPERTIES TIMEOUT 60 LABELS specials)
foreach(case arg_is_ptr arg_inside arg_base_ptr_interior arg_inside_large arg_inside_noscan
             cleanup_malloc cleanup_stack cleanup_tls cleanup_arena cleanup_null_ptr cleanup_null_fn)
  cgc_abort_test(specials_misuse_${case} PROGRAM specials_misuse CASE ${case}
    REGEX "cgc: cgc_add_cleanup: ")
endforeach()
foreach(case arg_is_ptr arg_inside arg_base_ptr_interior arg_inside_large arg_inside_noscan)
  # The message says why: the argument points into the object.
  cgc_abort_test(specials_misuse_${case}_why PROGRAM specials_misuse CASE ${case}
    REGEX "cgc: cgc_add_cleanup: .*0x[0-9a-f]+.*(into|inside) the object")
endforeach()
foreach(case cleanup_malloc cleanup_stack)
  cgc_abort_test(specials_misuse_${case}_why PROGRAM specials_misuse CASE ${case}
    REGEX "cgc: cgc_add_cleanup: 0x[0-9a-f]+ is not in the collected heap")
endforeach()
foreach(case finalizer_interior finalizer_interior_large finalizer_malloc finalizer_stack finalizer_null_ptr)
  cgc_abort_test(specials_misuse_${case} PROGRAM specials_misuse CASE ${case}
    REGEX "cgc: cgc_set_finalizer: ")
endforeach()
foreach(case weak_malloc weak_stack)
  cgc_abort_test(specials_misuse_${case} PROGRAM specials_misuse CASE ${case}
    REGEX "cgc: cgc_weak_make: 0x[0-9a-f]+ ")
endforeach()
# A weak handle passed to cgc_free or cgc_realloc, or something else passed to
# cgc_weak_value (the object itself, a forged or static address, an address
# in a freed arena).
foreach(spec free_weak:cgc_free realloc_weak:cgc_realloc free_weak_cleared:cgc_free realloc_weak_collected:cgc_realloc)
  string(REPLACE ":" ";" pair ${spec})
  list(GET pair 0 case)
  list(GET pair 1 fn)
  cgc_abort_test(specials_misuse_${case} PROGRAM specials_misuse CASE ${case}
    REGEX "cgc: ${fn}: 0x[0-9a-f]+ is a weak handle \\(made by cgc_weak_make\\), not an object")
endforeach()
cgc_abort_test(specials_misuse_free_weak_checkfree PROGRAM specials_misuse CASE free_weak_checkfree
  ENV "CGC_DEBUG=checkfree=1" REGEX "cgc: cgc_free: 0x[0-9a-f]+ is a weak handle")
cgc_abort_test(specials_misuse_free_while_freeing PROGRAM specials_misuse CASE free_while_freeing
  REGEX "cgc: cgc_free: double free of 0x[0-9a-f]+: another thread's cgc_free is freeing it")
foreach(case weak_value_object weak_value_forged weak_value_static weak_value_reclaimed
    weak_value_freed_arena)
  cgc_abort_test(specials_misuse_${case} PROGRAM specials_misuse CASE ${case}
    REGEX "cgc: cgc_weak_value: 0x[0-9a-f]+ is not a weak handle")
endforeach()
# An object the last collection found unreachable (its only pointer hidden),
# its span not swept yet: a record on it would pass to the slot's next object.
foreach(call cleanup:cgc_add_cleanup finalizer:cgc_set_finalizer weak:cgc_weak_make)
  string(REPLACE ":" ";" pair ${call})
  list(GET pair 0 kind)
  list(GET pair 1 fn)
  cgc_abort_test(specials_misuse_${kind}_collected PROGRAM specials_misuse CASE ${kind}_collected
    ENV "CGC_DEBUG=bgsweep=0" REGEX "cgc: ${fn}: 0x[0-9a-f]+ was unreachable at the last collection")
endforeach()
# An object freed with cgc_free is refused, also under checkfree (where it
# is quarantined rather than on a free list).
foreach(call cleanup:cgc_add_cleanup finalizer:cgc_set_finalizer weak:cgc_weak_make)
  string(REPLACE ":" ";" pair ${call})
  list(GET pair 0 kind)
  list(GET pair 1 fn)
  cgc_abort_test(specials_misuse_${kind}_freed PROGRAM specials_misuse CASE ${kind}_freed
    REGEX "cgc: ${fn}: 0x[0-9a-f]+ is not a live object")
  cgc_abort_test(specials_misuse_${kind}_freed_checkfree PROGRAM specials_misuse CASE ${kind}_freed
    ENV "CGC_DEBUG=checkfree=1" REGEX "cgc: ${fn}: 0x[0-9a-f]+ is not a live object")
  cgc_abort_test(specials_misuse_${kind}_freed_large PROGRAM specials_misuse CASE ${kind}_freed_large
    REGEX "cgc: ${fn}: 0x[0-9a-f]+ is not a live object")
endforeach()

# Panics and callbacks: recovered inside, the bookkeeping stays whole; one
# that leaves a cleanup or finalizer is fatal, named, wherever it ran.
specials_program(specials_panic)
specials_cases(PROGRAM specials_panic CASES recovered)
add_test(NAME specials_panic_recovered_manual COMMAND specials_panic recovered)
set_tests_properties(specials_panic_recovered_manual PROPERTIES TIMEOUT 120 LABELS specials
  ENVIRONMENT "CGC_DEBUG=cleanups=manual")
add_test(NAME specials_panic_checkfree_arg COMMAND specials_panic checkfree_arg)
set_tests_properties(specials_panic_checkfree_arg PROPERTIES TIMEOUT 120 LABELS specials
  ENVIRONMENT "CGC_DEBUG=checkfree=1")
set(_escaped "a panic left the %s 0x[0-9a-f]+ \\(on 0x[0-9a-f]+\\), which must recover it: panic: escaped$")
foreach(spec "thread|the cleanup thread|cleanup|" "run_cleanups|cgc_run_cleanups|cleanup|CGC_DEBUG=cleanups=manual"
             "wait_cleanups|cgc_wait_cleanups|cleanup|CGC_DEBUG=cleanups=manual"
             "free_finalizer|cgc_free|finalizer|" "free_cleanup|cgc_free|cleanup|"
             "realloc_cleanup|cgc_realloc|cleanup|")
  string(REPLACE "|" ";" spec "${spec}")
  list(GET spec 0 _case)
  list(GET spec 1 _call)
  list(GET spec 2 _what)
  list(LENGTH spec _n)
  string(REPLACE "%s" "${_what}" _msg "${_escaped}")
  if(_n GREATER 3)
    list(GET spec 3 _env)
  else()
    set(_env "")
  endif()
  cgc_abort_test(specials_panic_${_case} PROGRAM specials_panic CASE ${_case}
    REGEX "^cgc: ${_call}: ${_msg}" ENV "${_env}")
endforeach()
# A thread exit (pthread_exit: a forced unwind) out of a cleanup, on the
# thread that frees the object and on the cleanup thread.
cgc_abort_test(specials_panic_exit_free_cleanup PROGRAM specials_panic CASE exit_free_cleanup
  REGEX "^cgc: cgc_free: an exception or a thread exit \\(pthread_exit, cancellation\\) left the cleanup 0x[0-9a-f]+ \\(on 0x0\\), which must return")
cgc_abort_test(specials_panic_exit_thread PROGRAM specials_panic CASE exit_thread
  REGEX "^cgc: the cleanup thread: an exception or a thread exit \\(pthread_exit, cancellation\\) left the cleanup 0x[0-9a-f]+ \\(on 0x0\\), which must return")
# The same with the callbacks compiled for unwinding (-fexceptions).
specials_program(specials_panic_exc SOURCE specials_panic.c FLAGS -fexceptions)
specials_cases(PROGRAM specials_panic_exc CASES recovered)
cgc_abort_test(specials_panic_exc_free_cleanup PROGRAM specials_panic_exc CASE free_cleanup
  REGEX "^cgc: cgc_free: a panic left the cleanup 0x[0-9a-f]+ \\(on 0x[0-9a-f]+\\), which must recover it: panic: escaped$")
cgc_abort_test(specials_panic_exc_thread PROGRAM specials_panic_exc CASE thread
  REGEX "^cgc: the cleanup thread: a panic left the cleanup 0x[0-9a-f]+ \\(on 0x[0-9a-f]+\\), which must recover it: panic: escaped$")

# Edge cases: statistics and order on cgc_free, the static-storage handle table
# after removals, fork inside a free and beside cgc_wait_cleanups, pacing under
# cleanup churn.
specials_program(specials_edges)
specials_cases(PROGRAM specials_edges CASES free_weak_stats free_fin_first static_holes fork_in_free fork_waiter churn_pacing
  free_stop_in_finalizer unregister_in_cleanup)
specials_cases(PROGRAM specials_edges CASES nested_wait unregister_in_run ENV "CGC_DEBUG=cleanups=manual")
