#!/usr/bin/env bash
# `make cluster` / `make cluster-stop`: the production stack on loopback ports, from Debian's packages
# (postgresql, pgbouncer, redis-server, nginx-light) and the project's venv, no containers:
#
#   nginx :LB_PORT  ->  gunicorn node 1 :NODE1_PORT, node 2 :NODE2_PORT  (+ `flask crm worker`)
#                   ->  /live/stream: gunicorn gthread :STREAM_PORT (the live streams, one thread per open page)
#                         |-> PgBouncer :PGBOUNCER_PORT (transaction pooling) -> PostgreSQL primary :PG_PRIMARY_PORT
#                         |                                                   -> streaming replica :PG_REPLICA_PORT
#                         '-> Redis :REDIS_PORT (cache, rate limits, import jobs)
#
# Everything lives in CLUSTER_DIR (data, logs, pid files); `stop` keeps the data, so the next start is
# quick; remove the directory for a fresh cluster. PostgreSQL and PgBouncer refuse to run as root:
# as root they run as the `postgres` user. Usage: deploy/cluster.sh start|stop|status
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CLUSTER_DIR="${CLUSTER_DIR:-/tmp/crm-cluster}"
LB_PORT="${LB_PORT:-58080}"
NODE1_PORT="${NODE1_PORT:-58001}"
NODE2_PORT="${NODE2_PORT:-58002}"
STREAM_PORT="${STREAM_PORT:-58003}"
STREAM_THREADS="${STREAM_THREADS:-500}"
PG_PRIMARY_PORT="${PG_PRIMARY_PORT:-55432}"
PG_REPLICA_PORT="${PG_REPLICA_PORT:-55433}"
PGBOUNCER_PORT="${PGBOUNCER_PORT:-56432}"
REDIS_PORT="${REDIS_PORT:-56379}"
NODE_WORKERS="${NODE_WORKERS:-2}"
BIN="$ROOT/.venv/bin"
PG_BIN="$(dirname "$(ls /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -1)")"
cd "$ROOT"
export CLUSTER_DIR LB_PORT NODE1_PORT NODE2_PORT STREAM_PORT PG_PRIMARY_PORT PG_REPLICA_PORT PGBOUNCER_PORT REDIS_PORT

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

own() {  # a directory the PostgreSQL processes write to
  mkdir -p "$1"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$1"; fi
}

alive() { [ -f "$1" ] && kill -0 "$(head -1 "$1")" 2>/dev/null; }

wait_for() {  # wait_for DESCRIPTION COMMAND...
  local what="$1"; shift
  for _ in $(seq 1 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "cluster: $what did not come up (logs in $CLUSTER_DIR/log)" >&2
  exit 1
}

pg_settings() {
  echo "-c listen_addresses=127.0.0.1 -c port=$1 -c unix_socket_directories=$2 -c wal_level=replica" \
       "-c max_wal_senders=4 -c hot_standby=on -c max_connections=100 -c shared_buffers=64MB"
}

app_env() {
  export CRM_ENV=production CRM_ALLOW_PLAIN_HTTP=1 TRUSTED_PROXY_HOPS=1
  export SECRET_KEY="$(cat "$CLUSTER_DIR/secret_key")"
  export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
  export DATABASE_URL="postgresql+psycopg://crm_web@127.0.0.1:$PGBOUNCER_PORT/crm"
  export DATABASE_POOLING=transaction
  export DATABASE_REPLICA_URL="postgresql+psycopg://crm_web@127.0.0.1:$PGBOUNCER_PORT/crm_replica"
  export IMPORT_DIR="$CLUSTER_DIR/imports"
  export LIVE_STREAM=1  # nginx sends /live/stream to the stream process (start_streams)
}

start() {
  for needed in "$PG_BIN/pg_ctl" /usr/sbin/pgbouncer /usr/bin/redis-server /usr/sbin/nginx "$BIN/gunicorn"; do
    [ -x "$needed" ] || { echo "cluster: $needed is missing (apt-get install postgresql pgbouncer redis-server nginx-light; make install)" >&2; exit 1; }
  done
  mkdir -p "$CLUSTER_DIR/log" "$CLUSTER_DIR/nginx-tmp" "$CLUSTER_DIR/imports"
  chmod 755 "$CLUSTER_DIR"
  [ -f "$CLUSTER_DIR/secret_key" ] || python3 -c 'import secrets; print(secrets.token_hex(32))' > "$CLUSTER_DIR/secret_key"
  own "$CLUSTER_DIR/pg"
  own "$CLUSTER_DIR/pg/sock"

  # PostgreSQL primary: a private cluster, the schema and demo data as its owner, then the web role.
  local primary="$CLUSTER_DIR/pg/primary" replica="$CLUSTER_DIR/pg/replica"
  if [ ! -f "$primary/PG_VERSION" ]; then
    as_postgres "$PG_BIN/initdb" -D "$primary" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if ! alive "$primary/postmaster.pid"; then
    as_postgres "$PG_BIN/pg_ctl" -D "$primary" -w -l "$primary/server.log" -o "$(pg_settings "$PG_PRIMARY_PORT" "$CLUSTER_DIR/pg/sock")" start >/dev/null
  fi
  local owner_url="postgresql+psycopg://postgres@127.0.0.1:$PG_PRIMARY_PORT/crm"
  psql -h 127.0.0.1 -p "$PG_PRIMARY_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'crm'" | grep -q 1 \
    || psql -h 127.0.0.1 -p "$PG_PRIMARY_PORT" -U postgres -qc "CREATE DATABASE crm"
  DATABASE_URL="$owner_url" "$BIN/flask" --app wsgi crm demo --url "http://127.0.0.1:$LB_PORT" >"$CLUSTER_DIR/log/demo.txt" 2>>"$CLUSTER_DIR/log/migrate.log"
  DATABASE_URL="$owner_url" "$BIN/flask" --app wsgi crm web-role --name crm_web >/dev/null 2>>"$CLUSTER_DIR/log/migrate.log"

  # The streaming replica, as an operator makes one: pg_basebackup -R from the running primary.
  if [ ! -f "$replica/PG_VERSION" ]; then
    as_postgres "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PG_PRIMARY_PORT" -U postgres -D "$replica" -R -X stream -c fast
  fi
  if ! alive "$replica/postmaster.pid"; then
    as_postgres "$PG_BIN/pg_ctl" -D "$replica" -w -l "$replica/server.log" -o "$(pg_settings "$PG_REPLICA_PORT" "$CLUSTER_DIR/pg/sock")" start >/dev/null
  fi

  start_redis
  start_pgbouncer

  # Two gunicorn nodes and the background worker, as the web role through PgBouncer.
  app_env
  start_node 1 "$NODE1_PORT"
  start_node 2 "$NODE2_PORT"
  start_streams
  if ! alive "$CLUSTER_DIR/worker.pid"; then
    nohup "$BIN/flask" --app wsgi crm worker </dev/null >>"$CLUSTER_DIR/log/worker.log" 2>&1 &
    echo $! > "$CLUSTER_DIR/worker.pid"
  fi

  # nginx in front.
  envsubst '${CLUSTER_DIR} ${NODE1_PORT} ${NODE2_PORT} ${STREAM_PORT} ${LB_PORT}' < "$ROOT/deploy/nginx.conf.template" > "$CLUSTER_DIR/nginx.conf"
  if ! alive "$CLUSTER_DIR/nginx.pid"; then
    /usr/sbin/nginx -c "$CLUSTER_DIR/nginx.conf" -p "$CLUSTER_DIR" -e "$CLUSTER_DIR/log/nginx-error.log"
  fi
  wait_for "the app behind nginx" curl -fsS "http://127.0.0.1:$LB_PORT/healthz"
  echo "cluster: http://127.0.0.1:$LB_PORT (nodes :$NODE1_PORT :$NODE2_PORT, streams :$STREAM_PORT, PgBouncer :$PGBOUNCER_PORT," \
       "PostgreSQL :$PG_PRIMARY_PORT + replica :$PG_REPLICA_PORT, Redis :$REDIS_PORT; $CLUSTER_DIR)"
  sed -n '2,$p' "$CLUSTER_DIR/log/demo.txt"
}

start_redis() {  # cache, rate limits and import jobs; keeps nothing on disk
  if ! alive "$CLUSTER_DIR/redis.pid"; then
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes --pidfile "$CLUSTER_DIR/redis.pid" \
      --save '' --appendonly no --logfile "$CLUSTER_DIR/log/redis.log" --dir "$CLUSTER_DIR"
  fi
  wait_for "Redis" redis-cli -p "$REDIS_PORT" ping
}

start_pgbouncer() {  # in transaction pooling mode
  own "$CLUSTER_DIR/pgbouncer"
  envsubst '${CLUSTER_DIR} ${PG_PRIMARY_PORT} ${PG_REPLICA_PORT} ${PGBOUNCER_PORT}' \
    < "$ROOT/deploy/pgbouncer.ini.template" | sed "s#$CLUSTER_DIR/log/pgbouncer.log#$CLUSTER_DIR/pgbouncer/pgbouncer.log#; s#$CLUSTER_DIR/pgbouncer.pid#$CLUSTER_DIR/pgbouncer/pgbouncer.pid#" \
    > "$CLUSTER_DIR/pgbouncer/pgbouncer.ini"
  echo '"postgres" ""' > "$CLUSTER_DIR/pgbouncer/pgbouncer-users.txt"
  sed -i "s#$CLUSTER_DIR/pgbouncer-users.txt#$CLUSTER_DIR/pgbouncer/pgbouncer-users.txt#" "$CLUSTER_DIR/pgbouncer/pgbouncer.ini"
  if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$CLUSTER_DIR/pgbouncer"; fi
  if ! alive "$CLUSTER_DIR/pgbouncer/pgbouncer.pid"; then
    if [ "$(id -u)" = 0 ]; then
      /usr/sbin/pgbouncer -q -d -u postgres "$CLUSTER_DIR/pgbouncer/pgbouncer.ini"
    else
      /usr/sbin/pgbouncer -q -d "$CLUSTER_DIR/pgbouncer/pgbouncer.ini"
    fi
  fi
  wait_for "PgBouncer" psql -h 127.0.0.1 -p "$PGBOUNCER_PORT" -U crm_web -d crm -tAc "SELECT 1"
}

start_node() {  # start_node N PORT (also used by the fault load test to bring a node back)
  local n="$1" port="$2"
  alive "$CLUSTER_DIR/node$n.pid" && return 0
  app_env
  "$BIN/gunicorn" --chdir "$ROOT" --daemon --pid "$CLUSTER_DIR/node$n.pid" --workers "$NODE_WORKERS" --timeout 300 \
    --bind "127.0.0.1:$port" --access-logfile "$CLUSTER_DIR/log/node$n-access.log" \
    --error-logfile "$CLUSTER_DIR/log/node$n.log" wsgi:app
  wait_for "node $n" curl -fsS "http://127.0.0.1:$port/healthz"
}

start_streams() {  # the live streams: threads that wait on open connections, no database work
  alive "$CLUSTER_DIR/streams.pid" && return 0
  app_env
  "$BIN/gunicorn" --chdir "$ROOT" --daemon --pid "$CLUSTER_DIR/streams.pid" --workers 1 --worker-class gthread \
    --threads "$STREAM_THREADS" --timeout 300 --bind "127.0.0.1:$STREAM_PORT" \
    --error-logfile "$CLUSTER_DIR/log/streams.log" wsgi:app
  wait_for "the stream process" curl -fsS "http://127.0.0.1:$STREAM_PORT/healthz"
}

stop_pid() {  # stop_pid PIDFILE [SIGNAL]
  if alive "$1"; then
    local pid; pid="$(head -1 "$1")"
    kill -"${2:-TERM}" "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$1"
}

stop() {
  [ -f "$CLUSTER_DIR/nginx.pid" ] && stop_pid "$CLUSTER_DIR/nginx.pid" QUIT
  stop_pid "$CLUSTER_DIR/node1.pid"
  stop_pid "$CLUSTER_DIR/node2.pid"
  stop_pid "$CLUSTER_DIR/streams.pid"
  stop_pid "$CLUSTER_DIR/worker.pid"
  stop_pid "$CLUSTER_DIR/pgbouncer/pgbouncer.pid" TERM
  alive "$CLUSTER_DIR/redis.pid" && redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  rm -f "$CLUSTER_DIR/redis.pid"
  for data in "$CLUSTER_DIR/pg/replica" "$CLUSTER_DIR/pg/primary"; do
    if alive "$data/postmaster.pid"; then as_postgres "$PG_BIN/pg_ctl" -D "$data" -w -m fast stop >/dev/null; fi
  done
  echo "cluster: stopped (data kept in $CLUSTER_DIR)"
}

status() {
  for name in nginx.pid node1.pid node2.pid streams.pid worker.pid pgbouncer/pgbouncer.pid redis.pid pg/primary/postmaster.pid pg/replica/postmaster.pid; do
    if alive "$CLUSTER_DIR/$name"; then echo "up    $name"; else echo "down  $name"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  start-redis) start_redis ;;
  start-pgbouncer) start_pgbouncer ;;
  start-node) start_node "$2" "$([ "$2" = 1 ] && echo "$NODE1_PORT" || echo "$NODE2_PORT")" ;;
  *) echo "usage: $0 start|stop|status|start-node N|start-redis|start-pgbouncer" >&2; exit 2 ;;
esac
