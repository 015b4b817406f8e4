//! `restore TARGET [--id ID | --at TIME] [--to DIR]`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use backup_core::catalog::{list_backups, select, write_mark};
use backup_core::manifest::rfc3339;
use backup_core::pipeline::default_parallelism;
use backup_core::restore_stream;
use chrono::Utc;
use serde_json::json;

use crate::output::{human_size, parse_time};
use crate::wiring;
use crate::workspace::Workspace;

/// Restores one backup of one profile into a folder.
///
/// # Errors
/// Unknown target or backup, missing secret key, integrity failures, a target
/// folder that would be overwritten; the target is left as it was.
pub async fn run(
    ws: &Workspace,
    target: &str,
    id: Option<&str>,
    at: Option<&str>,
    to: Option<PathBuf>,
) -> Result<ExitCode> {
    let at = at.map(|t| parse_time("--at", t)).transpose()?;
    let profiles = ws.select(&[target.to_owned()])?;
    let [profile] = profiles.as_slice() else {
        let names: Vec<_> = profiles.iter().map(|p| p.target()).collect();
        bail!("restore needs one profile; {target:?} names {}", names.join(", "));
    };
    let s = &profile.settings;
    let store = wiring::store(ws, s, &profile.file.display().to_string())?;
    let decryptor = wiring::decryptor(ws, s)?;
    let listing = list_backups(&store, profile.dest_prefix()).await?;
    let entry = select(&listing, &profile.target(), id, at)?;
    let m = &entry.manifest;
    let dir = match to {
        Some(dir) => ws.path(&dir),
        None => ws
            .home
            .join("restore")
            .join(&profile.app)
            .join(&profile.name)
            .join(&m.id),
    };
    let stream = restore_stream(store.clone(), decryptor, m, "data", default_parallelism());
    match m.kind.as_str() {
        "files" => {
            let summary = backup_files::restore_to_dir(stream, &dir, &m.id).await?;
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
        }
        other => bail!(
            "backup {} is of kind {other:?}, which this version cannot restore yet",
            m.id
        ),
    }
    let mark = json!({"time": rfc3339(Utc::now()), "to": dir.display().to_string()});
    if let Err(e) = write_mark(&*store, m, "restored", &mark).await {
        tracing::warn!(error = %e, "restored, but could not record the restore in the store");
    }
    Ok(ExitCode::SUCCESS)
}
