#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# bench_local_store.sh: LocalStore throughput against the baselines of
# bench/local_store_bench, as ratios of medians (these machines are noisy:
# the benchmarks run interleaved in random order, REPS times each, so a slow
# phase of the machine hits every implementation alike).
#
# Usage: scripts/bench_local_store.sh [BENCH_BINARY]   (default build/release/bench/local_store_bench)
# Env: REPS (default 5), MIN_TIME (seconds per run, default 0.3), FILTER (a benchmark regex).
set -euo pipefail
BIN=${1:-build/release/bench/local_store_bench}
REPS=${REPS:-5}
MIN_TIME=${MIN_TIME:-0.3}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$BIN" --benchmark_filter="${FILTER:-(RawFind|ShardedLru16|TbbLru|LocalStore|LocalStoreLru|LocalStorePeek)/(Read|Mixed90_10|Write)/}" \
  --benchmark_repetitions="$REPS" --benchmark_enable_random_interleaving=true \
  --benchmark_report_aggregates_only=true --benchmark_min_time="$MIN_TIME" 2>/dev/null |
  grep '_median ' > "$out"
# name mode cap threads -> M items/s (mawk-compatible: no asorti)
awk '
  function f(x) { return (x == "" || x == 0) ? "-" : sprintf("%.2f", x) }
  {
    split($1, p, "/"); impl = p[1]; sub(/^BM_/, "", impl); mode = p[2]; cap = p[3]; sub(/cap:/, "", cap)
    th = $1; sub(/.*threads:/, "", th); sub(/_median/, "", th)
    rate = ""
    for (i = 2; i <= NF; ++i) if ($i ~ /^items_per_second=/) { rate = $i; sub(/items_per_second=/, "", rate) }
    mult = 1; if (rate ~ /k\/s$/) mult = 0.001; else if (rate ~ /G\/s$/) mult = 1000
    sub(/[kMG]?\/s$/, "", rate)
    v[impl " " mode " " cap " " th] = rate * mult
    keys[mode " " cap " " th] = 1
  }
  END {
    for (k in keys) {
      split(k, q, " ")
      ls = v["LocalStore " k]; raw = v["RawFind " k]; sh = v["ShardedLru16 " k]; one = v["LocalStore " q[1] " " q[2] " 1"]
      printf "%-11s %-8s %-3s %10s %10s %10s %10s %10s %10s %8s %9s %7s\n", q[1], q[2], q[3], f(ls), f(v["LocalStoreLru " k]),
        f(v["LocalStorePeek " k]), f(raw), f(sh), f(v["TbbLru " k]), (raw > 0) ? sprintf("%.3f", ls / raw) : "-",
        (sh > 0) ? sprintf("%.2f", ls / sh) : "-", (q[3] == 2 && one > 0) ? sprintf("%.2f", ls / one) : "-"
    }
  }' "$out" | sort > "$out.table"
echo "M items/s, medians of $REPS interleaved runs ($(basename "$BIN"), min_time $MIN_TIME)"
printf "%-11s %-8s %-3s %10s %10s %10s %10s %10s %10s %8s %9s %7s\n" mode cap thr LocalStore Lru Peek RawFind Sharded16 Tbb "x raw" "x sharded" "2T/1T"
cat "$out.table"
rm -f "$out.table"
