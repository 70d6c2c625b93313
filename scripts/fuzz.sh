#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Runs one libFuzzer target of larder for a while:
#   scripts/fuzz.sh TARGET SECONDS [extra libFuzzer flags...]
#   scripts/fuzz.sh all SECONDS           every target, SECONDS each
# TARGET is one of tests/fuzz/fuzz_*.cc (e.g. fuzz_redis_reply). Builds the
# `fuzz` preset (clang-14) first if needed. The run starts from the committed
# seeds (tests/fuzz/corpus/TARGET, read only) and keeps what it finds in
# build/fuzz/corpus/TARGET; a crash is saved as build/fuzz/artifacts/crash-*
# (minimise it with `build/fuzz/tests/fuzz/TARGET -minimize_crash=1 -runs=10000 FILE`,
# then replay it in a gtest under tests/). Prints "fuzz: TARGET <execs> execs"
# on success; exits non-zero on a crash or a failed property.
set -euo pipefail

cd "$(dirname "$0")/.."
source scripts/fuzz_ci.sh
if (($# < 2)); then
  echo "usage: scripts/fuzz.sh TARGET|all SECONDS [libFuzzer flags...]" >&2
  exit 2
fi
target=$1
seconds=$2
shift 2
larder_fuzz_build
if [[ $target == all ]]; then
  for t in "${LARDER_FUZZ_TARGETS[@]}"; do larder_fuzz_run "$t" "$seconds" "$@"; done
else
  larder_fuzz_run "$target" "$seconds" "$@"
fi
