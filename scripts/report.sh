#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# report.sh: runs larder-sim and the benchmarks, then writes docs/benchmarks.md
# and its PNG charts in docs/img/ (scripts/report_charts.py, python3-matplotlib):
#   hit ratio against capacity per reference trace (larder-sim; LRU, Caffeine
#   2.6.2 and OPT from the traces README), LocalStore throughput against
#   threads, a stampede timeline, RedisStore against raw hiredis (a private
#   redis-server on a free loopback port, killed on exit), write-back put
#   latency per fsync policy, and the cost of metrics on the hit path.
# Takes a few minutes (short --benchmark_min_time); commit docs/ afterwards.
#
# Usage: scripts/report.sh [BUILD_DIR]     (default build/release; configured
#        with the release preset and built here when it is the default)
# Env:   TRACES (default ../shared/traces relative to the checkout),
#        MIN_TIME (default 0.1 s per benchmark), JOBS (parallel larder-sim runs, default 2),
#        PYTHON (default: the first of python3, /usr/bin/python3 that imports matplotlib),
#        CHARTS_ONLY=1 (redraw from the raw results of the last run, kept in BUILD_DIR/report)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
BUILD=${1:-build/release}
TRACES=${TRACES:-../shared/traces}
MIN_TIME=${MIN_TIME:-0.1}
JOBS=${JOBS:-2}
targets=(larder-sim local_store_bench cache_bench write_bench redis_bench)

PYTHON=${PYTHON:-}
if [[ -z $PYTHON ]]; then
  for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import matplotlib' 2>/dev/null; then PYTHON=$p; break; fi
  done
fi
[[ -n $PYTHON ]] || { echo "report.sh: no python3 with matplotlib (apt-get install python3-matplotlib)" >&2; exit 1; }

# Raw results stay in $work (the charts can be redrawn with CHARTS_ONLY=1).
work=$BUILD/report
if [[ ${CHARTS_ONLY:-0} == 1 ]]; then
  "$PYTHON" scripts/report_charts.py "$work" docs
  exit 0
fi
if [[ $BUILD == build/release ]]; then
  if command -v ccache >/dev/null; then
    export CMAKE_CXX_COMPILER_LAUNCHER=ccache CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
  fi
  [[ -f $BUILD/build.ninja ]] || cmake --preset release >/dev/null
  cmake --build "$BUILD" --target "${targets[@]}" -j 2
fi
for t in larder-sim local_store_bench cache_bench write_bench; do
  [[ -x $BUILD/bench/$t ]] || { echo "report.sh: $BUILD/bench/$t is missing" >&2; exit 1; }
done
[[ -f $TRACES/README.md ]] || { echo "report.sh: no traces in $TRACES (set TRACES)" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work"
redis_dir=""
redis_pid=""
cleanup() {
  if [[ -n $redis_pid ]] && kill -0 "$redis_pid" 2>/dev/null; then kill "$redis_pid" || true; fi
  [[ -n $redis_dir ]] && rm -rf "$redis_dir"
  return 0
}
trap cleanup EXIT
load() { cut -d' ' -f1-3 /proc/loadavg; }
load_start=$(load)
# The commit the binaries are built from (+uncommitted when the sources differ).
commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- include src bench || echo '+uncommitted')"

# ---- 1. hit ratios: one larder-sim run per trace, all its README capacities ----
echo "report.sh: larder-sim over $TRACES"
cp "$TRACES/README.md" "$work/traces_readme.md"
grep -E '^\| [a-z0-9_-]+ \| +[0-9]+ \|' "$work/traces_readme.md" |
  awk -F'|' '{gsub(/ /,"",$2); gsub(/ /,"",$3); caps[$2] = caps[$2] ? caps[$2] "," $3 : $3}
             END {for (t in caps) print t, caps[t]}' |
  xargs -P "$JOBS" -n 2 sh -c '"$0" --trace "'"$TRACES"'/$1.txt.gz" --capacity "$2" --policy adaptive > "'"$work"'/sim.$1"' \
    "$BUILD/bench/larder-sim"
cat "$work"/sim.* > "$work/sim.txt"

bench() {  # bench BINARY OUT.json [flags...]
  local bin=$1 out=$2
  shift 2
  "$BUILD/bench/$bin" --benchmark_out="$work/$out" --benchmark_out_format=json "$@" >/dev/null
}

# ---- 2. LocalStore against its baselines, 1 and 2 threads ----
echo "report.sh: local_store_bench"
bench local_store_bench local_store.json --benchmark_min_time="$MIN_TIME" \
  --benchmark_filter='BM_(LocalStore|RawFind|ShardedLru16|TbbLru)/(Read|Mixed90_10|Write)/'

# ---- 3. stampede timelines, and 4. the metrics cost (hit path, off vs on) ----
echo "report.sh: cache_bench"
LARDER_BENCH_TIMELINE="$work" bench cache_bench cache_bench.json --benchmark_filter='BM_Stampede'
bench cache_bench metrics.json --benchmark_filter='BM_CacheHitMetrics' \
  --benchmark_min_time="$MIN_TIME" --benchmark_repetitions=7 \
  --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true

# ---- 5. write-back put latency per fsync policy (journal in a temp dir) ----
echo "report.sh: write_bench"
TMPDIR="$work" bench write_bench write.json --benchmark_filter='BM_PutLatency/cache/.*threads:1$'

# ---- 6. RedisStore against raw hiredis, on a private redis-server ----
if command -v redis-server >/dev/null && [[ -x $BUILD/bench/redis_bench ]]; then
  port=""
  for _ in $(seq 50); do
    c=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$c") 2>/dev/null; then port=$c; break; fi
  done
  redis_dir=$(mktemp -d /tmp/larder-report-redis.XXXXXX)
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$redis_dir" \
    --pidfile "$redis_dir/redis.pid" --logfile "$redis_dir/redis.log" --daemonize yes
  for _ in $(seq 100); do
    redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
  done
  redis_pid=$(cat "$redis_dir/redis.pid")
  echo "report.sh: redis_bench on 127.0.0.1:$port"
  LARDER_BENCH_REDIS_HOST=127.0.0.1 LARDER_BENCH_REDIS_PORT=$port \
    bench redis_bench redis.json --benchmark_min_time="$MIN_TIME" \
    --benchmark_filter='BM_(RawHiredisGet|StoreGet|RawHiredisSet|StorePut|StoreGet100Singles|StoreGetMany100|StorePutMany)(/|$)'
fi

# ---- the charts and the page ----
cpu=$(awk -F: '/model name/ {gsub(/^ +/, "", $2); print $2; exit}' /proc/cpuinfo)
{
  echo "commit=$commit"
  echo "date=$(date -u +%Y-%m-%d)"
  echo "machine=$(nproc) vCPU $cpu, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, $(. /etc/os-release; echo "$PRETTY_NAME"), Linux $(uname -r)"
  echo "load=load average $load_start at the start, $(load) at the end (1, 5, 15 min)"
  echo "compiler=$(c++ --version | head -n 1)"
  echo "command=scripts/report.sh${1:+ $1}"
  echo "elapsed=$(( $(date +%s) - start ))"
  echo "min_time=$MIN_TIME"
} > "$work/meta.env"
"$PYTHON" scripts/report_charts.py "$work" docs
echo "report.sh: done in $(( $(date +%s) - start )) s; commit docs/benchmarks.md and docs/img/"
