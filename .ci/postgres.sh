# A throw-away PostgreSQL cluster for the tests: sourced by .ci/run, or by
# hand (bash) to run the PostgreSQL tests locally:
#
#   source .ci/postgres.sh && pg_start 55432   # exports SESSIOND_TEST_POSTGRES
#   go test -race ./postgres
#   pg_stop
#
# The cluster runs as the postgres user in a temporary directory, listens
# on 127.0.0.1 only (and a Unix socket in that directory), trusts local
# connections and is deleted by pg_stop.

pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ]; then
      echo "$d"
      return 0
    fi
  done
  return 1
}

pg_install() {
  if pg_bin >/dev/null; then
    return 0
  fi
  echo "== installing postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
}

# pg_start PORT: initialise and start a cluster on 127.0.0.1:PORT, export
# SESSIOND_TEST_POSTGRES (its URL) and PG_TEST_DIR.
pg_start() {
  local port=${1:-55432} bin
  bin=$(pg_bin) || { echo "postgresql is not installed (apt-get install postgresql)" >&2; return 1; }
  PG_TEST_DIR=$(mktemp -d /tmp/sessiond-pg.XXXXXX)
  chown postgres: "$PG_TEST_DIR"
  local run=(runuser -u postgres --)
  if [ "$(id -u)" = "$(id -u postgres)" ]; then
    run=()
  fi
  "${run[@]}" "$bin/initdb" -D "$PG_TEST_DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$PG_TEST_DIR/initdb.log" 2>&1 ||
    { cat "$PG_TEST_DIR/initdb.log" >&2; return 1; }
  "${run[@]}" "$bin/pg_ctl" -D "$PG_TEST_DIR/data" -l "$PG_TEST_DIR/server.log" -w \
    -o "-k $PG_TEST_DIR -p $port -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null ||
    { cat "$PG_TEST_DIR/server.log" >&2; return 1; }
  export PG_TEST_DIR
  export SESSIOND_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
  echo "== postgresql on 127.0.0.1:$port ($PG_TEST_DIR)"
}

# pg_stop: stop the cluster pg_start started and delete its directory.
pg_stop() {
  [ -n "${PG_TEST_DIR:-}" ] || return 0
  local bin run=(runuser -u postgres --)
  bin=$(pg_bin)
  if [ "$(id -u)" = "$(id -u postgres)" ]; then
    run=()
  fi
  "${run[@]}" "$bin/pg_ctl" -D "$PG_TEST_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_TEST_DIR"
  unset PG_TEST_DIR SESSIOND_TEST_POSTGRES
}
