# SPDX-License-Identifier: Apache-2.0
# Sourced by scripts/test.sh and scripts/soak.sh: the chaos soak
# (tests/integration/redis_chaos_soak_test.cc: a Cache in write-back mode over
# TieredStore(LocalStore, RedisStore) under proxy faults, redis-server
# restarts and SIGSTOPs, and a failing loader and Writer, with an oracle).
#
#   larder_soak_run PRESET SECONDS   build the soak in PRESET, run it SECONDS,
#                                    print its summary ("soak: ..." lines);
#                                    non-zero on a violation
# The soak starts its own redis-server (on PATH). ctest runs it for 5 s in
# every preset; scripts/test.sh runs it once more for LARDER_SOAK_SECONDS
# (default 60; 0 skips) in the dev preset only.

larder_soak_run() {
  local preset=$1 seconds=$2
  local bin=build/$preset/tests/redis_chaos_soak_test
  cmake --build "build/$preset" --target redis_chaos_soak_test -j "$(nproc)" >/dev/null
  local log=build/$preset/soak.log
  local rc=0
  LARDER_SOAK_SECONDS=$seconds LARDER_TEST_REQUIRE_REDIS=1 "$bin" >"$log" 2>&1 || rc=$?
  grep -E '^(soak:|VIOLATION)' "$log" || true
  if ((rc != 0)); then
    echo "soak: FAILED (exit $rc); full log: $log" >&2
    tail -n 30 "$log" >&2
  fi
  return "$rc"
}
