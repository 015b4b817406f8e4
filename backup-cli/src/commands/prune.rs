//! `prune [TARGET..] [--dry-run] [--json]`: retention, explained.

use std::process::ExitCode;

use anyhow::Result;
use backup_core::lease::{self, PROFILE_LEASE};
use backup_core::prune::{self, PrunePlan};
use backup_core::{list_backups, Listing};
use chrono::Utc;

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
    for profile in ws.select(targets)? {
        let codes_before = codes.len();
        prune_one(ws, profile, dry_run, json, &mut codes, &mut plans).await?;
        tally.profile(codes_before, &codes);
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

/// Prunes one profile, printing its plan or pushing an exit code.
///
/// # Errors
/// Only an interruption, which stops the run.
async fn prune_one(
    ws: &Workspace,
    profile: &Profile,
    dry_run: bool,
    json: bool,
    codes: &mut Vec<u8>,
    plans: &mut Vec<PrunePlan>,
) -> Result<()> {
    let lock = if dry_run {
        None
    } else {
        Some(crate::lock::acquire(ws, &crate::lock::profile_lock(profile)))
    };
    if let Some(Err(e)) = lock {
        codes.push(crate::report::failure(&profile.target(), "prune", &e));
        return Ok(());
    }
    let what = format!("prune of {}", profile.target());
    match crate::interrupt::cancellable(&what, prune_profile(ws, profile, dry_run)).await {
        Err(e) if crate::interrupt::signal_of(&e).is_some() => return Err(e),
        Ok(plan) => {
            if !json {
                print_plan(&plan, dry_run);
            }
            plans.push(plan);
        }
        Err(e) => codes.push(crate::report::failure(&profile.target(), "prune", &e)),
    }
    Ok(())
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
    let s = &profile.settings;
    let store = wiring::store(ws, s, &profile.file.display().to_string())?;
    let trust = wiring::trust(ws, s)?;
    let lease = if dry_run {
        None
    } else {
        Some(lease::acquire(&store, profile.dest_prefix(), PROFILE_LEASE, wiring::lease_ttl(profile)).await?)
    };
    let result = async {
        let listing = list_backups(&store, &profile.profile_ref(), &trust).await?;
        let plan = plan(profile, &listing);
        if !dry_run {
            let applied = prune::apply(&store, &plan, Utc::now(), s.retention.incomplete_grace).await?;
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

fn print_plan(plan: &PrunePlan, dry_run: bool) {
    let verb = if dry_run { "would remove" } else { "removed" };
    say!(
        "{}: keep {}, {verb} {}, {verb} {} incomplete, {verb} {} untrusted",
        plan.target,
        plan.keep.len(),
        plan.remove.len(),
        plan.incomplete.len(),
        plan.untrusted.len()
    );
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
