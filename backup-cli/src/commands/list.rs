//! `list [TARGET..] [--json]`.

use std::process::ExitCode;

use anyhow::Result;
use backup_core::catalog::list_backups;
use backup_core::manifest::rfc3339;
use serde_json::{json, Value};

use crate::output::human_size;
use crate::wiring;
use crate::workspace::Workspace;

/// Prints the complete backups of each selected profile, oldest first.
///
/// # Errors
/// Bad arguments; per-profile failures are reported and set the exit status.
pub async fn run(ws: &Workspace, targets: &[String], json: bool) -> Result<ExitCode> {
    let mut rows = Vec::new();
    let mut codes = Vec::new();
    for profile in ws.select(targets)? {
        let target = profile.target();
        let result = async {
            let store = wiring::store(ws, &profile.settings, &profile.file.display().to_string())?;
            let listing = list_backups(&store, profile.dest_prefix()).await?;
            let plan = super::prune::decisions(profile, &listing)?;
            Ok::<_, anyhow::Error>((listing, plan))
        }
        .await;
        let (listing, plan) = match result {
            Ok(x) => x,
            Err(e) => {
                codes.push(super::report_failure(&target, "list", &e));
                continue;
            }
        };
        for (id, error) in &listing.damaged {
            eprintln!("{target}: backup {id} has an unreadable manifest and is not listed: {error}");
        }
        if !listing.incomplete.is_empty() && !json {
            eprintln!(
                "{target}: {} incomplete backup(s) without manifest (failed or running); prune removes them after [retention] incomplete_grace",
                listing.incomplete.len()
            );
        }
        for entry in &listing.complete {
            let m = &entry.manifest;
            let decision = plan.iter().find(|d| d.id == m.id);
            let mark_time = |name: &str| {
                entry
                    .marks
                    .get(name)
                    .and_then(|v| v.get("time"))
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            rows.push(json!({
                "target": target,
                "id": m.id,
                "time": rfc3339(m.time),
                "kind": m.kind,
                "size": m.stored_size,
                "plaintext_size": m.plaintext_size,
                "chunks": m.chunks.len(),
                "keep": decision.is_none_or(|d| d.keep),
                "reasons": decision.map(|d| d.reasons.clone()).unwrap_or_default(),
                "verified": mark_time("verified"),
                "restored": mark_time("restored"),
                // A restore (or a mirror) that succeeded proved this backup restorable.
                "restore_verified": entry.marks.contains_key("restored"),
            }));
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&Value::Array(rows))?);
    } else if rows.is_empty() {
        println!("no backups yet");
    } else {
        print_table(&rows);
    }
    Ok(super::worst(&codes))
}

fn print_table(rows: &[Value]) {
    println!(
        "{:<24} {:<22} {:<21} {:>10} {:>6}  KEPT BY / MARKS",
        "TARGET", "ID", "TIME", "SIZE", "CHUNKS"
    );
    for r in rows {
        let reasons: Vec<String> = r["reasons"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        let mut notes = if r["keep"].as_bool() == Some(false) {
            vec!["(to be pruned)".to_owned()]
        } else {
            reasons
        };
        for mark in ["verified", "restored"] {
            if let Some(t) = r[mark].as_str() {
                notes.push(format!("{mark} {t}"));
            }
        }
        println!(
            "{:<24} {:<22} {:<21} {:>10} {:>6}  {}",
            r["target"].as_str().unwrap_or_default(),
            r["id"].as_str().unwrap_or_default(),
            r["time"].as_str().unwrap_or_default(),
            human_size(r["size"].as_u64().unwrap_or(0)),
            r["chunks"],
            notes.join(", ")
        );
    }
}
