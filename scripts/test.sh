#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Runs larder's test suite the way CI does, on a fresh Debian 12 machine:
#   1. installs what is missing (apt-get; quiet when everything is there),
#   2. starts a private redis-server on a free loopback port (no persistence,
#      its own temp dir, pidfile and unix socket; stopped on exit, even when a
#      test fails) and hands its address to the tests through
#      LARDER_TEST_REDIS_HOST / _PORT / _SOCKET (LARDER_TEST_REQUIRE_REDIS=1 makes
#      Redis tests fail instead of skip if that is missing),
#   3. starts a Redis Cluster (3 masters + 3 replicas) and a Sentinel setup
#      (1 master, 1 replica, 3 sentinels) on free loopback ports
#      (scripts/redis_topologies.sh), waits until they are healthy, and hands
#      them to the tests through LARDER_TEST_REDIS_CLUSTER (host:port,...),
#      LARDER_TEST_REDIS_SENTINELS (host:port,...) and
#      LARDER_TEST_REDIS_SENTINEL_MASTER; all are killed on exit,
#   4. starts two throwaway PostgreSQL 15 servers (scripts/pg.sh: temp data
#      dirs, unix socket + free loopback port, no password; run as the
#      `postgres` user since initdb refuses root; stopped on exit): one shared
#      by the PostgreSQL tests (LARDER_TEST_PG_URI, _HOST, _PORT, _SOCKET;
#      LARDER_TEST_REQUIRE_PG=1 makes them fail instead of skip without it),
#      and one that pg_outage_test alone stops and restarts
#      (LARDER_TEST_PG_OUTAGE_URI, LARDER_TEST_PG_OUTAGE_CTL: a pg_ctl prefix),
#   5. configures, builds and runs ctest with each preset: dev, asan, tsan;
#      after the dev preset, the chaos soak for LARDER_SOAK_SECONDS
#      (default 60; 0 skips; scripts/soak_ci.sh); the clang preset
#      (clang-14, -Wthread-safety -Werror: the lock annotations) builds the
#      libraries and the examples, which instantiate every annotated template
#      (Cache over LocalStore and TieredStore, write-back, journal); it has no
#      tests to run,
#   6. when no preset is named: scripts/lint.sh (clang-format in check mode
#      over every C++ file and clang-tidy over src/ and examples/, each
#      failing the run), then builds the libFuzzer targets (fuzz preset)
#      and runs each for LARDER_FUZZ_SECONDS (default 30; 0 skips).
#
# Usage: scripts/test.sh [preset ...]     (default: dev asan tsan clang, then fuzz)
# Exits non-zero when anything fails.
set -euo pipefail

cd "$(dirname "$0")/.."
source scripts/common.sh
source scripts/redis_topologies.sh
source scripts/fuzz_ci.sh
source scripts/pg.sh
source scripts/soak_ci.sh
source scripts/lint.sh

start=$(date +%s)
presets=("$@")
if ((${#presets[@]} == 0)); then
  presets=(dev asan tsan clang)
fi

larder_install_missing

# ccache, keyed on paths relative to this checkout: a second run (or CI on a
# machine that already built this tree, in any folder) recompiles only what
# changed. LARDER_CCACHE=0 turns it off.
if [[ ${LARDER_CCACHE:-1} != 0 ]] && command -v ccache >/dev/null; then
  export CMAKE_CXX_COMPILER_LAUNCHER=ccache CMAKE_C_COMPILER_LAUNCHER=ccache
  export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
fi

# ---- a private redis-server ----
redis_dir=$(mktemp -d /tmp/larder-test-redis.XXXXXX)
redis_pid=""
topo_dir=$(mktemp -d /tmp/larder-test-topo.XXXXXX)
pg_dir=$(mktemp -d /tmp/larder-test-pg.XXXXXX)
pg_outage_dir=$(mktemp -d /tmp/larder-test-pgo.XXXXXX)
cleanup() {
  larder_pg_stop "$pg_outage_dir" || true
  larder_pg_stop "$pg_dir" || true
  if [[ -f "$topo_dir/pids" ]]; then
    local p
    while read -r p; do kill -CONT "$p" 2>/dev/null || true; kill -9 "$p" 2>/dev/null || true; done <"$topo_dir/pids"
  fi
  rm -rf "$topo_dir"
  if [[ -n "$redis_pid" ]] && kill -0 "$redis_pid" 2>/dev/null; then
    kill -CONT "$redis_pid" 2>/dev/null || true
    kill "$redis_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$redis_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$redis_pid" 2>/dev/null || true
  fi
  rm -rf "$redis_dir"
}
trap cleanup EXIT

port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# larder_random_port SPAN: a random port P in 10000.. with P+SPAN-1 below the
# kernel's ephemeral range (ip_local_port_range), so that no client's connect()
# can take a server's port, e.g. while PostgreSQL is stopped by an outage test.
larder_random_port() {
  local span=${1:-1} low
  low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  local high=$((low - span))
  ((high > 11000)) || high=11000
  echo $((10000 + RANDOM % (high - 10000)))
}
redis_port=""
for _ in $(seq 50); do
  candidate=$(larder_random_port 1)
  if port_is_free "$candidate"; then redis_port=$candidate; break; fi
done
if [[ -z "$redis_port" ]]; then
  echo "larder: no free loopback port for redis-server" >&2
  exit 1
fi
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
  --dir "$redis_dir" --pidfile "$redis_dir/redis.pid" \
  --unixsocket "$redis_dir/redis.sock" --unixsocketperm 700 \
  --logfile "$redis_dir/redis.log" --daemonize yes
for _ in $(seq 100); do
  if redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null | grep -q PONG; then break; fi
  sleep 0.1
done
redis_pid=$(cat "$redis_dir/redis.pid")
if ! redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null | grep -q PONG; then
  echo "larder: redis-server did not start; its log:" >&2
  cat "$redis_dir/redis.log" >&2 || true
  exit 1
fi
echo "larder: redis-server $(redis-server --version | awk '{print $3}') on 127.0.0.1:$redis_port (pid $redis_pid)"
export LARDER_TEST_REDIS_HOST=127.0.0.1
export LARDER_TEST_REDIS_PORT=$redis_port
export LARDER_TEST_REDIS_SOCKET=$redis_dir/redis.sock
export LARDER_TEST_REQUIRE_REDIS=1

# ---- a Redis Cluster and a Sentinel setup ----
larder_start_cluster "$topo_dir"
larder_start_sentinel "$topo_dir"
echo "larder: redis cluster on $LARDER_CLUSTER_NODES; sentinels on $LARDER_SENTINELS"
export LARDER_TEST_REDIS_CLUSTER=$LARDER_CLUSTER_NODES
export LARDER_TEST_REDIS_SENTINELS=$LARDER_SENTINELS
export LARDER_TEST_REDIS_SENTINEL_MASTER=$LARDER_SENTINEL_MASTER

# ---- two private PostgreSQL servers ----
larder_pg_start "$pg_dir" larder
echo "larder: PostgreSQL $("$(larder_pg_bin)/postgres" --version | awk '{print $3}') on 127.0.0.1:$LARDER_PG_PORT and $LARDER_PG_SOCKET"
export LARDER_TEST_PG_URI=$LARDER_PG_URI
export LARDER_TEST_PG_HOST=127.0.0.1
export LARDER_TEST_PG_PORT=$LARDER_PG_PORT
export LARDER_TEST_PG_SOCKET=$LARDER_PG_SOCKET
export LARDER_TEST_REQUIRE_PG=1
larder_pg_start "$pg_outage_dir" larder
echo "larder: PostgreSQL for the outage test on 127.0.0.1:$LARDER_PG_PORT"
export LARDER_TEST_PG_OUTAGE_URI=$LARDER_PG_URI
export LARDER_TEST_PG_OUTAGE_CTL=$LARDER_PG_CTL

# ---- build and test each preset ----
jobs=$(nproc)
failed=()
for preset in "${presets[@]}"; do
  echo "==== preset $preset ===="
  t0=$(date +%s)
  if cmake --preset "$preset" >"build-$preset.configure.log" 2>&1 || { cat "build-$preset.configure.log"; false; }; then
    if cmake --build --preset "$preset" -j "$jobs"; then
      if [[ "$preset" == clang ]]; then
        echo "larder: clang preset built (-Wthread-safety -Werror: no findings)"
      elif ! ctest --preset "$preset"; then
        failed+=("$preset (tests)")
      fi
    else
      failed+=("$preset (build)")
    fi
  else
    failed+=("$preset (configure)")
  fi
  rm -f "build-$preset.configure.log"
  # The chaos soak once more, longer, in the dev preset only (scripts/soak_ci.sh).
  if [[ $preset == dev && ${LARDER_SOAK_SECONDS:-60} != 0 && ! " ${failed[*]} " =~ " dev " ]]; then
    larder_soak_run dev "${LARDER_SOAK_SECONDS:-60}" || failed+=("soak")
  fi
  echo "==== preset $preset took $(( $(date +%s) - t0 )) s ===="
done

# ---- lint: clang-format check and clang-tidy over src/ and examples/ (each
# fails the run; LARDER_LINT=0 skips) ----
if [[ ${LARDER_LINT:-1} != 0 && $# -eq 0 ]]; then
  t0=$(date +%s)
  larder_lint_format || failed+=("lint (clang-format)")
  larder_lint_tidy build/dev || failed+=("lint (clang-tidy)")
  echo "==== lint took $(( $(date +%s) - t0 )) s ===="
fi

# ---- fuzz targets, LARDER_FUZZ_SECONDS each (default 30; 0 skips) ----
if [[ $# -eq 0 ]]; then
  t0=$(date +%s)
  larder_fuzz_all || failed+=("fuzz")
  echo "==== fuzz took $(( $(date +%s) - t0 )) s ===="
fi

echo "larder: scripts/test.sh took $(( $(date +%s) - start )) s for presets: ${presets[*]}"
if ((${#failed[@]} > 0)); then
  echo "larder: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "larder: all presets passed"
