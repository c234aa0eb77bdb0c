#!/usr/bin/env bash
# A throw-away STAC API of the kind Planetary Computer runs, all on 127.0.0.1:
# stac-fastapi-pgstac 7.2.0 + pypgstac 0.10.0 on PostgreSQL 15 + PostGIS 3
# (see /work/shared/reference/PGSTAC.md for why these versions).
#
#   .ci/pgstac.sh start RUN_DIR   install what is missing, start, write RUN_DIR/env
#   .ci/pgstac.sh stop  RUN_DIR   stop uvicorn and PostgreSQL (never fails)
#
# RUN_DIR/env exports TILESTACK_PGSTAC_URL (the API root),
# TILESTACK_PGSTAC_DSN (the database, for `pypgstac load`) and
# TILESTACK_PGSTAC_PYPGSTAC (the pypgstac executable); tests/it/pgstac.rs
# runs when the first two are set.
#
# Needs root on Debian 12 (apt + PyPI reachable) the first time: PostgreSQL
# and PostGIS come from apt, the Python side goes into its own virtualenv
# under ~/.cache/tilestack (Debian's python3 refuses a global `pip install`).
# Afterwards a start takes a few seconds.
set -Eeuo pipefail

PG_BIN=/usr/lib/postgresql/15/bin
PG_EXT=/usr/share/postgresql/15/extension
PYPGSTAC_SPEC='pypgstac[psycopg]==0.10.0'
SERVER_SPEC='stac-fastapi-pgstac[server]==7.2.0'
VENV=${TILESTACK_PGSTAC_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/tilestack/pgstac-venv-0.10.0-7.2.0}

log() { echo "pgstac.sh: $*" >&2; }
die() {
  echo "pgstac.sh: ERROR: $*" >&2
  exit 1
}
trap 'die "command failed (line $LINENO, exit $?): $BASH_COMMAND"' ERR

usage() { die "usage: $0 start|stop RUN_DIR"; }
[[ $# -eq 2 ]] || usage
CMD=$1
RUN=$(realpath -m -- "$2")
PGDATA=$RUN/pgdata

as_postgres() { runuser -u postgres -- "$@"; }

pg_running() { [[ -f $PGDATA/postmaster.pid ]] && as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }

uvicorn_pid() {
  local pid
  pid=$(cat "$RUN/uvicorn.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

do_stop() {
  local pid i
  if pid=$(uvicorn_pid); then
    kill "$pid" 2>/dev/null || true
    for i in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    log "stopped uvicorn (pid $pid)"
  fi
  rm -f "$RUN/uvicorn.pid" "$RUN/env"
  if pg_running; then
    as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null || true
    log "stopped PostgreSQL ($PGDATA)"
  fi
}

free_port() {
  "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

http_ok() { curl -fsS -o /dev/null --max-time 5 "$1" 2>/dev/null; }

install_system() {
  if [[ -x $PG_BIN/initdb && -f $PG_EXT/postgis.control && -f $PG_EXT/btree_gist.control && -f $PG_EXT/unaccent.control ]] &&
    id postgres >/dev/null 2>&1 && command -v curl >/dev/null && command -v runuser >/dev/null; then
    return
  fi
  [[ $(id -u) -eq 0 ]] || die "PostgreSQL 15 + PostGIS 3 are missing and installing them needs root"
  log "installing PostgreSQL 15 + PostGIS 3 with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  local pkgs=(postgresql-15-postgis-3 postgresql-contrib curl util-linux)
  if ! apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null; then
    log "apt-get install failed; running apt-get update once and retrying"
    apt-get update -q >/dev/null || die "apt-get update failed"
    apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null ||
      die "apt-get install ${pkgs[*]} failed"
  fi
  [[ -f $PG_EXT/postgis.control ]] || die "PostGIS for PostgreSQL 15 is still missing after apt-get install"
}

python_ready() {
  [[ -x $VENV/bin/python && -x $VENV/bin/pypgstac && -x $VENV/bin/uvicorn ]] &&
    "$VENV/bin/python" - <<'EOF' 2>/dev/null
# Metadata only (importing the app costs seconds): the exact versions, and the extras.
import importlib.metadata as m, sys
for extra in ("psycopg", "psycopg-pool", "uvicorn", "asyncpg"):
    m.version(extra)
ok = m.version("pypgstac") == "0.10.0" and m.version("stac-fastapi-pgstac") == "7.2.0"
sys.exit(0 if ok else 1)
EOF
}

install_python() {
  python_ready && return
  command -v python3 >/dev/null || die "python3 (>= 3.11) is required"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "stac-fastapi-pgstac 7.2 needs Python >= 3.11, python3 is $(python3 -V 2>&1)"
  # A virtualenv whose base interpreter went away (e.g. a pyenv upgrade) is rebuilt.
  "$VENV/bin/python" -c '' 2>/dev/null || rm -rf "$VENV"
  if [[ ! -x $VENV/bin/python ]]; then
    mkdir -p "$(dirname "$VENV")"
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
      rm -rf "$VENV"
      [[ $(id -u) -eq 0 ]] || die "python3 -m venv failed (install python3-venv)"
      log "python3 -m venv failed; installing python3-venv with apt-get"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null ||
        { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null; } ||
        die "apt-get install python3-venv failed"
      python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
    fi
  fi
  log "installing $PYPGSTAC_SPEC and $SERVER_SPEC into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$PYPGSTAC_SPEC" "$SERVER_SPEC" ||
    die "pip install $PYPGSTAC_SPEC $SERVER_SPEC failed"
  python_ready || die "pypgstac / stac-fastapi-pgstac still do not import from $VENV after pip install"
}

start_postgres() {
  [[ $(id -u) -eq 0 ]] || die "run as root: the cluster is created and run as the postgres user (runuser)"
  mkdir -p "$RUN"
  chmod 755 "$RUN"
  as_postgres test -x "$RUN" ||
    die "the postgres user cannot enter $RUN (a parent directory is not world-searchable); pick another RUN_DIR"
  if [[ ! -f $PGDATA/PG_VERSION ]]; then
    rm -rf "$PGDATA"
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
    as_postgres "$PG_BIN/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$RUN/initdb.log" 2>&1 ||
      die "initdb failed, see $RUN/initdb.log: $(tail -n 5 "$RUN/initdb.log")"
    # Loopback TCP only, no unix socket, durability off (a throw-away test cluster).
    cat >>"$PGDATA/postgresql.conf" <<'EOF'
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  fi
  PG_PORT=$(free_port)
  touch "$RUN/postgres.log"
  chown postgres:postgres "$RUN/postgres.log"
  as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$RUN/postgres.log" -o "-p $PG_PORT" -w -t 60 start >/dev/null ||
    die "PostgreSQL did not start, see $RUN/postgres.log: $(tail -n 5 "$RUN/postgres.log")"
  local psql=("$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qtA)
  if [[ $("${psql[@]}" -d postgres -c "select 1 from pg_database where datname = 'pgstac'") != 1 ]]; then
    "${psql[@]}" -d postgres -c 'create database pgstac' >/dev/null || die "create database pgstac failed"
  fi
  DSN=postgresql://postgres@127.0.0.1:$PG_PORT/pgstac
  "$VENV/bin/pypgstac" migrate --dsn "$DSN" >"$RUN/migrate.log" 2>&1 ||
    die "pypgstac migrate failed, see $RUN/migrate.log: $(tail -n 5 "$RUN/migrate.log")"
}

start_server() {
  API_PORT=$(free_port)
  # stac-fastapi-pgstac 7.2 (stac_fastapi/pgstac/config.py, PostgresSettings)
  # reads exactly PGUSER PGPASSWORD PGHOST PGPORT PGDATABASE (no POSTGRES_*),
  # all required (PGPASSWORD too, although trust auth ignores it), and also a
  # `.env` file in its working directory: run it in RUN_DIR, where there is none.
  (
    cd "$RUN"
    export PGHOST=127.0.0.1 PGPORT=$PG_PORT PGUSER=postgres PGPASSWORD=unused PGDATABASE=pgstac
    export WEB_CONCURRENCY=1 STAC_FASTAPI_TITLE=tilestack-pgstac STAC_FASTAPI_DESCRIPTION='tilestack test API'
    export STAC_FASTAPI_LANDING_ID=tilestack-pgstac STAC_FASTAPI_VERSION=test
    nohup "$VENV/bin/uvicorn" stac_fastapi.pgstac.app:create_app --factory \
      --host 127.0.0.1 --port "$API_PORT" --log-level warning \
      </dev/null >"$RUN/uvicorn.log" 2>&1 &
    echo $! >"$RUN/uvicorn.pid"
  )
  local url=http://127.0.0.1:$API_PORT/ i pid
  for i in $(seq 300); do
    pid=$(uvicorn_pid) || die "uvicorn exited, see $RUN/uvicorn.log: $(tail -n 20 "$RUN/uvicorn.log")"
    if http_ok "$url" && http_ok "${url}collections"; then
      API_URL=$url
      return
    fi
    sleep 0.2
  done
  die "stac-fastapi-pgstac did not answer $url within 60 s (pid $pid), see $RUN/uvicorn.log"
}

do_start() {
  if [[ -f $RUN/env ]] && uvicorn_pid >/dev/null && pg_running; then
    # shellcheck disable=SC1091
    url=$(source "$RUN/env" && echo "$TILESTACK_PGSTAC_URL")
    if http_ok "$url"; then
      log "already running: $url"
      return
    fi
  fi
  do_stop
  install_system
  install_python
  start_postgres
  start_server
  cat >"$RUN/env.tmp" <<EOF
export TILESTACK_PGSTAC_URL=$API_URL
export TILESTACK_PGSTAC_DSN=$DSN
export TILESTACK_PGSTAC_PYPGSTAC=$VENV/bin/pypgstac
EOF
  mv "$RUN/env.tmp" "$RUN/env"
  log "stac-fastapi-pgstac at $API_URL (database $DSN); source $RUN/env"
}

case $CMD in
start) do_start ;;
stop)
  trap - ERR
  do_stop
  ;;
*) usage ;;
esac
