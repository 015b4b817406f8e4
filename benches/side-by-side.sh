#!/usr/bin/env bash
# The side-by-side benchmark: backupapps (release build) against the
# `tar | zstd | gpg` pipeline, pg_dump/pg_restore, restic, borg and duplicity
# on the same generated data, in interleaved rounds (benches/peers/run.sh;
# see benches/peers/README.md). Keys are made by `gpg --batch --generate-key`
# (RSA 2048 with a passphrase), as users make them. Any option is passed on:
#   benches/side-by-side.sh --size-mb 300 --scale 20 --db-filler md5 --runs 3
#   benches/side-by-side.sh --suites files --only 'tar_zstd3_gpgZ0|ours' --runs 5
# Results: benches/peers/results/<time>/summary.md (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p backup-cli
export BACKUPAPPS=$PWD/target/release/backupapps
here=$PWD/benches/peers
exec "$here/run.sh" \
  --extra-cmd "ours::$here/ours.sh files-backup::$here/ours.sh files-restore::$here/ours.sh files-prep" \
  --extra-db-cmd "ours_db::$here/ours.sh db-backup::$here/ours.sh db-restore::$here/ours.sh db-prep" \
  --extra-db-cmd "ours_db_j2::$here/ours.sh db-backup::$here/ours.sh db-restore-j2::$here/ours.sh db-prep" \
  --extra-db-cmd "ours_db_mirror::$here/ours.sh db-backup::$here/ours.sh db-mirror::$here/ours.sh db-prep" \
  "$@"
