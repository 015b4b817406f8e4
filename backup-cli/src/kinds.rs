//! The one place where a profile's kind picks its source, its restorer and
//! its checker.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use backup_core::{CatalogEntry, Decryptor, DynStore, Source, StreamCheck};
use backup_files::{FilesConfig, FilesSource};
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
    /// Command profiles: feed the backup into `restore_command`'s stdin.
    pub to_command: bool,
    /// Files: only the entries these globs select.
    pub files: crate::cli::FilesRestoreArgs,
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
        Kind::Command => Box::new(backup_command::CommandSource::new(command_spec(
            ws, &s.command, &origin, "command",
        )?)),
    })
}

/// A command profile's argv as a program to run in the workspace, without
/// the passphrase and store-credential variables (the program needs none of
/// this tool's secrets).
fn command_spec(ws: &Workspace, argv: &[String], origin: &str, key: &str) -> Result<backup_command::CommandSpec> {
    let mut spec = backup_command::CommandSpec::new(argv.to_vec())
        .with_context(|| format!("{origin}: {key}"))?
        .with_dir(&ws.home);
    for name in crate::hooks::SECRET_ENV {
        spec = spec.without_env(name);
    }
    Ok(spec)
}

/// `check` of a command profile: where its program is found (in the
/// workspace folder, where it runs), or that it is not.
///
/// # Errors
/// A program that is not on `PATH` (or not executable).
pub fn program_on_path(ws: &Workspace, argv: &[String]) -> Result<String> {
    let Some(program) = argv.first() else {
        bail!("empty command");
    };
    match backup_command::find_program(program, &ws.home) {
        Some(path) => Ok(format!("{program} found: {}", path.display())),
        None => bail!("{program} not found on PATH (install it, or give its full path)"),
    }
}

/// The structure check of `verify` for `profile`'s backups.
pub fn check(ws: &Workspace, profile: &Profile) -> Box<dyn StreamCheck> {
    match profile.kind() {
        Kind::Files => Box::new(crate::output::TarSummary),
        Kind::Postgres => {
            let bin_dir = profile
                .settings
                .source
                .as_ref()
                .and_then(|s| s.bin_dir.as_ref())
                .map(|b| ws.path(b));
            Box::new(DumpCheck::new(bin_dir))
        }
        // A program's output has no structure known here: decrypted and read only.
        Kind::Command => Box::new(backup_command::DrainCheck),
    }
}

/// The extension of a compressed local copy: `tar` or `pgdump`.
pub fn stream_extension(kind: Kind) -> &'static str {
    match kind {
        Kind::Files => "tar",
        Kind::Postgres => "pgdump",
        Kind::Command => "out",
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
    let selects_objects = !dest.db.table.is_empty() || !dest.db.schema.is_empty();
    if selects_objects && !matches!(profile.kind(), Kind::Postgres) {
        bail!(
            "--table and --schema are for postgres profiles; {target} is a {} profile",
            profile.kind().name()
        );
    }
    let selects_files = !dest.files.include.is_empty() || !dest.files.exclude.is_empty();
    if selects_files && !matches!(profile.kind(), Kind::Files) {
        bail!(
            "--include and --exclude are for files profiles; {target} is a {} profile{}",
            profile.kind().name(),
            if matches!(profile.kind(), Kind::Postgres) {
                ": use --table or --schema"
            } else {
                ""
            }
        );
    }
    if dest.preserve_owners && !matches!(profile.kind(), Kind::Files) {
        bail!(
            "--preserve-owners is for files profiles; {target} is a {} profile",
            profile.kind().name()
        );
    }
    if dest.to_command && !matches!(profile.kind(), Kind::Command) {
        bail!(
            "--to-command is for command profiles; {target} is a {} profile",
            profile.kind().name()
        );
    }
    match (profile.kind(), &dest.to_db) {
        (Kind::Files, Some(_)) => {
            bail!("--to-db is for postgres profiles; {target} is a files profile: use --to DIR")
        }
        (Kind::Files, None) if !dest.files.include.is_empty() || !dest.files.exclude.is_empty() => {
            crate::commands::restore_selected(store, decryptor, entry, dest, &dir).await
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
                    "{}",
                    crate::output::archive_summary(s.files, s.dirs, s.symlinks, s.bytes)
                )],
            })
        }
        (Kind::Postgres, Some(db)) => {
            let (conn, mut pg_options) = wiring::restore_conn(ws, profile, &dest.db)?;
            pg_options.only = selection(dest)?;
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
        (Kind::Postgres, None) if !selection(dest)?.is_empty() => {
            let bin_dir = profile
                .settings
                .source
                .as_ref()
                .and_then(|s| s.bin_dir.as_ref())
                .map(|b| ws.path(b));
            let only = selection(dest)?;
            let script = backup_pg::write_partial_sql(store, decryptor, entry, &dir, &only, bin_dir.as_deref()).await?;
            Ok(Restored {
                into: dir.display().to_string(),
                lines: vec![
                    format!("wrote {}", script.display()),
                    format!("apply it with: psql -d DB -f {}", script.display()),
                ],
            })
        }
        (Kind::Command, Some(_)) => {
            bail!("--to-db is for postgres profiles; {target} is a command profile: use --to DIR or --to-command")
        }
        (Kind::Command, None) => restore_command_backup(ws, profile, store, decryptor, entry, dest, &dir).await,
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

/// The tables and schemas of `restore --table/--schema`, checked (a name
/// starting with '-' is refused before anything is read).
fn selection(dest: &Destination) -> Result<backup_pg::Selection> {
    backup_pg::Selection::new(dest.db.table.clone(), dest.db.schema.clone())
        .context("name the table or schema as it is in the database; names starting with '-' are not accepted")
}

/// A command backup into `restore_command`'s stdin (`--to-command`), or
/// into the file `DIR/<restore_file_name>` (default `<profile>.out`, 0600).
async fn restore_command_backup(
    ws: &Workspace,
    profile: &Profile,
    store: &DynStore,
    decryptor: Arc<dyn Decryptor>,
    entry: &CatalogEntry,
    dest: &Destination,
    dir: &Path,
) -> Result<Restored> {
    let s = &profile.settings;
    let origin = profile.file.display().to_string();
    if dest.to_command {
        if s.restore_command.is_empty() {
            bail!("{origin}: --to-command needs `restore_command = [\"program\", \"arg\", ...]` in the profile");
        }
        let spec = command_spec(ws, &s.restore_command, &origin, "restore_command")?;
        let target = profile.target();
        let sink: backup_command::LineSink = Arc::new(move |line: backup_command::Line<'_>| {
            tracing::info!(target_profile = %target, program = line.program, stream = line.stream.name(), "restore_command: {}", line.text);
        });
        let fed = backup_command::restore_into_command(store, decryptor, entry, &spec, sink)
            .await
            .with_context(|| format!("{origin}: restore_command"))?;
        return Ok(Restored {
            into: format!("restore_command {}", spec.program()),
            lines: vec![format!("{} fed to {}", human_size(fed), spec.program())],
        });
    }
    let name = match &s.restore_file_name {
        Some(name) => {
            let plain = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0']);
            if !plain {
                bail!("{origin}: restore_file_name {name:?} must be a plain file name, without `/`");
            }
            name.clone()
        }
        None => format!("{}.out", profile.name),
    };
    backup_core::create_private_dirs(dir)?;
    let path = dir.join(name);
    let partials = crate::debris::NewPartialFiles::watch(dir);
    let written = backup_core::restore_to_file(store, decryptor, entry, backup_core::DATA_STREAM, &path, true).await;
    partials.disarm();
    let written = written?;
    Ok(Restored {
        into: dir.display().to_string(),
        lines: vec![format!("wrote {} ({})", path.display(), human_size(written))],
    })
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
