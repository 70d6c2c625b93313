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
larder_lint_files() {
  git ls-files '*.h' '*.cc' | grep -v '^tests/fuzz/corpus/'
}

larder_lint_tools() {
  fmt=clang-format-14 tidy=clang-tidy-14
  command -v $fmt >/dev/null || fmt=clang-format
  command -v $tidy >/dev/null || tidy=clang-tidy
}

# larder_lint_format: clang-format --dry-run over every C++ file.
larder_lint_format() {
  local fmt tidy bad=()
  larder_lint_tools
  while IFS= read -r f; do
    $fmt --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
  done < <(larder_lint_files)
  if ((${#bad[@]} > 0)); then
    echo "lint: clang-format: ${#bad[@]} file(s) not formatted (scripts/lint.sh --fix):" >&2
    printf '  %s\n' "${bad[@]}" >&2
    return 1
  fi
  echo "lint: clang-format: $(larder_lint_files | wc -l) files formatted"
}

# larder_lint_tidy BUILD_DIR: clang-tidy over src/ and examples/ .cc files
# that BUILD_DIR compiles.
larder_lint_tidy() {
  local build=${1:-build/dev} fmt tidy out srcs n=0
  larder_lint_tools
  if [[ ! -f $build/compile_commands.json ]]; then
    cmake --preset dev >/dev/null || return 1
    build=build/dev
  fi
  out=$(mktemp)
  # examples/guides/ are left out: ten test programs (built with -Werror in
  # the dev preset) that would add minutes to CI for a step that only prints.
  mapfile -t srcs < <(git ls-files 'src/*.cc' 'examples/*.cc' 'examples/**/*.cc' |
    grep -v '^examples/guides/')
  for f in "${srcs[@]}"; do
    grep -q "\"file\": \".*/$f\"" "$build/compile_commands.json" || continue
    n=$((n + 1))
    $tidy -p "$build" --quiet "$f" >>"$out" 2>/dev/null
  done
  if grep -q "warning:" "$out"; then
    echo "lint: clang-tidy: $(grep -c 'warning:' "$out") finding(s) in $n files:" >&2
    grep -A3 "warning:" "$out" >&2
    rm -f "$out"
    return 1
  fi
  echo "lint: clang-tidy: $n files clean"
  rm -f "$out"
}

larder_lint() {
  local rc=0
  larder_lint_format || rc=1
  larder_lint_tidy "${1:-build/dev}" || rc=1
  return $rc
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -uo pipefail
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
