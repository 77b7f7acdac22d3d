#!/usr/bin/env bash
# A throw-away PostgreSQL 15 cluster for the tests: its own data folder, port and socket folder, fsync off.
#   start   install PostgreSQL 15 if missing, create the cluster once, start it (no-op when it already runs)
#   stop    stop it
#   url     print the URL the tests connect with
# initdb and pg_ctl refuse root, so they run as the postgres user (runuser). Nothing here touches a system cluster.
set -euo pipefail
cmd=${1:-start}
port=${ATELIER_TEST_PG_PORT:-54329}
root=${ATELIER_TEST_PG_DIR:-/tmp/atelier-test-pg-$port}
bin=/usr/lib/postgresql/15/bin
url="postgres://atelier:atelier-test@127.0.0.1:$port/postgres"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "$cmd" in
url) echo "$url"; exit 0 ;;
stop) [ -d "$root/data" ] && as_pg "$bin/pg_ctl" -D "$root/data" -m fast stop || true; exit 0 ;;
start) ;;
*) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac

if [ ! -x "$bin/initdb" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL 15 is missing; install it with: sudo apt-get install postgresql-15" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
fi

if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then exit 0; fi

mkdir -p "$root/sock"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$root"
if [ ! -f "$root/data/PG_VERSION" ]; then
  # Password auth over TCP (as production runs it), trust on the cluster's own socket folder for the set-up below.
  echo "atelier-test" > "$root/pw"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$root/pw"
  as_pg "$bin/initdb" -D "$root/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-sync >/dev/null
fi
# Connections: 3 nodes × a pool each, the conformance suite and the benchmarks.
as_pg "$bin/pg_ctl" -D "$root/data" -l "$root/log" -w -t 60 \
  -o "-p $port -k $root/sock -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" start >/dev/null
as_pg "$bin/psql" -h "$root/sock" -p "$port" -U postgres -d postgres -qtAc \
  "DO \$\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'atelier') THEN
     CREATE ROLE atelier LOGIN CREATEDB PASSWORD 'atelier-test'; END IF; END \$\$;" >/dev/null
echo "PostgreSQL 15 test cluster on 127.0.0.1:$port (data $root/data)"
