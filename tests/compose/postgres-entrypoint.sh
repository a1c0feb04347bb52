#!/bin/sh
# TEST-ONLY: what the postgres:15 image does at start, as far as docker-compose.yml relies on it: on
# the first start, a cluster in $PGDATA whose superuser is $POSTGRES_USER with $POSTGRES_PASSWORD
# (scram-sha-256 over TCP) and a database $POSTGRES_DB; then the server, with the arguments given.
set -eu
BIN=/usr/lib/postgresql/15/bin
PGDATA="${PGDATA:-/var/lib/postgresql/data}"
as_postgres() { setpriv --reuid postgres --regid postgres --init-groups "$@"; }
[ "${1:-}" = postgres ] && shift
mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    password_file="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$password_file"
    chown postgres "$password_file"
    as_postgres "$BIN/initdb" -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$password_file" \
        --auth-host=scram-sha-256 --auth-local=trust >/dev/null
    rm -f "$password_file"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\";" \
        | as_postgres "$BIN/postgres" --single -D "$PGDATA" -j postgres >/dev/null
fi
exec setpriv --reuid postgres --regid postgres --init-groups "$BIN/postgres" -D "$PGDATA" "$@"
