# Cleanups, finalizers and weak handles: bench_specials (cgc) and
# bench_specials_bdwgc (bdwgc's finalizers, when libgc-dev is installed), both
# from bench_specials.c, in ${CMAKE_BINARY_DIR}/bench-specials.  Run them with
# bench/run_specials.sh (medians of several runs and ratios against the
# targets; see docs/specials.md).  Nothing here is registered with ctest.
set(CGC_BENCH_SPECIALS_OUT ${CMAKE_BINARY_DIR}/bench-specials)
set(_specials_warn -Wall -Wextra)
if(DEFINED CGC_WARN)
  list(APPEND _specials_warn ${CGC_WARN})
endif()
add_custom_target(bench_specials_all)

if(TARGET cgc)
  add_executable(bench_specials ${CGC_BENCH_DIR}/bench_specials.c)
  target_compile_definitions(bench_specials PRIVATE _GNU_SOURCE)
  # -O2 last so it wins over the build type's optimisation level.
  target_compile_options(bench_specials PRIVATE ${_specials_warn} -O2)
  target_link_libraries(bench_specials PRIVATE cgc)
  set_target_properties(bench_specials PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CGC_BENCH_SPECIALS_OUT})
  add_dependencies(bench_specials_all bench_specials)
endif()

if(CGC_BDWGC_LIB AND CGC_BDWGC_INC)
  find_package(Threads REQUIRED)
  add_executable(bench_specials_bdwgc ${CGC_BENCH_DIR}/bench_specials.c)
  target_compile_definitions(bench_specials_bdwgc PRIVATE _GNU_SOURCE BENCH_BDWGC)
  target_compile_options(bench_specials_bdwgc PRIVATE ${_specials_warn} -O2)
  target_include_directories(bench_specials_bdwgc PRIVATE ${CGC_BDWGC_INC})
  target_link_libraries(bench_specials_bdwgc PRIVATE ${CGC_BDWGC_LIB} Threads::Threads)
  set_target_properties(bench_specials_bdwgc PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CGC_BENCH_SPECIALS_OUT})
  add_dependencies(bench_specials_all bench_specials_bdwgc)
else()
  message(STATUS "bench/specials: bdwgc (libgc-dev) not found; bench_specials_bdwgc is skipped")
endif()
