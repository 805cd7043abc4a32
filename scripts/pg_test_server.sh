#!/usr/bin/env bash
# Throwaway PostgreSQL 15 server on 127.0.0.1 for the test suite and benchmarks.
#
# Usage: scripts/pg_test_server.sh [start|stop|status|url]   (default: start)
#   start   install PostgreSQL 15 if missing, init a cluster in a temp dir, start it, create
#           the test database, and print its SQLAlchemy URL on stdout (only the URL: logs go
#           to stderr), e.g.  export SAGE_TEST_PG_URL="$(bash scripts/pg_test_server.sh)"
#   stop    stop the server (the data dir stays; `start` reuses it)
#   status  exit 0 when running
#   url     print the URL without starting anything
# Idempotent: `start` on a running server just prints the URL. Works as root (the server runs
# as the 'postgres' user, created if missing) and as a normal user (runs as that user).
# Environment: SAGE_PG_DIR (default /tmp/sage-pg-test), SAGE_PG_PORT (default 55432),
#              SAGE_PG_DB (default sage_test), PGBIN (default /usr/lib/postgresql/15/bin),
#              SAGE_PG_HOST (default 127.0.0.1: the address it listens on, e.g. the assist
#              side of `sage bench twohost`'s link, run inside that network namespace),
#              SAGE_PG_ALLOW (a CIDR whose clients are trusted too, e.g. the other side of
#              that link; default: loopback only).
# Loopback only, trust authentication: never use this for real data.
set -euo pipefail

PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
DIR="${SAGE_PG_DIR:-/tmp/sage-pg-test}"
PORT="${SAGE_PG_PORT:-55432}"
HOST="${SAGE_PG_HOST:-127.0.0.1}"
ALLOW="${SAGE_PG_ALLOW:-}"
DB="${SAGE_PG_DB:-sage_test}"
DATA="$DIR/data"
URL="postgresql+psycopg://postgres@${HOST}:${PORT}/${DB}"
CMD="${1:-start}"

log() { echo "pg_test_server: $*" >&2; }

if [ "$(id -u)" = 0 ]; then
  RUN_USER=postgres
else
  RUN_USER="$(id -un)"
fi

as_pg() {
  if [ "$(id -u)" = 0 ]; then
    if command -v runuser >/dev/null 2>&1; then
      runuser -u postgres -- "$@"
    else
      su -s /bin/sh postgres -c "$(printf '%q ' "$@")"
    fi
  else
    "$@"
  fi
}

install_pg() {
  if [ -x "$PGBIN/pg_ctl" ]; then
    return
  fi
  if [ "$(id -u)" != 0 ]; then
    log "PostgreSQL 15 not found at $PGBIN and not root: install postgresql-15 first"
    exit 1
  fi
  log "installing postgresql-15 (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends postgresql-15 >&2
  if [ ! -x "$PGBIN/pg_ctl" ]; then
    log "postgresql-15 installed but $PGBIN/pg_ctl is missing"
    exit 1
  fi
}

ensure_user() {
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    log "creating system user postgres"
    useradd --system --home-dir "$DIR" --shell /bin/sh postgres
  fi
}

running() {
  [ -f "$DATA/PG_VERSION" ] && as_pg "$PGBIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

start() {
  install_pg
  ensure_user
  mkdir -p "$DIR"
  if [ "$(id -u)" = 0 ]; then
    chown "$RUN_USER" "$DIR"
  fi
  chmod 700 "$DIR"
  if ! [ -f "$DATA/PG_VERSION" ]; then
    log "initdb in $DATA"
    rm -rf "$DATA"
    as_pg "$PGBIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 \
      --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 || {
        cat "$DIR/initdb.log" >&2; exit 1; }
  fi
  if [ -n "$ALLOW" ] && ! grep -q "^host all all $ALLOW trust" "$DATA/pg_hba.conf"; then
    echo "host all all $ALLOW trust" >>"$DATA/pg_hba.conf"
  fi
  if ! running; then
    log "starting on $HOST:$PORT"
    as_pg "$PGBIN/pg_ctl" start -w -t 60 -D "$DATA" -l "$DIR/server.log" \
      -o "-c listen_addresses=$HOST -p $PORT -k $DIR -c max_connections=200" >&2 || {
        tail -n 30 "$DIR/server.log" >&2; exit 1; }
  fi
  for _ in $(seq 1 60); do
    if "$PGBIN/pg_isready" -q -h "$HOST" -p "$PORT"; then
      break
    fi
    sleep 0.5
  done
  if ! as_pg "$PGBIN/psql" -h "$HOST" -p "$PORT" -U postgres -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
    as_pg "$PGBIN/createdb" -h "$HOST" -p "$PORT" -U postgres "$DB" >&2
  fi
  echo "$URL"
}

case "$CMD" in
  start) start ;;
  stop)
    if running; then
      as_pg "$PGBIN/pg_ctl" stop -w -m fast -D "$DATA" >&2
    fi
    ;;
  status) running ;;
  url) echo "$URL" ;;
  *) log "unknown command '$CMD' (start|stop|status|url)"; exit 2 ;;
esac
