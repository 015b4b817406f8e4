//! `list [TARGET..] [--json] [--recipients]`: trusted backups, and what is in
//! the store but not trusted, with the reason; the keys each backup is
//! encrypted to on request (always in JSON).

use std::process::ExitCode;

use anyhow::Result;
use backup_core::catalog::{RESTORED_MARK, VERIFIED_MARK};
use backup_core::manifest::rfc3339;
use backup_core::{list_backups, CatalogEntry, Listing, Mark, MarkResult, Signed};
use serde_json::{json, Value};

use crate::output::human_size;
use crate::wiring;
use crate::workspace::{Profile, Workspace};

/// Prints the backups of each selected profile, oldest first.
///
/// # Errors
/// Bad arguments; per-profile failures are reported and set the exit status.
pub async fn run(ws: &Workspace, targets: &[String], json: bool, recipients: bool) -> Result<ExitCode> {
    run_at(ws, targets, json, recipients, None).await
}

/// As [`run`], from `store_url` (`--store`, e.g. a `copy_to` store) when
/// given instead of `[store] url`.
///
/// # Errors
/// Bad arguments; per-profile failures are reported and set the exit status.
pub async fn run_at(
    ws: &Workspace,
    targets: &[String],
    json: bool,
    recipients: bool,
    store_url: Option<&str>,
) -> Result<ExitCode> {
    run_with(ws, targets, json, recipients, store_url, false).await
}

/// As [`run_at`]; with `all`, also the backups under prefixes no profile
/// names any more ([`crate::orphans`]). Without it, a listing of every
/// profile ends with a one-line note on stderr when such backups exist.
///
/// # Errors
/// Bad arguments; per-profile failures are reported and set the exit status.
pub async fn run_with(
    ws: &Workspace,
    targets: &[String],
    json: bool,
    recipients: bool,
    store_url: Option<&str>,
    all: bool,
) -> Result<ExitCode> {
    let mut rows = Vec::new();
    let mut codes = Vec::new();
    for profile in ws.select(targets)? {
        let target = profile.target();
        let result = async {
            let store = match store_url {
                Some(url) => wiring::store_at(ws, &profile.settings, url, "--store")?,
                None => wiring::store(ws, &profile.settings, &profile.file.display().to_string())?,
            };
            let trust = wiring::trust(ws, &profile.settings)?;
            Ok::<_, anyhow::Error>(list_backups(&store, &profile.profile_ref(), &trust).await?)
        }
        .await;
        let listing = match result {
            Ok(x) => x,
            Err(e) => {
                codes.push(crate::report::failure(&target, "list", &e));
                continue;
            }
        };
        if !json {
            for u in &listing.untrusted {
                eprintln!(
                    "{target}: backup {} is NOT trusted and is never used: {}",
                    u.id, u.reason
                );
            }
            if !listing.incomplete.is_empty() {
                eprintln!(
                    "{target}: {} without manifest (failed or running); prune removes them after [retention] incomplete_grace",
                    crate::output::count(listing.incomplete.len(), "incomplete backup")
                );
            }
        }
        rows.extend(profile_rows(profile, &listing));
    }
    // Only for the configured stores, and only when asked or when a note
    // would be shown: a listing of every profile, for a human.
    let note_wanted = targets.is_empty() && !json && !crate::output::quiet();
    if store_url.is_none() && (all || note_wanted) {
        match crate::orphans::find(ws).await {
            Ok(orphans) if all => rows.extend(crate::orphans::rows(ws, &orphans).await?),
            Ok(orphans) => {
                if let Some(note) = crate::orphans::note(&orphans) {
                    eprintln!("{note}");
                }
            }
            Err(e) if all => return Err(e),
            // The note is a courtesy: a store that cannot be listed whole
            // failed the profiles' listings above already.
            Err(e) => tracing::debug!(error = %crate::hints::render(&e), "no scan for other prefixes"),
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&Value::Array(rows))?);
    } else if rows.is_empty() {
        println!("no backups yet");
    } else {
        print_table(&rows, recipients);
    }
    Ok(crate::report::worst(&codes))
}

/// One row per backup folder with a manifest: trusted ones with their
/// retention reasons and marks, then untrusted ones with the reason.
pub(super) fn profile_rows(profile: &Profile, listing: &Listing) -> Vec<Value> {
    let target = profile.target();
    let plan = super::prune::plan(profile, listing);
    let mut rows = Vec::new();
    for entry in &listing.trusted {
        let m = &entry.manifest;
        let kept = plan.keep.iter().find(|k| k.id == m.id);
        // Marks are unsigned notes from the store: shown, never used to
        // decide anything. Only a successful one fills the old time fields.
        let ok_field = |name: &str, field: fn(&Mark) -> Value| match entry.mark(name) {
            Some(Ok(m)) if m.result == MarkResult::Ok => field(&m),
            _ => Value::Null,
        };
        let mark_time = |name: &str| ok_field(name, |m| Value::from(m.time.as_str()));
        let (status, signer) = match &entry.signed {
            Signed::By(fingerprint) => ("trusted", Value::from(fingerprint.as_str())),
            _ => ("unsigned", Value::Null),
        };
        rows.push(json!({
            "target": target,
            "id": m.id,
            "time": rfc3339(m.time),
            "kind": m.kind,
            "size": m.stored_size,
            "plaintext_size": m.plaintext_size,
            "chunks": m.chunks.len(),
            "recipients": m.recipients,
            "trusted": true,
            "status": status,
            "signer": signer,
            "reason": Value::Null,
            "keep": kept.is_some(),
            "reasons": kept.map(|k| k.reasons.clone()).unwrap_or_default(),
            "verified": mark_time(VERIFIED_MARK),
            "verified_mode": ok_field(VERIFIED_MARK, |m| Value::from(m.mode.as_str())),
            "restored": mark_time(RESTORED_MARK),
            // A restore (or a mirror) that succeeded proved this backup restorable.
            "restore_verified": matches!(entry.mark(RESTORED_MARK), Some(Ok(m)) if m.result == MarkResult::Ok),
            "marks": {
                VERIFIED_MARK: mark_json(entry, VERIFIED_MARK),
                RESTORED_MARK: mark_json(entry, RESTORED_MARK),
            },
        }));
    }
    for u in &listing.untrusted {
        let m = u.manifest.as_ref();
        rows.push(json!({
            "target": target,
            "id": u.id,
            "time": m.map(|m| Value::from(rfc3339(m.time))).unwrap_or(Value::Null),
            "kind": m.map(|m| Value::from(m.kind.as_str())).unwrap_or(Value::Null),
            "size": m.map(|m| m.stored_size),
            "plaintext_size": m.map(|m| m.plaintext_size),
            "chunks": m.map(|m| m.chunks.len()),
            "recipients": m.map(|m| m.recipients.clone()).unwrap_or_default(),
            "trusted": false,
            "status": if m.is_some() { "untrusted" } else { "damaged" },
            "signer": Value::Null,
            "reason": u.reason,
            "keep": Value::Null,
            "reasons": [],
            "verified": Value::Null,
            "verified_mode": Value::Null,
            "restored": Value::Null,
            "restore_verified": false,
            "marks": {VERIFIED_MARK: Value::Null, RESTORED_MARK: Value::Null},
        }));
    }
    rows
}

/// A mark as `list --json` shows it: `{mode, result, time, reason, last_ok}`,
/// `{"result": "unreadable", "reason"}` when it cannot be read, null when
/// there is none.
fn mark_json(entry: &CatalogEntry, name: &str) -> Value {
    match entry.mark(name) {
        None => Value::Null,
        Some(Ok(m)) => serde_json::to_value(m).unwrap_or(Value::Null),
        Some(Err(why)) => json!({
            "mode": Value::Null,
            "result": "unreadable",
            "time": Value::Null,
            "reason": why,
            "last_ok": Value::Null,
        }),
    }
}

/// A mark as the table shows it, e.g. `verified (checksums) <time>`,
/// `verify FAILED (full) <time>: <reason>`, `restored <time>`.
fn mark_note(name: &str, mark: &Value) -> Option<String> {
    let field = |f: &str| mark[f].as_str().unwrap_or("?");
    let (done, doing) = if name == VERIFIED_MARK {
        ("verified", "verify")
    } else {
        ("restored", "restore")
    };
    match mark["result"].as_str()? {
        "ok" if name == VERIFIED_MARK => Some(format!("{done} ({}) {}", field("mode"), field("time"))),
        "ok" => Some(format!("{done} {}", field("time"))),
        "failed" => Some(format!(
            "{doing} FAILED{} {}: {}",
            if name == VERIFIED_MARK {
                format!(" ({})", field("mode"))
            } else {
                String::new()
            },
            field("time"),
            mark["reason"].as_str().unwrap_or("no reason recorded")
        )),
        _ => Some(format!("unreadable mark '{name}' ({})", field("reason"))),
    }
}

fn print_table(rows: &[Value], recipients: bool) {
    println!(
        "{:<24} {:<22} {:<21} {:>10} {:>6}  KEPT BY / MARKS",
        "TARGET", "ID", "TIME", "SIZE", "CHUNKS"
    );
    for r in rows {
        let notes = if r["trusted"].as_bool() == Some(false) {
            vec![format!(
                "{} — never used: {}",
                r["status"].as_str().unwrap_or_default().to_uppercase(),
                r["reason"].as_str().unwrap_or_default()
            )]
        } else {
            let mut notes: Vec<String> = if r["keep"].as_bool() == Some(false) {
                vec!["(to be pruned)".to_owned()]
            } else {
                r["reasons"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            };
            if r["status"] == "unsigned" {
                notes.push("UNSIGNED".into());
            }
            for name in [VERIFIED_MARK, RESTORED_MARK] {
                notes.extend(mark_note(name, &r["marks"][name]));
            }
            notes
        };
        let mut notes = notes;
        if recipients {
            notes.push(format!("encrypted to {}", encrypted_to(r)));
        }
        println!(
            "{:<24} {:<22} {:<21} {:>10} {:>6}  {}",
            r["target"].as_str().unwrap_or_default(),
            r["id"].as_str().unwrap_or_default(),
            r["time"].as_str().unwrap_or("-"),
            r["size"].as_u64().map(human_size).unwrap_or_else(|| "-".into()),
            r["chunks"],
            notes.join(", ")
        );
    }
}

/// The fingerprints a row's backup is encrypted to, space-separated: whole,
/// so that they can be compared with `gpg --list-keys` or `keygen`'s output.
fn encrypted_to(row: &Value) -> String {
    let keys: Vec<&str> = row["recipients"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if keys.is_empty() {
        "(unknown)".to_owned()
    } else {
        keys.join(" ")
    }
}
