#!/usr/bin/env bash
# Sets up a local PostgreSQL server for the key store's PostgreSQL tests
# (crates/mbms-keystore/tests/postgres.rs) and prints the line that points them at it:
#
#   eval "$(scripts/postgres-for-tests.sh)"
#   MBMS_REQUIRE_POSTGRES=1 cargo test -p mbms-keystore
#
# Idempotent: installs Debian's postgresql package if no server is installed, creates the
# cluster if there is none, starts it if it is down, creates the role mbms (password mbms,
# CREATEDB: each test creates and drops a database of its own) if it is missing, and checks
# that it can log in over TCP. Needs root (or sudo) for what is not there yet. Only the
# export line goes to stdout; progress goes to stderr.
set -euo pipefail

ROLE=mbms
PASSWORD=mbms
CLUSTER=main

log() { echo "postgres-for-tests: $*" >&2; }

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

installed_version() {
  # The newest major version with a server binary.
  local dir
  for dir in /usr/lib/postgresql/*/bin/postgres; do
    if [ -x "$dir" ]; then basename "$(dirname "$(dirname "$dir")")"; fi
  done | sort -V | tail -n 1
}

ver="$(installed_version)"
if [ -z "$ver" ] || ! command -v pg_lsclusters >/dev/null 2>&1; then
  log "installing postgresql"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >&2
  $sudo apt-get install -y -qq postgresql >&2
  ver="$(installed_version)"
  [ -n "$ver" ] || { log "no PostgreSQL server after installing postgresql"; exit 1; }
fi

# Field N of the cluster's line in pg_lsclusters (3: port, 4: status), empty if none.
cluster_field() {
  pg_lsclusters -h 2>/dev/null | awk -v v="$ver" -v c="$CLUSTER" -v f="$1" \
    '$1 == v && $2 == c { print $f }'
}

if [ -z "$(cluster_field 2)" ]; then
  log "creating cluster $ver/$CLUSTER"
  $sudo pg_createcluster "$ver" "$CLUSTER" >&2
fi
case "$(cluster_field 4)" in
  online*) ;;
  *)
    log "starting cluster $ver/$CLUSTER"
    $sudo pg_ctlcluster "$ver" "$CLUSTER" start >&2
    ;;
esac
port="$(cluster_field 3)"

for _ in $(seq 60); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 0.5
done
pg_isready -q -h 127.0.0.1 -p "$port" || { log "server on port $port is not ready"; exit 1; }

as_postgres() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    sudo -u postgres -- "$@"
  fi
}

# Creates the role, or gives it back its password and rights if it exists. The directory is
# changed to one the postgres user may read, so psql does not complain about the caller's.
(cd / && as_postgres psql -X -q -p "$port" -d postgres -v ON_ERROR_STOP=1 >&2) <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD' CREATEDB;
  ELSE
    ALTER ROLE $ROLE LOGIN PASSWORD '$PASSWORD' CREATEDB;
  END IF;
END
\$\$;
SQL

url="postgres://$ROLE:$PASSWORD@127.0.0.1:$port/postgres"
PGPASSWORD="$PASSWORD" psql -X -q -h 127.0.0.1 -p "$port" -U "$ROLE" -d postgres -tAc 'SELECT 1' >/dev/null \
  || { log "cannot log in as $ROLE over TCP"; exit 1; }
log "PostgreSQL $ver ready on 127.0.0.1:$port"
echo "export MBMS_TEST_POSTGRES_URL=$url"
