//! `prune [TARGET..] [--dry-run] [--json]`: retention, explained.

use std::process::ExitCode;

use anyhow::Result;
use backup_core::lease::{self, PROFILE_LEASE};
use backup_core::prune::{self, PrunePlan};
use backup_core::{list_backups, DynStore, Listing};
use chrono::Utc;

use crate::monitoring::{self, Job, Outcome};
use crate::output::say;
use crate::wiring;
use crate::workspace::{Profile, Workspace};

/// Applies (or with `dry_run`, shows) retention for each selected profile.
///
/// # Errors
/// Bad arguments; per-profile failures are reported and set the exit status.
pub async fn run(ws: &Workspace, targets: &[String], dry_run: bool, json: bool) -> Result<ExitCode> {
    let mut codes = Vec::new();
    let mut plans = Vec::new();
    let mut tally = crate::report::Tally::default();
    let profiles = ws.select(targets)?;
    // A dry run changes nothing: nothing to report to monitoring.
    let mut monitor = if dry_run {
        None
    } else {
        Some(monitoring::Run::start(ws, Job::Prune).await)
    };
    for profile in profiles {
        let codes_before = codes.len();
        let started = match &monitor {
            Some(m) => Some(m.profile_start(profile).await),
            None => None,
        };
        let result = prune_one(ws, profile, dry_run, json, &mut codes, &mut plans).await;
        tally.profile(codes_before, &codes);
        if let (Some(monitor), Some(started)) = (monitor.as_mut(), started) {
            let outcome = match &result {
                Ok(outcome) => outcome,
                Err(e) => &Outcome::failed(e),
            };
            monitor.profile_done(profile, started, outcome).await;
        }
        if let Err(e) = result {
            if let Some(monitor) = monitor {
                monitor.finish(Some(&e)).await;
            }
            return Err(e);
        }
    }
    if let Some(monitor) = monitor {
        monitor.finish(None).await;
    }
    if json {
        // Asked for explicitly, so printed also under `-q`.
        let mut text = serde_json::to_string_pretty(&plans)?;
        text.push('\n');
        crate::output::write_stdout(text.as_bytes())?;
    } else {
        tally.finish("prune");
    }
    Ok(crate::report::worst(&codes))
}

/// Prunes one profile, printing its plan or pushing an exit code; returns
/// how it went, for monitoring.
///
/// # Errors
/// Only an interruption, which stops the run.
async fn prune_one(
    ws: &Workspace,
    profile: &Profile,
    dry_run: bool,
    json: bool,
    codes: &mut Vec<u8>,
    plans: &mut Vec<serde_json::Value>,
) -> Result<Outcome> {
    let lock = if dry_run {
        None
    } else {
        Some(crate::lock::acquire(ws, &crate::lock::profile_lock(profile)))
    };
    if let Some(Err(e)) = lock {
        codes.push(crate::report::failure(&profile.target(), "prune", &e));
        return Ok(Outcome::failed(&e));
    }
    let what = format!("prune of {}", profile.target());
    let outcome = match crate::interrupt::cancellable(&what, prune_profile(ws, profile, dry_run)).await {
        Err(e) if crate::interrupt::signal_of(&e).is_some() => return Err(e),
        Ok(plan) => {
            if !json {
                print_plan(&plan, dry_run);
            }
            let outcome = Outcome::ok(summary(&plan, dry_run));
            plans.push(plan_json(
                &plan,
                profile.settings.store.url.as_deref().unwrap_or_default(),
            ));
            outcome
        }
        Err(e) => {
            codes.push(crate::report::failure(&profile.target(), "prune", &e));
            Outcome::failed(&e)
        }
    };
    // Each copy_to store keeps its own timeline, planned from its own catalog.
    for (url, result) in prune_copies(ws, profile, dry_run).await {
        match result {
            Err(e) if crate::interrupt::signal_of(&e).is_some() => return Err(e),
            Ok(plan) => {
                if !json {
                    say!("{}: on [store] copy_to {url}:", profile.target());
                    print_plan(&plan, dry_run);
                }
                plans.push(plan_json(&plan, &url));
            }
            Err(e) => {
                codes.push(crate::report::failure(
                    &profile.target(),
                    &format!("prune on {url}"),
                    &e,
                ));
            }
        }
    }
    Ok(outcome)
}

/// A plan as `prune --json` prints it: the plan plus the store it is for.
fn plan_json(plan: &PrunePlan, store: &str) -> serde_json::Value {
    let mut value = serde_json::to_value(plan).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.insert("store".into(), store.into());
    }
    value
}

/// Applies (or with `dry_run`, plans) retention on each `[store] copy_to`
/// store of `profile`, each from its own catalog and under its own lease.
pub async fn prune_copies(ws: &Workspace, profile: &Profile, dry_run: bool) -> Vec<(String, Result<PrunePlan>)> {
    let mut results = Vec::new();
    for url in profile.settings.store.copy_stores() {
        let work = async {
            let store = wiring::store_at(ws, &profile.settings, url, "[store] copy_to")?;
            prune_store(ws, profile, &store, dry_run).await
        };
        let what = format!("prune of {} on {url}", profile.target());
        results.push((url.clone(), crate::interrupt::cancellable(&what, work).await));
    }
    results
}

/// The plan for a listing of `profile`, now.
pub fn plan(profile: &Profile, listing: &Listing) -> PrunePlan {
    let policy = &profile.settings.retention;
    prune::plan(
        listing,
        profile.dest_prefix(),
        policy,
        Utc::now(),
        policy.incomplete_grace,
    )
}

/// Plans and (unless `dry_run`) removes exactly what the plan says, under the
/// profile's lease in the store.
///
/// # Errors
/// Store, key or lease errors; what was planned but not removed is left for
/// the next prune.
pub async fn prune_profile(ws: &Workspace, profile: &Profile, dry_run: bool) -> Result<PrunePlan> {
    let store = wiring::store(ws, &profile.settings, &profile.file.display().to_string())?;
    prune_store(ws, profile, &store, dry_run).await
}

/// [`prune_profile`] on `store`.
async fn prune_store(ws: &Workspace, profile: &Profile, store: &DynStore, dry_run: bool) -> Result<PrunePlan> {
    let s = &profile.settings;
    let trust = wiring::trust(ws, s)?;
    let lease = if dry_run {
        None
    } else {
        Some(lease::acquire(store, profile.dest_prefix(), PROFILE_LEASE, wiring::lease_ttl(profile)).await?)
    };
    let result = async {
        let listing = list_backups(store, &profile.profile_ref(), &trust).await?;
        let plan = plan(profile, &listing);
        if !dry_run {
            let applied = prune::apply(store, &plan, Utc::now(), s.retention.incomplete_grace).await?;
            if applied.swept > 0 {
                tracing::info!(target_profile = %profile.target(), pieces = applied.swept, "removed debris of interrupted uploads");
            }
        }
        Ok(plan)
    }
    .await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    result
}

/// The plan's first line: `app/db: keep 7, removed 1, …`.
pub fn summary(plan: &PrunePlan, dry_run: bool) -> String {
    let verb = if dry_run { "would remove" } else { "removed" };
    format!(
        "{}: keep {}, {verb} {}, {verb} {} incomplete, {verb} {} untrusted",
        plan.target,
        plan.keep.len(),
        plan.remove.len(),
        plan.incomplete.len(),
        plan.untrusted.len()
    )
}

fn print_plan(plan: &PrunePlan, dry_run: bool) {
    let verb = if dry_run { "would remove" } else { "removed" };
    say!("{}", summary(plan, dry_run));
    for k in &plan.keep {
        say!(
            "  keep    {}  {}  {}",
            k.id,
            backup_core::manifest::rfc3339(k.time),
            k.reasons.join(", ")
        );
    }
    for r in &plan.remove {
        say!("  {verb:<7} {}  {}", r.id, backup_core::manifest::rfc3339(r.time));
    }
    for i in &plan.incomplete {
        say!("  {verb:<7} {}  (incomplete)", i.id);
    }
    for u in &plan.untrusted {
        say!(
            "  {verb:<7} {}  (untrusted: {})",
            u.id,
            u.reason.as_deref().unwrap_or_default()
        );
    }
}
