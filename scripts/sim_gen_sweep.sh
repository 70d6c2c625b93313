#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# sim_gen_sweep.sh: the adaptive policy against the better fixed choice (LRU
# or W-TinyLFU with a 1% window) on larder-sim's synthetic traces (--gen),
# over hash seeds and capacities (issue 17's robustness sweep).
#
# Usage: scripts/sim_gen_sweep.sh [SIM_BINARY]   (default build/release/bench/larder-sim)
# Env: SPECS (space-separated --gen specs), CAPS (comma-separated), SEEDS (space-separated),
#      JOBS (parallel seeds, default 1).
# Prints one line per (trace, capacity, seed): lru, tinylfu, adaptive, best fixed, delta
# (adaptive - best, pp), then per trace the points more than 1pp below and the worst delta.
set -euo pipefail
SIM=${1:-build/release/bench/larder-sim}
SPECS=${SPECS:-"lrustack:0.5:1000000:2000000:20 shift:0.9:500000:2000000:1400000"}
CAPS=${CAPS:-10000,50000,100000,250000,500000}
SEEDS=${SEEDS:-"0 1 2 3 4 5 6 7"}
JOBS=${JOBS:-1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for spec in $SPECS; do
  "$SIM" --gen "$spec" --capacity "$CAPS" --policy lru > "$tmp/lru.$spec"
  printf '%s\n' $SEEDS | xargs -P "$JOBS" -I{} sh -c \
    '"$0" --gen "$1" --capacity "$2" --policy tinylfu,adaptive --seed {} | sed "s/^/seed={} /" > "$3/out.$1.{}"' \
    "$SIM" "$spec" "$CAPS" "$tmp"
done
cat "$tmp"/lru.* > "$tmp/lru"
cat "$tmp"/out.* > "$tmp/all"
awk '
  function kv(line, f,   i, n, a, p) { n = split(line, a, " "); for (i = 1; i <= n; ++i) { split(a[i], p, "="); f[p[1]] = p[2] } }
  FNR == NR { kv($0, f); lru[f["trace"] " " f["capacity"]] = f["hit_ratio"]; next }
  { delete f; kv($0, f); k = f["trace"] " " f["capacity"] " " f["seed"]; v[k " " f["policy"]] = f["hit_ratio"]; keys[k] = 1 }
  END {
    for (k in keys) {
      split(k, q, " "); l = lru[q[1] " " q[2]]; t = v[k " tinylfu"]; a = v[k " adaptive"]
      best = (l > t) ? l : t; d = a - best
      printf "%-42s %7d seed %d  lru %6.2f  tinylfu %6.2f  adaptive %6.2f  best %6.2f  delta %+6.2f%s\n",
             q[1], q[2], q[3], l, t, a, best, d, (d < -1.0) ? "  <-- below" : "" | "sort -k1,1 -k2,2n -k4,4n"
      n[q[1]]++; if (d < -1.0) below[q[1]]++
      if (!(q[1] in worst) || d < worst[q[1]]) { worst[q[1]] = d; wat[q[1]] = q[2] " seed " q[3] }
    }
    close("sort -k1,1 -k2,2n -k4,4n")
    for (t in n) printf "\n%s: points %d, more than 1pp below the better fixed choice: %d, worst delta %+.2f (%s)", t, n[t], below[t] + 0, worst[t], wat[t]
    printf "\n"
  }' "$tmp/lru" "$tmp/all"
