#!/usr/bin/env bash
# PostgreSQL side by side: `backupapps backup` of a pgbench database (with md5
# filler, not compressible at a glance) against `pg_dump -Fc` (pg_dump's own
# compression) and `pg_dump -Fc -Z0 > file`; then `backupapps restore --to-db`
# against `pg_restore -j 2` from a local file. Usage: benches/compare-pg.sh [SCALE]
# (default 20, about 300 MB of dump). Needs PostgreSQL server binaries, GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${1:-20}
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
cargo build --release -q -p backup-cli
bin=$PWD/target/release/backupapps
work=$(mktemp -d /var/tmp/backupapps-pgbench.XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { as_pg "$bindir/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
as_pg "$bindir/initdb" -D "$work/pg" -U postgres --auth=trust --no-sync >/dev/null
as_pg "$bindir/pg_ctl" -D "$work/pg" -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c fsync=off" -l "$work/pg.log" -w start >/dev/null
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres
"$bindir/createdb" bench
"$bindir/pgbench" -q -i -s "$scale" bench >/dev/null 2>&1
"$bindir/psql" -q -d bench -c "ALTER TABLE pgbench_accounts ALTER filler TYPE text; UPDATE pgbench_accounts SET filler = md5(aid::text) || md5((aid * 7)::text)" -c "VACUUM FULL pgbench_accounts" >/dev/null

"$bin" init "$work/ws" >/dev/null
"$bin" --home "$work/ws" keygen --name backup >/dev/null
mkdir -p "$work/ws/apps/bench"
cat > "$work/ws/apps/bench/db.toml" <<TOML
kind = "postgres"
dest_prefix = "bench/db"
[source]
host = "127.0.0.1"
port = $port
user = "postgres"
database = "bench"
bin_dir = "$bindir"
TOML

row() { printf "| %-46s | %8.2f s | %10s | %6.0f MiB |\n" "$1" "$2" "$3" "$4"; }
measure() { # LABEL SIZE-FILE-OR-DASH COMMAND...
  local label=$1 sizeof=$2; shift 2
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  read -r secs kib < "$work/time"
  local size=-
  [ "$sizeof" != - ] && size="$(du -sb "$sizeof" | cut -f1 | numfmt --to=iec-i --suffix=B)"
  row "$label" "$secs" "$size" "$(echo "$kib/1024" | bc -l)"
}
echo "database: pgbench scale $scale with md5 filler, $("$bindir/psql" -Atc "SELECT pg_size_pretty(pg_database_size('bench'))" bench)"
echo
echo "| operation | time | output | peak RSS |"
echo "|---|---|---|---|"
measure "backupapps backup (zstd -3, OpenPGP)" "$work/ws/store" "$bin" --home "$work/ws" -q backup bench/db --no-prune
measure "pg_dump -Fc > file (gzip level 6)" "$work/fc.dump" bash -c "'$bindir/pg_dump' -Fc bench > '$work/fc.dump'"
measure "pg_dump -Fc -Z0 > file (uncompressed)" "$work/z0.dump" bash -c "'$bindir/pg_dump' -Fc -Z0 bench > '$work/z0.dump'"
measure "backupapps restore --to-db (pg_restore -j 2)" - "$bin" --home "$work/ws" -q restore bench/db --to-db restored_a
"$bindir/createdb" restored_b
measure "pg_restore -j 2 -d from local -Fc file" - "$bindir/pg_restore" -j 2 -d restored_b "$work/fc.dump"
# Where restore time goes: download + decrypt alone, and pg_restore of the uncompressed dump.
measure "backupapps restore --to DIR (download, decrypt)" "$work/out" "$bin" --home "$work/ws" -q restore bench/db --to "$work/out"
"$bindir/createdb" restored_c
measure "pg_restore -j 2 -d from local -Z0 file" - "$bindir/pg_restore" -j 2 -d restored_c "$work/z0.dump"
