#!/usr/bin/env bash
# Collector-core benchmarks: cgc against bdwgc, glibc malloc, mimalloc and
# jemalloc, side by side in one run.  See docs/benchmarks.md.
#
#   bench/run_core.sh            build (Release, in build-bench/) and run everything
#   QUICK=1 bench/run_core.sh    fewer runs, smaller churn, 512 MiB pause only
#
# Environment (defaults in brackets; QUICK=1 changes the marked ones):
#   RUNS=5 *          runs of every variant, interleaved round by round
#   BUILD_DIR=<repo>/build-bench
#   ALLOCS="cgc bdwgc glibc mimalloc jemalloc"   (missing ones are skipped)
#   BENCHES="gcbench churn1 churn2 pause"
#   CHURN_N=100000000 *   objects per churn run (split between the threads)
#   PAUSE_SIZES=512,1024 *  live MiB for the pause benchmark, ascending
#   PAUSE_LAYOUTS="shuffled tree" *
#   PAUSE_REPS=3      timed collections per size and run (median taken)
#   RUN_TIMEOUT=600   seconds before one benchmark run is killed
#   SKIP_BUILD=1      use the programs already built
#   JOBS=2            parallel compile jobs
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  RUNS=${RUNS:-3}
  CHURN_N=${CHURN_N:-20000000}
  PAUSE_SIZES=${PAUSE_SIZES:-512}
  PAUSE_LAYOUTS=${PAUSE_LAYOUTS:-shuffled}
else
  RUNS=${RUNS:-5}
  CHURN_N=${CHURN_N:-100000000}
  PAUSE_SIZES=${PAUSE_SIZES:-512,1024}
  PAUSE_LAYOUTS=${PAUSE_LAYOUTS:-shuffled tree}
fi
PAUSE_REPS=${PAUSE_REPS:-3}
ALLOCS=${ALLOCS:-cgc bdwgc glibc mimalloc jemalloc}
BENCHES=${BENCHES:-gcbench churn1 churn2 pause}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
JOBS=${JOBS:-2}

die() { echo "run_core: $*" >&2; exit 1; }
mkdir -p "$BUILD_DIR" || die "cannot create $BUILD_DIR"
LOG=$BUILD_DIR/core-build.log
CGC_LOG=$BUILD_DIR/core-build-cgc.log

# ---------------------------------------------------------------- build ---
# The whole project is configured so the cgc variants link the library as it
# is now.  If the project does not configure, a small stand-alone project
# builds the reference variants only.
BIN=$BUILD_DIR/bench-core
cgc_built=0
cgc_note=""
if [ "${SKIP_BUILD:-0}" = 1 ]; then
  [ -d "$BIN" ] || BIN=$BUILD_DIR/standalone/build/bench-core
  [ -x "$BIN/gcbench_cgc" ] && cgc_built=1
else
  echo "== building (Release) in $BUILD_DIR"
  if cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DCGC_BUILD_TESTS=OFF \
       >"$LOG" 2>&1; then
    cmake --build "$BUILD_DIR" -j "$JOBS" --target bench_core_ref >>"$LOG" 2>&1 ||
      { tail -n 30 "$LOG"; die "building the reference variants failed (see $LOG)"; }
    rm -f "$BIN"/*_cgc
    if cmake --build "$BUILD_DIR" -j "$JOBS" --target bench_core_cgc >"$CGC_LOG" 2>&1 &&
       [ -x "$BIN/gcbench_cgc" ]; then
      cgc_built=1
    else
      cgc_note="libcgc or its benchmark programs did not build (see $CGC_LOG)"
      echo "-- $cgc_note; last lines:"
      grep -E 'error|Error|undefined' "$CGC_LOG" | head -n 15
    fi
  else
    cgc_note="the project does not configure (see $LOG)"
    echo "-- $cgc_note; building the reference allocators only"
    SA=$BUILD_DIR/standalone
    mkdir -p "$SA"
    cat >"$SA/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.16)
project(cgc_bench_core_standalone C)
set(CMAKE_C_STANDARD 11)
set(CMAKE_C_EXTENSIONS ON)
find_library(CGC_BDWGC_LIB gc)
find_path(CGC_BDWGC_INC gc/gc.h)
find_library(CGC_MIMALLOC_LIB mimalloc)
find_library(CGC_JEMALLOC_LIB jemalloc)
set(CGC_BENCH_DIR "$ROOT/bench")
include("$ROOT/bench/core.cmake")
EOF
    BIN=$SA/build/bench-core
    { cmake -S "$SA" -B "$SA/build" -DCMAKE_BUILD_TYPE=Release &&
      cmake --build "$SA/build" -j "$JOBS" --target bench_core_ref; } >>"$LOG" 2>&1 ||
      { tail -n 30 "$LOG"; die "building the reference variants failed (see $LOG)"; }
  fi
fi
if [ $cgc_built = 0 ] && [ -z "$cgc_note" ]; then
  cgc_note="the cgc variants are not built"
fi

# ------------------------------------------------------------- variants ---
want_alloc() { case " $ALLOCS " in *" $1 "*) return 0 ;; esac; return 1; }
variants=()   # "bench alloc program args..."
add_variant() {
  local bench=$1 alloc=$2 prog=$3; shift 3
  want_alloc "$alloc" || return 0
  [ -x "$BIN/$prog" ] || return 0
  variants+=("$bench $alloc $BIN/$prog $*")
}
for b in $BENCHES; do
  for a in cgc bdwgc glibc mimalloc jemalloc; do
    case $b in
      gcbench) add_variant gcbench $a gcbench_$a ;;
      churn1)  add_variant churn1 $a churn_$a -t 1 -n "$CHURN_N" ;;
      churn2)  add_variant churn2 $a churn_$a -t 2 -n "$CHURN_N" ;;
      pause)
        for l in $PAUSE_LAYOUTS; do
          add_variant "pause-$l" $a pause_$a -l "$l" -s "$PAUSE_SIZES" -r "$PAUSE_REPS"
        done ;;
      *) die "unknown benchmark $b" ;;
    esac
  done
done
[ ${#variants[@]} -gt 0 ] || die "nothing to run"

stamp=$(date +%Y%m%d-%H%M%S)
RES=$BUILD_DIR/core-results-$stamp.txt
RUNLOG=$BUILD_DIR/core-runs-$stamp.log
: >"$RES"
: >"$RUNLOG"

cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
mem=$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
{
  echo "# date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "# machine: $(nproc) cores, $cpu, $mem, $(uname -sr)"
  echo "# runs: $RUNS; churn objects: $CHURN_N; pause sizes: $PAUSE_SIZES MiB, layouts: $PAUSE_LAYOUTS, $PAUSE_REPS timed collections each"
  echo "# commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$( [ -n "$(git --no-optional-locks -C "$ROOT" status --porcelain -- src include 2>/dev/null)" ] && echo ' (src/include modified)')"
} | tee -a "$RES"
[ -n "$cgc_note" ] && echo "# cgc: $cgc_note" | tee -a "$RES"

# ----------------------------------------------------------------- runs ---
# Round by round, each round starting one variant further along, so slow
# drifts in machine load spread over all variants.
nv=${#variants[@]}
failures=0
t_start=$(date +%s)
loads=""
for ((r = 1; r <= RUNS; r++)); do
  load=$(cut -d' ' -f1 /proc/loadavg)
  loads="$loads $load"
  echo "== round $r/$RUNS ($(( $(date +%s) - t_start )) s elapsed, load average $load)"
  for ((i = 0; i < nv; i++)); do
    v=${variants[$(( (i + r - 1) % nv ))]}
    read -r bench alloc prog args <<<"$v"
    out=$(timeout -k 10 "$RUN_TIMEOUT" "$prog" $args 2>&1)
    rc=$?
    { echo "### round=$r $bench $alloc: $prog $args (exit $rc)"; echo "$out"; } >>"$RUNLOG"
    if [ $rc -ne 0 ] || ! grep -q '^RESULT ' <<<"$out"; then
      failures=$((failures + 1))
      echo "   FAILED: $prog $args (exit $rc)"
      tail -n 5 <<<"$out" | sed 's/^/     | /'
      echo "FAILED round=$r row=$bench alloc=$alloc rc=$rc cmd=$prog $args" >>"$RES"
      continue
    fi
    grep '^INFO ' <<<"$out" | sort -u >>"$RES"
    grep '^RESULT ' <<<"$out" | sed "s/^RESULT /RESULT round=$r row=$bench /" >>"$RES"
    printf '   %-15s %-9s %s\n' "$bench" "$alloc" \
      "$(grep '^RESULT ' <<<"$out" | grep -oE ' (threads|time_ms|ns_per_obj|live_mib|pause_ms)=[^ ]+' | tr -d '\n')"
  done
done
loads="$loads $(cut -d' ' -f1 /proc/loadavg)"
echo "== done in $(( $(date +%s) - t_start )) s; raw results: $RES; program output: $RUNLOG"
echo "# load average at each round's start and at the end:$loads" >>"$RES"
echo

# -------------------------------------------------------------- summary ---
awk -v allocs="cgc bdwgc glibc mimalloc jemalloc" -v ncpu="$(nproc)" '
function median(key,   n, i, j, t, a) {
  n = cnt[key]
  for (i = 1; i <= n; i++) a[i] = val[key, i]
  for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
  lo[key] = a[1]; hi[key] = a[n]
  return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function add(row, metric, alloc, v,   key) {
  key = row SUBSEP metric
  if (!(key in seen)) { seen[key] = 1; order[++nrows] = key; label[key] = row " " metric }
  key = key SUBSEP alloc
  val[key, ++cnt[key]] = v + 0
  byround[key, round] = v + 0
  if (round > maxround) maxround = round
}
# Median over rounds of the ratio a/b within the same round (both ran close
# together in time, so slow changes in machine load cancel out).
function paired(key, a, b,   r, n, t, i, j, q) {
  n = 0
  for (r = 1; r <= maxround; r++)
    if ((key, a, r) in byround && (key, b, r) in byround && byround[key, b, r] > 0)
      q[++n] = byround[key, a, r] / byround[key, b, r]
  if (n == 0) return -1
  for (i = 2; i <= n; i++) { t = q[i]; for (j = i - 1; j >= 1 && q[j] > t; j--) q[j + 1] = q[j]; q[j + 1] = t }
  return n % 2 ? q[(n + 1) / 2] : (q[n / 2] + q[n / 2 + 1]) / 2
}
function field(name,   i) {
  for (i = 2; i <= NF; i++) if (index($i, name "=") == 1) return substr($i, length(name) + 2)
  return ""
}
/^# / { hdr[++nhdr] = $0; next }
/^INFO / { info[$0] = 1; next }
/^FAILED / { failed[field("row") SUBSEP field("alloc")]++; faillines[++nfail] = $0; next }
/^RESULT / {
  row = field("row"); alloc = field("alloc"); round = field("round") + 0
  if (row == "gcbench") {
    add(row, "time_ms", alloc, field("time_ms"))
    add(row, "cpu_ms", alloc, field("cpu_ms"))
  }
  else if (row ~ /^churn/) {
    add(row, "ns/obj", alloc, field("ns_per_obj"))
    if (field("threads") > 1) add(row, "thread_ns/obj", alloc, field("thread_ns_per_obj"))
    add(row, "cpu_ns/obj", alloc, field("cpu_ns_per_obj"))
  } else if (row ~ /^pause/) {
    r2 = row "-" field("live_mib")
    add(r2, "pause_ms", alloc, field("pause_ms"))
    add(r2, "wall_ms", alloc, field("wall_ms"))
  }
}
function cell(key, alloc,   k) {
  k = key SUBSEP alloc
  if (!(k in cnt)) return (key SUBSEP alloc) in failcell ? "FAIL" : "-"
  return sprintf("%.4g", med[k])
}
function ratio(key, a, b,   ka, kb) {
  ka = key SUBSEP a; kb = key SUBSEP b
  if (!(ka in med) || !(kb in med) || med[kb] == 0) return ""
  return sprintf("%.2f", med[ka] / med[kb])
}
END {
  na = split(allocs, A, " ")
  for (r = 1; r <= nrows; r++)
    for (i = 1; i <= na; i++) {
      k = order[r] SUBSEP A[i]
      if (k in cnt) med[k] = median(k)
      split(order[r], rp, SUBSEP)
      if ((rp[1] SUBSEP A[i]) in failed) failcell[order[r] SUBSEP A[i]] = 1
      if (rp[1] ~ /^pause-/) {
        base = rp[1]; sub(/-[0-9]+$/, "", base)
        if ((base SUBSEP A[i]) in failed) failcell[order[r] SUBSEP A[i]] = 1
      }
    }
  for (i = 1; i <= nhdr; i++) print hdr[i]
  for (l in info) print l
  for (i = 1; i <= nhdr; i++)
    if (hdr[i] ~ /^# load average/) {
      n = split(hdr[i], w, " "); maxload = 0
      for (j = 1; j <= n; j++) if (w[j] ~ /^[0-9.]+$/ && w[j] + 0 > maxload) maxload = w[j] + 0
      if (maxload > ncpu) printf "WARNING: load average reached %.1f on %d cores during the run; the numbers are disturbed by other work.\n", maxload, ncpu
    }
  print ""
  printf "Medians (lower is better); ratios are cgc / other.\n\n"
  printf "%-28s", "benchmark"
  for (i = 1; i <= na; i++) printf " %9s", A[i]
  printf "  %9s %9s %9s\n", "cgc/bdwgc", "cgc/glibc", "cgc/mi"
  for (r = 1; r <= nrows; r++) {
    k = order[r]
    printf "%-28s", label[k]
    for (i = 1; i <= na; i++) printf " %9s", cell(k, A[i])
    printf "  %9s %9s %9s\n", ratio(k, "cgc", "bdwgc"), ratio(k, "cgc", "glibc"), ratio(k, "cgc", "mimalloc")
  }
  print ""
  print "Spread (runs: median [min .. max]):"
  for (r = 1; r <= nrows; r++)
    for (i = 1; i <= na; i++) {
      k = order[r] SUBSEP A[i]
      if (k in cnt) printf "  %-28s %-9s n=%d  %.4g [%.4g .. %.4g]\n", label[order[r]], A[i], cnt[k], med[k], lo[k], hi[k]
    }
  print ""
  print "Targets (ratio of medians; paired = median of the per-round ratios):"
  target("gcbench" SUBSEP "time_ms", "bdwgc", 1.0, "(a) binary trees: time <= bdwgc")
  target("gcbench" SUBSEP "time_ms", "glibc", 1.5, "(a) binary trees: time <= 1.5 x glibc")
  target("churn1" SUBSEP "ns/obj", "bdwgc", 1.0, "(b) churn, 1 thread: ns/object <= bdwgc")
  target("churn2" SUBSEP "ns/obj", "bdwgc", 1.0, "(b) churn, 2 threads: ns/object <= bdwgc")
  for (r = 1; r <= nrows; r++) {
    split(order[r], rp, SUBSEP)
    if (rp[1] ~ /^pause-/ && rp[2] == "pause_ms") {
      n = split(rp[1], pp, "-")
      target(order[r], "bdwgc", 1.0, sprintf("(c) pause, %s MiB live (%s): pause <= bdwgc", pp[n], pp[2]))
    }
  }
  if (nfail) {
    printf "\n%d run(s) FAILED (details in the program output log):\n", nfail
    for (i = 1; i <= nfail; i++) print "  " faillines[i]
  }
}
function target(key, other, limit, what,   ka, kb, q, pq) {
  ka = key SUBSEP "cgc"; kb = key SUBSEP other
  if (!(kb in med)) { printf "  %-52s  n/a (no %s result)\n", what, other; return }
  if (!(ka in med)) { printf "  %-52s  n/a (no cgc result)\n", what; return }
  q = med[ka] / med[kb]
  pq = paired(key, "cgc", other)
  printf "  %-52s  cgc/%s = %.2f (paired %s)  %s\n", what, other, q,
         pq < 0 ? "-" : sprintf("%.2f", pq), q <= limit ? "MET" : "NOT MET"
}
' "$RES" | tee "$BUILD_DIR/core-summary-$stamp.txt"
echo
echo "summary saved in $BUILD_DIR/core-summary-$stamp.txt"
[ $failures -eq 0 ]
