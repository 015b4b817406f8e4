# backupapps container: build with the Rust toolchain, run on a small Debian
# with the PostgreSQL client tools (pg_dump/pg_restore/psql) and gnupg.
#   docker build -t backupapps .
#   docker run --rm -v /srv/backupapps:/workspace backupapps backup
# The workspace (backupapps.toml, apps/, secrets/, data/) is the volume.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p backup-cli && strip target/release/backupapps

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client ca-certificates gnupg zstd tar \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /workspace --shell /usr/sbin/nologin backupapps
COPY --from=build /src/target/release/backupapps /usr/local/bin/backupapps
USER backupapps
WORKDIR /workspace
VOLUME ["/workspace"]
ENV BACKUPAPPS_HOME=/workspace
ENTRYPOINT ["backupapps"]
# Default: the long-running scheduler; override with `backup`, `mirror`, `check`, …
CMD ["schedule", "run"]
