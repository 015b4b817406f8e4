#!/usr/bin/env bash
# Swift side by side: upload and download of the same 1 GiB (default) folder of
# incompressible data by `backupapps backup`/`restore` against `swift upload`/
# `swift download`, on a Swift all-in-one started here on loopback (storage on
# tmpfs). Usage: benches/compare-swift.sh [MiB]. Needs Debian's swift packages,
# memcached, python3-swiftclient, GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-1024}
cargo build --release -q -p backup-cli
bin=$PWD/target/release/backupapps
work=$(mktemp -d /var/tmp/backupapps-swiftbench.XXXXXX)
dev=$(mktemp -d /dev/shm/backupapps-swiftbench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work" "$dev"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
proxy=$(port) account=$(port) container=$(port) object=$(port) memcache=$(port)
mkdir -p "$dev/d1"
printf '[swift-hash]\nswift_hash_path_suffix = bench\nswift_hash_path_prefix = bench\n[storage-policy:0]\nname = Policy-0\ndefault = yes\n' > "$work/swift.conf"
for kp in account:$account container:$container object:$object; do
  k=${kp%%:*}; p=${kp##*:}
  (cd "$work" && swift-ring-builder $k.builder create 8 1 0 >/dev/null && swift-ring-builder $k.builder add r1z1-127.0.0.1:$p/d1 1 >/dev/null && { swift-ring-builder $k.builder rebalance >/dev/null || true; })
  printf '[DEFAULT]\nbind_ip = 127.0.0.1\nbind_port = %s\ndevices = %s\nmount_check = false\nworkers = 0\nswift_dir = %s\nlog_level = WARNING\n[pipeline:main]\npipeline = %s-server\n[app:%s-server]\nuse = egg:swift#%s\n' "$p" "$dev" "$work" $k $k $k > "$work/$k-server.conf"
done
cat > "$work/proxy-server.conf" <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $proxy
workers = 0
swift_dir = $work
log_level = WARNING
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck cache listing_formats tempauth slo dlo copy proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$memcache
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
[filter:copy]
use = egg:swift#copy
CONF
memcached -u root -l 127.0.0.1 -p "$memcache" -U 0 & pids+=($!)
for k in account container object proxy; do
  /usr/bin/python3 -c "import sys; import swift.common.utils as u; u.SWIFT_CONF_FILE='$work/swift.conf'; from swift.common.wsgi import run_wsgi; sys.exit(run_wsgi('$work/$k-server.conf', '$k-server'))" >"$work/$k.log" 2>&1 & pids+=($!)
done
auth=http://127.0.0.1:$proxy/auth/v1.0
printf '#!/bin/sh\nexec swift -q -V 1 -A %s -U test:tester -K testing "$@"\n' "$auth" > "$work/sw"
chmod +x "$work/sw"
sw() { "$work/sw" "$@"; }
for _ in $(seq 100); do sw post probe 2>/dev/null && break; sleep 0.3; done

mkdir -p "$work/data"
for i in $(seq 0 $((mib / 64 - 1))); do head -c $((64 << 20)) /dev/urandom > "$work/data/blob-$i.bin"; done
"$bin" init "$work/ws" >/dev/null
"$bin" --home "$work/ws" keygen --name backup >/dev/null
sed -i "s|^url = .*|url = \"swift://bench\"\n[store.swift]\nauth_url = \"$auth\"\nauth_version = \"1\"\nusername = \"test:tester\"\npassword = \"testing\"|" "$work/ws/backupapps.toml"
mkdir -p "$work/ws/apps/bench"
printf 'kind = "files"\ndest_prefix = "bench/data"\npaths = ["%s"]\n' "$work/data" > "$work/ws/apps/bench/data.toml"

row() { /usr/bin/time -f "%e %M" -o "$work/time" "${@:2}" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  read -r secs kib < "$work/time"
  printf "| %-44s | %7.2f s | %7.0f MB/s | %5.0f MiB |\n" "$1" "$secs" "$(echo "$mib*1.048576/$secs" | bc -l)" "$(echo "$kib/1024" | bc -l)"; }
echo "| $mib MiB of random data | time | throughput | peak RSS |"
echo "|---|---|---|---|"
row "backupapps backup (zstd, OpenPGP, upload)" "$bin" --home "$work/ws" -q backup bench/data --no-prune
row "swift upload (plain bytes)" "$work/sw" upload plain "$work/data" --object-name data
row "backupapps restore --to DIR (download, check, decrypt)" "$bin" --home "$work/ws" -q restore bench/data --to "$work/restored"
row "swift download (plain bytes)" "$work/sw" download plain -D "$work/downloaded"
