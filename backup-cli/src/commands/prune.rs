//! `prune [TARGET..] [--dry-run] [--json]`: retention, explained.

use std::process::ExitCode;

use anyhow::{anyhow, Result};
use backup_core::catalog::{list_backups, remove_backup, Listing};
use backup_core::manifest::rfc3339;
use backup_core::retention::{BackupSummary, Decision, RetentionPolicy};
use chrono::Utc;
use serde_json::{json, Value};

use crate::wiring;
use crate::workspace::{Profile, Workspace};

/// Applies (or with `dry_run`, shows) retention for each selected profile.
///
/// # Errors
/// Bad arguments; per-profile failures are reported and set the exit status.
pub async fn run(ws: &Workspace, targets: &[String], dry_run: bool, json: bool) -> Result<ExitCode> {
    let mut codes = Vec::new();
    let mut plans = Vec::new();
    for profile in ws.select(targets)? {
        let lock = if dry_run {
            None
        } else {
            Some(crate::lock::acquire(ws, &super::backup::profile_lock(profile)))
        };
        if let Some(Err(e)) = lock {
            codes.push(super::report_failure(&profile.target(), "prune", &e));
            continue;
        }
        match prune_profile(ws, profile, dry_run).await {
            Ok(plan) => {
                if !json {
                    print_plan(&plan, dry_run);
                }
                plans.push(plan);
            }
            Err(e) => codes.push(super::report_failure(&profile.target(), "prune", &e)),
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&Value::Array(plans))?);
    }
    Ok(super::worst(&codes))
}

/// The retention decisions for a listing, newest first.
///
/// # Errors
/// A bad `[retention]` setting, naming the profile file.
pub fn decisions(profile: &Profile, listing: &Listing) -> Result<Vec<Decision>> {
    let policy = profile
        .settings
        .retention
        .policy()
        .map_err(|e| anyhow!("{}: {e}", profile.file.display()))?;
    let summaries: Vec<BackupSummary> = listing
        .complete
        .iter()
        .map(|e| BackupSummary {
            id: e.manifest.id.clone(),
            time: e.manifest.time,
        })
        .collect();
    Ok(policy.plan(&summaries, Utc::now()))
}

/// Plans and (unless `dry_run`) removes; returns the plan as the JSON contract
/// `{"target", "keep": [{"id","time","reasons"}], "remove": [{"id","time"}]}`,
/// plus `"incomplete"`: the manifest-less backups removed (or to remove).
///
/// # Errors
/// Store errors; what was planned but not removed is left for the next prune.
pub async fn prune_profile(ws: &Workspace, profile: &Profile, dry_run: bool) -> Result<Value> {
    let s = &profile.settings;
    let store = wiring::store(ws, s, &profile.file.display().to_string())?;
    let lease = if dry_run {
        None
    } else {
        Some(
            crate::lease::acquire(
                &store,
                profile.dest_prefix(),
                "profile",
                super::backup::lease_ttl(profile),
            )
            .await?,
        )
    };
    let result = plan_and_remove(profile, &store, dry_run).await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    result
}

async fn plan_and_remove(
    profile: &Profile,
    store: &std::sync::Arc<dyn backup_core::Store>,
    dry_run: bool,
) -> Result<Value> {
    let s = &profile.settings;
    let listing = list_backups(store, profile.dest_prefix()).await?;
    let plan = decisions(profile, &listing)?;
    let grace = s
        .retention
        .grace()
        .map_err(|e| anyhow!("{}: {e}", profile.file.display()))?;
    let stale: Vec<_> = listing
        .incomplete
        .iter()
        .filter(|i| i.last_modified < Utc::now() - grace)
        .collect();
    if !dry_run {
        for d in plan.iter().filter(|d| !d.keep) {
            let entry = listing.complete.iter().find(|e| e.manifest.id == d.id);
            let objects = entry.map(|e| e.objects.as_slice()).unwrap_or_default();
            remove_backup(&**store, profile.dest_prefix(), &d.id, objects).await?;
            tracing::info!(target_profile = %profile.target(), id = %d.id, "removed backup (no retention rule keeps it)");
        }
        for i in &stale {
            remove_backup(&**store, profile.dest_prefix(), &i.id, &i.objects).await?;
            tracing::info!(target_profile = %profile.target(), id = %i.id, "removed incomplete backup");
        }
        let swept = store.sweep(profile.dest_prefix(), Utc::now() - grace).await?;
        if swept > 0 {
            tracing::info!(target_profile = %profile.target(), pieces = swept, "removed debris of interrupted uploads");
        }
    }
    let keep: Vec<Value> = plan
        .iter()
        .filter(|d| d.keep)
        .map(|d| json!({"id": d.id, "time": rfc3339(d.time), "reasons": d.reasons}))
        .collect();
    let remove: Vec<Value> = plan
        .iter()
        .filter(|d| !d.keep)
        .map(|d| json!({"id": d.id, "time": rfc3339(d.time)}))
        .collect();
    let incomplete: Vec<Value> = stale
        .iter()
        .map(|i| json!({"id": i.id, "last_modified": rfc3339(i.last_modified)}))
        .collect();
    Ok(json!({"target": profile.target(), "keep": keep, "remove": remove, "incomplete": incomplete}))
}

fn print_plan(plan: &Value, dry_run: bool) {
    let target = plan["target"].as_str().unwrap_or_default();
    let verb = if dry_run { "would remove" } else { "removed" };
    let empty = Vec::new();
    let list = |key: &str| plan[key].as_array().unwrap_or(&empty).clone();
    println!(
        "{target}: keep {}, {verb} {}, {verb} {} incomplete",
        list("keep").len(),
        list("remove").len(),
        list("incomplete").len()
    );
    for k in list("keep") {
        let reasons: Vec<&str> = k["reasons"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .filter_map(Value::as_str)
            .collect();
        println!(
            "  keep    {}  {}  {}",
            k["id"].as_str().unwrap_or_default(),
            k["time"].as_str().unwrap_or_default(),
            reasons.join(", ")
        );
    }
    for r in list("remove") {
        println!(
            "  {verb:<7} {}  {}",
            r["id"].as_str().unwrap_or_default(),
            r["time"].as_str().unwrap_or_default()
        );
    }
    for i in list("incomplete") {
        println!("  {verb:<7} {}  (incomplete)", i["id"].as_str().unwrap_or_default());
    }
}
