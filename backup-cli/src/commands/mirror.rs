//! `mirror [TARGET..] [--backup ID] [--dry-run]`: refresh test databases from
//! the newest backup in the store (DESIGN §7).

use std::process::ExitCode;

use anyhow::{bail, Result};
use backup_core::catalog::{list_backups, select, write_mark};
use backup_core::manifest::rfc3339;
use chrono::Utc;
use serde_json::json;

use crate::output::human_size;
use crate::workspace::{Profile, Workspace};
use crate::{lock, wiring};

/// Refreshes the test database of each selected profile that has a `[mirror]`.
///
/// # Errors
/// Bad arguments; per-profile failures are reported and set the exit status.
pub async fn run(ws: &Workspace, targets: &[String], backup: Option<&str>, dry_run: bool) -> Result<ExitCode> {
    let mut profiles: Vec<&Profile> = ws.select(targets)?;
    if targets.is_empty() {
        profiles.retain(|p| p.settings.mirror.is_some());
    }
    if profiles.is_empty() {
        bail!("no profile has a [mirror] section; see apps/templates/postgres.toml");
    }
    let mut codes = Vec::new();
    for profile in profiles {
        if let Err(e) = mirror_profile(ws, profile, backup, dry_run).await {
            codes.push(super::report_failure(&profile.target(), "mirror", &e));
        }
    }
    Ok(super::worst(&codes))
}

async fn mirror_profile(ws: &Workspace, profile: &Profile, backup: Option<&str>, dry_run: bool) -> Result<()> {
    let target = profile.target();
    let Some((test, config)) = wiring::mirror(ws, profile)? else {
        bail!("{} has no [mirror] section", profile.file.display());
    };
    let _lock = lock::acquire(ws, &format!("mirror-{}-{}", profile.app, profile.name))?;
    let store = wiring::store(ws, &profile.settings, &profile.file.display().to_string())?;
    let listing = list_backups(&store, profile.dest_prefix()).await?;
    let entry = select(&listing, &target, backup, None)?;
    let m = &entry.manifest;
    if dry_run {
        println!(
            "{target}: would mirror backup {} ({}, {}) into {test}",
            m.id,
            rfc3339(m.time),
            human_size(m.plaintext_size)
        );
        println!(
            "  restore into a temporary database on {}:{}, then:",
            test.host, test.port
        );
        for file in &config.sanitize {
            println!("  sanitize with {}", file.display());
        }
        if let Some(check) = &config.check_sql {
            println!("  check {check:?} returns true");
        }
        let previous = if config.keep_previous {
            "keep the previous copy"
        } else {
            "drop the previous copy"
        };
        println!("  swap it in as {} and {previous}", test.database);
        return Ok(());
    }
    let lease = crate::lease::acquire(
        &store,
        profile.dest_prefix(),
        "mirror",
        super::backup::lease_ttl(profile),
    )
    .await?;
    let result = refresh(ws, profile, &store, m, &test, &config).await;
    lease.release().await;
    result
}

async fn refresh(
    ws: &Workspace,
    profile: &Profile,
    store: &std::sync::Arc<dyn backup_core::Store>,
    m: &backup_core::Manifest,
    test: &backup_pg::PgConn,
    config: &backup_pg::MirrorConfig,
) -> Result<()> {
    let target = profile.target();
    let decryptor = wiring::decryptor(ws, &profile.settings)?;
    let dump = ws
        .home
        .join("data")
        .join(&profile.app)
        .join(&profile.name)
        .join(format!("mirror-{}.pgdump", m.id));
    let refreshed = async {
        super::restore::download_stream(store, decryptor, m, "data", &dump, false).await?;
        Ok::<_, anyhow::Error>(backup_pg::refresh_from_dump(test, config, &dump, &ws.home).await?)
    }
    .await;
    let _ = tokio::fs::remove_file(&dump).await;
    let refresh = refreshed?;
    let mark = json!({
        "time": rfc3339(Utc::now()),
        "kind": "mirror",
        "to": test.to_string(),
        "database_size": refresh.database_size,
        "tables": refresh.tables,
        "kept_previous": refresh.swap.kept_previous,
    });
    write_mark(&**store, m, "restored", &mark).await?;
    println!(
        "{target}: mirrored backup {} ({}) into {test}: {} tables, {}; backup marked restore-verified",
        m.id,
        rfc3339(m.time),
        refresh.tables,
        human_size(refresh.database_size.max(0) as u64)
    );
    Ok(())
}
