//! Refreshing a test database from a dump file: restore into a temporary
//! database, sanitize, check, and only then swap it in (DESIGN §7). Shared by
//! `mirror` and `db restore-to-test`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use backup_core::catalog::{write_mark, RESTORED_MARK};
use backup_core::lease::{self, MIRROR_LEASE};
use backup_core::manifest::rfc3339;
use backup_core::{list_backups, Decryptor, DynStore, Error, Pick, ProfileRef, Result, Trust};
use serde::Deserialize;

use crate::config::PgConfig;
use crate::conn::PgConn;
use crate::from_store::DumpFeed;
use crate::process::run;
use crate::restore::{replace_database, RestoreOptions, Swap};
use crate::rights::check_restore_rights;

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
    /// Role on the test server; needs CREATEDB, membership of `owner`, and to
    /// own the test database (directly or as a member of its owner). Never
    /// needs to be a superuser.
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
    /// Role to own the test database and its objects: the temporary copy is
    /// created `OWNER owner` and restored with `pg_restore --no-owner --role=owner`.
    pub owner: Option<String>,
    /// Skip the dump's ownership (objects belong to `user`).
    #[serde(default)]
    pub no_owner: bool,
    /// Keep the previous test database (one copy) instead of dropping it.
    #[serde(default)]
    pub keep_previous: bool,
    /// pg_restore jobs. 1 (the default) streams the dump into one pg_restore
    /// as it downloads; more go through a private file and `pg_restore -j`.
    pub jobs: Option<usize>,
}

impl MirrorConfig {
    /// The pg_restore options these keys ask for.
    pub fn restore_options(&self) -> RestoreOptions {
        RestoreOptions {
            jobs: self.jobs.unwrap_or(1),
            no_owner: self.no_owner,
            no_privileges: false,
            role: None,
            owner: self.owner.clone(),
            only: Default::default(),
        }
    }

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
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
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
        other => Error::source_failed(name, other.report()),
    }
}

/// Replaces `test.database` with the contents of `dump`, sanitized and checked.
/// `base` resolves relative sanitize paths. Any failure before the swap drops
/// the temporary copy and leaves the test database exactly as it was.
///
/// # Errors
/// Names the step that failed (restore, sanitize FILE, check, swap) and why;
/// [`Error::Config`] naming the role and the GRANT when it lacks a right.
pub async fn refresh_from_dump(test: &PgConn, config: &MirrorConfig, dump: &Path, base: &Path) -> Result<Refresh> {
    check_refresh(test, config, base).await?;
    refresh_checked(test, config, &DumpFeed::from_file(dump), base).await
}

/// What can be checked before a dump is at hand: the sanitize files exist
/// and the mirror's role may create, own and replace the test database.
async fn check_refresh(test: &PgConn, config: &MirrorConfig, base: &Path) -> Result<()> {
    for file in &config.sanitize {
        let path = base.join(file);
        if !path.is_file() {
            return Err(Error::config(
                format!("sanitize {}", file.display()),
                format!("{} does not exist", path.display()),
            ));
        }
    }
    let admin = test.with_database(&test.maintenance_db);
    check_restore_rights(&admin, &test.database, &config.restore_options(), true).await
}

async fn refresh_checked(test: &PgConn, config: &MirrorConfig, dump: &DumpFeed<'_>, base: &Path) -> Result<Refresh> {
    let admin = test.with_database(&test.maintenance_db);
    let target = test.database.clone();
    let mut stats = (0i64, 0i64);
    let stats_ref = &mut stats;
    // The copy is created owned by `owner`: on PostgreSQL ≥ 15 only the
    // database owner may create in `public`, so `--role=owner` needs it.
    let owner = config.owner.as_deref();
    let swap = replace_database(&admin, &target, owner, config.keep_previous, |temp| async move {
        fill_copy(test, config, dump, base, &temp, stats_ref).await
    })
    .await;
    Ok(Refresh {
        swap: swap?,
        database_size: stats.0,
        tables: stats.1,
    })
}

/// Restores `dump` into the temporary database `temp`, sanitizes and checks it.
async fn fill_copy(
    test: &PgConn,
    config: &MirrorConfig,
    dump: &DumpFeed<'_>,
    base: &Path,
    temp: &str,
    stats: &mut (i64, i64),
) -> Result<()> {
    let copy = test.with_database(temp);
    dump.restore_into(&copy, &config.restore_options())
        .await
        .map_err(|e| step("restore", e))?;
    for file in &config.sanitize {
        let mut psql = copy.tool("psql");
        psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f"])
            .arg(base.join(file));
        run(psql, "psql")
            .await
            .map_err(|e| step(&format!("sanitize {}", file.display()), e))?;
    }
    let client = copy.connect().await?;
    if let Some(check) = &config.check_sql {
        let row = client.query_one(check.as_str(), &[]).await.map_err(|e| {
            step(
                "check",
                Error::source_failed(copy.to_string(), crate::error::describe(&e)),
            )
        })?;
        let ok: bool = row.try_get(0).map_err(|e| {
            step(
                "check",
                Error::source_failed("check_sql", format!("must return one boolean column: {e}")),
            )
        })?;
        if !ok {
            return Err(step(
                "check",
                Error::source_failed("check_sql", format!("{check:?} returned false")),
            ));
        }
    }
    let row = client
        .query_one(
            "SELECT pg_database_size(current_database()), (SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema'))",
            &[],
        )
        .await
        .map_err(|e| step("statistics", Error::source_failed(copy.to_string(), crate::error::describe(&e))))?;
    *stats = (row.get(0), row.get(1));
    Ok(())
}

/// Everything a mirror run needs. The test connection connects with the
/// mirror's own role (CREATEDB and member of the owner), never a superuser's.
#[derive(Debug, Clone)]
pub struct Mirror<'a> {
    /// The store holding the profile's backups.
    pub store: &'a DynStore,
    /// The profile whose backups are mirrored.
    pub profile: &'a ProfileRef,
    /// Whom to trust: only a trusted backup is ever mirrored.
    pub trust: &'a Trust,
    /// Opens the chunks.
    pub decryptor: Arc<dyn Decryptor>,
    /// The test database (its name is the one replaced).
    pub test: &'a PgConn,
    /// What to do to the copy before it is swapped in.
    pub config: &'a MirrorConfig,
    /// Folder that relative sanitize paths are relative to.
    pub base: &'a Path,
    /// Folder for the private temporary dump.
    pub work_dir: &'a Path,
    /// How long the store lease holds without renewal.
    pub lease_ttl: Duration,
}

/// What a mirror run did.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct MirrorReport {
    /// `app/profile`.
    pub target: String,
    /// The backup mirrored.
    pub id: String,
    /// Its time.
    pub time: String,
    /// The test database, `user@host:port/database`.
    pub into: String,
    /// What the refresh did.
    pub refresh: Refresh,
}

/// Refreshes the test database from a trusted backup of the profile (DESIGN
/// §7): takes the profile's mirror lease in the store, picks the backup
/// (`pick`, usually the newest), downloads and authenticates it into a private
/// temporary file, restores it into a temporary database, sanitizes and
/// checks it, and only then swaps it in. On any failure the test database is
/// left exactly as it was. A success marks the backup restore-verified.
///
/// # Errors
/// [`Error::Busy`] when another mirror of the profile runs;
/// [`Error::Untrusted`]/[`Error::NoBackup`] from picking; then the step that
/// failed. The lease is released in every case.
pub async fn mirror_backup(mirror: &Mirror<'_>, pick: Pick<'_>) -> Result<MirrorReport> {
    let lease = lease::acquire(
        mirror.store,
        &mirror.profile.dest_prefix,
        MIRROR_LEASE,
        mirror.lease_ttl,
    )
    .await?;
    let result = mirror_under_lease(mirror, pick).await;
    lease.release().await;
    result
}

async fn mirror_under_lease(mirror: &Mirror<'_>, pick: Pick<'_>) -> Result<MirrorReport> {
    let listing = list_backups(mirror.store, mirror.profile, mirror.trust).await?;
    let entry = listing.pick(pick)?;
    if entry.manifest.kind != crate::KIND {
        return Err(Error::Format {
            id: entry.manifest.id.clone(),
            reason: format!("is a {:?} backup, not a PostgreSQL one", entry.manifest.kind),
        });
    }
    // Checked before downloading: a role that cannot create or replace the
    // test database would only fail after the whole dump was fetched.
    check_refresh(mirror.test, mirror.config, mirror.base).await?;
    // One job: the dump streams into pg_restore as it downloads; more jobs
    // download it into a private file first.
    let dump = DumpFeed::prepare(
        mirror.store,
        Arc::clone(&mirror.decryptor),
        entry,
        mirror.work_dir,
        &mirror.config.restore_options(),
    )
    .await?;
    let refresh = refresh_checked(mirror.test, mirror.config, &dump, mirror.base).await?;
    let report = MirrorReport {
        target: mirror.profile.target(),
        id: entry.manifest.id.clone(),
        time: rfc3339(entry.manifest.time),
        into: mirror.test.to_string(),
        refresh,
    };
    let mark = backup_core::reexports::serde_json::json!({
        "time": rfc3339(backup_core::reexports::chrono::Utc::now()),
        "kind": "mirror",
        "mode": "restored",
        "result": "ok",
        "to": report.into,
        "database_size": report.refresh.database_size,
        "tables": report.refresh.tables,
        "kept_previous": report.refresh.swap.kept_previous,
    });
    if let Err(e) = write_mark(mirror.store, entry.folder(), RESTORED_MARK, &mark).await {
        tracing::warn!(error = %e.report(), "mirrored, but could not record the mark in the store");
    }
    Ok(report)
}
