//! `verify [TARGET..] [--all]`.

use std::process::ExitCode;

use anyhow::Result;
use backup_core::verify::{record_verified, record_verify_failed};
use backup_core::{list_backups, verify_backup, CatalogEntry, VerifyMode, VerifyReport};

use serde_json::{json, Value};

use crate::monitoring::{self, Job, Outcome};
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
pub async fn run(ws: &Workspace, targets: &[String], all: bool, json: bool) -> Result<ExitCode> {
    let mut codes = Vec::new();
    // With `--json`: one object per backup looked at, printed at the end.
    let mut rows = Vec::new();
    let mut tally = crate::report::Tally::default();
    let profiles = ws.select(targets)?;
    let mut monitor = monitoring::Run::start(ws, Job::Verify).await;
    for profile in profiles {
        let target = profile.target();
        let codes_before = codes.len();
        let started = monitor.profile_start(profile).await;
        let mut failures = Vec::new();
        let work = verify_profile(ws, profile, all, &mut codes, &mut failures, json.then_some(&mut rows));
        let result = crate::interrupt::cancellable(&format!("verify of {target}"), work).await;
        let outcome = match &result {
            Err(e) => Outcome::failed(e),
            Ok(_) if !failures.is_empty() => Outcome {
                result: Err(failures.join("\n")),
                sizes: None,
            },
            Ok(checked) => Outcome::ok(format!(
                "{target}: {} verified",
                crate::output::count(*checked, "backup")
            )),
        };
        monitor.profile_done(profile, started, &outcome).await;
        match result {
            Err(e) if crate::interrupt::signal_of(&e).is_some() => {
                monitor.finish(Some(&e)).await;
                return Err(e);
            }
            Err(e) => {
                if json {
                    rows.push(row(&target, None, None, "failed", Some(crate::hints::render(&e))));
                }
                codes.push(crate::report::failure(&target, "verify", &e));
            }
            Ok(_) => {}
        }
        tally.profile(codes_before, &codes);
    }
    monitor.finish(None).await;
    if json {
        // Asked for explicitly, so printed also under `-q`.
        let text = format!("{}\n", serde_json::to_string_pretty(&Value::Array(rows))?);
        crate::output::write_stdout(text.as_bytes())?;
    } else {
        tally.finish("verify");
    }
    Ok(crate::report::worst(&codes))
}

/// One `verify --json` object: `result` is `ok`, `failed` or `untrusted`.
fn row(target: &str, id: Option<&str>, mode: Option<VerifyMode>, result: &str, error: Option<String>) -> Value {
    json!({"target": target, "id": id, "mode": mode, "result": result, "error": error})
}

async fn verify_profile(
    ws: &Workspace,
    profile: &Profile,
    all: bool,
    codes: &mut Vec<u8>,
    failures: &mut Vec<String>,
    mut rows: Option<&mut Vec<Value>>,
) -> Result<usize> {
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
        failures.push(format!("backup {} is not trusted: {}", u.id, u.reason));
        if let Some(rows) = rows.as_deref_mut() {
            rows.push(row(&target, Some(&u.id), None, "untrusted", Some(u.reason.clone())));
        }
        codes.push(1);
    }
    let chosen: Vec<&CatalogEntry> = if all {
        listing.trusted.iter().collect()
    } else {
        listing.newest().into_iter().collect()
    };
    if chosen.is_empty() {
        if rows.is_none() {
            say!("{target}: no trusted backup to verify");
        }
        return Ok(0);
    }
    let decryptor = if wiring::has_secret_key(s) {
        Some(wiring::decryptor(ws, s)?)
    } else {
        None
    };
    let check = kinds::check(ws, profile);
    let checked = chosen.len();
    for entry in chosen {
        let id = &entry.manifest.id;
        match verify_backup(&store, entry, decryptor.clone(), Some(check.as_ref())).await {
            Ok(report) => {
                match rows.as_deref_mut() {
                    Some(rows) => rows.push(row(&target, Some(id), Some(report.mode), "ok", None)),
                    None => say!("{target}: backup {id} OK ({})", describe(&report)),
                }
                if let Err(e) = record_verified(&store, entry, &report).await {
                    tracing::warn!(error = %e.report(), "verified, but could not record the mark in the store");
                }
            }
            Err(e) => {
                let e = wiring::wrong_key_hint(e);
                // The mode that was attempted: full only with a secret key.
                let mode = if decryptor.is_some() {
                    VerifyMode::Full
                } else {
                    VerifyMode::Checksums
                };
                // A failure is evidence too: recorded so that `list` stops
                // showing an earlier success as the backup's state.
                if let Err(me) = record_verify_failed(&store, entry, mode, &format!("{e:#}")).await {
                    tracing::warn!(error = %me.report(), "verify failed, and the failure could not be recorded in the store");
                }
                if let Some(rows) = rows.as_deref_mut() {
                    rows.push(row(&target, Some(id), Some(mode), "failed", Some(format!("{e:#}"))));
                }
                failures.push(format!("verify of backup {id} failed: {}", crate::hints::render(&e)));
                codes.push(crate::report::failure(&target, &format!("verify of backup {id}"), &e));
            }
        }
    }
    Ok(checked)
}

fn describe(report: &VerifyReport) -> String {
    match report.mode {
        VerifyMode::Checksums => format!(
            "{} match the signed manifest's SHA-256; no secret key configured, so not decrypted",
            crate::output::count(report.chunks, "chunk")
        ),
        _ => format!(
            "{} decrypted, {}{}",
            crate::output::count(report.chunks, "chunk"),
            human_size(report.plaintext_bytes.unwrap_or(0)),
            report
                .structure
                .as_deref()
                .map(|s| format!(", {s}"))
                .unwrap_or_default()
        ),
    }
}
