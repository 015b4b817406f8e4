//! `verify --drill [TARGET..]`: the restore drill `[verify] schedule` runs —
//! a full verify (download, authenticate, decrypt, decompress, read) of
//! each profile's newest trusted backup and of one older trusted backup
//! picked at random (borgmatic's spot check), recording `verified` marks in
//! the store and `backupapps_drill_*` series in the metrics textfile.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Result};
use backup_core::verify::{record_verified, record_verify_failed};
use backup_core::{list_backups, verify_backup, CatalogEntry, VerifyMode};
use rand::seq::SliceRandom;
use serde_json::{json, Value};

use crate::monitoring::{self, Job, Outcome};
use crate::output::{human_size, say};
use crate::scheduler::metrics::{record_drill, Drill};
use crate::workspace::{Profile, Workspace};
use crate::{kinds, wiring};

/// Drills each selected profile, continuing past failures.
///
/// # Errors
/// Bad arguments; per-profile failures are reported and set the exit status.
pub async fn run(ws: &Workspace, targets: &[String], json: bool) -> Result<ExitCode> {
    let mut codes = Vec::new();
    let mut rows = Vec::new();
    let profiles = ws.select(targets)?;
    // A drill is a verify: its pings and `backupapps_verify_*` lines too.
    let mut monitor = monitoring::Run::start(ws, Job::Verify).await;
    for profile in profiles {
        let target = profile.target();
        let started = Instant::now();
        let codes_before = codes.len();
        let run = monitor.profile_start(profile).await;
        let work = drill_profile(ws, profile, json, &mut codes, &mut rows);
        let result = crate::interrupt::cancellable(&format!("restore drill of {target}"), work).await;
        let outcome = match &result {
            Err(e) => Outcome::failed(e),
            Ok(_) if codes.len() > codes_before => Outcome {
                result: Err(format!("{target}: restore drill failed")),
                sizes: None,
            },
            Ok(n) => Outcome::ok(format!("{target}: restore drill, {n} backups fully verified")),
        };
        monitor.profile_done(profile, run, &outcome).await;
        let verified = match result {
            Err(e) if crate::interrupt::signal_of(&e).is_some() => {
                monitor.finish(Some(&e)).await;
                return Err(e);
            }
            Err(e) => {
                rows.push(json!({"target": target, "id": null, "result": "failed", "error": format!("{e:#}")}));
                codes.push(crate::report::failure(&target, "restore drill", &e));
                0
            }
            Ok(n) => n,
        };
        let drill = Drill {
            success: codes.len() == codes_before,
            verified,
            seconds: started.elapsed().as_secs_f64(),
        };
        record_drill(ws, profile, &drill);
    }
    monitor.finish(None).await;
    if json {
        let text = format!("{}\n", serde_json::to_string_pretty(&Value::Array(rows))?);
        crate::output::write_stdout(text.as_bytes())?;
    }
    Ok(crate::report::worst(&codes))
}

/// The newest trusted backup and one older one at random: `(newest, older)`.
fn pick(trusted: &[CatalogEntry]) -> Vec<&CatalogEntry> {
    let Some((newest, older)) = trusted.split_last() else {
        return Vec::new();
    };
    let mut chosen = vec![newest];
    chosen.extend(older.choose(&mut rand::thread_rng()));
    chosen
}

/// Verifies the picked backups of one profile fully; returns how many
/// verified. Failures push exit codes and rows.
async fn drill_profile(
    ws: &Workspace,
    profile: &Profile,
    json: bool,
    codes: &mut Vec<u8>,
    rows: &mut Vec<Value>,
) -> Result<usize> {
    let target = profile.target();
    let s = &profile.settings;
    if !wiring::has_secret_key(s) {
        bail!(
            "{}: a restore drill decrypts the backups: set [encryption] secret_key (and its passphrase) on this host",
            profile.file.display()
        );
    }
    let store = wiring::store(ws, s, &profile.file.display().to_string())?;
    let trust = wiring::trust(ws, s)?;
    let listing = list_backups(&store, &profile.profile_ref(), &trust).await?;
    for u in listing.untrusted_newer() {
        eprintln!("{target}: restore drill: backup {} is not trusted: {}", u.id, u.reason);
        rows.push(json!({"target": target, "id": u.id, "result": "untrusted", "error": u.reason}));
        codes.push(1);
    }
    let chosen = pick(&listing.trusted);
    if chosen.is_empty() {
        bail!("no trusted backup to drill: run `backupapps backup {target}` first");
    }
    let decryptor = wiring::decryptor(ws, s)?;
    let check = kinds::check(ws, profile);
    let mut verified = 0;
    for entry in chosen {
        let id = &entry.manifest.id;
        match verify_backup(&store, entry, Some(decryptor.clone()), Some(check.as_ref())).await {
            Ok(report) => {
                verified += 1;
                // With --json, stdout is the JSON array alone.
                if !json {
                    say!(
                        "{target}: restore drill: backup {id} OK ({} decrypted, {}{})",
                        crate::output::count(report.chunks, "chunk"),
                        human_size(report.plaintext_bytes.unwrap_or(0)),
                        report
                            .structure
                            .as_deref()
                            .map(|s| format!(", {s}"))
                            .unwrap_or_default()
                    );
                }
                rows.push(json!({"target": target, "id": id, "mode": report.mode, "result": "ok", "error": null}));
                if let Err(e) = record_verified(&store, entry, &report).await {
                    tracing::warn!(error = %e.report(), "verified, but could not record the mark in the store");
                }
            }
            Err(e) => {
                let e = wiring::wrong_key_hint(e);
                if let Err(me) = record_verify_failed(&store, entry, VerifyMode::Full, &format!("{e:#}")).await {
                    tracing::warn!(error = %me.report(), "verify failed, and the failure could not be recorded in the store");
                }
                rows.push(json!({"target": target, "id": id, "mode": VerifyMode::Full, "result": "failed", "error": format!("{e:#}")}));
                codes.push(crate::report::failure(
                    &target,
                    &format!("restore drill of backup {id}"),
                    &e,
                ));
            }
        }
    }
    Ok(verified)
}
