# Tests of the collector core (tests/core_*.c).  See tests/core_util.h for how
# survival and death are checked.

# A small library holding pointers in its .data, .bss and TLS: linked at
# start-up by core_shlib, loaded with dlopen by core_dlopen and core_dlopen_tls.
add_library(core_mod_shared SHARED core_mod.c)
target_compile_options(core_mod_shared PRIVATE ${CGC_WARN})
add_library(core_mod_dl MODULE core_mod.c)
target_compile_options(core_mod_dl PRIVATE ${CGC_WARN})

# Programs that do not link cgc themselves, and the libraries with cgc they
# use (core_plugin_mod.c): plugin_lib(NAME TYPE CGC_LIBRARY), plugin_host(NAME SOURCE
# [DEFS ...] [LIBS ...]).
find_package(Threads REQUIRED)
function(plugin_lib name type cgc_lib)
  add_library(${name} ${type} core_plugin_mod.c)
  target_compile_options(${name} PRIVATE ${CGC_WARN})
  target_link_libraries(${name} PRIVATE ${cgc_lib})
endfunction()
function(plugin_host name)
  cmake_parse_arguments(H "" "SOURCE" "DEFS;LIBS" ${ARGN})
  add_executable(${name} ${H_SOURCE})
  target_include_directories(${name} PRIVATE ${CGC_TEST_DIR})
  target_compile_options(${name} PRIVATE ${CGC_WARN})
  target_compile_definitions(${name} PRIVATE _GNU_SOURCE ${H_DEFS})
  target_link_libraries(${name} PRIVATE Threads::Threads ${CMAKE_DL_LIBS} ${H_LIBS})
endfunction()

# A plugin using cgc, loaded and unloaded by a program that does not link
# cgc: libcgc stays loaded (-z nodelete), so its threads, signal handler and
# thread-exit destructor keep working.
plugin_lib(core_plugin_mod MODULE cgc)
plugin_host(core_plugin SOURCE core_plugin.c DEFS CORE_PLUGIN_PATH="$<TARGET_FILE:core_plugin_mod>")
add_dependencies(core_plugin core_plugin_mod)
add_test(NAME core_plugin COMMAND core_plugin)
set_tests_properties(core_plugin PROPERTIES TIMEOUT 60 PASS_REGULAR_EXPRESSION "core_plugin: ok")
# A program that gets libcgc.so only through another library (cgc then comes
# after the C library in the lookup order): it runs (it aborted at start-up).
plugin_lib(core_indirect_rt SHARED cgc)
plugin_host(core_indirect SOURCE core_indirect.c LIBS core_indirect_rt)
add_test(NAME core_indirect COMMAND core_indirect)
set_tests_properties(core_indirect PROPERTIES TIMEOUT 60 PASS_REGULAR_EXPRESSION "core_indirect: ok")
# The same with libcgc.a inside the plugin, linked without -z nodelete: cgc
# pins its own object (unloaded, the next thread exit crashed).
if(NOT CGC_SANITIZE)
  plugin_lib(core_plugin_static_mod MODULE cgc_static)
  plugin_host(core_plugin_static SOURCE core_plugin.c DEFS CORE_PLUGIN_PATH="$<TARGET_FILE:core_plugin_static_mod>"
    CORE_PLUGIN_KEPT="/$<TARGET_FILE_NAME:core_plugin_static_mod>")
  add_dependencies(core_plugin_static core_plugin_static_mod)
  add_test(NAME core_plugin_static COMMAND core_plugin_static)
  set_tests_properties(core_plugin_static PROPERTIES TIMEOUT 60 PASS_REGULAR_EXPRESSION "core_plugin: ok")
  # Two plugins with libcgc.a inside each: the second copy of cgc refuses to
  # start, naming the first (two copies aborted at a collection, blaming the
  # program for the signal handler).
  plugin_lib(core_plugin_static_mod2 MODULE cgc_static)
  plugin_host(core_two_copies SOURCE core_two_copies.c DEFS CORE_PLUGIN_A="$<TARGET_FILE:core_plugin_static_mod>"
    CORE_PLUGIN_B="$<TARGET_FILE:core_plugin_static_mod2>")
  add_dependencies(core_two_copies core_plugin_static_mod core_plugin_static_mod2)
  cgc_abort_test(core_two_copies PROGRAM core_two_copies CASE two
    REGEX "cgc: init: another copy of cgc, in .*core_plugin_static_mod.*, is loaded in this process")
endif()

# A fully static executable cannot find the C library's pthread_create:
# refused at start-up with a message (not at the first collection).  The
# sanitizers cannot link -static.
if(NOT CGC_SANITIZE)
  add_executable(core_static_exe core_header.c)
  target_compile_definitions(core_static_exe PRIVATE CORE_HEADER_MAIN)
  target_link_libraries(core_static_exe PRIVATE cgc_static)
  target_link_options(core_static_exe PRIVATE -static)
  cgc_abort_test(core_static_exe PROGRAM core_static_exe CASE none
    REGEX "^cgc: a fully static executable \\(-static\\) cannot use cgc: ")
endif()

# An install into another prefix than the configured one: pkg-config's
# flags and find_package(cgc) both build and run a program against it.
find_program(CGC_PKG_CONFIG pkg-config)
if(NOT CGC_SANITIZE AND CGC_PKG_CONFIG)
  add_test(NAME install_check
    COMMAND sh ${CGC_TEST_DIR}/install_check.sh ${PROJECT_BINARY_DIR} ${CMAKE_C_COMPILER} ${CGC_TEST_DIR}/core_header.c)
  set_tests_properties(install_check PROPERTIES TIMEOUT 120 PASS_REGULAR_EXPRESSION "core_header: ok\ncore_header: ok")
endif()

# API basics, zeroing, sizes, huge requests, stats, knobs, reuse.
cgc_test(core_basic SOURCES core_basic.c TIMEOUT 60)
# Waste of every size class up to 32 KiB.
cgc_test(core_sizeclass SOURCES core_sizeclass.c TIMEOUT 60)
# Roots: stack, registers, .data/.bss, interior pointers, add/remove_roots, malloc/mmap not scanned.
cgc_test(core_roots SOURCES core_roots.c TIMEOUT 60)
# __thread variables of the main and other threads.
cgc_test(core_tls SOURCES core_tls.c TIMEOUT 60)
# Shared libraries linked at start-up (data, bss, TLS) and libc's own data.
cgc_test(core_shlib SOURCES core_shlib.c LIBS core_mod_shared TIMEOUT 60)
# Libraries loaded with dlopen: data and bss, unloading, concurrent load/unload.
cgc_test(core_dlopen SOURCES core_dlopen.c LIBS ${CMAKE_DL_LIBS} TIMEOUT 90)
# A library loaded by name through the program's own $ORIGIN RUNPATH (cgc's
# dlopen wrapper made libcgc the caller); its constructor collects.
add_library(core_origin_mod MODULE core_origin_mod.c)
target_compile_options(core_origin_mod PRIVATE ${CGC_WARN})
target_link_libraries(core_origin_mod PRIVATE cgc)
set_target_properties(core_origin_mod PROPERTIES OUTPUT_NAME cgc_origin_mod PREFIX lib
  LIBRARY_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/origin_mods)
cgc_test(core_dlopen_origin SOURCES core_dlopen_origin.c LIBS ${CMAKE_DL_LIBS} TIMEOUT 60)
set_target_properties(core_dlopen_origin PROPERTIES BUILD_RPATH "\$ORIGIN/origin_mods")
add_dependencies(core_dlopen_origin core_origin_mod)
# Libraries loaded with dlopen: their __thread variables, for every thread.
cgc_test(core_dlopen_tls SOURCES core_dlopen_tls.c LIBS ${CMAKE_DL_LIBS} TIMEOUT 60)
foreach(t core_dlopen core_dlopen_tls)
  target_compile_definitions(${t} PRIVATE CORE_DLMOD_PATH="$<TARGET_FILE:core_mod_dl>")
  add_dependencies(${t} core_mod_dl)
endforeach()
# A thread whose thread vector still points at an unloaded library's small
# TLS block when a larger library takes its module id: no fault.
add_library(core_tls_small MODULE core_tls_small.c)
add_library(core_tls_large MODULE core_tls_large.c)
cgc_test(core_tls_reuse SOURCES core_tls_reuse.c LIBS ${CMAKE_DL_LIBS} TIMEOUT 60)
target_compile_definitions(core_tls_reuse PRIVATE CORE_TLS_SMALL="$<TARGET_FILE:core_tls_small>"
  CORE_TLS_LARGE="$<TARGET_FILE:core_tls_large>")
add_dependencies(core_tls_reuse core_tls_small core_tls_large)

# Threads: automatic registration, blocked/running roots, start argument, churn, cancellation.
cgc_test(core_threads SOURCES core_threads.c TIMEOUT 90)
# A joined thread's return value stays alive between its exit and the join.
cgc_test(core_thread_retval SOURCES core_thread_retval.c TIMEOUT 60)
# Threads not made by pthread_create: cgc_register_thread / cgc_unregister_thread.
cgc_test(core_register SOURCES core_register.c LIBS ${CMAKE_DL_LIBS} TIMEOUT 60)
# Blocked system calls keep roots and are restarted (SA_RESTART).
cgc_test(core_syscalls SOURCES core_syscalls.c TIMEOUT 90)
# The stop signal moved by CGC_SIGNAL; the program's own handler for SIGPWR still works.
add_test(NAME core_syscalls_signal_name COMMAND core_syscalls signal)
set_tests_properties(core_syscalls_signal_name PROPERTIES TIMEOUT 90 ENVIRONMENT "CGC_SIGNAL=SIGUSR2")
add_test(NAME core_syscalls_signal_number COMMAND core_syscalls signal)
set_tests_properties(core_syscalls_signal_number PROPERTIES TIMEOUT 90 ENVIRONMENT "CGC_SIGNAL=40")
# cgc_set_suspend_signal and CGC_SIGNAL.
cgc_test(core_signal_api SOURCES core_signal.c ARGS api TIMEOUT 60)
add_test(NAME core_signal_invalid COMMAND core_signal_api invalid)
set_tests_properties(core_signal_invalid PROPERTIES TIMEOUT 60)
add_test(NAME core_signal_env_name COMMAND core_signal_api env 12)
set_tests_properties(core_signal_env_name PROPERTIES TIMEOUT 60 ENVIRONMENT "CGC_SIGNAL=SIGUSR2")
add_test(NAME core_signal_env_number COMMAND core_signal_api env 40)
set_tests_properties(core_signal_env_number PROPERTIES TIMEOUT 60 ENVIRONMENT "CGC_SIGNAL=40")
# core_cases(PROGRAM CASE...): one test per further case of a program that
# cgc_test already built; each must print "<program> <case>: ok".
function(core_cases prog)
  foreach(case ${ARGN})
    add_test(NAME ${prog}_${case} COMMAND ${prog} ${case})
    set_tests_properties(${prog}_${case} PROPERTIES TIMEOUT 60 PASS_REGULAR_EXPRESSION "${prog} ${case}: ok")
  endforeach()
endfunction()

# Stops and thread exits: a signal that cannot be queued yet (EAGAIN), TSD
# destructors of exiting threads, a cancelled cgc_wait_cleanups, a chaining
# handler with a slow thread (tests/core_stop_cases.c).
cgc_test(core_stop_cases SOURCES core_stop_cases.c ARGS tsd TIMEOUT 60)
core_cases(core_stop_cases sigpending cancel_wait chain_slow sigqueue_refused)
set_tests_properties(core_stop_cases_sigpending PROPERTIES ENVIRONMENT "CGC_SIGNAL=RTMIN")
# Right after a collection: threads the restart lets go reuse what it found
# dead (the sweep fence is down before the collector's locks are released);
# memory on locked pages, which the kernel does not release, is still
# cleared for reuse (tests/core_sweep_cases.c).
cgc_test(core_sweep_cases SOURCES core_sweep_cases.c LIBS ${CMAKE_DL_LIBS} ARGS fence TIMEOUT 60)
core_cases(core_sweep_cases locked_zero)
# Collections that must not wait for ever: the cleanup thread of a program
# that blocks every signal, a thread that exits registered; and a program that
# replaces the suspend signal's handler gets a message.
cgc_test(core_signal_cases SOURCES core_signal_cases.c ARGS blocked_cleanup TIMEOUT 60)
core_cases(core_signal_cases dead_registered dead_unmapped main_exits cleanup_mask default_alone)
add_test(NAME core_signal_cases_cleanup_fault COMMAND core_signal_cases cleanup_fault)
set_tests_properties(core_signal_cases_cleanup_fault PROPERTIES TIMEOUT 60
  PASS_REGULAR_EXPRESSION "cleanup_fault: ok \\(the program's handler ran\\)")
cgc_abort_test(core_signal_cases_own_handler PROGRAM core_signal_cases CASE own_handler
  REGEX "cgc: collection: the handler of signal [0-9]+, which stops threads for collections, was replaced")
cgc_abort_test(core_signal_cases_default_handler PROGRAM core_signal_cases CASE default_handler
  REGEX "cgc: collection: signal [0-9]+, which stops threads for collections, was set to its default action")
cgc_abort_test(core_signal_cases_ignored_handler PROGRAM core_signal_cases CASE ignored_handler
  REGEX "cgc: collection: signal [0-9]+, which stops threads for collections, was set to SIG_IGN")
# Refused by CGC_SIGNAL (a warning; SIGPWR stays): a fault signal by number,
# abort, and an offset below SIGRTMIN (the C library's own signals).
# Also the C library's own signals 32 and 33 by number, and past the last
# signal (65 = NSIG, RTMIN+31 past SIGRTMAX).
foreach(bad 11 7 6 RTMIN+-1 SIGRTMIN+-2 RTMIN+99999999999999999999 SIGRTMIN+ RTMIN+x 32 33 65 RTMIN+31)
  string(MAKE_C_IDENTIFIER "${bad}" _bad)
  add_test(NAME core_signal_env_refused_${_bad} COMMAND core_signal_api env 30)
  set_tests_properties(core_signal_env_refused_${_bad} PROPERTIES TIMEOUT 60 ENVIRONMENT "CGC_SIGNAL=${bad}")
endforeach()

# The last real-time signal is usable.
add_test(NAME core_signal_env_rtmax COMMAND core_signal_api env 64)
set_tests_properties(core_signal_env_rtmax PROPERTIES TIMEOUT 60 ENVIRONMENT "CGC_SIGNAL=SIGRTMIN+30")

# Large objects made while another thread collects: none freed before
# cgc_alloc returned it (seeded).
cgc_test(core_large_race SOURCES core_large_race.c TIMEOUT 300)

# A thread stopped on an alternate signal stack, in mmap'd memory or in its
# own stack: the interrupted frames stay roots.
cgc_test(core_altstack SOURCES core_altstack.c ARGS mmap TIMEOUT 60)
add_test(NAME core_altstack_local COMMAND core_altstack local)
set_tests_properties(core_altstack_local PROPERTIES TIMEOUT 60 PASS_REGULAR_EXPRESSION "core_altstack local: ok")
add_test(NAME core_altstack_main COMMAND core_altstack main)
set_tests_properties(core_altstack_main PROPERTIES TIMEOUT 60 PASS_REGULAR_EXPRESSION "core_altstack main: ok")
add_test(NAME core_altstack_coroutine COMMAND core_altstack coroutine)
set_tests_properties(core_altstack_coroutine PROPERTIES TIMEOUT 60 PASS_REGULAR_EXPRESSION "core_altstack coroutine: ok")
# pthread_getattr_np failing (memory pressure): a thread's stack is found from
# /proc/self/maps, without a warning, and its frames are roots.
cgc_test(core_stack_fallback SOURCES core_stack_fallback.c LIBS ${CMAKE_DL_LIBS} TIMEOUT 60)

# A zero stored over a stale heap pointer's low half where a collection
# saves its caller's registers does not pin the heap's first object.
cgc_test(core_stale SOURCES core_stale.c ARGS live TIMEOUT 60)

# fork from multi-threaded programs.
cgc_test(core_fork SOURCES core_fork.c TIMEOUT 120)
# A fork child gets back the spans the parent's other threads allocated from,
# and starts mark helpers of its own.
cgc_test(core_fork_state SOURCES core_fork_state.c TIMEOUT 60 ENV CGC_DEBUG=markworkers=4)
# exec while another thread collects: the new program is never killed by a
# stop signal left pending; failed execs and vfork children leave no lock held.
cgc_test(core_exec SOURCES core_exec.c ARGS race TIMEOUT 120)
core_cases(core_exec failed vfork passed)
# A fork child whose cgc threads reuse the stacks of the parent's other threads
# (under AddressSanitizer: their stale poisoning is cleared).
cgc_test(core_fork_stacks SOURCES core_fork_stacks.c TIMEOUT 120)
# Out of memory under RLIMIT_AS (skipped under AddressSanitizer).
cgc_test(core_oom SOURCES core_oom.c TIMEOUT 180)

# Pacing, CGC_PERCENT, CGC_MEMLIMIT.
cgc_test(core_pacing_default SOURCES core_pacing.c ARGS default TIMEOUT 120)
add_test(NAME core_pacing_off COMMAND core_pacing_default off)
set_tests_properties(core_pacing_off PROPERTIES TIMEOUT 120 ENVIRONMENT "CGC_PERCENT=off")
add_test(NAME core_pacing_limit COMMAND core_pacing_default limit)
set_tests_properties(core_pacing_limit PROPERTIES TIMEOUT 120 ENVIRONMENT "CGC_MEMLIMIT=64MiB")
add_test(NAME core_pacing_over COMMAND core_pacing_default over)
set_tests_properties(core_pacing_over PROPERTIES TIMEOUT 120)
function(core_pacing_env name env percent limit)
  add_test(NAME core_pacing_env_${name} COMMAND core_pacing_default env ${percent} ${limit})
  set_tests_properties(core_pacing_env_${name} PROPERTIES TIMEOUT 30 ENVIRONMENT "${env}")
endfunction()
core_pacing_env(percent50 "CGC_PERCENT=50" 50 none)
core_pacing_env(percent_off "CGC_PERCENT=off" off none)
core_pacing_env(limit_512MiB "CGC_MEMLIMIT=512MiB" 100 536870912)
core_pacing_env(limit_1GiB "CGC_MEMLIMIT=1GiB" 100 1073741824)
core_pacing_env(limit_bytes "CGC_MEMLIMIT=100000000" 100 100000000)
core_pacing_env(both "CGC_PERCENT=200;CGC_MEMLIMIT=1024KiB" 200 1048576)
core_pacing_env(limit_2TiB "CGC_MEMLIMIT=2TiB" 100 2199023255552)
core_pacing_env(limit_spaced "CGC_MEMLIMIT= 64 MiB" 100 67108864)
core_pacing_env(limit_off "CGC_MEMLIMIT=off" 100 none)
# More than any memory (beyond an int64_t of bytes): no limit.
core_pacing_env(limit_huge "CGC_MEMLIMIT=100000000TiB" 100 none)
# Not numbers, less than a byte, or out of range: ignored (no limit), with a
# warning.
foreach(bad nan inf -nan 0x10 1e-3 1e999 1e-400 64MiBs 64KiBB)
  string(MAKE_C_IDENTIFIER "${bad}" _bad)
  core_pacing_env(limit_bad_${_bad} "CGC_MEMLIMIT=${bad}" 100 none)
  set_tests_properties(core_pacing_env_limit_bad_${_bad} PROPERTIES
    PASS_REGULAR_EXPRESSION "CGC_MEMLIMIT: cannot read '${bad}'" FAIL_REGULAR_EXPRESSION "CHECK failed")
endforeach()

# CGC_PERCENT above 1000000 (and beyond a long): ignored, with a warning.
foreach(bad 1000001 2147483648 99999999999999999999)
  core_pacing_env(percent_bad_${bad} "CGC_PERCENT=${bad}" 100 none)
  set_tests_properties(core_pacing_env_percent_bad_${bad} PROPERTIES
    PASS_REGULAR_EXPRESSION "CGC_PERCENT: '${bad}' is above 1000000" FAIL_REGULAR_EXPRESSION "CHECK failed")
endforeach()

# Not a number: ignored, with a warning.
foreach(bad 50x 1e2)
  core_pacing_env(percent_nan_${bad} "CGC_PERCENT=${bad}" 100 none)
  set_tests_properties(core_pacing_env_percent_nan_${bad} PROPERTIES
    PASS_REGULAR_EXPRESSION "CGC_PERCENT: '${bad}' is not a number or 'off'" FAIL_REGULAR_EXPRESSION "CHECK failed")
endforeach()

# Negative: off, like any negative value.
core_pacing_env(percent_negative "CGC_PERCENT=-5" off none)
# Negative beyond a long: off, like any negative value.
core_pacing_env(percent_very_negative "CGC_PERCENT=-99999999999999999999" off none)

# A freed or shrunk large object leaves heap_live once, even when a
# collection starts right after its pages went back.
cgc_test(core_pacing_race SOURCES core_pacing_race.c ARGS free TIMEOUT 180)
add_test(NAME core_pacing_race_shrink COMMAND core_pacing_race shrink)
set_tests_properties(core_pacing_race_shrink PROPERTIES TIMEOUT 180 PASS_REGULAR_EXPRESSION "core_pacing_race shrink: ok")

# Memory goes back to the OS.
cgc_test(core_release SOURCES core_release.c TIMEOUT 120)
# A dead heap goes back within a few paced collections, with and without the
# sweeper thread (with it, collections start before its pass is complete).
add_test(NAME core_release_paced COMMAND core_release paced)
set_tests_properties(core_release_paced PROPERTIES TIMEOUT 120 PASS_REGULAR_EXPRESSION "core_release paced: ok")
add_test(NAME core_release_paced_nosweeper COMMAND core_release paced)
set_tests_properties(core_release_paced_nosweeper PROPERTIES TIMEOUT 120 ENVIRONMENT "CGC_DEBUG=bgsweep=0")
# holes: single free pages go back too; pacing_off: with no goal, collections
# still give a dead heap's memory back.
# fork_sweeper: a forked child starts its own sweeper thread.
core_cases(core_release window holes pacing_off fork_sweeper)
# CGC_DEBUG=scavenge=0: collections give nothing back; cgc_release_memory does.
add_test(NAME core_release_noscavenge COMMAND core_release noscavenge)
set_tests_properties(core_release_noscavenge PROPERTIES TIMEOUT 120 ENVIRONMENT "CGC_DEBUG=scavenge=0"
  PASS_REGULAR_EXPRESSION "core_release noscavenge: ok")
# cgc_release_memory sweeps first: garbage a paced collection left unswept
# (no sweeper thread) goes back too.
add_test(NAME core_release_unswept_nosweeper COMMAND core_release release_unswept)
set_tests_properties(core_release_unswept_nosweeper PROPERTIES TIMEOUT 120 ENVIRONMENT "CGC_DEBUG=bgsweep=0"
  PASS_REGULAR_EXPRESSION "core_release release_unswept: ok")
# CGC_DEBUG: gctrace and unknown names.
cgc_test(core_gctrace SOURCES core_gctrace.c TIMEOUT 60)

# Graph shapes: singly/doubly/interior-linked lists, small and large nodes,
# noscan leaves, a tree, a cycle survive collections and churn; again with
# checkmark verification.
cgc_test(core_shapes SOURCES core_shapes.c TIMEOUT 120)
add_test(NAME core_shapes_checkmark COMMAND core_shapes)
set_tests_properties(core_shapes_checkmark PROPERTIES TIMEOUT 180 ENVIRONMENT "CGC_DEBUG=checkmark=1")
# Four mark workers: while one follows a list, the others go to sleep and
# must be woken when the marking ends (a missed wake hangs the test).
add_test(NAME core_shapes_workers4 COMMAND core_shapes)
set_tests_properties(core_shapes_workers4 PROPERTIES TIMEOUT 120 ENVIRONMENT "CGC_DEBUG=markworkers=4")
# Threads under stress, seeded; again with checkmark verification.
cgc_test(core_stress SOURCES core_stress.c TIMEOUT 180)
add_test(NAME core_stress_checkmark COMMAND core_stress 200)
set_tests_properties(core_stress_checkmark PROPERTIES TIMEOUT 180 ENVIRONMENT "CGC_DEBUG=checkmark=1")
# Thread lists premarked across collections, seeded.
cgc_test(core_premark SOURCES core_premark.c TIMEOUT 120)
add_test(NAME core_roots_checkmark COMMAND core_roots)
set_tests_properties(core_roots_checkmark PROPERTIES TIMEOUT 120 ENVIRONMENT "CGC_DEBUG=checkmark=1")

# The static library.
cgc_test(core_basic_static SOURCES core_basic.c STATIC TIMEOUT 60)
cgc_test(core_roots_static SOURCES core_roots.c STATIC TIMEOUT 60)
cgc_test(core_threads_static SOURCES core_threads.c STATIC TIMEOUT 90)
cgc_test(core_tls_static SOURCES core_tls.c STATIC TIMEOUT 60)
cgc_test(core_fork_static SOURCES core_fork.c STATIC TIMEOUT 120)

# Bad input aborts with a `cgc: <call>: ...` message.
add_executable(core_abort core_abort.c)
target_include_directories(core_abort PRIVATE ${CGC_TEST_DIR})
target_compile_options(core_abort PRIVATE ${CGC_WARN})
target_compile_definitions(core_abort PRIVATE _GNU_SOURCE)
target_link_libraries(core_abort PRIVATE cgc)
foreach(case usable_size_stack usable_size_malloc usable_size_static usable_size_interior
             usable_size_interior_large usable_size_interior_noscan usable_size_wild)
  cgc_abort_test(core_abort_${case} PROGRAM core_abort CASE ${case} REGEX "cgc: cgc_usable_size: .*0x[0-9a-fA-F]+")
endforeach()
foreach(case remove_roots_unknown remove_roots_twice remove_roots_interior)
  cgc_abort_test(core_abort_${case} PROGRAM core_abort CASE ${case} REGEX "cgc: cgc_remove_roots: .*0x[0-9a-fA-F]+")
endforeach()
# A range that is not all readable memory, refused when registered (not
# found by a fault inside a later collection).
foreach(case add_roots_unmapped add_roots_prot_none add_roots_past_end add_roots_hole add_roots_past_eof add_roots_huge)
  cgc_abort_test(core_abort_${case} PROGRAM core_abort CASE ${case}
    REGEX "cgc: cgc_add_roots: range 0x[0-9a-f]+ \\+ [0-9]+ is not all readable memory")
endforeach()
cgc_abort_test(core_abort_add_roots_wrap PROGRAM core_abort CASE add_roots_wrap
  REGEX "cgc: cgc_add_roots: range 0x[0-9a-f]+ \\+ [0-9]+ wraps around")
cgc_abort_test(core_abort_add_roots_arena_inner PROGRAM core_abort CASE add_roots_arena_inner
  REGEX "cgc: cgc_add_roots: range 0x[0-9a-f]+ \\+ 32 holds arena memory")
cgc_abort_test(core_abort_strdup_null PROGRAM core_abort CASE strdup_null REGEX "^cgc: cgc_strdup: the string is NULL$")
cgc_abort_test(core_abort_read_stats_null PROGRAM core_abort CASE read_stats_null REGEX "^cgc: cgc_read_stats: out is NULL$")
cgc_abort_test(core_abort_unregister_unregistered PROGRAM core_abort CASE unregister_unregistered
  REGEX "cgc: cgc_unregister_thread: ")
# A thread made by clone() without its own thread-local storage cannot be
# registered: it would share its creator's record and cache.
cgc_abort_test(core_abort_register_clone_no_tls PROGRAM core_abort CASE register_clone_no_tls
  REGEX "cgc: cgc_register_thread: thread [0-9]+ shares its thread-local storage with thread [0-9]+")
# A write into an object a collection found unreachable corrupts its span's
# free list: the next sweep reports it (no sweeper thread: the span is swept
# by cgc_collect, after the write).
cgc_abort_test(core_abort_sweep_corrupt_list PROGRAM core_abort CASE sweep_corrupt_list ENV "CGC_DEBUG=bgsweep=0"
  REGEX "cgc: heap corruption: free list of span 0x[0-9a-f]+ links to 0x[0-9a-f]+ \\(use after free\\?\\)")
# A freed object written over its free-list link: the next collection says so.
foreach(case free_list_garbage free_list_other_class)
  cgc_abort_test(core_abort_${case} PROGRAM core_abort CASE ${case}
    REGEX "cgc: heap corruption: thread [0-9]+'s free list for size 64 links to 0x[0-9a-f]+ \\(written after cgc_free\\?\\)")
endforeach()

# The public headers compile in every C standard from C99, pedantically, and
# as C++ (from C++98) when a C++ compiler is installed.
foreach(std c99 c11 gnu11 c17)
  add_test(NAME core_header_${std}
    COMMAND ${CMAKE_C_COMPILER} -fsyntax-only -std=${std} -Wall -Wextra -Wpedantic -Wstrict-prototypes
            -Werror -I${PROJECT_SOURCE_DIR}/include ${CGC_TEST_DIR}/core_header.c)
endforeach()
find_program(CGC_TEST_CXX NAMES clang++ g++ c++)
if(CGC_TEST_CXX)
  foreach(std c++98 c++11 c++17)
    string(REPLACE "+" "x" _name ${std})
    add_test(NAME core_header_${_name}
      COMMAND ${CGC_TEST_CXX} -fsyntax-only -x c++ -std=${std} -Wall -Wextra -Wpedantic -Werror
              -I${PROJECT_SOURCE_DIR}/include ${CGC_TEST_DIR}/core_header.c)
  endforeach()
else()
  message(STATUS "tests: no C++ compiler; the headers' C++ checks are skipped")
endif()

# Fields of the GC trace: the reason suffixes, X->Y MB, objects, "0 MB goal"
# with pacing off, root-job lines only at gctrace=2.
add_test(NAME core_gctrace_fields COMMAND core_gctrace fields)
set_tests_properties(core_gctrace_fields PROPERTIES TIMEOUT 60)
# Statistics: num_forced_gc, mark_total_ns, the goal after the setters, noscan
# and finalizer-kept bytes (with what they reach) in last_live_bytes, a goal
# that stays put over collections of an unchanging heap.
cgc_test(core_stats_more SOURCES core_stats_more.c TIMEOUT 120)
# The memory limit: one limit collection per cycle; unswept garbage is swept
# before collecting for the limit.
cgc_test(core_limit_paths SOURCES core_limit_paths.c ARGS once TIMEOUT 120)
cgc_test(core_limit_paths_sweep SOURCES core_limit_paths.c ARGS sweep ENV CGC_DEBUG=bgsweep=0 TIMEOUT 120)
# The allocation that made a memory-limit collection sweeps and scavenges
# before it maps; after a sweep at most 90% of the limit stays mapped.
cgc_test(core_limit_paths_after SOURCES core_limit_paths.c ARGS after ENV CGC_DEBUG=bgsweep=0 TIMEOUT 120)
cgc_test(core_limit_paths_keep SOURCES core_limit_paths.c ARGS keep TIMEOUT 120)
# A large object grown in place takes the limit's steps as an allocation does.
cgc_test(core_limit_paths_grow SOURCES core_limit_paths.c ARGS grow TIMEOUT 120)
# cgc_add_roots: registering a start again replaces the range; an unaligned
# start; the end's partial word is not a root.
cgc_test(core_roots_more SOURCES core_roots_more.c TIMEOUT 120)
# Thread results: kept alive until joined (pthread_exit's value too), dropped
# on join and detach, not kept for detached threads.
cgc_test(core_thread_results SOURCES core_thread_results.c LIBS Threads::Threads TIMEOUT 120)
# cgc_set_suspend_signal gives the old signal back its default action; a stop
# signal sent to the collecting thread itself is ignored.
cgc_test(core_signal_moved SOURCES core_signal_moved.c LIBS Threads::Threads TIMEOUT 60)
cgc_test(core_signal_collector SOURCES core_signal_collector.c LIBS Threads::Threads TIMEOUT 60)

# Where the page heap puts large objects: the best-fitting free run (lower
# address on ties); the heap's last object grown by cgc_realloc moves into a
# free run that holds it rather than mapping more; a large object grown or
# shrunk in place by cgc_realloc owns exactly its new pages; objects in a
# mapping away from the heap's first one (the address after it taken) are
# marked and kept.
cgc_test(core_pagefit SOURCES core_pagefit.c ARGS fit TIMEOUT 60)
core_cases(core_pagefit realloc_end grow_interior shrink_tail grow_elsewhere)

# Heaps past 4 GiB: a 5 GiB object held by an interior pointer, shrunk,
# released and its pages reused zeroed; a pointer past 4 GiB into a scanned
# object; small objects' spans beyond a 4 GiB spacer.
cgc_test(core_huge SOURCES core_huge.c ARGS object TIMEOUT 180)
core_cases(core_huge scanned many)
set_tests_properties(core_huge_scanned core_huge_many PROPERTIES TIMEOUT 180)

# Mark-stack overflow again during its recovery: the second rescan of the
# heap marks what the first left unscanned (one mark worker, no memory for
# the stack to grow).
cgc_test(core_mark_overflow SOURCES core_mark_overflow.c TIMEOUT 120 ENV CGC_DEBUG=markworkers=1)

# A thread that ends while registered (it allocated in its last TSD
# destructor): its record is dropped by the next collection, and a new
# thread with its tid does not make collections wait for ever.
cgc_test(core_thread_gone SOURCES core_thread_gone.c LIBS Threads::Threads ARGS dropped TIMEOUT 60)
core_cases(core_thread_gone reused reused_nocollect reused_unregistered reused_unregistered_novalue)
set_tests_properties(core_thread_gone_reused core_thread_gone_reused_nocollect core_thread_gone_reused_unregistered
  core_thread_gone_reused_unregistered_novalue PROPERTIES TIMEOUT 120)

# A coroutine stack in the collected heap is scanned to the end of its
# object, not of the heap mapping.
cgc_test(core_costack SOURCES core_costack.c LIBS Threads::Threads ARGS large TIMEOUT 60)
core_cases(core_costack small)
# Page-heap behaviour core_pagefit leaves unchecked (tests/core_pageheap_more.c):
# equal free runs taken lowest first, growth below the heap's first mapping,
# in-place growth at the heap's end, the exact-size retry of a growth that
# does not fit in the address space, and the scavenger's peak window across
# unswept paced collections.
cgc_test(core_pageheap_more SOURCES core_pageheap_more.c ARGS tiebreak TIMEOUT 60)
core_cases(core_pageheap_more below grow_at_end grow_exact)
add_test(NAME core_pageheap_more_peak_window COMMAND core_pageheap_more peak_window)
set_tests_properties(core_pageheap_more_peak_window PROPERTIES TIMEOUT 60 ENVIRONMENT "CGC_DEBUG=bgsweep=0"
  PASS_REGULAR_EXPRESSION "core_pageheap_more peak_window: ok")
