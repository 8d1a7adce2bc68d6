#!/bin/sh
# Build and run the whole test suite: gcc and clang with -Werror, then an
# ASan+UBSan build.  Prints a closing "N passed, N failed" line.
# Environment: JOBS (default: CPUs), CGC_SKIP_SANITIZERS=1 to skip the ASan run.
set -u
cd "$(dirname "$0")/.."
sh scripts/deps.sh || exit 1
JOBS=${JOBS:-$(nproc)}
passed=0
failed=0
status=0

run_config() { # name, cmake args...
  name=$1
  shift
  dir=build-test-$name
  mkdir -p "$dir"
  echo "=== $name: configure and build"
  if ! cmake -S . -B "$dir" -DCGC_WERROR=ON -DCGC_BUILD_BENCH=ON "$@" >"$dir/build.log" 2>&1 ||
     ! cmake --build "$dir" -j "$JOBS" >>"$dir/build.log" 2>&1; then
    tail -50 "$dir/build.log"
    echo "=== $name: BUILD FAILED"
    failed=$((failed + 1))
    status=1
    return
  fi
  echo "=== $name: test"
  ctest --test-dir "$dir" -j "$JOBS" --timeout 300 --output-on-failure >"$dir/test.log" 2>&1
  rc=$?
  grep -E "tests passed|Failed|Timeout|\*\*\*" "$dir/test.log" | tail -30
  line=$(grep -E "tests passed, [0-9]+ tests failed out of [0-9]+" "$dir/test.log" | tail -1)
  total=$(echo "$line" | sed -E 's/.*out of ([0-9]+).*/\1/')
  nfail=$(echo "$line" | sed -E 's/.* ([0-9]+) tests failed.*/\1/')
  if [ -n "$total" ]; then
    passed=$((passed + total - nfail))
    failed=$((failed + nfail))
  else
    failed=$((failed + 1))
  fi
  if [ $rc -ne 0 ]; then
    status=1
    sed -n '/The following tests FAILED/,$p' "$dir/test.log"
  fi
}

run_config gcc -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_config clang -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCGC_CHECKED=ON
if [ "${CGC_SKIP_SANITIZERS:-0}" != 1 ]; then
  ASAN_OPTIONS=detect_leaks=0:detect_stack_use_after_return=0:allocator_may_return_null=1
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  export ASAN_OPTIONS UBSAN_OPTIONS
  run_config asan -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug -DCGC_SANITIZE=address,undefined
fi
# memcheck: a selection of tests under valgrind (the collector reads stack
# words as defined values, so a report is a real error).
if [ "${CGC_SKIP_VALGRIND:-0}" != 1 ] && command -v valgrind >/dev/null 2>&1 && [ -d build-test-gcc/tests ]; then
  # vg NAME TOOL-ARGS TEST...: run each test ("program [case]") under valgrind.
  vg() {
    name=$1 args=$2
    shift 2
    echo "=== $name"
    for t in "$@"; do
      set -- $t
      if timeout 600 valgrind -q $args "build-test-gcc/tests/$1" ${2:-} >build-test-gcc/valgrind.log 2>&1; then
        passed=$((passed + 1))
      else
        echo "$name: $t FAILED"
        tail -30 build-test-gcc/valgrind.log
        failed=$((failed + 1))
        status=1
      fi
    done
  }
  vg memcheck --error-exitcode=9 "core_basic" "core_roots" "core_threads" "core_tls" "specials_cleanup basic" \
    "specials_weak identity" "specials_finalizer order" "free_basic" "arena_basic" "arena_threads" "defer_dyn" \
    "defer_panic"
  # Under valgrind's other tools (callgrind, none, ...) there are no V bits:
  # the collector must read memory as it is and still find every root.
  vg "valgrind --tool=none" --tool=none "core_basic" "free_basic" "specials_cleanup basic"
fi
echo "$passed passed, $failed failed"
exit $status
