#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server on loopback for the PostgreSQL journal backend's tests
# (issue 9) and exports PSM_TEST_POSTGRES=postgres://postgres@127.0.0.1:PORT/postgres.
#
#   source scripts/postgres.sh     # installs PostgreSQL when missing, starts it, stops it on exit
#
# The server lives in a fresh directory under /tmp, listens on 127.0.0.1 only, trusts local
# connections (a test server with no data of anyone's) and keeps PostgreSQL's default durability
# (fsync on). Tests make one database each from this URL. PSM_TEST_POSTGRES set beforehand is kept
# as it is (an existing server), and nothing is started.
if [ -n "${PSM_TEST_POSTGRES:-}" ]; then
  echo "postgres: using PSM_TEST_POSTGRES as given"
  return 0 2>/dev/null || exit 0
fi
_psm_pg_sudo=""
[ "$(id -u)" -eq 0 ] || _psm_pg_sudo="sudo"
# `|| true`: no PostgreSQL yet is not an error for the sourcing script's `set -o pipefail`.
_psm_pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$_psm_pg_bin" ] || [ ! -x "$_psm_pg_bin/initdb" ]; then
  echo "postgres: installing postgresql"
  $_psm_pg_sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $_psm_pg_sudo apt-get install -y -qq postgresql >/dev/null
  _psm_pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
_psm_pg_dir=$(mktemp -d /tmp/psm-postgres.XXXXXX)
# PostgreSQL refuses to run as root: as root, the server runs as the postgres user Debian's package made.
_psm_pg_as=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
  chown postgres "$_psm_pg_dir"
  _psm_pg_as=(runuser -u postgres --)
fi
"${_psm_pg_as[@]}" "$_psm_pg_bin/initdb" -D "$_psm_pg_dir/data" -U postgres --auth=trust --encoding=UTF8 --no-instructions >"$_psm_pg_dir/initdb.log" 2>&1 \
  || { cat "$_psm_pg_dir/initdb.log" >&2; echo "postgres: initdb failed" >&2; exit 1; }
# A free port: PostgreSQL refuses one in use, so try a few.
_psm_pg_port=""
for _ in 1 2 3 4 5 6 7 8; do
  p=$((20000 + RANDOM % 20000))
  if "${_psm_pg_as[@]}" "$_psm_pg_bin/pg_ctl" -D "$_psm_pg_dir/data" -l "$_psm_pg_dir/server.log" -w -t 60 \
      -o "-p $p -k $_psm_pg_dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null 2>&1; then
    _psm_pg_port=$p
    break
  fi
done
[ -n "$_psm_pg_port" ] || { cat "$_psm_pg_dir/server.log" >&2; echo "postgres: the server did not start" >&2; exit 1; }
export PSM_TEST_POSTGRES="postgres://postgres@127.0.0.1:$_psm_pg_port/postgres"
export PSM_TEST_POSTGRES_DIR="$_psm_pg_dir"
_psm_pg_stop() {
  "${_psm_pg_as[@]}" "$_psm_pg_bin/pg_ctl" -D "$_psm_pg_dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$_psm_pg_dir"
}
trap _psm_pg_stop EXIT
echo "postgres: $("$_psm_pg_bin/postgres" --version) on 127.0.0.1:$_psm_pg_port ($_psm_pg_dir)"
