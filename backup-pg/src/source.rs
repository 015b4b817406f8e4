//! `PgSource`: `pg_dump --format=custom` of one database, streamed.

use async_trait::async_trait;
use backup_core::{Error, Result, Source, SourceDetails, SourceOutput};

use crate::config::PgConfig;
use crate::conn::PgConn;
use crate::process::{run, stdout_stream};

/// Backs up one database with `pg_dump --format=custom -Z0` (our zstd
/// compresses), optionally with `pg_dumpall --globals-only` as a second stream
/// `globals`, and last the stream `index`: the dump's table of contents with
/// table sizes (see [`crate::index`]).
#[derive(Debug, Clone)]
pub struct PgSource {
    conn: PgConn,
    config: PgConfig,
}

/// What the server and the tools are.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    /// `SHOW server_version`.
    pub server_version: String,
    /// Major version of the server.
    pub server_major: u32,
    /// `pg_dump --version`, e.g. `15.18`.
    pub pg_dump_version: String,
    /// Major version of pg_dump.
    pub pg_dump_major: u32,
    /// `pg_database_size` of the database.
    pub database_size: i64,
}

impl PgSource {
    /// A source for the database `conn` points at.
    pub fn new(conn: PgConn, config: PgConfig) -> Self {
        PgSource { conn, config }
    }

    /// Connects, reads the server version and size, and checks that pg_dump is
    /// at least as new as the server.
    ///
    /// # Errors
    /// [`Error::Source`] for connection problems (with the server's message) or
    /// a pg_dump older than the server, naming both versions and what to install.
    pub async fn facts(&self) -> Result<ServerFacts> {
        let client = self.conn.connect().await?;
        let row = client
            .query_one(
                "SELECT current_setting('server_version'), current_setting('server_version_num')::int, pg_database_size(current_database())",
                &[],
            )
            .await
            .map_err(|e| Error::source_failed(self.conn.to_string(), crate::error::describe(&e)))?;
        let server_version: String = row.get(0);
        let server_major = (row.get::<_, i32>(1) / 10_000) as u32;
        let database_size: i64 = row.get(2);
        let mut version = self.conn.tool("pg_dump");
        version.arg("--version");
        let out = run(version, "pg_dump").await?;
        let pg_dump_version = out.split_whitespace().nth(2).unwrap_or_default().to_owned();
        let pg_dump_major: u32 = pg_dump_version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        if pg_dump_major < server_major {
            return Err(Error::source_failed(
                "pg_dump",
                format!(
                    "pg_dump {pg_dump_version} is older than the server {} (PostgreSQL {server_version}) and cannot dump it: install postgresql-client-{server_major} (its pg_dump is in /usr/lib/postgresql/{server_major}/bin) or point bin_dir at a pg_dump of version {server_major} or newer",
                    self.conn
                ),
            ));
        }
        Ok(ServerFacts {
            server_version,
            server_major,
            pg_dump_version,
            pg_dump_major,
            database_size,
        })
    }
}

#[async_trait]
impl Source for PgSource {
    fn kind(&self) -> &str {
        crate::KIND
    }

    async fn open(&self) -> Result<SourceOutput> {
        let facts = self.facts().await?;
        let details = SourceDetails::default();
        details.set("host", self.conn.host.clone());
        details.set("port", self.conn.port);
        details.set("database", self.conn.database.clone());
        details.set("user", self.conn.user.clone());
        details.set("server_version", facts.server_version.clone());
        details.set("pg_dump_version", facts.pg_dump_version.clone());
        details.set("database_size", facts.database_size);
        details.set("format", "pg_dump custom (-Fc -Z0)");
        details.set("globals", self.config.globals);

        let mut dump = self.conn.tool("pg_dump");
        dump.args(["--format=custom", "--compress=0", "--no-password"]);
        for table in &self.config.exclude_tables {
            dump.arg(format!("--exclude-table={table}"));
        }
        dump.args(&self.config.pg_dump_options);
        let catalog = crate::toc::spawn_read_catalog(self.conn.clone());
        let (data, index) = crate::toc::tee_index(
            stdout_stream(dump, "pg_dump")?,
            self.conn.tool("pg_restore"),
            catalog,
            details.clone(),
        );
        let mut streams = vec![(backup_core::DATA_STREAM.to_owned(), data)];
        if self.config.globals {
            let mut globals = self.conn.tool("pg_dumpall");
            globals.args(["--globals-only", "--no-password", "-l", &self.conn.database]);
            streams.push((
                crate::GLOBALS_STREAM.to_owned(),
                stdout_stream(globals, "pg_dumpall --globals-only")?,
            ));
        }
        // After the dump: the index is complete only once the dump was read.
        streams.push((crate::index::INDEX_STREAM.to_owned(), index));
        Ok(SourceOutput { streams, details })
    }
}
