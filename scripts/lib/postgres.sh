# Sourced by test scripts: a throwaway PostgreSQL cluster on a unix socket.
#
#   start_postgres    installs PostgreSQL from Debian's packages if missing,
#                     starts a cluster in a temp dir and exports PGHOST, PGPORT,
#                     PGUSER and PGDATABASE for psql and the tests.
#   stop_postgres     stops it and removes the temp dir (safe to call twice).

pg_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
  dir=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
  [ -x "$dir/initdb" ] && echo "$dir"
}

# Runs a command as the cluster's owner: `postgres` when we are root
# (initdb refuses root), ourselves otherwise.
as_pg_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
  local bindir
  bindir=$(pg_bindir || true)
  if [ -z "$bindir" ] || ! command -v psql >/dev/null; then
    ensure_packages postgresql
    bindir=$(pg_bindir)
  fi
  PG_TMP=$(mktemp -d /tmp/trackd-pg.XXXXXX)
  chmod 755 "$PG_TMP"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$PG_TMP"; fi
  as_pg_owner "$bindir/initdb" -D "$PG_TMP/data" -U postgres -A trust -E UTF8 \
    --locale=C --no-sync >"$PG_TMP/initdb.log" 2>&1 \
    || { cat "$PG_TMP/initdb.log" >&2; return 1; }
  as_pg_owner "$bindir/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 \
    -o "-k $PG_TMP -c listen_addresses='' -p 5432 -c fsync=off -c full_page_writes=off" \
    start >/dev/null || { cat "$PG_TMP/server.log" >&2; return 1; }
  PG_BINDIR=$bindir
  export PGHOST=$PG_TMP PGPORT=5432 PGUSER=postgres PGDATABASE=postgres
  echo "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') running on $PGHOST" >&2
}

stop_postgres() {
  if [ -n "${PG_TMP:-}" ] && [ -d "$PG_TMP" ]; then
    as_pg_owner "$PG_BINDIR/pg_ctl" -D "$PG_TMP/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_TMP"
  fi
  PG_TMP=
}
