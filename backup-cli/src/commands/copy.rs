//! `copy [TARGET..] --to-store URL [--id ID | --all | --newest N]`, and the
//! copy of each new backup to the `[store] copy_to` stores after `backup`.
//! The copying itself is `backup_core::copy`.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use backup_core::copy::DEFAULT_COPY_PARALLELISM;
use backup_core::{copy_backups, list_backups, CopyOptions, CopyReport, CopyStatus, Selection};
use serde_json::{json, Value};

use crate::output::{human_size, say};
use crate::wiring;
use crate::workspace::{ConfigError, Profile, Workspace};

/// Which backups the command line asked for.
#[derive(Debug, Clone)]
pub enum Which {
    /// Every trusted backup (`--all`, the default).
    All,
    /// The newest N (`--newest N`).
    Newest(usize),
    /// One backup (`--id ID`).
    Id(String),
}

impl Which {
    /// From `--id` and `--newest` (clap keeps them apart).
    pub fn from_args(id: Option<&str>, newest: Option<u32>) -> Self {
        match (id, newest) {
            (Some(id), _) => Which::Id(id.to_owned()),
            (None, Some(n)) => Which::Newest(n as usize),
            (None, None) => Which::All,
        }
    }

    fn selection(&self) -> Selection<'_> {
        match self {
            Which::All => Selection::All,
            Which::Newest(n) => Selection::Newest(*n),
            Which::Id(id) => Selection::Id(id),
        }
    }
}

/// Copies the chosen backups of each selected profile to `to_store`.
///
/// # Errors
/// Bad arguments; per-profile and per-backup failures are reported and set
/// the exit status (1 for a backup not copied).
pub async fn run(
    ws: &Workspace,
    targets: &[String],
    to_store: &str,
    which: Which,
    parallelism: usize,
    json: bool,
) -> Result<ExitCode> {
    let mut codes = Vec::new();
    let mut rows = Vec::new();
    let mut tally = crate::report::Tally::default();
    let profiles = ws.select(targets)?;
    if let (Which::Id(id), true) = (&which, profiles.len() != 1) {
        bail!(ConfigError(format!(
            "--id {id} names one backup: give its profile as TARGET (app/profile); {} profiles are selected",
            profiles.len()
        )));
    }
    for profile in profiles {
        let target = profile.target();
        let codes_before = codes.len();
        let work = copy_profile(ws, profile, to_store, "--to-store", which.selection(), parallelism);
        match crate::interrupt::cancellable(&format!("copy of {target}"), work).await {
            Err(e) if crate::interrupt::signal_of(&e).is_some() => return Err(e),
            Err(e) => {
                rows.push(json!({"target": target, "to": to_store, "id": null, "status": "failed",
                    "reason": format!("{e:#}"), "objects_sent": 0, "objects_present": 0, "bytes_sent": 0}));
                codes.push(crate::report::failure(&target, "copy", &e));
            }
            Ok(report) => {
                if !json {
                    print_report(&report);
                }
                if report.has_failures() {
                    codes.push(1);
                }
                rows.extend(report_rows(&report));
            }
        }
        tally.profile(codes_before, &codes);
    }
    if json {
        // Asked for explicitly, so printed also under `-q`.
        let text = format!("{}\n", serde_json::to_string_pretty(&Value::Array(rows))?);
        crate::output::write_stdout(text.as_bytes())?;
    } else {
        tally.finish("copy");
    }
    Ok(crate::report::worst(&codes))
}

/// Copies `selection` of one profile's trusted backups from its `[store]
/// url` to the store at `url` (`origin` names where the URL came from).
///
/// # Errors
/// Configuration, key, listing or lease errors; a destination that is the
/// profile's own store.
pub async fn copy_profile(
    ws: &Workspace,
    profile: &Profile,
    url: &str,
    origin: &str,
    selection: Selection<'_>,
    parallelism: usize,
) -> Result<CopyReport> {
    let s = &profile.settings;
    let file = profile.file.display().to_string();
    let from = wiring::store(ws, s, &file)?;
    let to = wiring::store_at(ws, s, url, origin)?;
    if from.location() == to.location() {
        bail!(ConfigError(format!(
            "{origin}: {url} is {}'s own store ([store] url); copy to another store",
            profile.target()
        )));
    }
    let trust = wiring::trust(ws, s).with_context(|| file.clone())?;
    let listing = list_backups(&from, &profile.profile_ref(), &trust).await?;
    let options = CopyOptions::new()
        .with_parallelism(parallelism)
        .with_lease_ttl(wiring::lease_ttl(profile));
    let report = copy_backups(&from, &to, &listing, profile.dest_prefix(), &trust, selection, &options)
        .await
        .with_context(|| format!("copy to {}", to.location()))?;
    Ok(report)
}

/// After a backup: copies the new backup `id` to each `[store] copy_to`
/// store. Every store is tried; the first failure is returned (the backup
/// itself stays in `[store] url`). `json`: print nothing (the caller's
/// JSON report says how it went).
///
/// # Errors
/// Names each store the backup could not be copied to, and how to retry.
pub async fn copy_to_stores(ws: &Workspace, profile: &Profile, id: &str, json: bool) -> Result<()> {
    let target = profile.target();
    let mut failed = Vec::new();
    for url in profile.settings.store.copy_stores() {
        let copied = copy_profile(
            ws,
            profile,
            url,
            "[store] copy_to",
            Selection::Id(id),
            DEFAULT_COPY_PARALLELISM,
        )
        .await
        .and_then(
            |report| match report.backups.iter().find(|b| b.status == CopyStatus::Failed) {
                Some(b) => bail!("{}", b.reason.as_deref().unwrap_or("not copied")),
                None => Ok(report),
            },
        );
        match copied {
            Ok(report) => {
                let sent: u64 = report.backups.iter().map(|b| b.bytes_sent).sum();
                if !json {
                    say!("{target}: backup {id} copied to {} ({})", report.to, human_size(sent));
                }
            }
            Err(e) if crate::interrupt::signal_of(&e).is_some() => return Err(e),
            Err(e) => {
                let e = e.context(format!(
                    "backup {id} is stored, but copying it to [store] copy_to {url} failed; \
                     retry with `backupapps copy {target} --to-store {url} --id {id}`"
                ));
                failed.push(e);
            }
        }
    }
    match failed.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn report_rows(report: &CopyReport) -> Vec<Value> {
    report
        .backups
        .iter()
        .map(|b| {
            json!({
                "target": report.target,
                "to": report.to,
                "id": b.id,
                "status": b.status,
                "reason": b.reason,
                "objects_sent": b.objects_sent,
                "objects_present": b.objects_present,
                "bytes_sent": b.bytes_sent,
            })
        })
        .collect()
}

fn print_report(report: &CopyReport) {
    let (target, to) = (&report.target, &report.to);
    let (mut copied, mut skipped, mut failed, mut sent) = (0, 0, 0, 0);
    for b in &report.backups {
        match b.status {
            CopyStatus::Copied => {
                copied += 1;
                say!(
                    "{target}: copied {} to {to}: {} objects, {} sent ({} there already)",
                    b.id,
                    b.objects_sent,
                    human_size(b.bytes_sent),
                    b.objects_present
                );
            }
            CopyStatus::Skipped => skipped += 1,
            _ => {
                failed += 1;
                // Not `eprintln!`: a closed stderr must not become a panic.
                let _ = std::io::Write::write_fmt(
                    &mut std::io::stderr(),
                    format_args!(
                        "{target}: copy of backup {} failed: {}\n",
                        b.id,
                        b.reason.as_deref().unwrap_or_default()
                    ),
                );
            }
        }
        sent += b.bytes_sent;
    }
    say!(
        "{target}: {copied} copied, {skipped} already there, {failed} not copied, {} sent to {to}",
        human_size(sent)
    );
}
