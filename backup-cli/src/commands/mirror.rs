//! `mirror [TARGET..] [--backup ID] [--dry-run]`: refresh test databases from
//! the newest trusted backup in the store (DESIGN §7).

use std::process::ExitCode;

use anyhow::{bail, Result};
use backup_core::manifest::rfc3339;
use backup_core::{list_backups, Pick};
use backup_pg::{mirror_backup, Mirror};

use serde_json::json;

use crate::monitoring::{self, Job, Outcome};
use crate::output::{human_size, say};
use crate::workspace::{Profile, Workspace};
use crate::{lock, wiring};

/// Refreshes the test database of each selected profile that has a `[mirror]`.
/// With `json`, prints one object per profile (target, result, id, sizes,
/// error) instead of the result lines.
///
/// # Errors
/// Bad arguments; per-profile failures are reported and set the exit status.
pub async fn run(
    ws: &Workspace,
    targets: &[String],
    backup: Option<&str>,
    dry_run: bool,
    json: bool,
) -> Result<ExitCode> {
    let mut profiles: Vec<&Profile> = ws.select(targets)?;
    if targets.is_empty() {
        profiles.retain(|p| p.settings.mirror.is_some());
    }
    if profiles.is_empty() {
        bail!("no profile has a [mirror] section; see apps/templates/postgres.toml");
    }
    let mut codes = Vec::new();
    let mut rows = Vec::new();
    let mut tally = crate::report::Tally::default();
    // A dry run changes nothing: nothing to report to monitoring.
    let mut monitor = if dry_run {
        None
    } else {
        Some(monitoring::Run::start(ws, Job::Mirror).await)
    };
    for profile in profiles {
        let codes_before = codes.len();
        let started = match &monitor {
            Some(m) => Some(m.profile_start(profile).await),
            None => None,
        };
        let what = format!("mirror of {}", profile.target());
        let result = crate::interrupt::cancellable(&what, mirror_profile(ws, profile, backup, dry_run, json)).await;
        let outcome = match &result {
            Ok(done) => Outcome {
                result: Ok(done.summary.clone()),
                sizes: None,
            },
            Err(e) => Outcome::failed(e),
        };
        if let (Some(monitor), Some(started)) = (monitor.as_mut(), started) {
            monitor.profile_done(profile, started, &outcome).await;
        }
        match result {
            Err(e) if crate::interrupt::signal_of(&e).is_some() => {
                if let Some(monitor) = monitor {
                    monitor.finish(Some(&e)).await;
                }
                return Err(e);
            }
            Err(e) => {
                codes.push(crate::report::failure(&profile.target(), "mirror", &e));
                rows.push(json!({"target": profile.target(), "result": "failed", "error": crate::hints::render(&e)}));
            }
            Ok(done) => rows.push(done.row),
        }
        tally.profile(codes_before, &codes);
    }
    if let Some(monitor) = monitor {
        monitor.finish(None).await;
    }
    if json {
        // Asked for explicitly, so printed also under `-q`.
        let text = format!("{}\n", serde_json::to_string_pretty(&rows)?);
        crate::output::write_stdout(text.as_bytes())?;
    } else {
        tally.finish("mirror");
    }
    Ok(crate::report::worst(&codes))
}

/// One profile's mirror (or its plan): the line for monitoring, the object
/// for `--json`.
struct Mirrored {
    summary: String,
    row: serde_json::Value,
}

async fn mirror_profile(
    ws: &Workspace,
    profile: &Profile,
    backup: Option<&str>,
    dry_run: bool,
    json: bool,
) -> Result<Mirrored> {
    let target = profile.target();
    let Some((test, config)) = wiring::mirror(ws, profile)? else {
        bail!("{} has no [mirror] section", profile.file.display());
    };
    let _lock = lock::acquire(ws, &format!("mirror-{}-{}", profile.app, profile.name))?;
    let s = &profile.settings;
    let store = wiring::store(ws, s, &profile.file.display().to_string())?;
    let trust = wiring::trust(ws, s)?;
    let pick = backup.map_or(Pick::Newest, Pick::Id);
    if dry_run {
        let listing = list_backups(&store, &profile.profile_ref(), &trust).await?;
        let m = &listing.pick(pick)?.manifest;
        let summary = format!(
            "{target}: would mirror backup {} ({}, {}) into {test}",
            m.id,
            rfc3339(m.time),
            human_size(m.plaintext_size)
        );
        let row = json!({
            "target": target,
            "result": "dry-run",
            "id": m.id,
            "time": rfc3339(m.time),
            "plaintext_size": m.plaintext_size,
            "stored_size": m.stored_size,
            "into": test.to_string(),
            "error": null,
        });
        if json {
            return Ok(Mirrored { summary, row });
        }
        say!(
            "{target}: would mirror backup {} ({}, {}) into {test}",
            m.id,
            rfc3339(m.time),
            human_size(m.plaintext_size)
        );
        say!(
            "  restore into a temporary database on {}:{}, then:",
            test.host,
            test.port
        );
        for file in &config.sanitize {
            say!("  sanitize with {}", file.display());
        }
        if let Some(check) = &config.check_sql {
            say!("  check {check:?} returns true");
        }
        let previous = if config.keep_previous {
            "keep the previous copy"
        } else {
            "drop the previous copy"
        };
        say!("  swap it in as {} and {previous}", test.database);
        return Ok(Mirrored { summary, row });
    }
    let _dumps = crate::debris::use_dump_folder(ws, profile)?;
    let profile_ref = profile.profile_ref();
    let work_dir = profile.data_dir(ws);
    let mirror = Mirror {
        store: &store,
        profile: &profile_ref,
        trust: &trust,
        decryptor: wiring::decryptor(ws, s)?,
        test: &test,
        config: &config,
        base: &ws.home,
        work_dir: &work_dir,
        lease_ttl: wiring::lease_ttl(profile),
    };
    let report = mirror_backup(&mirror, pick).await?;
    let database_size = report.refresh.database_size.max(0) as u64;
    let summary = format!(
        "{target}: mirrored backup {} ({}) into {}: {} tables, {}; backup marked restore-verified",
        report.id,
        report.time,
        report.into,
        report.refresh.tables,
        human_size(database_size)
    );
    if !json {
        say!("{summary}");
    }
    let row = json!({
        "target": target,
        "result": "ok",
        "id": report.id,
        "time": report.time.to_string(),
        "into": report.into.to_string(),
        "tables": report.refresh.tables,
        "database_size": database_size,
        "error": null,
    });
    Ok(Mirrored { summary, row })
}
