#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine: installs what the tests
# need when it is missing (idempotent: `apt-get update` once, then
# `apt-get install -y`), then checks formatting and lints, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v gpg >/dev/null || need+=(gnupg)
command -v zstd >/dev/null || need+=(zstd)
command -v tar >/dev/null || need+=(tar)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql postgresql-contrib)
[ -d /usr/share/postgresql ] && ls /usr/share/postgresql/*/extension/hstore.control >/dev/null 2>&1 || need+=(postgresql-contrib)
command -v runuser >/dev/null || need+=(util-linux)
command -v swift-proxy-server >/dev/null || need+=(swift swift-proxy swift-object swift-container swift-account)
command -v memcached >/dev/null || need+=(memcached)
command -v swift >/dev/null || need+=(python3-swiftclient)
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
command -v script >/dev/null || need+=(bsdutils)
command -v keystone-wsgi-public >/dev/null || need+=(keystone python3-keystone)
/usr/bin/python3 -c 'import keystonemiddleware' 2>/dev/null || need+=(python3-keystonemiddleware)
command -v aws >/dev/null || need+=(awscli)
command -v azurite-blob >/dev/null || command -v npm >/dev/null || need+=(nodejs npm)
if ((${#need[@]})); then
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  echo "installing: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
# Azurite, the Azure Blob emulator the az:// store tests run against: from npm
# (Debian has no package), installed globally so that `azurite-blob` is on PATH.
if ! command -v azurite-blob >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  echo "installing: azurite (npm)"
  $sudo npm install -g --no-fund --no-audit azurite
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --all-features --quiet
cargo test --workspace --all-features
