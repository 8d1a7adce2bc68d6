#!/bin/sh
# Build cgc (Release), run the demo, then the benchmarks side by side with
# bdwgc and malloc.  QUICK=1 shortens the benchmarks.
set -e
cd "$(dirname "$0")/.."
sh scripts/deps.sh
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DCGC_BUILD_TESTS=OFF >/dev/null
cmake --build build-release -j "$(nproc)" >/dev/null
echo "== demo"
./build-release/cgc_demo
for b in bench/run_core.sh bench/run_specials.sh bench/run_free.sh bench/run_defer.sh; do
  if [ -f "$b" ]; then
    echo
    echo "== $b"
    bash "$b"
  fi
done
