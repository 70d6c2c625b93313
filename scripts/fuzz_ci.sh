# SPDX-License-Identifier: Apache-2.0
# Sourced by scripts/test.sh and scripts/fuzz.sh: build and run larder's
# libFuzzer targets (the `fuzz` preset, clang-14).
#
#   larder_fuzz_build            configure + build the fuzz preset
#   larder_fuzz_run TARGET SECS  run one target from its seeds for SECS seconds
#   larder_fuzz_all              build, then run every target for
#                                LARDER_FUZZ_SECONDS (default 30; 0 skips fuzzing)

LARDER_FUZZ_TARGETS=(fuzz_redis_entry fuzz_journal_replay fuzz_redis_reply fuzz_bus_message
                     fuzz_redis_uri fuzz_trace_reader)

larder_fuzz_build() {
  cmake --preset fuzz >build-fuzz.configure.log 2>&1 || { cat build-fuzz.configure.log; return 1; }
  rm -f build-fuzz.configure.log
  cmake --build --preset fuzz -j "$(nproc)" --target "${LARDER_FUZZ_TARGETS[@]}"
}

larder_fuzz_run() {
  local target=$1 seconds=$2
  shift 2
  local bin=build/fuzz/tests/fuzz/$target
  local work=build/fuzz/corpus/$target
  local art=build/fuzz/artifacts/
  mkdir -p "$work" "$art"
  local dict=()
  if [[ -f tests/fuzz/$target.dict ]]; then dict=(-dict="tests/fuzz/$target.dict"); fi
  local log=build/fuzz/$target.log
  # -max_len 4096: inputs stay small (fast) and fit a socket buffer (fuzz_redis_reply).
  # -rss_limit_mb / -malloc_limit_mb: an allocation a few bytes of input can ask
  # for is a finding (a server or file must not make larder allocate gigabytes).
  if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "$bin" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
      -malloc_limit_mb=512 -print_final_stats=1 -artifact_prefix="$art" "${dict[@]}" "$@" \
      "$work" "tests/fuzz/corpus/$target" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: $target FAILED (log: $log; input saved under $art)" >&2
    return 1
  fi
  local execs
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  echo "fuzz: $target $execs execs in ${seconds} s ($(grep -c '' <(ls "$work")) corpus files)"
}

larder_fuzz_all() {
  local seconds=${LARDER_FUZZ_SECONDS:-30}
  if ((seconds == 0)); then
    echo "fuzz: skipped (LARDER_FUZZ_SECONDS=0)"
    return 0
  fi
  larder_fuzz_build || return 1
  local t rc=0
  for t in "${LARDER_FUZZ_TARGETS[@]}"; do larder_fuzz_run "$t" "$seconds" || rc=1; done
  return $rc
}
