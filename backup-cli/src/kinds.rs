//! The one place where a profile's kind picks its source, its restorer and
//! its checker.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use backup_core::{CatalogEntry, Decryptor, DynStore, Source, StreamCheck};
use backup_files::{FilesConfig, FilesSource, TarCheck};
use backup_pg::{DatabaseRestore, DumpCheck, PgSource};

use crate::output::human_size;
use crate::settings::Kind;
use crate::wiring;
use crate::workspace::{Profile, Workspace};

/// Where a restore goes.
#[derive(Debug, Clone)]
pub struct Destination {
    /// A folder (files), or where the dump files go (postgres).
    pub to: Option<PathBuf>,
    /// A new database (postgres).
    pub to_db: Option<String>,
    /// Replace `to_db` if it exists, safely.
    pub replace: bool,
    /// Files: keep the archive's owners and setuid/setgid bits (root only).
    pub preserve_owners: bool,
    /// Connection and owner of `to_db`, over `[restore]`.
    pub db: crate::cli::DbRestoreArgs,
}

/// What a restore did, for the report and the `restored` mark.
#[derive(Debug)]
pub struct Restored {
    /// Where it went: a folder or `user@host:port/db`.
    pub into: String,
    /// Lines to print.
    pub lines: Vec<String>,
}

/// The source that backs up `profile`.
///
/// # Errors
/// Bad paths or connection settings, naming the profile file.
pub fn source(ws: &Workspace, profile: &Profile) -> Result<Box<dyn Source>> {
    let s = &profile.settings;
    let origin = profile.file.display().to_string();
    Ok(match profile.kind() {
        Kind::Files => {
            let config = FilesConfig::new(s.paths.clone())
                .with_exclude(s.exclude.clone())
                .with_on_unreadable(s.on_unreadable);
            let source = FilesSource::new(&config, &ws.home)
                .context("set on_unreadable = \"warn\" in the profile to skip unreadable files")
                .with_context(|| origin.clone())?;
            Box::new(source)
        }
        Kind::Postgres => {
            let (conn, config) = wiring::pg_conn(ws, profile)?;
            Box::new(PgSource::new(conn, config))
        }
    })
}

/// The structure check of `verify` for `profile`'s backups.
pub fn check(ws: &Workspace, profile: &Profile) -> Box<dyn StreamCheck> {
    match profile.kind() {
        Kind::Files => Box::new(TarCheck),
        Kind::Postgres => {
            let bin_dir = profile
                .settings
                .source
                .as_ref()
                .and_then(|s| s.bin_dir.as_ref())
                .map(|b| ws.path(b));
            Box::new(DumpCheck::new(bin_dir))
        }
    }
}

/// The extension of a compressed local copy: `tar` or `pgdump`.
pub fn stream_extension(kind: Kind) -> &'static str {
    match kind {
        Kind::Files => "tar",
        Kind::Postgres => "pgdump",
    }
}

/// Restores a trusted backup of `profile` to `dest`.
///
/// # Errors
/// A destination that does not fit the kind; the library's restore errors.
pub async fn restore(
    ws: &Workspace,
    profile: &Profile,
    store: &DynStore,
    decryptor: Arc<dyn Decryptor>,
    entry: &CatalogEntry,
    dest: &Destination,
    default_dir: &Path,
) -> Result<Restored> {
    let target = profile.target();
    let dir = dest.to.clone().unwrap_or_else(|| default_dir.to_owned());
    if dest.preserve_owners && !matches!(profile.kind(), Kind::Files) {
        bail!("--preserve-owners is for files profiles; {target} is a postgres profile");
    }
    match (profile.kind(), &dest.to_db) {
        (Kind::Files, Some(_)) => {
            bail!("--to-db is for postgres profiles; {target} is a files profile: use --to DIR")
        }
        (Kind::Files, None) => {
            let options = backup_files::ExtractOptions::new().with_preserve_owners(dest.preserve_owners);
            let progress = crate::progress::Progress::start(&format!("{target}: restoring"));
            let counter = Some(progress.counter.clone());
            let summary = backup_files::restore_folder_with(store, decryptor, entry, &dir, counter, &options).await;
            progress.finish();
            let s = summary?;
            Ok(Restored {
                into: dir.display().to_string(),
                lines: vec![format!(
                    "{} files, {} directories, {} symlinks, {}",
                    s.files,
                    s.dirs,
                    s.symlinks,
                    human_size(s.bytes)
                )],
            })
        }
        (Kind::Postgres, Some(db)) => {
            let (conn, pg_options) = wiring::restore_conn(ws, profile, &dest.db)?;
            let options = DatabaseRestore::new()
                .with_replace(dest.replace)
                .with_pg_restore(pg_options);
            let work_dir = profile.data_dir(ws);
            let _dumps = crate::debris::use_dump_folder(ws, profile)?;
            let admin = conn.with_database(&conn.maintenance_db);
            // A database this run creates (not with --replace: that one
            // builds a temporary copy) is dropped again when it is cancelled.
            let created = if dest.replace || backup_pg::database_exists(&admin, db).await? {
                None
            } else {
                Some(NewDatabase(Some((admin, db.clone()))))
            };
            let restored = backup_pg::restore_database(store, decryptor, entry, &conn, db, &work_dir, &options).await;
            if let Some(mut created) = created {
                created.0 = None; // ended on its own: dropped already on failure
            }
            restored.map_err(wiring::db_restore_hint)?;
            let mut lines = Vec::new();
            if entry.manifest.has_stream(backup_pg::GLOBALS_STREAM) {
                lines.push(format!(
                    "roles and tablespaces were not applied; `restore {target} --to DIR` writes globals.sql"
                ));
            }
            Ok(Restored {
                into: conn.with_database(db).to_string(),
                lines,
            })
        }
        (Kind::Postgres, None) => {
            let partials = crate::debris::NewPartialFiles::watch(&dir);
            let written = backup_pg::write_dump_files(store, decryptor, entry, &dir).await;
            partials.disarm();
            let written = written?;
            let mut lines: Vec<String> = written.iter().map(|p| format!("wrote {}", p.display())).collect();
            if let Some(dump) = written.first() {
                lines.push(format!("restore it with: pg_restore -d NEWDB {}", dump.display()));
            }
            Ok(Restored {
                into: dir.display().to_string(),
                lines,
            })
        }
    }
}

/// A database a cancelled `restore --to-db` created: dropped in the
/// background (`backup_core::cleanup`), half-restored as it is.
struct NewDatabase(Option<(backup_pg::PgConn, String)>);

impl Drop for NewDatabase {
    fn drop(&mut self) {
        if let Some((admin, db)) = self.0.take() {
            backup_core::cleanup::defer(format!("drop the half-restored database {db}"), async move {
                // Created meanwhile by this run only: it did not exist before.
                if backup_pg::database_exists(&admin, &db).await.unwrap_or(false) {
                    if let Err(e) = backup_pg::drop_database(&admin, &db).await {
                        tracing::warn!(database = %db, error = %e.report(), "could not drop the half-restored database");
                    }
                }
            });
        }
    }
}
