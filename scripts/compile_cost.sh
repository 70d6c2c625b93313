#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# compile_cost.sh: what one user's file costs to compile. Compiles each
# bench/compile/*.cc the way a service would (g++ -std=c++20 -O2 -g, -c, with
# larder's include/ on the path) and reports wall seconds and peak memory
# (/usr/bin/time -v), best of RUNS, next to bench/compile/reference.cc
# (abseil + hiredis + std containers, compiled the same way), and each file's
# ratio to the reference of the same include directory. The ratio is taken on
# CPU seconds (user + sys): on a shared machine wall seconds swing with the
# load, CPU seconds much less.
#
# With several include directories (e.g. a checkout of main's include/ and
# this tree's), the runs are interleaved (run 1 of every directory, then run
# 2, ...), so a busy machine slows all of them alike: compare the ratios.
#
#   scripts/compile_cost.sh [DIR_WITH_CC_FILES] [INCLUDE_DIR ...]
#   RUNS=2 CXX=g++ CXXFLAGS="-std=c++20 -O2 -g" scripts/compile_cost.sh
#   git -C . archive main include | tar -x -C /tmp/main   # main's headers
#   scripts/compile_cost.sh bench/compile /tmp/main/include include
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$root/bench/compile}"
shift || true
incs=("$@")
((${#incs[@]} > 0)) || incs=("$root/include")
runs="${RUNS:-2}"
cxx="${CXX:-g++}"
flags="${CXXFLAGS:--std=c++20 -O2 -g}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
files=("$dir"/*.cc)

declare -A best_s best_kb best_cpu
for ((i = 0; i < runs; i++)); do
  for ((d = 0; d < ${#incs[@]}; d++)); do
    for f in "${files[@]}"; do
      # shellcheck disable=SC2086
      /usr/bin/time -v "$cxx" $flags -I"${incs[$d]}" -c "$f" -o "$tmp/out.o" 2> "$tmp/time.txt" ||
        { cat "$tmp/time.txt" >&2; exit 1; }
      s=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); t = 0;
            for (j = 1; j <= n; j++) t = t * 60 + p[j]; print t}' "$tmp/time.txt")
      kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tmp/time.txt")
      cpu=$(awk -F': ' '/User time|System time/ {t += $2} END {print t}' "$tmp/time.txt")
      key="$d/$f"
      if [[ -z "${best_cpu[$key]:-}" ]] || awk -v a="$cpu" -v b="${best_cpu[$key]}" 'BEGIN { exit !(a < b) }'; then
        best_cpu[$key]=$cpu
      fi
      if [[ -z "${best_s[$key]:-}" ]] || awk -v a="$s" -v b="${best_s[$key]}" 'BEGIN { exit !(a < b) }'; then
        best_s[$key]=$s
      fi
      if [[ -z "${best_kb[$key]:-}" ]] || ((kb < best_kb[$key])); then best_kb[$key]=$kb; fi
    done
  done
done

for ((d = 0; d < ${#incs[@]}; d++)); do
  ref="${best_cpu[$d/$dir/reference.cc]:-}"
  printf 'include: %s\n' "${incs[$d]}"
  printf '  %-24s %10s %10s %10s %10s   (%s %s, best of %s)\n' file wall_s cpu_s peak_MB x_ref_cpu \
    "$cxx" "$flags" "$runs"
  for f in "${files[@]}"; do
    key="$d/$f"
    ratio="-"
    [[ -n "$ref" ]] && ratio=$(awk -v a="${best_cpu[$key]}" -v b="$ref" 'BEGIN { printf "%.2f", a / b }')
    printf '  %-24s %10.2f %10.2f %10.0f %10s\n' "$(basename "$f")" "${best_s[$key]}" \
      "${best_cpu[$key]}" "$((best_kb[$key] / 1024))" "$ratio"
  done
done
