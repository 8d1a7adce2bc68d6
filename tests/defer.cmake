# defer / panic / recover (docs/defer.md).
#
# Block and dynamic defers are tested in each mode: unwind mode (-fexceptions),
# registered mode (no -fexceptions) and unregistered (CGC_DEFER_REGISTER=0).

foreach(t block dyn gc spare_panic deep_nested)
  cgc_test(defer_${t} SOURCES defer_${t}.c FLAGS -fexceptions LIBS Threads::Threads)
  cgc_test(defer_${t}_reg SOURCES defer_${t}.c FLAGS -fno-exceptions LIBS Threads::Threads)
endforeach()
cgc_test(defer_block_bare SOURCES defer_block.c FLAGS -fno-exceptions -DCGC_DEFER_REGISTER=0)
# Registered block defers in an -fexceptions unit (landing pads run them).
cgc_test(defer_block_reg_exc SOURCES defer_block.c FLAGS -fexceptions -DCGC_DEFER_REGISTER=1)
cgc_test(defer_dyn_static SOURCES defer_dyn.c FLAGS -fexceptions LIBS Threads::Threads STATIC)

# Panics through frames of every mode.  defer_panic.c is built with
# -fexceptions; each defer_frames_<m>.c is the same frames in one mode.
set(DEFER_PANIC_SOURCES defer_panic.c defer_frames_u.c defer_frames_c.c defer_frames_b.c
    defer_frames_n.c)
set_source_files_properties(defer_frames_c.c defer_frames_b.c PROPERTIES COMPILE_OPTIONS
  "-fno-exceptions")
set_source_files_properties(defer_frames_n.c PROPERTIES COMPILE_OPTIONS
  "-fno-exceptions;-fno-asynchronous-unwind-tables;-fno-unwind-tables")
cgc_test(defer_panic SOURCES ${DEFER_PANIC_SOURCES} FLAGS -fexceptions LIBS Threads::Threads)
cgc_test(defer_panic_static SOURCES ${DEFER_PANIC_SOURCES} FLAGS -fexceptions
  LIBS Threads::Threads STATIC)

# Uncaught panics and misuse abort with a message.
add_executable(defer_abort defer_abort.c)
target_include_directories(defer_abort PRIVATE ${CGC_TEST_DIR})
target_compile_options(defer_abort PRIVATE ${CGC_WARN} -fexceptions)
target_compile_definitions(defer_abort PRIVATE _GNU_SOURCE)
target_link_libraries(defer_abort PRIVATE cgc Threads::Threads)
cgc_abort_test(defer_abort_uncaught PROGRAM defer_abort CASE uncaught REGEX "^panic: boom 42$")
cgc_abort_test(defer_abort_uncaught_backtrace PROGRAM defer_abort CASE uncaught
  REGEX "^thread [0-9]+ \\[panic, deferred calls run\\]:$")
cgc_abort_test(defer_abort_uncaught_frames PROGRAM defer_abort CASE uncaught
  REGEX "defer_abort\\(.*\\) ?\\[0x[0-9a-f]+\\]")
cgc_abort_test(defer_abort_uncaught_defers_ran PROGRAM defer_abort CASE uncaught
  REGEX "^deferred: leaf block \\(panic value: boom 42\\)$")
cgc_abort_test(defer_abort_uncaught_dyn_ran PROGRAM defer_abort CASE uncaught
  REGEX "^deferred: mid dynamic$")
cgc_abort_test(defer_abort_uncaught_value PROGRAM defer_abort CASE uncaught_value
  REGEX "^panic: \\(void \\*\\) 0x1234$")
cgc_abort_test(defer_abort_nested_first PROGRAM defer_abort CASE nested REGEX "^panic: first$")
cgc_abort_test(defer_abort_nested_second PROGRAM defer_abort CASE nested REGEX "^\tpanic: second$")
cgc_abort_test(defer_abort_nested_defers_ran PROGRAM defer_abort CASE nested REGEX "^deferred: outer$")
cgc_abort_test(defer_abort_thread PROGRAM defer_abort CASE thread REGEX "^panic: in thread 7$")
cgc_abort_test(defer_abort_in_defer PROGRAM defer_abort CASE in_defer
  REGEX "^panic: from a deferred call$")
cgc_abort_test(defer_abort_repanic PROGRAM defer_abort CASE in_protected_defer
  REGEX "^panic: again: from a deferred call$")
cgc_abort_test(defer_abort_protect_null PROGRAM defer_abort CASE protect_null
  REGEX "^cgc: cgc_protect: fn is NULL$")
cgc_abort_test(defer_abort_panicf_null PROGRAM defer_abort CASE panicf_null
  REGEX "^cgc: cgc_panicf: fmt is NULL$")
cgc_abort_test(defer_abort_dyn_null PROGRAM defer_abort CASE dyn_null
  REGEX "^cgc: CGC_DEFER_DYN \\(or a registered CGC_DEFER\\): deferred function is NULL$")

# Chains of uncaught panics: the superseded ones listed (the oldest dropped past
# eight), the backtrace of the last raise, values of either kind, and a NULL
# dynamic defer reached by a panic.
add_executable(defer_abort_chain defer_abort_chain.c)
target_include_directories(defer_abort_chain PRIVATE ${CGC_TEST_DIR})
target_compile_options(defer_abort_chain PRIVATE ${CGC_WARN} -fexceptions)
target_compile_definitions(defer_abort_chain PRIVATE _GNU_SOURCE)
target_link_libraries(defer_abort_chain PRIVATE cgc)
target_link_options(defer_abort_chain PRIVATE -rdynamic)
cgc_abort_test(defer_abort_chain_many PROGRAM defer_abort_chain CASE many REGEX "^\tpanic: p7$")
cgc_abort_test(defer_abort_chain_oldest_first PROGRAM defer_abort_chain CASE many REGEX "^panic: p1$")
cgc_abort_test(defer_abort_chain_backtrace PROGRAM defer_abort_chain CASE backtrace
  REGEX "defer_abort_chain_second_raiser\\+0x")
cgc_abort_test(defer_abort_chain_value PROGRAM defer_abort_chain CASE value_chain
  REGEX "^panic: \\(void \\*\\) 0x1234$")
cgc_abort_test(defer_abort_chain_dyn_null_panic PROGRAM defer_abort_chain CASE dyn_null_panic
  REGEX "^cgc: CGC_DEFER_DYN \\(or a registered CGC_DEFER\\): deferred function is NULL$")
cgc_abort_test(defer_abort_chain_collect_first PROGRAM defer_abort_chain CASE collect REGEX "^panic: first 01$")
cgc_abort_test(defer_abort_chain_collect_second PROGRAM defer_abort_chain CASE collect
  REGEX "^\tpanic: second 2$")
add_test(NAME defer_abort_chain_backtrace_top COMMAND defer_abort_chain backtrace_top)
set_tests_properties(defer_abort_chain_backtrace_top PROPERTIES TIMEOUT 120
  PASS_REGULAR_EXPRESSION "defer_abort_chain backtrace_top: ok")

# Misuse that must not compile.
foreach(case 1 2 3)
  add_test(NAME defer_compile_error_${case}
    COMMAND ${CMAKE_C_COMPILER} -fsyntax-only -std=gnu11 -I${PROJECT_SOURCE_DIR}/include
            -DCASE=${case} ${CGC_TEST_DIR}/defer_compile_error.c)
endforeach()
# In the unwind mode (-fexceptions), which pkg-config hands out.
foreach(case 4)
  add_test(NAME defer_compile_error_${case}
    COMMAND ${CMAKE_C_COMPILER} -fsyntax-only -std=gnu11 -fexceptions -I${PROJECT_SOURCE_DIR}/include
            -DCASE=${case} ${CGC_TEST_DIR}/defer_compile_error.c)
  set_tests_properties(defer_compile_error_${case} PROPERTIES WILL_FAIL TRUE)
endforeach()
set_tests_properties(defer_compile_error_1 PROPERTIES
  PASS_REGULAR_EXPRESSION "cgc_frame__CGC_DEFER_DYN_needs_CGC_FRAME_in_this_function")
set_tests_properties(defer_compile_error_2 PROPERTIES
  PASS_REGULAR_EXPRESSION "too many arguments|too few arguments")
set_tests_properties(defer_compile_error_3 PROPERTIES
  PASS_REGULAR_EXPRESSION "redefinition|redeclaration|conflicting")
add_test(NAME defer_compile_ok
  COMMAND ${CMAKE_C_COMPILER} -fsyntax-only -std=gnu11 -Wall -Wextra -Werror
          -I${PROJECT_SOURCE_DIR}/include -DCASE=0 ${CGC_TEST_DIR}/defer_compile_error.c)
