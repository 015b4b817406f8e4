//! `restore TARGET [--id ID | --at TIME] [--to DIR | --to-db NAME [--replace]]`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use backup_core::catalog::{list_backups, select, write_mark};
use backup_core::manifest::rfc3339;
use backup_core::pipeline::default_parallelism;
use backup_core::{restore_stream, Decryptor, Manifest, Store};
use backup_pg::RestoreOptions;
use chrono::Utc;
use futures::TryStreamExt;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::output::{human_size, parse_time};
use crate::progress::Progress;
use crate::wiring;
use crate::workspace::{Profile, Workspace};

/// Where a restore goes.
pub struct Destination {
    /// A folder (files), or where the `.pgdump` file goes (postgres).
    pub to: Option<PathBuf>,
    /// A new database (postgres).
    pub to_db: Option<String>,
    /// Replace `to_db` if it exists, safely.
    pub replace: bool,
}

/// Restores one backup of one profile.
///
/// # Errors
/// Unknown target or backup, missing secret key, integrity failures, a target
/// that would be overwritten; the target is left as it was.
pub async fn run(
    ws: &Workspace,
    target: &str,
    id: Option<&str>,
    at: Option<&str>,
    dest: Destination,
) -> Result<ExitCode> {
    let at = at.map(|t| parse_time("--at", t)).transpose()?;
    let profiles = ws.select(&[target.to_owned()])?;
    let [profile] = profiles.as_slice() else {
        let names: Vec<_> = profiles.iter().map(|p| p.target()).collect();
        bail!("restore needs one profile; {target:?} names {}", names.join(", "));
    };
    let s = &profile.settings;
    if dest.to_db.is_some() && profile.kind() != "postgres" {
        bail!(
            "--to-db is for postgres profiles; {} is a {} profile: use --to DIR",
            profile.target(),
            profile.kind()
        );
    }
    let store = wiring::store(ws, s, &profile.file.display().to_string())?;
    let decryptor = wiring::decryptor(ws, s)?;
    let listing = list_backups(&store, profile.dest_prefix()).await?;
    let entry = select(&listing, &profile.target(), id, at)?;
    let m = &entry.manifest;
    let default_dir = ws
        .home
        .join("restore")
        .join(&profile.app)
        .join(&profile.name)
        .join(&m.id);
    let dir = dest.to.as_ref().map(|d| ws.path(d)).unwrap_or(default_dir);
    let whereto = match (m.kind.as_str(), &dest.to_db) {
        ("files", _) => {
            let progress = Progress::start(&format!("{}: restoring", profile.target()));
            let stream = counted(
                restore_stream(store.clone(), decryptor, m, "data", default_parallelism()),
                &progress,
            );
            let summary = backup_files::restore_to_dir(stream, &dir, &m.id).await;
            progress.finish();
            let summary = summary?;
            println!(
                "{}: restored backup {} ({}) into {}: {} files, {} directories, {} symlinks, {}",
                profile.target(),
                m.id,
                rfc3339(m.time),
                dir.display(),
                summary.files,
                summary.dirs,
                summary.symlinks,
                human_size(summary.bytes)
            );
            dir.display().to_string()
        }
        ("postgres", Some(db)) => restore_to_database(ws, profile, &store, decryptor, m, db, dest.replace).await?,
        ("postgres", None) => {
            let written = write_dump_files(&store, decryptor, m, &dir).await?;
            for path in &written {
                println!("{}: wrote {}", profile.target(), path.display());
            }
            println!("restore it with: pg_restore -d NEWDB {}", written[0].display());
            dir.display().to_string()
        }
        (other, _) => bail!(
            "backup {} is of kind {other:?}, which this version cannot restore",
            m.id
        ),
    };
    let mark = json!({"time": rfc3339(Utc::now()), "to": whereto});
    if let Err(e) = write_mark(&*store, m, "restored", &mark).await {
        tracing::warn!(error = %e, "restored, but could not record the restore in the store");
    }
    Ok(ExitCode::SUCCESS)
}

/// Downloads, authenticates and decrypts one stream of a backup into `path`
/// (written as `path.partial`, renamed when complete). `durable` syncs it to
/// disk first: for files the user keeps, not for a dump about to be restored
/// and deleted.
///
/// # Errors
/// Integrity, decryption or file errors; nothing is left at `path` then.
pub async fn download_stream(
    store: &Arc<dyn Store>,
    decryptor: Arc<dyn Decryptor>,
    m: &Manifest,
    stream_name: &str,
    path: &Path,
    durable: bool,
) -> Result<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let partial = path.with_extension("partial");
    let result = async {
        let mut file = tokio::fs::File::create(&partial)
            .await
            .with_context(|| partial.display().to_string())?;
        let progress = Progress::start(&format!("{}: downloading", m.target()));
        let mut stream = counted(
            restore_stream(store.clone(), decryptor, m, stream_name, default_parallelism()),
            &progress,
        );
        while let Some(piece) = stream.try_next().await? {
            file.write_all(&piece)
                .await
                .with_context(|| partial.display().to_string())?;
        }
        if durable {
            file.sync_all().await.with_context(|| partial.display().to_string())?;
        } else {
            file.flush().await.with_context(|| partial.display().to_string())?;
        }
        tokio::fs::rename(&partial, path)
            .await
            .with_context(|| path.display().to_string())
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    result
}

/// Counts the bytes of `stream` into `progress`.
fn counted(stream: backup_core::ByteStream, progress: &Progress) -> backup_core::ByteStream {
    use futures::StreamExt;
    let counter = progress.counter.clone();
    stream
        .inspect(move |piece| {
            if let Ok(bytes) = piece {
                counter.fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
        })
        .boxed()
}

/// Writes `<database>.pgdump` (and `globals.sql`) into `dir`, refusing to
/// overwrite.
async fn write_dump_files(
    store: &Arc<dyn Store>,
    decryptor: Arc<dyn Decryptor>,
    m: &Manifest,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    let database = m.source.get("database").and_then(|d| d.as_str()).unwrap_or("database");
    let mut written = Vec::new();
    for (stream, name) in [
        ("data", format!("{database}.pgdump")),
        ("globals", "globals.sql".to_owned()),
    ] {
        if m.stream_chunks(stream).next().is_none() {
            continue;
        }
        let path = dir.join(name);
        if path.exists() {
            return Err(backup_core::Error::Target {
                path,
                reason: "exists already; choose another folder with --to".into(),
            }
            .into());
        }
        download_stream(store, decryptor.clone(), m, stream, &path, true).await?;
        written.push(path);
    }
    Ok(written)
}

async fn restore_to_database(
    ws: &Workspace,
    profile: &Profile,
    store: &Arc<dyn Store>,
    decryptor: Arc<dyn Decryptor>,
    m: &Manifest,
    db: &str,
    replace: bool,
) -> Result<String> {
    let (conn, _) = wiring::pg_conn(ws, profile)?;
    let admin = conn.with_database(&conn.maintenance_db);
    let dump = ws
        .home
        .join("data")
        .join(&profile.app)
        .join(&profile.name)
        .join(format!("{}.pgdump", m.id));
    let started = std::time::Instant::now();
    download_stream(store, decryptor, m, "data", &dump, false).await?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "dump downloaded, checked and decrypted"
    );
    let options = RestoreOptions {
        jobs: default_parallelism(),
        ..Default::default()
    };
    let result = if replace {
        backup_pg::replace_database(&admin, db, false, |temp| {
            let target = conn.with_database(&temp);
            let (dump, options) = (dump.clone(), options.clone());
            async move { backup_pg::pg_restore(&target, &dump, &options).await }
        })
        .await
        .map(|_| ())
    } else {
        backup_pg::create_database(&admin, db, None).await?;
        let restored = backup_pg::pg_restore(&conn.with_database(db), &dump, &options).await;
        if restored.is_err() {
            // The database is ours, made a moment ago: remove the half-restored copy.
            let _ = backup_pg::drop_database(&admin, db).await;
        }
        restored
    };
    let _ = tokio::fs::remove_file(&dump).await;
    result?;
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "database restored");
    let whereto = conn.with_database(db).to_string();
    println!(
        "{}: restored backup {} ({}) into database {whereto}",
        profile.target(),
        m.id,
        rfc3339(m.time)
    );
    if m.stream_chunks("globals").next().is_some() {
        println!(
            "  roles and tablespaces were not applied; `restore {} --to DIR` writes globals.sql",
            profile.target()
        );
    }
    Ok(whereto)
}
