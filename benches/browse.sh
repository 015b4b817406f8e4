#!/usr/bin/env bash
# What the index costs and what it buys (issue 16): one backup of the peers'
# generated files dataset with 16 MiB chunks, then the index's share of the
# stored bytes, `ls` and `find` times, and a single-file restore and `dump`,
# counting the data chunks they open in the file store (strace).
#   benches/browse.sh [SIZE_MB]        (default 2048: the side-by-side dataset)
# Keys are the harness's (gpg --batch --generate-key, RSA 2048, passphrase).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p backup-cli
B=$PWD/target/release/backupapps
here=$PWD/benches/peers
size=${1:-2048}
DATA=$here/work/data-${size}MiB-seed42
[ -f "$DATA.done" ] || { "$here/gen-data.sh" "$size" "$DATA"; touch "$DATA.done"; }
set -a; . <("$here/gpg-setup.sh" "$here/work/gnupg" 2>/dev/null); set +a
OUT=$(mktemp -d /var/tmp/browse-bench.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
W=$OUT/ws
mkdir -p "$W/secrets" "$W/apps/b"
gpg --batch --export -a "$GPG_KEY" >"$W/secrets/k.pub.asc"
gpg --batch --pinentry-mode loopback --passphrase "$PASSPHRASE" --export-secret-keys -a "$GPG_KEY" >"$W/secrets/k.sec.asc"
printf '%s' "$PASSPHRASE" >"$W/secrets/k.pass"
chmod 600 "$W/secrets/"*
cat >"$W/backupapps.toml" <<T
[store]
url = "file://$OUT/store"
[encryption]
recipients = ["secrets/k.pub.asc"]
secret_key = "secrets/k.sec.asc"
passphrase_file = "secrets/k.pass"
signing_key = "secrets/k.sec.asc"
signing_passphrase_file = "secrets/k.pass"
signers = ["secrets/k.pub.asc"]
[backup]
chunk_size = "16MiB"
T
printf 'kind = "files"\ndest_prefix = "b/f"\npaths = ["%s"]\n' "$DATA" >"$W/apps/b/f.toml"

secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
# Data chunks a command opens in the file store.
chunks_opened() { strace -f -qq -e trace=openat -o "$OUT/trace" "$@" >/dev/null; grep -c 'data-[0-9]*\.zst\.gpg' "$OUT/trace" || true; }

files=$(find "$DATA" -type f | wc -l)
t_backup=$(secs "$B" --home "$W" -q backup b/f --no-prune)
dir=$(ls -d "$OUT"/store/b/f/*/)
data_bytes=$(cat "$dir"data-*.zst.gpg | wc -c)
index_bytes=$(cat "$dir"index-*.zst.gpg | wc -c)
data_chunks=$(ls "$dir"data-*.zst.gpg | wc -l)
# A file of about 1 MiB (the middle one of those), somewhere in the stream.
mid=$(find "$DATA" -type f -size +900k -size -1200k | sort)
one=$(sed -n "$(( ($(wc -l <<<"$mid") + 1) / 2 ))p" <<<"$mid")
[ -n "$one" ] || { echo "no file of about 1 MiB in $DATA" >&2; exit 1; }
rel=${one#/}
t_ls=$(secs "$B" --home "$W" ls b/f)
t_find=$(secs "$B" --home "$W" find b/f "$(basename "$one")")
t_restore=$(secs "$B" --home "$W" -q restore b/f --include "$rel" --to "$OUT/one")
cmp "$one" "$OUT/one/$rel"
n_restore=$(chunks_opened "$B" --home "$W" -q restore b/f --include "$rel" --to "$OUT/two")
t_dump=$(secs "$B" --home "$W" dump b/f "$rel")
n_dump=$(chunks_opened "$B" --home "$W" dump b/f "$rel")

cat <<R
dataset: $size MiB generated, $files files; one backup, 16 MiB chunks
backup:  ${t_backup}s; data $data_bytes B in $data_chunks chunks, index $index_bytes B ($(echo "scale=3; 100 * $index_bytes / $data_bytes" | bc)% of data)
ls:      ${t_ls}s (every entry)
find:    ${t_find}s (one name)
restore --include one $(stat -c %s "$one") B file: ${t_restore}s, $n_restore data chunks opened of $data_chunks
dump     one file: ${t_dump}s, $n_dump data chunks opened
R
