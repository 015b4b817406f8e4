//! Refreshing a test database from a dump file: restore into a temporary
//! database, sanitize, check, and only then swap it in (DESIGN §7). Shared by
//! `mirror` and `db restore-to-test`.

use std::path::{Path, PathBuf};

use backup_core::{Error, Result};
use serde::Deserialize;

use crate::config::PgConfig;
use crate::conn::PgConn;
use crate::process::run;
use crate::restore::{pg_restore, quote_ident, replace_database, RestoreOptions, Swap};

/// `[mirror]` of a postgres profile: where the test copy lives and what to do
/// to it before it replaces the current one.
///
/// The connection keys repeat [`PgConfig`]'s on purpose: serde cannot flatten
/// a struct into one that denies unknown fields, and a typo in `[mirror]` must
/// be an error, not a silently ignored key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorConfig {
    /// Test server host (libpq's environment otherwise).
    pub host: Option<String>,
    /// Test server port.
    pub port: Option<u16>,
    /// Role on the test server; needs CREATEDB and to own (or be superuser for)
    /// the test database.
    pub user: Option<String>,
    /// The test database to replace.
    pub database: Option<String>,
    /// File with the test server password.
    pub password_file: Option<PathBuf>,
    /// libpq sslmode.
    pub sslmode: Option<String>,
    /// Folder of pg_restore/psql.
    pub bin_dir: Option<PathBuf>,
    /// Database to connect to for CREATE/DROP/RENAME DATABASE (default `postgres`).
    pub maintenance_db: Option<String>,
    /// SQL files run, each in one transaction, on the restored copy before the swap.
    #[serde(default)]
    pub sanitize: Vec<PathBuf>,
    /// A query that must return `true` on the sanitized copy, e.g.
    /// `"SELECT count(*) > 0 FROM users"`.
    pub check_sql: Option<String>,
    /// Role to own the restored objects (`pg_restore --no-owner --role`).
    pub owner: Option<String>,
    /// Skip the dump's ownership (objects belong to `user`).
    #[serde(default)]
    pub no_owner: bool,
    /// Keep the previous test database (one copy) instead of dropping it.
    #[serde(default)]
    pub keep_previous: bool,
    /// Cron expression for the scheduler.
    pub schedule: Option<String>,
    /// Parallel pg_restore jobs (default: cores).
    pub jobs: Option<usize>,
}

impl MirrorConfig {
    /// The connection settings, as a [`PgConfig`].
    pub fn connection(&self) -> PgConfig {
        PgConfig {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            database: self.database.clone(),
            password_file: self.password_file.clone(),
            sslmode: self.sslmode.clone(),
            bin_dir: self.bin_dir.clone(),
            maintenance_db: self.maintenance_db.clone(),
            ..Default::default()
        }
    }
}

/// What a refresh did, for the report and the restore-verified mark.
#[derive(Debug, Clone)]
pub struct Refresh {
    /// The swap.
    pub swap: Swap,
    /// `pg_database_size` of the new test database.
    pub database_size: i64,
    /// Tables in the new test database (outside system schemas).
    pub tables: i64,
}

/// The step that failed, for messages: "restore", "sanitize apps/x/scrub.sql", "check".
fn step(name: &str, e: Error) -> Error {
    match e {
        Error::Source { source_name, reason } => Error::Source {
            source_name: format!("{name}: {source_name}"),
            reason,
        },
        other => Error::source(name, other.to_string()),
    }
}

/// Replaces `test.database` with the contents of `dump`, sanitized and checked.
/// `base` resolves relative sanitize paths. Any failure before the swap drops
/// the temporary copy and leaves the test database exactly as it was.
///
/// # Errors
/// Names the step that failed (restore, sanitize FILE, check, swap) and why.
pub async fn refresh_from_dump(test: &PgConn, config: &MirrorConfig, dump: &Path, base: &Path) -> Result<Refresh> {
    let admin = test.with_database(&test.maintenance_db);
    let target = test.database.clone();
    for file in &config.sanitize {
        let path = base.join(file);
        if !path.is_file() {
            return Err(Error::config(
                format!("[mirror] sanitize {}", file.display()),
                format!("{} does not exist", path.display()),
            ));
        }
    }
    let mut stats = (0i64, 0i64);
    let stats_ref = &mut stats;
    let swap = replace_database(&admin, &target, config.keep_previous, |temp| async move {
        let copy = test.with_database(&temp);
        let options = RestoreOptions {
            jobs: config.jobs.unwrap_or_else(backup_core::pipeline::default_parallelism),
            no_owner: config.no_owner || config.owner.is_some(),
            no_privileges: false,
            role: config.owner.clone(),
        };
        pg_restore(&copy, dump, &options).await.map_err(|e| step("restore", e))?;
        for file in &config.sanitize {
            let mut psql = copy.tool("psql");
            psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f"]).arg(base.join(file));
            run(psql, "psql").await.map_err(|e| step(&format!("sanitize {}", file.display()), e))?;
        }
        let client = copy.connect().await?;
        if let Some(check) = &config.check_sql {
            let row = client
                .query_one(check.as_str(), &[])
                .await
                .map_err(|e| step("check", Error::source(copy.to_string(), crate::error::describe(&e))))?;
            let ok: bool = row.try_get(0).map_err(|e| {
                step("check", Error::source("check_sql", format!("must return one boolean column: {e}")))
            })?;
            if !ok {
                return Err(step("check", Error::source("check_sql", format!("{check:?} returned false"))));
            }
        }
        if let Some(owner) = &config.owner {
            copy.execute(&client, &format!("ALTER DATABASE {} OWNER TO {}", quote_ident(&temp), quote_ident(owner)))
                .await
                .map_err(|e| step("owner", e))?;
        }
        let row = client
            .query_one(
                "SELECT pg_database_size(current_database()), (SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema'))",
                &[],
            )
            .await
            .map_err(|e| step("statistics", Error::source(copy.to_string(), crate::error::describe(&e))))?;
        *stats_ref = (row.get(0), row.get(1));
        Ok(())
    })
    .await?;
    Ok(Refresh {
        swap,
        database_size: stats.0,
        tables: stats.1,
    })
}
