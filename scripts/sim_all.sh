#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# sim_all.sh: runs larder-sim over every (trace, capacity) listed in the traces
# README and compares with its LRU and Caffeine 2.6.2 columns.
#
# Usage: scripts/sim_all.sh [SIM_BINARY] [POLICY] [TRACES_DIR]
#   SIM_BINARY  default: build/release/bench/larder-sim
#   POLICY      default: adaptive (lru, tinylfu, adaptive)
#   TRACES_DIR  default: ../shared/traces relative to the checkout (must hold README.md and
#               *.txt.gz)
# Env: JOBS (parallel traces, default 2), SHARDS (default 1), OPT=1 (also run Belady),
#      SIM_ARGS (more larder-sim flags, e.g. "--seed 3" or "--engine core --window 0.2").
#
# Prints one line per point: trace, capacity, ours, LRU, Caffeine, best-of-both,
# OPT (README's), delta vs best (pp), then the averages and the number of points more than
# 1pp below best-of-both.
set -euo pipefail
SIM=${1:-build/release/bench/larder-sim}
POLICY=${2:-adaptive}
DIR=${3:-$(cd "$(dirname "$0")/.." && pwd)/../shared/traces}
JOBS=${JOBS:-2}
SHARDS=${SHARDS:-1}
OPTFLAG=""
SIM_ARGS=${SIM_ARGS:-}
[[ "${OPT:-0}" == 1 ]] && OPTFLAG="--opt"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# README rows: | trace | capacity | LRU | Caffeine | OPT |
grep -E '^\| [a-z0-9_-]+ \| +[0-9]+ \|' "$DIR/README.md" |
  awk -F'|' '{gsub(/ /,"",$2); gsub(/ /,"",$3); gsub(/ /,"",$4); gsub(/ /,"",$5); gsub(/ /,"",$6);
              print $2, $3, $4, $5, $6}' > "$tmp/ref"

# One larder-sim run per trace, all its capacities at once.
awk '{caps[$1] = caps[$1] ? caps[$1] "," $2 : $2} END {for (t in caps) print t, caps[t]}' "$tmp/ref" |
  xargs -P "$JOBS" -n 2 sh -c \
    '"$0" --trace "'"$DIR"'/$1.txt.gz" --capacity "$2" --policy "'"$POLICY"'" --shards "'"$SHARDS"'" '"$OPTFLAG $SIM_ARGS"' > "'"$tmp"'/out.$1"' \
    "$SIM"

cat "$tmp"/out.* > "$tmp/all"
awk -v policy="$POLICY" '
  FNR == NR {
    for (i = 1; i <= NF; ++i) { split($i, kv, "="); f[kv[1]] = kv[2] }
    if (f["policy"] == policy) ours[f["trace"] " " f["capacity"]] = f["hit_ratio"]
    if (f["policy"] == "opt") opt[f["trace"] " " f["capacity"]] = f["hit_ratio"]
    next
  }
  {
    key = $1 " " $2
    if (!(key in ours)) { printf "%-20s %7s  MISSING\n", $1, $2; bad++; next }
    best = ($3 > $4) ? $3 : $4
    d = ours[key] - best
    flag = (d < -1.0) ? "  <-- below" : ""
    printf "%-20s %7d  ours %6.2f  lru %6.2f  caffeine %6.2f  best %6.2f  opt %6.2f  delta %+6.2f%s\n",
           $1, $2, ours[key], $3, $4, best, $5, d, flag
    n++; so += ours[key]; sl += $3; sc += $4; sb += best; sopt += $5
    if (d < -1.0) below++
    if (n == 1 || d < worst) { worst = d; worst_at = $1 " " $2 }
  }
  END {
    printf "\npoints %d  policy %s\n", n, policy
    printf "average: ours %.2f  lru %.2f  caffeine-2.6.2 %.2f  best-of-both %.2f  opt %.2f\n",
           so / n, sl / n, sc / n, sb / n, sopt / n
    printf "points more than 1pp below best-of-both: %d\n", below + 0
    printf "worst delta: %+.2f (%s)\n", worst, worst_at
  }' "$tmp/all" "$tmp/ref"
