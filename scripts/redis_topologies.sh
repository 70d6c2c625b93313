# SPDX-License-Identifier: Apache-2.0
# Sourced by scripts/test.sh: start a Redis Cluster (3 masters + 3 replicas)
# and a Sentinel setup (1 master, 1 replica, 3 sentinels) on free loopback
# ports, for the tests. Every pid started is appended to "$dir/pids", which the
# caller's cleanup kills. Each function waits (bounded) until the topology is
# healthy and prints its address; it returns non-zero (with the logs) if not.

# larder_free_base N: a port B with B..B+N-1 and B+10000..B+10000+N-1 free,
# all below the ephemeral range (larder_random_port, scripts/test.sh).
larder_free_base() {
  local n=$1 b i ok
  for _ in $(seq 100); do
    b=$(larder_random_port $((10000 + n))); ok=1
    for ((i = 0; i < n; i++)); do
      if ! port_is_free $((b + i)) || ! port_is_free $((b + 10000 + i)); then ok=0; break; fi
    done
    if ((ok)); then echo "$b"; return 0; fi
  done
  return 1
}

# larder_start_cluster DIR: sets LARDER_CLUSTER_NODES=127.0.0.1:B,...
larder_start_cluster() {
  local dir=$1 b i p
  b=$(larder_free_base 6) || { echo "larder: no free ports for the cluster" >&2; return 1; }
  local nodes=()
  for i in 0 1 2 3 4 5; do
    p=$((b + i)); mkdir -p "$dir/$p"
    redis-server --port "$p" --bind 127.0.0.1 --dir "$dir/$p" --cluster-enabled yes \
      --cluster-config-file nodes.conf --cluster-node-timeout 2000 --save '' --appendonly no \
      --repl-diskless-sync-delay 0 --logfile "$dir/$p/log" --daemonize yes --pidfile "$dir/$p/pid"
    nodes+=("127.0.0.1:$p")
  done
  for i in 0 1 2 3 4 5; do
    p=$((b + i))
    for _ in $(seq 100); do redis-cli -p "$p" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
    cat "$dir/$p/pid" >>"$dir/pids"
  done
  if ! redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1; then
    cat "$dir/create.log" >&2; return 1
  fi
  local healthy=0
  for _ in $(seq 300); do
    healthy=1
    for i in 0 1 2 3 4 5; do
      p=$((b + i))
      redis-cli -p "$p" cluster info 2>/dev/null | grep -q 'cluster_state:ok' || { healthy=0; break; }
      if redis-cli -p "$p" role 2>/dev/null | head -1 | grep -q slave; then
        redis-cli -p "$p" info replication 2>/dev/null | grep -q 'master_link_status:up' || { healthy=0; break; }
      fi
    done
    if ((healthy)) && redis-cli --cluster check "127.0.0.1:$b" >/dev/null 2>&1; then break; fi
    healthy=0; sleep 0.1
  done
  if ((!healthy)); then
    echo "larder: the test cluster did not become healthy within 30 s" >&2
    tail -n 20 "$dir"/*/log >&2 || true; return 1
  fi
  LARDER_CLUSTER_NODES=$(IFS=,; echo "${nodes[*]}")
}

# larder_start_sentinel DIR: sets LARDER_SENTINELS=127.0.0.1:S1,... and
# LARDER_SENTINEL_MASTER=mymaster.
larder_start_sentinel() {
  local dir=$1 b m r i p
  b=$(larder_free_base 5) || { echo "larder: no free ports for sentinel" >&2; return 1; }
  m=$b; r=$((b + 1))
  for p in $m $r; do
    mkdir -p "$dir/$p"
    local extra=()
    [[ $p == "$r" ]] && extra=(--replicaof 127.0.0.1 "$m")
    redis-server --port "$p" --bind 127.0.0.1 --dir "$dir/$p" --save '' --appendonly no \
      --repl-diskless-sync-delay 0 --logfile "$dir/$p/log" --daemonize yes --pidfile "$dir/$p/pid" "${extra[@]}"
  done
  for p in $m $r; do
    for _ in $(seq 100); do redis-cli -p "$p" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
    cat "$dir/$p/pid" >>"$dir/pids"
  done
  local sentinels=()
  for i in 2 3 4; do
    p=$((b + i)); mkdir -p "$dir/$p"
    cat >"$dir/$p/sentinel.conf" <<CONF
port $p
bind 127.0.0.1
dir $dir/$p
logfile $dir/$p/log
pidfile $dir/$p/pid
daemonize yes
sentinel monitor mymaster 127.0.0.1 $m 2
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 5000
CONF
    redis-server "$dir/$p/sentinel.conf" --sentinel
    sentinels+=("127.0.0.1:$p")
  done
  local healthy=0
  for _ in $(seq 300); do
    healthy=1
    for i in 2 3 4; do
      p=$((b + i))
      local info
      info=$(redis-cli -p "$p" sentinel master mymaster 2>/dev/null | tr '\n' ' ')
      [[ $info == *"num-other-sentinels 2"* && $info == *"num-slaves 1"* ]] || { healthy=0; break; }
    done
    redis-cli -p "$r" info replication 2>/dev/null | grep -q 'master_link_status:up' || healthy=0
    ((healthy)) && break
    sleep 0.1
  done
  for i in 2 3 4; do p=$((b + i)); [[ -f "$dir/$p/pid" ]] && cat "$dir/$p/pid" >>"$dir/pids"; done
  if ((!healthy)); then
    echo "larder: the test sentinel setup did not become healthy within 30 s" >&2
    tail -n 20 "$dir"/*/log >&2 || true; return 1
  fi
  LARDER_SENTINELS=$(IFS=,; echo "${sentinels[*]}")
  LARDER_SENTINEL_MASTER=mymaster
}
