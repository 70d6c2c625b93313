# SPDX-License-Identifier: Apache-2.0
# Sourced by scripts/test.sh (and usable by hand for bench/pg_bench): start a
# throwaway PostgreSQL 15 in a temp data dir, listening on a unix socket in
# that dir and on a free loopback port, trust authentication (no password),
# fsync off (the data is thrown away). initdb refuses to run as root, so as
# root the server runs as the `postgres` user (created by the postgresql
# package), or as a `larder-pg` system user created here if that is missing.
# The caller kills what larder_pg_start started: larder_pg_stop DIR (also safe
# after a failure, and when nothing was started).

# larder_pg_bin: the directory holding initdb/pg_ctl of the newest PostgreSQL.
larder_pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [[ -z "$d" || ! -x "$d/initdb" ]]; then
    echo "larder: no PostgreSQL server found (apt-get install postgresql)" >&2
    return 1
  fi
  echo "$d"
}

# larder_pg_runas: the command prefix that runs a server program as a non-root user.
larder_pg_runas() {
  if [[ $(id -u) -ne 0 ]]; then return 0; fi
  local user=postgres
  if ! id "$user" >/dev/null 2>&1; then
    user=larder-pg
    id "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
  fi
  echo "runuser -u $user --"
}

# larder_pg_start DIR NAME: initdb + start a server whose data dir is DIR/data,
# socket dir DIR; creates database NAME owned by role `larder` (superuser).
# Sets LARDER_PG_PORT, LARDER_PG_URI (postgresql://larder@127.0.0.1:PORT/NAME),
# LARDER_PG_SOCKET (the socket dir) and LARDER_PG_CTL (a command prefix that
# runs pg_ctl on this server: "$LARDER_PG_CTL stop -m fast", "... start -w").
larder_pg_start() {
  local dir=$1 name=$2 bin runas port
  bin=$(larder_pg_bin) || return 1
  runas=$(larder_pg_runas)
  port=""
  for _ in $(seq 50); do
    local c
    c=$(larder_random_port 1)
    if port_is_free "$c"; then port=$c; break; fi
  done
  [[ -n "$port" ]] || { echo "larder: no free loopback port for PostgreSQL" >&2; return 1; }
  mkdir -p "$dir/data"
  chmod 755 "$dir"
  if [[ -n "$runas" ]]; then chown -R "$(echo "$runas" | awk '{print $3}')" "$dir"; fi
  # shellcheck disable=SC2086
  if ! $runas "$bin/initdb" -D "$dir/data" -U larder --auth=trust --no-sync \
      -E UTF8 --locale=C >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2; return 1
  fi
  cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 64MB
logging_collector = off
EOF
  LARDER_PG_CTL="$runas $bin/pg_ctl -D $dir/data -l $dir/server.log"
  # shellcheck disable=SC2086
  if ! $LARDER_PG_CTL start -w -t 60 >/dev/null; then
    echo "larder: PostgreSQL did not start; its log:" >&2
    cat "$dir/server.log" >&2 || true
    return 1
  fi
  if ! "$bin/psql" -q -h "$dir" -p "$port" -U larder -d postgres \
      -c "CREATE DATABASE \"$name\"" >/dev/null 2>"$dir/createdb.log"; then
    cat "$dir/createdb.log" >&2; return 1
  fi
  LARDER_PG_PORT=$port
  LARDER_PG_SOCKET=$dir
  LARDER_PG_URI="postgresql://larder@127.0.0.1:$port/$name"
  echo "$LARDER_PG_CTL" >"$dir/ctl"
}

# larder_pg_stop DIR: stops the server of DIR if it runs (fast, then immediate,
# then SIGKILL of the postmaster), and removes DIR.
larder_pg_stop() {
  local dir=$1
  [[ -n "$dir" && -d "$dir" ]] || return 0
  if [[ -f "$dir/data/postmaster.pid" ]]; then
    local pid ctl
    pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)
    ctl=$(cat "$dir/ctl" 2>/dev/null || true)
    if [[ -n "$ctl" ]]; then
      # shellcheck disable=SC2086
      $ctl stop -m fast -w -t 10 >/dev/null 2>&1 || $ctl stop -m immediate -w -t 10 >/dev/null 2>&1 || true
    fi
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  fi
  rm -rf "$dir"
}
