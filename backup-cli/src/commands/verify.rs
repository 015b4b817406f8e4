//! `verify [TARGET..] [--all]`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use backup_core::catalog::{list_backups, write_mark, CatalogEntry};
use backup_core::manifest::rfc3339;
use backup_core::pipeline::default_parallelism;
use backup_core::restore::fetch_checked;
use backup_core::store::join_key;
use backup_core::{restore_stream, Store};
use chrono::Utc;
use futures::TryStreamExt;
use serde_json::json;

use crate::output::human_size;
use crate::wiring;
use crate::workspace::{Profile, Workspace};

/// Verifies the newest (or with `all`, every) backup of each selected profile.
///
/// With a secret key configured each chunk is downloaded, checked against the
/// manifest, decrypted and decompressed, and a files backup is read as a tar
/// archive; without one, only the stored bytes' sizes and SHA-256 are checked.
///
/// # Errors
/// Bad arguments; per-backup failures are reported and set the exit status.
pub async fn run(ws: &Workspace, targets: &[String], all: bool) -> Result<ExitCode> {
    let mut codes = Vec::new();
    for profile in ws.select(targets)? {
        let target = profile.target();
        if let Err(e) = verify_profile(ws, profile, all, &mut codes).await {
            codes.push(super::report_failure(&target, "verify", &e));
        }
    }
    Ok(super::worst(&codes))
}

async fn verify_profile(ws: &Workspace, profile: &Profile, all: bool, codes: &mut Vec<u8>) -> Result<()> {
    let target = profile.target();
    let store = wiring::store(ws, &profile.settings, &profile.file.display().to_string())?;
    let listing = list_backups(&store, profile.dest_prefix()).await?;
    let chosen: Vec<&CatalogEntry> = if all {
        listing.complete.iter().collect()
    } else {
        listing.newest().into_iter().collect()
    };
    if chosen.is_empty() {
        println!("{target}: no complete backup to verify");
        return Ok(());
    }
    for entry in chosen {
        match verify_backup(ws, profile, &store, entry).await {
            Ok(what) => println!("{target}: backup {} OK ({what})", entry.manifest.id),
            Err(e) => codes.push(super::report_failure(
                &target,
                &format!("verify of backup {}", entry.manifest.id),
                &e,
            )),
        }
    }
    Ok(())
}

/// Checks one backup and records a `verified` mark on it.
///
/// # Errors
/// The first integrity, decryption or structure error.
pub async fn verify_backup(
    ws: &Workspace,
    profile: &Profile,
    store: &Arc<dyn Store>,
    entry: &CatalogEntry,
) -> Result<String> {
    let m = &entry.manifest;
    let (mode, what) = if wiring::has_secret_key(&profile.settings) {
        let decryptor = wiring::decryptor(ws, &profile.settings)?;
        let stream = restore_stream(store.clone(), decryptor, m, "data", default_parallelism());
        let what = if m.kind == "files" {
            let s = backup_files::check_stream(stream, &m.id).await?;
            format!(
                "{} chunks decrypted, tar archive read: {} files, {}",
                m.chunks.len(),
                s.files,
                human_size(s.bytes)
            )
        } else if m.kind == "postgres" {
            let bin_dir = wiring::pg_config(profile)?.bin_dir.map(|b| ws.path(&b));
            let entries = backup_pg::check_dump(stream, bin_dir.as_deref(), &m.id).await?;
            format!(
                "{} chunks decrypted, pg_restore --list read {entries} entries",
                m.chunks.len()
            )
        } else {
            let bytes = stream
                .try_fold(0u64, |n, b| async move { Ok(n + b.len() as u64) })
                .await?;
            format!("{} chunks decrypted, {}", m.chunks.len(), human_size(bytes))
        };
        ("full", what)
    } else {
        let folder = join_key([m.dest_prefix.as_str(), m.id.as_str()]);
        for chunk in &m.chunks {
            fetch_checked(&**store, &join_key([folder.as_str(), chunk.name.as_str()]), chunk).await?;
        }
        (
            "checksums",
            format!(
                "{} chunks match the manifest's SHA-256; no secret key configured, so not decrypted",
                m.chunks.len()
            ),
        )
    };
    let mark = json!({"time": rfc3339(Utc::now()), "mode": mode, "detail": what});
    write_mark(&**store, m, "verified", &mark).await?;
    Ok(what)
}
