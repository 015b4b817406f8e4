#!/bin/bash
# ours.sh — backupapps inside the peers harness (run.sh --extra-cmd / --extra-db-cmd).
#   ours.sh files-backup | files-restore | db-backup | db-restore | db-restore-j2 | db-mirror
# Uses the harness env (DATA OUT RESTORE SCRATCH GNUPGHOME GPG_KEY PASSPHRASE; PG* DB RESTORE_DB).
# PREP (untimed) makes the workspace beside OUT ($OUT.ws, not counted); the store is
# file://$OUT/store (counted); the restore step reads the store the backup step wrote.
# The harness's gpg key (RSA 2048 sign key + encrypt subkey, with a passphrase) both
# encrypts and signs, as a user's own gpg key would.
set -euo pipefail
B=${BACKUPAPPS:-$(cd "$(dirname "$0")/../.." && pwd)/target/release/backupapps}
ws() { # $1 = dir; needs GNUPGHOME/GPG_KEY
  local w=$1; mkdir -p "$w/secrets" "$w/apps/b"
  gpg --batch --export -a "$GPG_KEY" >"$w/secrets/k.pub.asc"
  gpg --batch --pinentry-mode loopback --passphrase "$PASSPHRASE" --export-secret-keys -a "$GPG_KEY" >"$w/secrets/k.sec.asc"
  printf '%s' "$PASSPHRASE" >"$w/secrets/k.pass"; chmod 600 "$w/secrets/"*
  cat >"$w/backupapps.toml" <<T
[store]
url = "file://$OUT/store"
[encryption]
recipients = ["secrets/k.pub.asc"]
secret_key = "secrets/k.sec.asc"
passphrase_file = "secrets/k.pass"
signing_key = "secrets/k.sec.asc"
signing_passphrase_file = "secrets/k.pass"
signers = ["secrets/k.pub.asc"]
T
}
W=$OUT.ws
case "$1" in
  files-prep) rm -rf "$W"; ws "$W"
    printf 'kind = "files"\ndest_prefix = "b/f"\npaths = ["%s"]\n' "$DATA" >"$W/apps/b/f.toml";;
  db-prep) rm -rf "$W"; ws "$W"
    printf 'kind = "postgres"\ndest_prefix = "b/d"\n[source]\nhost = "%s"\nport = %s\nuser = "%s"\ndatabase = "%s"\n' \
      "$PGHOST" "$PGPORT" "$PGUSER" "$DB" >"$W/apps/b/d.toml";;
  files-backup) exec "$B" --home "$W" -q backup b/f --no-prune;;
  files-restore) exec "$B" --home "$W" -q restore b/f --to "$RESTORE";;
  db-backup) exec "$B" --home "$W" -q backup b/d --no-prune;;
  db-restore) exec "$B" --home "$W" -q restore b/d --to-db "$RESTORE_DB" --replace;;
  # Download to a private file first, then pg_restore -j 2 (default: one job, streamed).
  db-restore-j2) BACKUPAPPS_RESTORE__JOBS=2 exec "$B" --home "$W" -q restore b/d --to-db "$RESTORE_DB" --replace;;
  # The nightly test-database refresh into RESTORE_DB (replaced only once restored and checked).
  db-mirror) BACKUPAPPS_MIRROR__HOST=$PGHOST BACKUPAPPS_MIRROR__PORT=$PGPORT BACKUPAPPS_MIRROR__USER=$PGUSER \
    BACKUPAPPS_MIRROR__DATABASE=$RESTORE_DB exec "$B" --home "$W" -q mirror b/d;;
  *) echo "usage: $0 files-prep|files-backup|files-restore|db-prep|db-backup|db-restore|db-restore-j2|db-mirror" >&2; exit 2;;
esac
