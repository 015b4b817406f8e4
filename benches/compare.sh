#!/usr/bin/env bash
# Side by side: whole-process throughput and peak RSS of `backupapps backup`
# against `tar | zstd -3 -T0 | gpg -e --compress-algo none` and restic, on the
# same generated folder. Usage: benches/compare.sh [SIZE_MIB...] (default 300 2048)
# Needs: gpg, zstd, restic, GNU time (apt-get install -y gnupg zstd restic time).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("${@:-300 2048}")
[ $# -gt 0 ] || sizes=(300 2048)
for tool in gpg zstd restic /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y gnupg zstd restic time" >&2; exit 2; }
done
cargo build --release -q -p backup-cli
bin=$PWD/target/release/backupapps
work=$(mktemp -d /var/tmp/backupapps-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export GNUPGHOME=$work/gnupg; mkdir -m 700 "$GNUPGHOME"

# One workspace and key for all runs; gpg gets the same public key.
"$bin" init "$work/ws" >/dev/null
"$bin" --home "$work/ws" keygen --name backup >/dev/null
gpg --batch --quiet --import "$work/ws/secrets/backup.pub.asc"
fpr=$(gpg --batch --with-colons --list-keys | awk -F: '/^fpr/ {print $10; exit}')

# Half incompressible, half log-like text, in files of 1-8 MiB.
generate() { # DIR MIB
  python3 - "$1" "$2" <<'PY'
import os, random, sys
root, total = sys.argv[1], int(sys.argv[2]) << 20
random.seed(42); os.makedirs(root, exist_ok=True)
line = b"2026-11-27T02:01:00Z INFO request served path=/api/items/%d status=200 ms=%d\n"
i = written = 0
while written < total:
    size = min(random.randint(1, 8) << 20, total - written)
    d = os.path.join(root, "dir%02d" % (i % 16)); os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d.bin" % i), "wb") as f:
        if i % 2:
            f.write(os.urandom(size))
        else:
            buf = bytearray()
            n = 0
            while len(buf) < size:
                buf += line % (n, n % 97); n += 1
            f.write(buf[:size])
    written += size; i += 1
PY
}

measure() { # LABEL MIB COMMAND...
  local label=$1 mib=$2; shift 2
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  read -r secs kib < "$work/time"
  printf "| %-5s MiB | %-42s | %7.2f s | %7.0f MB/s | %6.0f MiB |\n" "$mib" "$label" "$secs" "$(echo "$mib*1.048576/$secs" | bc -l)" "$(echo "$kib/1024" | bc -l)"
}

echo "| data | tool | time | throughput | peak RSS |"
echo "|---|---|---|---|---|"
for mib in "${sizes[@]}"; do
  data=$work/data-$mib
  generate "$data" "$mib"
  cat > "$work/ws/apps/bench.toml" <<TOML
kind = "files"
dest_prefix = "bench/$mib"
paths = ["$data"]
TOML
  mkdir -p "$work/ws/apps/bench" && mv "$work/ws/apps/bench.toml" "$work/ws/apps/bench/d$mib.toml"
  measure "backupapps backup (file store)" "$mib" "$bin" --home "$work/ws" -q backup "bench/d$mib" --no-prune
  measure "tar | zstd -3 -T0 | gpg -e --compress-algo none" "$mib" \
    bash -c "tar -C '$data' -cf - . | zstd -3 -T0 -q | gpg --batch --trust-model always -e -r $fpr --compress-algo none -o '$work/out-$mib.tar.zst.gpg'"
  export RESTIC_PASSWORD=bench RESTIC_REPOSITORY=$work/restic-$mib
  restic init -q >/dev/null
  measure "restic backup" "$mib" restic backup -q "$data"
  rm -rf "$data" "$work/out-$mib.tar.zst.gpg" "$RESTIC_REPOSITORY" "$work/ws/store"
done
