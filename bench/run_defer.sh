#!/usr/bin/env bash
# Defer benchmarks with gcc and clang: instructions (callgrind) and time.
#
#   bench/run_defer.sh                 build both compilers' variants and measure
#   COMPILERS=gcc bench/run_defer.sh   one compiler only
#
# Measures, for each compiler:
#   - a function with two resources and three return paths: released by hand
#     against CGC_DEFER (instructions of the function itself, and per call
#     with the callees and the loop); target <= 1.10x
#   - dynamic defers: instructions per defer (push, run, and the call of an
#     out-of-line deferred function), 8 per frame (inline records) and 1000
#     per frame (spilled into heap chunks); target <= 30
#   - a panic through 10 frames with one defer each to cgc_protect: median
#     time over RUNS batches; target <= 10 us
# for bench_defer (-fexceptions: block defers run by the unwinder) and
# bench_defer_reg (no -fexceptions: block defers registered).
#
# Environment (defaults in brackets):
#   COMPILERS="gcc clang"   BUILD_DIR=<repo>/build-bench   JOBS=2
#   N=300000     calls per callgrind run     RUNS=21   timed batches per number
#   CLOCK=wall   time with the monotonic clock instead of the thread's CPU time
#   SKIP_BUILD=1 use the programs already built
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
COMPILERS=${COMPILERS:-gcc clang}
JOBS=${JOBS:-2}
N=${N:-300000}
RUNS=${RUNS:-21}
export RUNS

die() { echo "run_defer: $*" >&2; exit 1; }
mkdir -p "$BUILD_DIR" || die "cannot create $BUILD_DIR"
have_valgrind=1
command -v valgrind >/dev/null 2>&1 && command -v callgrind_annotate >/dev/null 2>&1 || have_valgrind=0
TMP=$(mktemp -d) || die "mktemp failed"
trap 'rm -rf "$TMP"' EXIT

# ir PROGRAM FUNCTION ARGS... -> "total self": instructions executed inside
# FUNCTION (with its callees) and in FUNCTION's own code.
ir() {
  local prog=$1 fn=$2 out=$TMP/cg.out
  shift 2
  rm -f "$out"
  if ! valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect="$fn" \
       "$prog" "$@" >/dev/null 2>"$TMP/vg.err"; then
    echo "NA NA"
    return
  fi
  local total self
  total=$(awk '/^(summary|totals):/ {v=$2} END {print v+0}' "$out")
  self=$(callgrind_annotate --inclusive=no "$out" 2>/dev/null |
         awk -v f="$fn" '$0 ~ (":" f " \\[") { gsub(",", "", $1); print $1; exit }')
  echo "${total:-NA} ${self:-NA}"
}

# ratio A B -> A/B with 3 decimals
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "NA" }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "NA" }'; }
verdict() { # value target
  awk -v v="$1" -v t="$2" 'BEGIN { if (v == "NA") print "n/a"; else if (v + 0 <= t + 0) print "ok"; else print "MISSED" }'
}

summary=()

measure() { # compiler dir
  local cc=$1 bin=$2/bench-defer
  echo
  echo "================ $cc ($($cc --version | head -1))"
  for variant in bench_defer bench_defer_reg; do
    local prog=$bin/$variant mode
    [ -x "$prog" ] || { echo "missing $prog"; continue; }
    if [ "$variant" = bench_defer ]; then mode="unwind mode (-fexceptions)"; else mode="registered mode (no -fexceptions)"; fi
    echo "---- $variant: $mode"
    if [ "$have_valgrind" = 1 ]; then
      read -r hand_t _ < <(ir "$prog" run_hand hand "$N")
      read -r defer_t _ < <(ir "$prog" run_defer defer "$N")
      read -r _ hand_s < <(ir "$prog" by_hand hand "$N")
      read -r _ defer_s < <(ir "$prog" with_defer defer "$N")
      local hs ds ht dt rs rt
      hs=$(div "$hand_s" "$N"); ds=$(div "$defer_s" "$N")
      ht=$(div "$hand_t" "$N"); dt=$(div "$defer_t" "$N")
      rs=$(ratio "$defer_s" "$hand_s"); rt=$(ratio "$defer_t" "$hand_t")
      printf "  2 resources, 3 returns  by hand %7s instr   CGC_DEFER %7s instr   ratio %s (function itself)\n" "$hs" "$ds" "$rs"
      printf "  %-24s by hand %7s instr   CGC_DEFER %7s instr   ratio %s (with callees and loop)\n" "" "$ht" "$dt" "$rt"
      # Per defer: everything (push, run, the loop, the call of the deferred
      # function) minus the frame's fixed cost; and that minus the same loop
      # calling the function at once (what deferring adds).
      local f0 m frames d c per over per8 per1000
      read -r f0 _ < <(ir "$prog" run_dyn dyn "$N" 0)
      for m in 8 1000; do
        frames=$((N * 8 / m))
        read -r d _ < <(ir "$prog" run_dyn dyn "$frames" "$m")
        read -r c _ < <(ir "$prog" run_direct direct "$frames" "$m")
        per=$(awk -v a="$d" -v z="$f0" -v n="$N" -v f="$frames" -v m="$m" 'BEGIN { printf "%.2f", (a / f - z / n) / m }')
        over=$(awk -v a="$d" -v z="$f0" -v c="$c" -v n="$N" -v f="$frames" -v m="$m" 'BEGIN { printf "%.2f", (a / f - z / n - c / f) / m }')
        printf "  dynamic defers, %4d/frame: %s instr per defer, %s more than calling at once (frame: %s instr)\n" \
          "$m" "$per" "$over" "$(div "$f0" "$N")"
        if [ "$m" = 8 ]; then per8=$per; else per1000=$per; fi
      done
      local pn=200 p
      read -r p _ < <(ir "$prog" run_panic panic $pn)
      printf "  panic through 10 frames %s instr\n" "$(div "$p" $pn)"
      if [ "$variant" = bench_defer ]; then
        summary+=("$cc: CGC_DEFER/by hand $rs (function), $rt (per call)   target <= 1.10: $(verdict "$rs" 1.10)")
        summary+=("$cc: dynamic defer $per8 instr (8/frame), $per1000 instr (1000/frame)   target <= 30: $(verdict "$(awk -v a="$per8" -v b="$per1000" 'BEGIN { print (a > b ? a : b) }')" 30)")
      else
        summary+=("$cc: registered block defers/by hand $rs (function)   (no target)")
      fi
    else
      echo "  (valgrind not installed: instruction counts skipped)"
    fi
    local times
    echo "  (load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null))"
    times=$("$prog" time) || { echo "  timing run failed"; continue; }
    echo "$times" | sed 's/^time /  time: /'
    local pt
    pt=$(echo "$times" | awk '/panic through 10 frames/ { for (i = 1; i < NF; i++) if ($(i + 1) == "us/panic") print $i }')
    if [ "$variant" = bench_defer ]; then
      summary+=("$cc: panic through 10 frames $pt us (median of $RUNS)   target <= 10 us: $(verdict "$pt" 10)")
    else
      summary+=("$cc: panic through 10 frames, registered frames $pt us")
    fi
  done
}

for cc in $COMPILERS; do
  command -v "$cc" >/dev/null 2>&1 || { echo "run_defer: $cc not found, skipped"; continue; }
  dir=$BUILD_DIR/defer-$cc
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "== building with $cc in $dir"
    # DWARF 4: valgrind 3.19 does not read clang's default DWARF 5.
    CC=$cc cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS=-gdwarf-4 \
      -DCGC_BUILD_TESTS=OFF -DCGC_BUILD_BENCH=ON >"$dir.log" 2>&1 &&
      cmake --build "$dir" -j "$JOBS" --target bench_defer bench_defer_reg >>"$dir.log" 2>&1 ||
      { echo "run_defer: build with $cc failed, see $dir.log"; continue; }
  fi
  measure "$cc" "$dir"
done

echo
echo "================ summary"
for line in "${summary[@]}"; do echo "  $line"; done
