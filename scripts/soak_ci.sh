# SPDX-License-Identifier: Apache-2.0
# Sourced by scripts/test.sh and scripts/soak.sh: the chaos soak
# (tests/integration/redis_chaos_soak_test.cc: a Cache in write-back mode over
# TieredStore(LocalStore, RedisStore) under proxy faults, redis-server
# restarts and SIGSTOPs, a failing loader and Writer, and SIGKILLs of a child
# process serving write-back puts over a journal, restarted on the same
# journal; with an oracle).
#
#   larder_soak_run PRESET SECONDS   build the soak in PRESET, run it SECONDS,
#                                    print its summary ("soak: ..." lines);
#                                    non-zero on a violation
# The soak starts its own redis-server (on PATH). ctest runs it for 5 s in
# every preset; scripts/test.sh runs it once more for LARDER_SOAK_SECONDS
# (default 60; 0 skips) in the dev preset only. The fault schedule and the
# SIGKILL moments come from a seed the soak prints ("soak: seed N");
# LARDER_SOAK_SEED=N in the environment replays it.

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
