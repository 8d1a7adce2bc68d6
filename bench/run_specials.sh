#!/usr/bin/env bash
# Cleanups, finalizers and weak handles: cgc against free() and bdwgc, side by
# side in one run.  See docs/specials.md ("Cost") and bench/bench_specials.c.
#
#   bench/run_specials.sh            build (Release, in build-bench-specials/) and run
#   RUNS=3 bench/run_specials.sh     fewer runs
#
# Environment (defaults in brackets):
#   RUNS=7            runs of each program, interleaved (cgc, bdwgc, cgc, ...)
#   BUILD_DIR=<repo>/build-bench-specials
#   OPS=1000000       release ops per run;  ATTACH_N=200000;  WEAK_N=200000
#   SKIP_BUILD=1      use the programs already built
#   JOBS=2
# Prints medians over the runs (and min..max), the ratios against the
# targets ((b) <= 3x (a), (c) <= 4x (a)), the attach table and the weak-handle
# costs.  Every RESULT line goes to $BUILD_DIR/specials-results-<date>.txt.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench-specials}
RUNS=${RUNS:-7}
JOBS=${JOBS:-2}
export OPS=${OPS:-1000000} ATTACH_N=${ATTACH_N:-200000} WEAK_N=${WEAK_N:-200000}

die() { echo "run_specials: $*" >&2; exit 1; }
mkdir -p "$BUILD_DIR" || die "cannot create $BUILD_DIR"
BIN=$BUILD_DIR/bench-specials
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "== building (Release) in $BUILD_DIR"
  cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DCGC_BUILD_TESTS=OFF >"$BUILD_DIR/specials-build.log" 2>&1 &&
    cmake --build "$BUILD_DIR" -j "$JOBS" --target bench_specials_all >>"$BUILD_DIR/specials-build.log" 2>&1 ||
    die "build failed, see $BUILD_DIR/specials-build.log"
fi
[ -x "$BIN/bench_specials" ] || die "$BIN/bench_specials is missing"
have_bdwgc=0
[ -x "$BIN/bench_specials_bdwgc" ] && have_bdwgc=1

stamp=$(date +%Y%m%d-%H%M%S)
RESULTS=$BUILD_DIR/specials-results-$stamp.txt
: >"$RESULTS"
echo "== $RUNS runs of each program; machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$RUNS"); do
  progs="bench_specials"
  [ $have_bdwgc = 1 ] && progs="bench_specials bench_specials_bdwgc"
  # Alternate which program goes first, so drifts in machine load spread.
  if [ $((r % 2)) = 0 ] && [ $have_bdwgc = 1 ]; then progs="bench_specials_bdwgc bench_specials"; fi
  for p in $progs; do
    impl=cgc
    [ "$p" = bench_specials_bdwgc ] && impl=bdwgc
    if ! out=$("$BIN/$p" 2>&1); then
      echo "run $r: $p FAILED:"; echo "$out" | tail -5
      continue
    fi
    echo "$out" | grep '^RESULT' | sed "s/^RESULT /RESULT run=$r impl=$impl /" >>"$RESULTS"
  done
  # The cleanup variant with the cleanups run on the program's own thread.
  if out=$(CGC_DEBUG=cleanups=manual "$BIN/bench_specials" release_here 2>&1); then
    echo "$out" | grep '^RESULT' | sed "s/^RESULT /RESULT run=$r impl=cgc_here /" >>"$RESULTS"
  else
    echo "run $r: bench_specials release_here FAILED:"; echo "$out" | tail -5
  fi
  printf "  run %d done\n" "$r"
done
echo "   (load after: $(cut -d' ' -f1-3 /proc/loadavg))"

# median KEYFILTER FIELD -> "median min max" over the matching RESULT lines.
# KEYFILTER is a list of field=value that must all appear.
stat() {
  local field=$1; shift
  awk -v field="$field" -v filt="$*" '
    BEGIN { n = split(filt, want, " ") }
    /^RESULT/ {
      ok = 1
      for (i = 1; i <= n; i++) { if (index(" " $0 " ", " " want[i] " ") == 0) { ok = 0; break } }
      if (!ok) next
      for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == field) v[m++] = kv[2] + 0 }
    }
    END {
      if (m == 0) { print "NA NA NA"; exit }
      for (i = 0; i < m; i++) for (j = i + 1; j < m; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      med = (m % 2) ? v[int(m / 2)] : (v[m / 2 - 1] + v[m / 2]) / 2
      printf "%.1f %.1f %.1f\n", med, v[0], v[m - 1]
    }' "$RESULTS"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "NA" || b == "NA" || b <= 0) print "NA"; else printf "%.2f", a / b }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { if (v == "NA") print "n/a"; else if (v + 0 <= t + 0) print "MET"; else print "NOT MET" }'; }

echo
echo "== release: malloc(100) per op, released by ... (ns per op until every object is freed; median [min..max])"
printf "  %-34s %26s %26s\n" "" "wall clock" "CPU, all threads"
row() { # label impl variant
  read -r w wmin wmax < <(stat ns_per_op bench=release "impl=$2" "variant=$3")
  read -r c cmin cmax < <(stat cpu_ns_per_op bench=release "impl=$2" "variant=$3")
  printf "  %-34s %8s [%6s..%6s] %8s [%6s..%6s]\n" "$1" "$w" "$wmin" "$wmax" "$c" "$cmin" "$cmax"
}
row "(a) free() at once" cgc free
row "    free() on another thread (floor)" cgc xfree
row "(b) cgc cleanup on a wrapper" cgc cleanup
row "(c) cgc finalizer on a wrapper" cgc finalizer
row "    (b), cleanups run on this thread" cgc_here cleanup_here
if [ $have_bdwgc = 1 ]; then
  row "    free() at once (bdwgc process)" bdwgc free
  row "(d) bdwgc finalizer on a wrapper" bdwgc bdwgc_finalizer
fi
a=$(stat ns_per_op bench=release impl=cgc variant=free | cut -d' ' -f1)
b=$(stat ns_per_op bench=release impl=cgc variant=cleanup | cut -d' ' -f1)
c=$(stat ns_per_op bench=release impl=cgc variant=finalizer | cut -d' ' -f1)
ac=$(stat cpu_ns_per_op bench=release impl=cgc variant=free | cut -d' ' -f1)
bc=$(stat cpu_ns_per_op bench=release impl=cgc variant=cleanup | cut -d' ' -f1)
cc=$(stat cpu_ns_per_op bench=release impl=cgc variant=finalizer | cut -d' ' -f1)
x=$(stat ns_per_op bench=release impl=cgc variant=xfree | cut -d' ' -f1)
rb=$(ratio "$b" "$a"); rc=$(ratio "$c" "$a")
echo
echo "  ratios to (a), wall clock (CPU time in parentheses):"
echo "    (b) cleanup   / free: ${rb}x ($(ratio "$bc" "$ac")x)   target <= 3x: $(verdict "$rb" 3)   (Go 1.25: 7x)"
echo "    (c) finalizer / free: ${rc}x ($(ratio "$cc" "$ac")x)   target <= 4x: $(verdict "$rc" 4)   (Go 1.25: 13x)"
echo "    free() on another thread / free: $(ratio "$x" "$a")x  (what any cleanup thread costs glibc malloc; no target)"
h=$(stat ns_per_op bench=release impl=cgc_here variant=cleanup_here | cut -d' ' -f1)
ha=$(stat ns_per_op bench=release impl=cgc_here variant=free | cut -d' ' -f1)
echo "    (b) with CGC_DEBUG=cleanups=manual, cgc_run_cleanups() every 1024 ops / free: $(ratio "$h" "$ha")x  (no cleanup thread)"
if [ $have_bdwgc = 1 ]; then
  d=$(stat ns_per_op bench=release impl=bdwgc variant=bdwgc_finalizer | cut -d' ' -f1)
  dc=$(stat cpu_ns_per_op bench=release impl=bdwgc variant=bdwgc_finalizer | cut -d' ' -f1)
  echo "    (d) bdwgc finalizer / free: $(ratio "$d" "$a")x ($(ratio "$dc" "$ac")x)   (reported: about 17x)"
fi

echo
echo "== attach: ns per cgc_add_cleanup and per cgc_cleanup_stop on live objects (median [min..max])"
printf "  %-8s %-14s %9s %26s %26s\n" size order attached add stop
for size in 16 1024; do
  for order in alloc reverse one_per_page; do
    read -r n _ < <(stat attached bench=attach "size=$size" "order=$order")
    read -r ad admin admax < <(stat add_ns bench=attach "size=$size" "order=$order")
    read -r st stmin stmax < <(stat stop_ns bench=attach "size=$size" "order=$order")
    printf "  %-8s %-14s %9s %8s [%6s..%6s] %8s [%6s..%6s]\n" "$size" "$order" "${n%.*}" "$ad" "$admin" "$admax" "$st" \
      "$stmin" "$stmax"
  done
done
echo "  (16-byte objects: 512 per 8 KiB span; 1 KiB objects: 32 per 32 KiB span; one_per_page: the object at"
echo "   the start of each 8 KiB page, i.e. one object with specials per span of 16-byte objects, four per"
echo "   span of 1 KiB objects)"

echo
echo "== weak handles (median [min..max])"
for f in make_new_ns make_existing_ns value_ns gc_ns_per_handle pause_without_us pause_with_us; do
  read -r v vmin vmax < <(stat "$f" bench=weak)
  printf "  %-20s %10s [%s..%s]\n" "$f" "$v" "$vmin" "$vmax"
done
echo "  (gc_ns_per_handle: (pause with N live handles - pause without) / N, N=$WEAK_N)"
echo
echo "== live objects with a cleanup: the collector's pause time per object (median [min..max])"
for f in gc_ns_per_cleanup pause_without_us pause_with_us; do
  read -r v vmin vmax < <(stat "$f" bench=live)
  printf "  %-20s %10s [%s..%s]\n" "$f" "$v" "$vmin" "$vmax"
done
echo
echo "results: $RESULTS"
