# Defer benchmarks: block defers against releasing by hand, dynamic defers, and
# a panic through 10 frames.  bench_defer is built with -fexceptions (block
# defers run by the unwinder, no registration), bench_defer_reg without it
# (block defers registered in the per-thread chain).  The resources the
# functions use are compiled separately (bench_defer.c with
# -DBENCH_DEFER_RESOURCES), as a real program's would be.  Programs land in
# ${CMAKE_BINARY_DIR}/bench-defer; bench/run_defer.sh builds them with gcc and
# clang and measures them.  Nothing here is registered with ctest.
if(TARGET cgc)
  set(CGC_BENCH_DEFER_WARN -Wall -Wextra)
  if(DEFINED CGC_WARN)
    list(APPEND CGC_BENCH_DEFER_WARN ${CGC_WARN})
  endif()
  add_library(bench_defer_resources OBJECT ${CGC_BENCH_DIR}/bench_defer.c)
  target_compile_definitions(bench_defer_resources PRIVATE BENCH_DEFER_RESOURCES)
  target_include_directories(bench_defer_resources PRIVATE ${PROJECT_SOURCE_DIR}/include)
  target_compile_options(bench_defer_resources PRIVATE ${CGC_BENCH_DEFER_WARN} -O2)
  foreach(v bench_defer bench_defer_reg)
    add_executable(${v} ${CGC_BENCH_DIR}/bench_defer.c $<TARGET_OBJECTS:bench_defer_resources>)
    target_compile_definitions(${v} PRIVATE _GNU_SOURCE)
    target_link_libraries(${v} PRIVATE cgc)
    set_target_properties(${v} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench-defer)
  endforeach()
  # -O2 last so it wins over the build type's optimisation level.
  target_compile_options(bench_defer PRIVATE ${CGC_BENCH_DEFER_WARN} -fexceptions -O2)
  target_compile_options(bench_defer_reg PRIVATE ${CGC_BENCH_DEFER_WARN} -fno-exceptions -O2)
endif()
