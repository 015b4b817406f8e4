//! `verify [TARGET..] [--all]`.

use std::process::ExitCode;

use anyhow::Result;
use backup_core::verify::record_verified;
use backup_core::{list_backups, verify_backup, CatalogEntry, VerifyMode, VerifyReport};

use crate::output::{human_size, say};
use crate::workspace::{Profile, Workspace};
use crate::{kinds, wiring};

/// Verifies the newest (or with `all`, every) trusted backup of each selected
/// profile; any untrusted or damaged backup (with `all`), or an untrusted one
/// newer than the newest trusted, fails the run.
///
/// With a secret key configured each chunk is downloaded, checked against the
/// signed manifest, decrypted and decompressed, and the data stream is read
/// (tar archive, `pg_restore --list`); without one, only the stored bytes'
/// sizes and SHA-256 are checked.
///
/// # Errors
/// Bad arguments; per-backup failures are reported and set the exit status.
pub async fn run(ws: &Workspace, targets: &[String], all: bool) -> Result<ExitCode> {
    let mut codes = Vec::new();
    let mut tally = crate::report::Tally::default();
    for profile in ws.select(targets)? {
        let target = profile.target();
        let codes_before = codes.len();
        let work = verify_profile(ws, profile, all, &mut codes);
        match crate::interrupt::cancellable(&format!("verify of {target}"), work).await {
            Err(e) if crate::interrupt::signal_of(&e).is_some() => return Err(e),
            Err(e) => codes.push(crate::report::failure(&target, "verify", &e)),
            Ok(()) => {}
        }
        tally.profile(codes_before, &codes);
    }
    tally.finish("verify");
    Ok(crate::report::worst(&codes))
}

async fn verify_profile(ws: &Workspace, profile: &Profile, all: bool, codes: &mut Vec<u8>) -> Result<()> {
    let target = profile.target();
    let s = &profile.settings;
    let store = wiring::store(ws, s, &profile.file.display().to_string())?;
    let trust = wiring::trust(ws, s)?;
    let listing = list_backups(&store, &profile.profile_ref(), &trust).await?;
    let suspicious = if all {
        listing.untrusted.iter().collect()
    } else {
        listing.untrusted_newer()
    };
    for u in suspicious {
        eprintln!("{target}: verify of backup {} failed: not trusted: {}", u.id, u.reason);
        codes.push(1);
    }
    let chosen: Vec<&CatalogEntry> = if all {
        listing.trusted.iter().collect()
    } else {
        listing.newest().into_iter().collect()
    };
    if chosen.is_empty() {
        say!("{target}: no trusted backup to verify");
        return Ok(());
    }
    let decryptor = if wiring::has_secret_key(s) {
        Some(wiring::decryptor(ws, s)?)
    } else {
        None
    };
    let check = kinds::check(ws, profile);
    for entry in chosen {
        let id = &entry.manifest.id;
        match verify_backup(&store, entry, decryptor.clone(), Some(check.as_ref())).await {
            Ok(report) => {
                say!("{target}: backup {id} OK ({})", describe(&report));
                if let Err(e) = record_verified(&store, entry, &report).await {
                    tracing::warn!(error = %e.report(), "verified, but could not record the mark in the store");
                }
            }
            Err(e) => codes.push(crate::report::failure(
                &target,
                &format!("verify of backup {id}"),
                &wiring::wrong_key_hint(e),
            )),
        }
    }
    Ok(())
}

fn describe(report: &VerifyReport) -> String {
    match report.mode {
        VerifyMode::Checksums => format!(
            "{} chunks match the signed manifest's SHA-256; no secret key configured, so not decrypted",
            report.chunks
        ),
        _ => format!(
            "{} chunks decrypted, {}{}",
            report.chunks,
            human_size(report.plaintext_bytes.unwrap_or(0)),
            report
                .structure
                .as_deref()
                .map(|s| format!(", {s}"))
                .unwrap_or_default()
        ),
    }
}
