#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# compile_cost.sh: what one user's file costs to compile. Compiles each
# bench/compile/*.cc the way a service would (g++ -std=c++20 -O2 -g, -c, with
# larder's include/ on the path) and reports wall seconds and peak memory
# (/usr/bin/time -v), best of RUNS, next to bench/compile/reference.cc
# (abseil + hiredis + std containers, compiled the same way).
#
#   scripts/compile_cost.sh [DIR_WITH_CC_FILES] [INCLUDE_DIR]
#   RUNS=2 CXX=g++ CXXFLAGS="-std=c++20 -O2 -g" scripts/compile_cost.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$root/bench/compile}"
inc="${2:-$root/include}"
runs="${RUNS:-2}"
cxx="${CXX:-g++}"
flags="${CXXFLAGS:--std=c++20 -O2 -g}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

printf '%-22s %10s %12s   (%s %s, best of %s)\n' file seconds peak_MB "$cxx" "$flags" "$runs"
for f in "$dir"/*.cc; do
  best_s=""; best_kb=""
  for ((i = 0; i < runs; i++)); do
    # shellcheck disable=SC2086
    /usr/bin/time -v "$cxx" $flags -I"$inc" -c "$f" -o "$tmp/out.o" 2> "$tmp/time.txt" ||
      { cat "$tmp/time.txt" >&2; exit 1; }
    s=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); t = 0;
          for (j = 1; j <= n; j++) t = t * 60 + p[j]; print t}' "$tmp/time.txt")
    kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tmp/time.txt")
    if [[ -z "$best_s" ]] || awk -v a="$s" -v b="$best_s" 'BEGIN { exit !(a < b) }'; then best_s=$s; fi
    if [[ -z "$best_kb" ]] || ((kb < best_kb)); then best_kb=$kb; fi
  done
  printf '%-22s %10.2f %12.0f\n' "$(basename "$f")" "$best_s" "$((best_kb / 1024))"
done
