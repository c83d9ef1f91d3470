#!/usr/bin/env bash
# Prints a PostgreSQL URL for database DBNAME (default: customerbus) on one line;
# diagnostics go to stderr. Used by `make run`, `make test` and `make bench`.
#
#   1. DATABASE_URL, when set and DBNAME is the default;
#   2. else the server on 127.0.0.1:5432 if it answers (DBNAME is created there);
#   3. else a throwaway cluster under ./var/pg on port 55432, started with the
#      machine's initdb/pg_ctl, installing PostgreSQL from Debian if it is missing.
# PG_FORCE_LOCAL_CLUSTER=1 skips 1 and 2 (to test path 3).
# `postgres.sh --stop` stops a throwaway cluster this script started.
# `postgres.sh --bindir` prints the directory of PostgreSQL's programs (initdb,
# pg_ctl), installing them when missing, for tests that run a server of their own.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
pgdir="$root/var/pg"
port=55432
log() { echo "postgres.sh: $*" >&2; }

find_bin() { # newest PostgreSQL's program dir, or PATH
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/$1" ] && { echo "$d/$1"; return; }
  done
  command -v "$1" || true
}

as_owner() { # initdb and pg_ctl refuse to run as root
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install_if_missing() { # the server's programs, and as root the user postgres to run them
  if [ -z "$(find_bin initdb)" ]; then
    log "PostgreSQL is not installed; installing it from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
  fi
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
}

if [ "${1:-}" = "--bindir" ]; then
  install_if_missing
  dirname "$(find_bin initdb)"
  exit 0
fi

if [ "${1:-}" = "--stop" ]; then
  pg_ctl=$(find_bin pg_ctl)
  if [ -n "$pg_ctl" ] && [ -f "$pgdir/data/postmaster.pid" ]; then
    as_owner "$pg_ctl" -D "$pgdir/data" -m fast stop >&2
  fi
  exit 0
fi

db=${1:-customerbus}

ensure_db() { # host port
  local psql; psql=$(find_bin psql)
  if ! "$psql" -h "$1" -p "$2" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    "$psql" -h "$1" -p "$2" -U postgres -d postgres -qc "CREATE DATABASE \"$db\"" >&2
  fi
}

answers() { # host port
  local isready; isready=$(find_bin pg_isready)
  if [ -n "$isready" ]; then "$isready" -q -h "$1" -p "$2"; else (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; fi
}

if [ "${PG_FORCE_LOCAL_CLUSTER:-}" != 1 ]; then
  if [ -n "${DATABASE_URL:-}" ] && [ "$db" = customerbus ]; then
    echo "$DATABASE_URL"; exit 0
  fi
  if answers 127.0.0.1 5432 && [ -n "$(find_bin psql)" ]; then
    ensure_db 127.0.0.1 5432
    echo "postgres://postgres@127.0.0.1:5432/$db?sslmode=disable"; exit 0
  fi
fi

install_if_missing
initdb=$(find_bin initdb); pg_ctl=$(find_bin pg_ctl)
mkdir -p "$pgdir"
[ "$(id -u)" = 0 ] && chown postgres "$pgdir"
if [ ! -f "$pgdir/data/PG_VERSION" ]; then
  log "creating a throwaway cluster in $pgdir"
  as_owner "$initdb" -D "$pgdir/data" -A trust -U postgres >"$pgdir/initdb.log" 2>&1
fi
if ! answers 127.0.0.1 "$port"; then
  log "starting it on 127.0.0.1:$port"
  as_owner "$pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w \
    -o "-p $port -k $pgdir -c listen_addresses=127.0.0.1" start >&2
fi
ensure_db 127.0.0.1 "$port"
echo "postgres://postgres@127.0.0.1:$port/$db?sslmode=disable"
