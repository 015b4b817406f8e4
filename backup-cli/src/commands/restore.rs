//! `restore TARGET [--id ID | --at TIME] [--to DIR | --to-db NAME [--replace]]`.

use std::process::ExitCode;

use anyhow::{bail, Result};
use backup_core::catalog::write_mark;
use backup_core::manifest::rfc3339;
use backup_core::{list_backups, Pick};
use chrono::Utc;
use serde_json::json;

use crate::kinds::{self, Destination};
use crate::output::{parse_at, say};
use crate::wiring;
use crate::workspace::Workspace;

/// Restores one trusted backup of one profile.
///
/// # Errors
/// Unknown target or backup, an untrusted backup, a missing secret key,
/// integrity failures, a target that would be overwritten; the target is
/// left as it was, also when a signal stops the restore.
pub async fn run(
    ws: &Workspace,
    target: &str,
    id: Option<&str>,
    at: Option<&str>,
    dest: Destination,
    json: bool,
) -> Result<ExitCode> {
    let what = format!("restore of {target}");
    crate::interrupt::cancellable(&what, restore(ws, target, id, at, dest, json)).await
}

async fn restore(
    ws: &Workspace,
    target: &str,
    id: Option<&str>,
    at: Option<&str>,
    dest: Destination,
    json: bool,
) -> Result<ExitCode> {
    let at = at.map(parse_at).transpose()?;
    if dest.preserve_owners {
        // Refused before anything is read from the store.
        let options = backup_files::ExtractOptions::new().with_preserve_owners(true);
        options
            .check()
            .map_err(|e| crate::hints::hint(e, "run the restore as root, or leave out --preserve-owners"))?;
    }
    let profiles = ws.select(&[target.to_owned()])?;
    let [profile] = profiles.as_slice() else {
        let names: Vec<_> = profiles.iter().map(|p| p.target()).collect();
        bail!("restore needs one profile; {target:?} names {}", names.join(", "));
    };
    let s = &profile.settings;
    let store = wiring::store(ws, s, &profile.file.display().to_string())?;
    let trust = wiring::trust(ws, s)?;
    let decryptor = wiring::decryptor_soon(ws, s)?;
    let listing = list_backups(&store, &profile.profile_ref(), &trust).await?;
    let pick = match (id, at.map(|at| at.until(s.retention.timezone))) {
        (Some(id), _) => Pick::Id(id),
        (None, Some(Some(until))) => Pick::At(until),
        // No --at, or `--at latest`.
        (None, _) => Pick::Newest,
    };
    let entry = listing.pick(pick).map_err(|e| match e {
        backup_core::Error::Untrusted { .. } if id.is_none() => anyhow::Error::new(e)
            .context("refusing to fall back silently; pass --id to restore an older trusted backup"),
        other => other.into(),
    })?;
    let m = &entry.manifest;
    let default_dir = ws
        .home
        .join("restore")
        .join(&profile.app)
        .join(&profile.name)
        .join(entry.folder().id());
    if dest.to.is_none() && dest.to_db.is_none() {
        // restore/<app>/<profile>/ will hold plaintext: its owner's only.
        if let Some(parent) = default_dir.parent() {
            crate::private::create_dirs(parent)?;
        }
    }
    let restored = kinds::restore(ws, profile, &store, decryptor, entry, &dest, &default_dir).await?;
    if json {
        // Asked for explicitly, so printed also under `-q`.
        let row = json!({
            "target": profile.target(),
            "id": m.id,
            "time": rfc3339(m.time),
            "into": restored.into,
            "details": restored.lines,
        });
        crate::output::write_stdout(format!("{}\n", serde_json::to_string_pretty(&row)?).as_bytes())?;
    } else {
        say!(
            "{}: restored backup {} ({}) into {}",
            profile.target(),
            m.id,
            rfc3339(m.time),
            restored.into
        );
        for line in &restored.lines {
            say!("  {line}");
        }
    }
    if !(dest.files.include.is_empty() && dest.files.exclude.is_empty()) {
        // A partial restore read only some chunks: it proves nothing about the rest.
        return Ok(ExitCode::SUCCESS);
    }
    let mark = json!({"time": rfc3339(Utc::now()), "mode": "restored", "result": "ok", "to": restored.into});
    if let Err(e) = write_mark(&store, entry.folder(), backup_core::catalog::RESTORED_MARK, &mark).await {
        tracing::warn!(error = %e.report(), "restored, but could not record the restore in the store");
    }
    Ok(ExitCode::SUCCESS)
}
