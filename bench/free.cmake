# Benchmarks of explicit free, growable buffers and arenas (bench/bench_free.c),
# compiled once per allocator into ${CMAKE_BINARY_DIR}/bench-free/free_<alloc>
# (targets bench_free_<alloc>, all under bench_free).  Run them with
# bench/run_free.sh; see docs/free.md.  Nothing here is registered with ctest.
#
# Variables used (set by bench/CMakeLists.txt): CGC_BENCH_DIR, CGC_BDWGC_LIB,
# CGC_BDWGC_INC, CGC_MIMALLOC_LIB.

find_package(Threads REQUIRED)

set(CGC_BENCH_FREE_OUT ${CMAKE_BINARY_DIR}/bench-free)
add_custom_target(bench_free)

# cgc_free_bench(<alloc> [libraries...])
function(cgc_free_bench alloc)
  set(t bench_free_${alloc})
  string(TOUPPER ${alloc} up)
  add_executable(${t} ${CGC_BENCH_DIR}/bench_free.c)
  target_compile_definitions(${t} PRIVATE _GNU_SOURCE BACKEND_${up})
  # -O2 last so it wins over the build type's optimisation level.
  target_compile_options(${t} PRIVATE -Wall -Wextra ${CGC_WARN} -g -O2)
  target_link_libraries(${t} PRIVATE ${ARGN} Threads::Threads ${CMAKE_DL_LIBS})
  set_target_properties(${t} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CGC_BENCH_FREE_OUT} OUTPUT_NAME free_${alloc})
  add_dependencies(bench_free ${t})
endfunction()

if(TARGET cgc)
  cgc_free_bench(cgc cgc)
endif()
cgc_free_bench(glibc)
if(CGC_MIMALLOC_LIB)
  cgc_free_bench(mimalloc ${CGC_MIMALLOC_LIB})
else()
  message(STATUS "bench/free: mimalloc not found; its variant is skipped")
endif()
if(CGC_BDWGC_LIB AND CGC_BDWGC_INC)
  cgc_free_bench(bdwgc ${CGC_BDWGC_LIB})
  target_include_directories(bench_free_bdwgc PRIVATE ${CGC_BDWGC_INC})
else()
  message(STATUS "bench/free: bdwgc (libgc-dev) not found; its variant is skipped")
endif()
