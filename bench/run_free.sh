#!/usr/bin/env bash
# Explicit free, growable buffers and arenas: cgc against glibc malloc,
# mimalloc and bdwgc, side by side in one run (see docs/free.md).
#
#   bench/run_free.sh            build (Release, in build-bench-free/) and run everything
#   QUICK=1 bench/run_free.sh    3 runs, smaller inputs
#
# Environment (defaults in brackets):
#   RUNS=5            runs of every variant, interleaved round by round
#   METRIC=wall       wall | cpu: which time is tabled first (both are recorded
#                     and tabled; cpu is the process's CPU time, helper threads
#                     included, and is steadier on a loaded machine)
#   BUILD_DIR=<repo>/build-bench-free
#   BENCHES="builder pair nodes allocpath"
#   CALLGRIND=1       count instructions with valgrind --tool=callgrind
#   RUN_TIMEOUT=300   seconds before one run is killed
#   SKIP_BUILD=1      use the programs already built
#   JOBS=2            parallel compile jobs
#
# Files in BUILD_DIR: free-results-<date>.txt (every RESULT line, tagged with
# its round), free-runs-<date>.log (full output), free-summary-<date>.txt
# (the tables printed at the end).
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench-free}
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  RUNS=${RUNS:-3}
  SCALE=5
else
  RUNS=${RUNS:-5}
  SCALE=1
fi
METRIC=${METRIC:-wall}
BENCHES=${BENCHES:-builder pair nodes allocpath}
CALLGRIND=${CALLGRIND:-1}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
JOBS=${JOBS:-2}
case $METRIC in wall | cpu) ;; *) echo "run_free: METRIC is wall or cpu" >&2; exit 1 ;; esac

die() { echo "run_free: $*" >&2; exit 1; }
mkdir -p "$BUILD_DIR" || die "cannot create $BUILD_DIR"
BIN=$BUILD_DIR/bench-free
STAMP=$(date +%Y%m%d-%H%M%S)
RESULTS=$BUILD_DIR/free-results-$STAMP.txt
RUNLOG=$BUILD_DIR/free-runs-$STAMP.log
SUMMARY=$BUILD_DIR/free-summary-$STAMP.txt
: >"$RESULTS"
: >"$RUNLOG"

# ---------------------------------------------------------------- build ---
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "== building (Release) in $BUILD_DIR"
  LOG=$BUILD_DIR/free-build.log
  cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DCGC_BUILD_TESTS=OFF >"$LOG" 2>&1 ||
    { tail -n 20 "$LOG"; die "configuring failed (see $LOG)"; }
  cmake --build "$BUILD_DIR" -j "$JOBS" --target bench_free >>"$LOG" 2>&1 ||
    { grep -E 'error|Error' "$LOG" | head -n 20; die "building failed (see $LOG)"; }
fi
[ -x "$BIN/free_cgc" ] || die "$BIN/free_cgc is missing"
ALLOCS=""
for a in cgc glibc mimalloc bdwgc; do [ -x "$BIN/free_$a" ] && ALLOCS="$ALLOCS $a"; done
have() { case " $ALLOCS " in *" $1 "*) return 0 ;; esac; return 1; }

# ------------------------------------------------------------- variants ---
# One line per program run: "<alloc> <arguments>".
VARIANTS=()
add() { have "$1" && VARIANTS+=("$*"); }
for b in $BENCHES; do
  case $b in
    builder)
      for w in 100 1000; do
        n=$((50000000 / w / SCALE))
        add cgc builder -w $w -n $n
        add cgc builder -w $w -n $n -d
        add cgc builder -w $w -n $n -F
        add cgc builder -w $w -n $((n / 8)) -l 64
        add cgc builder -w $w -n $((n / 8)) -l 64 -d
        add glibc builder -w $w -n $n
        add mimalloc builder -w $w -n $n
        add bdwgc builder -w $w -n $n
        add bdwgc builder -w $w -n $n -d
      done
      # Large buffers (2 MiB strings: the growing buffer is a large object).
      n=$((50000000 / 100000 / SCALE))
      add cgc builder -w 100000 -n $n
      add cgc builder -w 100000 -n $n -d
      add cgc builder -w 100000 -n $n -F
      add glibc builder -w 100000 -n $n
      add mimalloc builder -w 100000 -n $n
      add bdwgc builder -w 100000 -n $n
      add bdwgc builder -w 100000 -n $n -d ;;
    pair)
      for s in 32 0; do
        for a in cgc glibc mimalloc bdwgc; do add $a pair -s $s -n $((50000000 / SCALE)); done
      done ;;
    nodes)
      for a in cgc glibc mimalloc bdwgc; do add $a nodes -n 1000000 -r $((20 / SCALE)); done ;;
    allocpath)
      add cgc allocpath -n $((50000000 / SCALE))
      add cgc allocpath -n $((50000000 / SCALE)) -f ;;
    *) die "unknown benchmark $b" ;;
  esac
done
NV=${#VARIANTS[@]}
[ "$NV" -gt 0 ] || die "nothing to run"

{
  echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
  echo "kernel: $(uname -r); glibc $(ldd --version | head -n1 | awk '{print $NF}')"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "runs: $RUNS; metric: $METRIC (ns per unit; medians)"
} | tee "$SUMMARY"

# ------------------------------------------------------------------ run ---
echo "== $NV variants x $RUNS runs"
for r in $(seq 1 "$RUNS"); do
  for k in $(seq 0 $((NV - 1))); do
    v=${VARIANTS[$(((k + r) % NV))]}
    set -- $v
    alloc=$1
    shift
    out=$(timeout "$RUN_TIMEOUT" "$BIN/free_$alloc" "$@" 2>&1)
    rc=$?
    { echo "## round $r: free_$alloc $*  (status $rc)"; echo "$out"; } >>"$RUNLOG"
    if [ $rc -ne 0 ]; then
      echo "FAILED: free_$alloc $* (status $rc)"
      echo "$out" | tail -n 5
      continue
    fi
    echo "$out" | grep '^RESULT' | sed "s/^RESULT /RESULT round=$r /" >>"$RESULTS"
  done
  echo "   round $r of $RUNS done (load $(cut -d' ' -f1 /proc/loadavg))"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$SUMMARY"

# -------------------------------------------------------------- summary ---
# Medians per (bench, param, alloc, variant) of wall_ns or cpu_ns, and of gcs.
medians() { # metric -> file
awk -v metric="${1}_ns" '
  /^RESULT/ {
    delete f
    for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    key = f["bench"] " " f["param"] " " f["alloc"] " " f["variant"]
    n[key]++; val[key, n[key]] = f[metric] + 0; gc[key, n[key]] = f["gcs"] + 0
    lo = (key in mn) ? mn[key] : 1e300; hi = (key in mx) ? mx[key] : 0
    if (f[metric] + 0 < lo) mn[key] = f[metric] + 0
    if (f[metric] + 0 > hi) mx[key] = f[metric] + 0
  }
  function median(arr, key, cnt,   i, j, t, a) {
    for (i = 1; i <= cnt; i++) a[i] = arr[key, i]
    for (i = 2; i <= cnt; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return cnt % 2 ? a[(cnt + 1) / 2] : (a[cnt / 2] + a[cnt / 2 + 1]) / 2
  }
  END { for (k in n) printf "%s %.3f %.3f %.3f %d %d\n", k, median(val, k, n[k]), mn[k], mx[k], median(gc, k, n[k]), n[k] }
 ' "$RESULTS" | sort >"$2"
}

# get BENCH PARAM ALLOC VARIANT -> median (or empty)
get() { awk -v k="$1 $2 $3 $4" '($1" "$2" "$3" "$4) == k { print $5 }' "$MED"; }
getgc() { awk -v k="$1 $2 $3 $4" '($1" "$2" "$3" "$4) == k { print $8 }' "$MED"; }
spread() { awk -v k="$1 $2 $3 $4" '($1" "$2" "$3" "$4) == k { printf "%.1f..%.1f", $6, $7 }' "$MED"; }
fmt() { [ -n "$1" ] && printf "%.1f" "$1" || printf "-"; }
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }' || printf "-"; }
# paired METRIC BENCH PARAM ALLOC VARIANT_NUM VARIANT_DEN -> "median (min..max)" of the
# per-round ratios num/den: rounds run the variants back to back, so a ratio
# within one round cancels the machine's slow drifts that medians keep.
paired() {
  awk -v metric="${1}_ns" -v k="$2 $3 $4" -v vn="$5" -v vd="$6" '
    /^RESULT/ {
      delete f
      for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
      if (f["bench"] " " f["param"] " " f["alloc"] != k) next
      if (f["variant"] == vn) num[f["round"]] = f[metric] + 0
      if (f["variant"] == vd) den[f["round"]] = f[metric] + 0
    }
    END {
      n = 0
      for (r in num) if ((r in den) && den[r] > 0) a[++n] = num[r] / den[r]
      if (!n) { printf "-"; exit }
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      printf "%.2f (%.2f..%.2f)", n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2, a[1], a[n]
    }' "$RESULTS"
}
verdict() { # value op target
  [ "$1" = "-" ] && { printf "n/a"; return; }
  awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { ok = (op == ">=") ? v >= t : v <= t; printf ok ? "MET" : "NOT MET" }'
}

tables() { # metric
  MED=$BUILD_DIR/free-medians-$1-$STAMP.txt
  medians "$1" "$MED"
  echo
  echo "======== $1-clock ns (medians of $RUNS runs) ========"
  echo
  echo "String builder: ns per string (W writes of 8-32 bytes, buffer doubling from 8 bytes)"
  echo "  (a) cgc_realloc, finished string dropped; (b) new buffer, old one dropped; (a') as (a), finished string freed too"
  printf "%-6s %10s %10s %10s %8s %-11s %8s %10s %10s %9s %10s %10s\n" W "(a)" "(b)" "(a')" "(b)/(a)" "target" \
    "(b)/(a')" "glibc" "(a)/glibc" mimalloc "bdwgc_re" "bdwgc_drop"
  for w in 100 1000; do
    a=$(get builder W$w cgc realloc); b=$(get builder W$w cgc drop); f=$(get builder W$w cgc realloc_free)
    g=$(get builder W$w glibc realloc)
    m=$(get builder W$w mimalloc realloc); br=$(get builder W$w bdwgc realloc); bd=$(get builder W$w bdwgc drop)
    t=1.5; [ $w = 1000 ] && t=1.8
    rb=$(ratio "$b" "$a")
    printf "%-6s %10s %10s %10s %8s %-11s %8s %10s %10s %9s %10s %10s\n" "$w" "$(fmt "$a")" "$(fmt "$b")" "$(fmt "$f")" \
      "$rb" ">=$t $(verdict "$rb" ">=" $t)" "$(ratio "$b" "$f")" "$(fmt "$g")" "$(ratio "$a" "$g")" "$(fmt "$m")" \
      "$(fmt "$br")" "$(fmt "$bd")"
  done
  w=100000
  a=$(get builder W$w cgc realloc); b=$(get builder W$w cgc drop); f=$(get builder W$w cgc realloc_free)
  g=$(get builder W$w glibc realloc); m=$(get builder W$w mimalloc realloc)
  br=$(get builder W$w bdwgc realloc); bd=$(get builder W$w bdwgc drop)
  printf "%-6s %10s %10s %10s %8s %-11s %8s %10s %10s %9s %10s %10s\n" "$w" "$(fmt "$a")" "$(fmt "$b")" "$(fmt "$f")" \
    "$(ratio "$b" "$a")" "(no target)" "$(ratio "$b" "$f")" "$(fmt "$g")" "$(ratio "$a" "$g")" "$(fmt "$m")" \
    "$(fmt "$br")" "$(fmt "$bd")"
  printf "  W=100000: 2 MiB strings, so the buffer is a large object from 64 KiB on and cgc_realloc resizes it in\n"
  printf "  place when the pages after it are free; (a')/glibc %s\n" "$(ratio "$f" "$g")"
  for w in 100 1000; do
    a=$(get builder W${w}_live64MiB cgc realloc); b=$(get builder W${w}_live64MiB cgc drop)
    printf "  with a 64 MiB live heap, W=%s: (a) %s, (b) %s, (b)/(a) %s\n" $w "$(fmt "$a")" "$(fmt "$b")" "$(ratio "$b" "$a")"
  done
  for w in 100 1000; do
    printf "  W=%s (b)/(a) per round, median (min..max): %s\n" $w "$(paired "$1" builder W$w cgc drop realloc)"
  done
  for w in 100 1000; do
    printf "  W=%s collections per run (median): cgc realloc %s, cgc drop %s; spread (a) %s, (b) %s\n" "$w" \
      "$(getgc builder W$w cgc realloc)" "$(getgc builder W$w cgc drop)" \
      "$(spread builder W$w cgc realloc)" "$(spread builder W$w cgc drop)"
  done

  echo
  echo "Allocate + free pairs: ns per pair (lifo: freed at once; ring: freed 64 pairs later)"
  printf "%-7s %-5s %8s %8s %9s %8s %10s %-10s %10s\n" size order cgc glibc mimalloc bdwgc cgc/glibc "target<=1" cgc/bdwgc
  for s in 32B mixed; do
    for o in lifo ring; do
      c=$(get pair $s cgc $o); g=$(get pair $s glibc $o); m=$(get pair $s mimalloc $o); bw=$(get pair $s bdwgc $o)
      rg=$(ratio "$c" "$g")
      printf "%-7s %-5s %8s %8s %9s %8s %10s %-10s %10s\n" $s $o "$(fmt "$c")" "$(fmt "$g")" "$(fmt "$m")" "$(fmt "$bw")" \
        "$rg" "$(verdict "$rg" "<=" 1.0)" "$(ratio "$c" "$bw")"
    done
  done

  echo
  echo "1M list nodes of 32 bytes, walked and released: ns per node (per round: x 1e6)"
  ar=$(get nodes 1000000x32B cgc arena)
  printf "%-24s %10s %12s\n" variant ns/node "vs arena"
  for v in "cgc arena" "cgc collected" "glibc malloc_free" "mimalloc malloc_free" "bdwgc collected"; do
    set -- $v
    x=$(get nodes 1000000x32B "$1" "$2")
    printf "%-24s %10s %12s\n" "$1 $2" "$(fmt "$x")" "$(ratio "$x" "$ar")"
  done

  echo
  echo "The plain allocation path: cgc_alloc(32), dropped: ns per allocation"
  nf=$(get allocpath 32B cgc nofree); wf=$(get allocpath 32B cgc withfree)
  printf "  program that never frees: %s; after heavy cgc_free traffic: %s; ratio %s\n" "$(fmt "$nf")" "$(fmt "$wf")" \
    "$(ratio "$wf" "$nf")"
}
{ tables "$METRIC"; [ "$METRIC" = wall ] && tables cpu || tables wall; } | tee -a "$SUMMARY"

# ----------------------------------------------------------------- duel ---
# cgc's pairs against glibc's in one process, alternating blocks: the ratio
# of two allocators measured at nearly the same moment (bench_free.c).
case " $BENCHES " in
  *" pair "*)
    {
      echo
      echo "Allocate + free pairs, interleaved in one process (101 blocks of each; wall-clock ns per pair)"
      printf "%-7s %-5s %8s %8s %12s %-10s %18s\n" size order cgc glibc cgc/glibc "target<=1" "quartiles of ratio"
      for s in 32 0; do
        out=$(timeout "$RUN_TIMEOUT" "$BIN/free_cgc" duel -s $s -n $((20200000 / SCALE)) 2>&1)
        echo "$out" | grep '^RESULT' >>"$RESULTS"
        echo "$out" | grep '^RESULT' | while read -r line; do
          val() { echo "$line" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
          printf "%-7s %-5s %8s %8s %12s %-10s %18s\n" "$(val param)" "$(val variant)" "$(val cgc_ns)" "$(val glibc_ns)" \
            "$(val ratio)" "$(verdict "$(val ratio)" "<=" 1.0)" "$(val q1)..$(val q3)"
        done
      done
    } | tee -a "$SUMMARY" ;;
esac

# ------------------------------------------------------------ callgrind ---
if [ "$CALLGRIND" = 1 ] && command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null; then
  CG=$BUILD_DIR/callgrind-free
  mkdir -p "$CG"
  N=1000000
  # Ir of FUNC in FILE, inclusive (incl=yes) or exclusive.
  ir() {
    callgrind_annotate --inclusive="$3" --threshold=100 "$1" 2>/dev/null |
      awk -v fn="$2" '{ for (i = 1; i <= NF; i++) if ($i ~ (":" fn "$") && $(i+1) ~ /^\[/) { gsub(",", "", $1); print $1; exit } }'
  }
  per() { [ -n "$1" ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }' || printf "-"; }
  {
    echo
    echo "Instructions (valgrind --tool=callgrind, $N calls each)"
    if valgrind --tool=callgrind --callgrind-out-file="$CG/cgc.out" "$BIN/free_cgc" calls -n $N >/dev/null 2>&1; then
      fast=$(ir "$CG/cgc.out" cgc_alloc no)
      drop=$(ir "$CG/cgc.out" alloc_drop_loop yes)
      pairi=$(ir "$CG/cgc.out" pair_loop yes)
      freei=$(ir "$CG/cgc.out" cgc_free yes)
      echo "  cgc_alloc fast path (its own instructions, per call): $(per "$fast" $((2 * N)))"
      echo "  cgc_alloc(32) + drop, per iteration, refills and collections included: $(per "$drop" $N)"
      echo "  cgc_alloc(32) + cgc_free, per pair: $(per "$pairi" $N) (cgc_free: $(per "$freei" $N))"
      rself=$(ir "$CG/cgc.out" cgc_realloc no)
      rall=$(ir "$CG/cgc.out" cgc_realloc yes)
      echo "  cgc_realloc moving a noscan buffer (8 to 2048 bytes by doubling), per call: $(per "$rself" $((N / 10 * 8))) own, $(per "$rall" $((N / 10 * 8))) with the copy"
    fi
    for a in glibc mimalloc bdwgc; do
      have $a || continue
      if valgrind --tool=callgrind --callgrind-out-file="$CG/$a.out" "$BIN/free_$a" pair -s 32 -n $N >/dev/null 2>&1; then
        x=$(ir "$CG/$a.out" pairs_lifo yes)
        echo "  $a alloc(32) + free, per pair: $(per "$x" $((N + N / 10)))"
      fi
    done
  } | tee -a "$SUMMARY"
fi
echo
echo "results: $RESULTS"
echo "summary: $SUMMARY"
