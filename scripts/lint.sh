#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# larder's lint: clang-format in check mode over every C++ file in the
# repository (.clang-format), and clang-tidy with the repository's profile
# (.clang-tidy; the headers under include/larder are checked through the
# files that include them) over the compiled library's sources and the
# examples' .cc files.
#
# Usage: scripts/lint.sh [--fix] [BUILD_DIR]
#   BUILD_DIR  a configured build with compile_commands.json (default
#              build/dev; configured with the dev preset when missing)
#   --fix      rewrite the files with clang-format instead of checking
# Sourced by scripts/test.sh (larder_lint BUILD_DIR); non-zero on findings.
set -uo pipefail

larder_lint_files() {
  git ls-files '*.h' '*.cc' | grep -v '^tests/fuzz/corpus/'
}

larder_lint() {
  local build=${1:-build/dev} rc=0
  local fmt=clang-format-14 tidy=clang-tidy-14
  command -v $fmt >/dev/null || fmt=clang-format
  command -v $tidy >/dev/null || tidy=clang-tidy
  local bad=()
  while IFS= read -r f; do
    $fmt --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
  done < <(larder_lint_files)
  if ((${#bad[@]} > 0)); then
    echo "lint: clang-format: ${#bad[@]} file(s) not formatted (scripts/lint.sh --fix):" >&2
    printf '  %s\n' "${bad[@]}" >&2
    rc=1
  else
    echo "lint: clang-format: $(larder_lint_files | wc -l) files formatted"
  fi
  if [[ ! -f $build/compile_commands.json ]]; then
    cmake --preset dev >/dev/null || return 1
    build=build/dev
  fi
  local out
  out=$(mktemp)
  local srcs
  mapfile -t srcs < <(git ls-files 'src/*.cc' 'examples/*.cc' 'examples/**/*.cc')
  for f in "${srcs[@]}"; do
    grep -q "\"file\": \".*/$f\"" "$build/compile_commands.json" || continue
    $tidy -p "$build" --quiet "$f" >>"$out" 2>/dev/null
  done
  if grep -q "warning:" "$out"; then
    echo "lint: clang-tidy: $(grep -c 'warning:' "$out") finding(s):" >&2
    grep -A3 "warning:" "$out" >&2
    rc=1
  else
    echo "lint: clang-tidy: ${#srcs[@]} files clean"
  fi
  rm -f "$out"
  return $rc
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  cd "$(dirname "$0")/.."
  if [[ ${1:-} == --fix ]]; then
    shift
    fmt=clang-format-14
    command -v $fmt >/dev/null || fmt=clang-format
    larder_lint_files | xargs $fmt -i
    echo "lint: formatted $(larder_lint_files | wc -l) files"
    exit 0
  fi
  larder_lint "$@"
fi
