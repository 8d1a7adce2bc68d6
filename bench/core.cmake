# Collector-core benchmarks: binary trees (gcbench), small-object churn
# (churn) and full-collection pause (pause), each compiled once per
# allocator.  Programs land in ${CMAKE_BINARY_DIR}/bench-core and are named
# <bench>_<alloc> (targets: bench_core_<bench>_<alloc>).  Run them all with
# bench/run_core.sh; see docs/benchmarks.md.  Nothing here is registered
# with ctest.
#
# Targets: bench_core_ref (bdwgc, glibc, mimalloc, jemalloc variants),
# bench_core_cgc (cgc variants, when the cgc target exists), bench_core.
#
# Variables used (set by bench/CMakeLists.txt): CGC_BENCH_DIR, CGC_BDWGC_LIB,
# CGC_BDWGC_INC, CGC_MIMALLOC_LIB, CGC_JEMALLOC_LIB.

find_package(Threads REQUIRED)

set(CGC_BENCH_CORE_OUT ${CMAKE_BINARY_DIR}/bench-core)
set(CGC_BENCH_CORE_WARN -Wall -Wextra)
if(DEFINED CGC_WARN)
  list(APPEND CGC_BENCH_CORE_WARN ${CGC_WARN})
endif()

add_custom_target(bench_core_ref)
add_custom_target(bench_core_cgc)
add_custom_target(bench_core)
add_dependencies(bench_core bench_core_ref bench_core_cgc)

# cgc_core_bench(<bench> <alloc> <group> [libraries...])
function(cgc_core_bench bench alloc group)
  set(t bench_core_${bench}_${alloc})
  string(TOUPPER ${alloc} up)
  add_executable(${t} ${CGC_BENCH_DIR}/${bench}.c)
  target_compile_definitions(${t} PRIVATE _GNU_SOURCE BACKEND_${up})
  # -O2 last so it wins over the build type's optimisation level.
  target_compile_options(${t} PRIVATE ${CGC_BENCH_CORE_WARN} -O2)
  target_include_directories(${t} PRIVATE ${CGC_BENCH_DIR})
  target_link_libraries(${t} PRIVATE ${ARGN} Threads::Threads ${CMAKE_DL_LIBS})
  set_target_properties(${t} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CGC_BENCH_CORE_OUT}
    OUTPUT_NAME ${bench}_${alloc})
  add_dependencies(${group} ${t})
endfunction()

set(_core_manual_benches gcbench churn)
set(_core_gc_benches gcbench churn pause)

# cgc is linked as a shared library by default, like Debian's libgc, glibc
# and mimalloc; CGC_BENCH_CORE_STATIC=ON links libcgc.a instead.
option(CGC_BENCH_CORE_STATIC "Link the cgc benchmark variants with libcgc.a" OFF)
if(CGC_BENCH_CORE_STATIC)
  set(_core_cgc_lib cgc_static)
else()
  set(_core_cgc_lib cgc)
endif()
if(TARGET ${_core_cgc_lib})
  foreach(b ${_core_gc_benches})
    cgc_core_bench(${b} cgc bench_core_cgc ${_core_cgc_lib})
  endforeach()
endif()

if(CGC_BDWGC_LIB AND CGC_BDWGC_INC)
  foreach(b ${_core_gc_benches})
    cgc_core_bench(${b} bdwgc bench_core_ref ${CGC_BDWGC_LIB})
    target_include_directories(bench_core_${b}_bdwgc PRIVATE ${CGC_BDWGC_INC})
  endforeach()
else()
  message(STATUS "bench/core: bdwgc (libgc-dev) not found; its variants are skipped")
endif()

foreach(b ${_core_manual_benches})
  cgc_core_bench(${b} glibc bench_core_ref)
endforeach()

if(CGC_MIMALLOC_LIB)
  foreach(b ${_core_manual_benches})
    cgc_core_bench(${b} mimalloc bench_core_ref ${CGC_MIMALLOC_LIB})
  endforeach()
else()
  message(STATUS "bench/core: mimalloc not found; its variants are skipped")
endif()

if(CGC_JEMALLOC_LIB)
  foreach(b ${_core_manual_benches})
    cgc_core_bench(${b} jemalloc bench_core_ref ${CGC_JEMALLOC_LIB})
  endforeach()
else()
  message(STATUS "bench/core: jemalloc not found; its variants are skipped")
endif()
