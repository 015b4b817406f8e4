//! `backup [TARGET..] [--time T] [--no-prune]`.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use backup_core::lease::{self, PROFILE_LEASE};
use backup_core::local_copy::{copy_backup_folder, TeeSource};
use backup_core::{run_backup, BackupOptions, Manifest, Source};

use crate::monitoring::{self, Ping};
use crate::output::{human_size, parse_time, say};
use crate::progress::Progress;
use crate::settings::LocalCopy;
use crate::workspace::{Profile, Workspace};
use crate::{interrupt, kinds, wiring};

/// Backs up each selected profile, continuing past failures, then prunes each
/// one whose backup succeeded.
///
/// # Errors
/// Bad arguments; per-profile failures are reported and set the exit status.
pub async fn run(ws: &Workspace, targets: &[String], time: Option<&str>, no_prune: bool) -> Result<ExitCode> {
    let time = time.map(|t| parse_time("--time", t)).transpose()?;
    let profiles = ws.select(targets)?;
    if profiles.is_empty() {
        bail!(
            "no profiles in {}/apps: copy one from apps/templates/",
            ws.home.display()
        );
    }
    let mut codes = Vec::new();
    let mut tally = crate::report::Tally::default();
    for profile in profiles {
        let codes_before = codes.len();
        let result = backup_and_prune(ws, profile, time, no_prune, &mut codes).await;
        tally.profile(codes_before, &codes);
        match result {
            Ok(stored) => tally.stored(stored),
            // An interruption stops the run; it was reported already.
            Err(e) => return Err(e),
        }
    }
    tally.finish("backup");
    Ok(crate::report::worst(&codes))
}

/// Backs up (and prunes) one profile, pushing an exit code for each failure;
/// returns the bytes stored. `Err` only for an interruption, which stops
/// the run.
async fn backup_and_prune(
    ws: &Workspace,
    profile: &Profile,
    time: Option<chrono::DateTime<chrono::Utc>>,
    no_prune: bool,
    codes: &mut Vec<u8>,
) -> Result<u64> {
    let target = profile.target();
    let started = Instant::now();
    let _lock = match crate::lock::acquire(ws, &crate::lock::profile_lock(profile)) {
        Ok(lock) => lock,
        Err(e) => {
            codes.push(crate::report::failure(&target, "backup", &e));
            return Ok(0);
        }
    };
    // A killed earlier run's plaintext copy goes before anything else.
    crate::debris::remove_partial_copies(ws, profile);
    let monitoring = &profile.settings.monitoring;
    monitoring::ping(monitoring, &target, Ping::Start, "").await;
    let progress = Progress::start(&format!("{target}: backing up"));
    let work = backup_profile(ws, profile, time, Some(progress.counter.clone()));
    let result = interrupt::cancellable(&format!("backup of {target}"), work).await;
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    match &result {
        Ok(m) => {
            // One summary per profile: the line on stdout, or (when that
            // is not shown, or for JSON logs) the event for log shippers.
            say!(
                "{target}: backup {} done: {} read, {} stored in {} chunks, {seconds:.1} s",
                m.id,
                human_size(m.plaintext_size),
                human_size(m.stored_size),
                m.chunks.len(),
            );
            if crate::output::log_summaries() {
                tracing::info!(
                    target_profile = %target,
                    id = %m.id,
                    size = m.plaintext_size,
                    stored = m.stored_size,
                    chunks = m.chunks.len(),
                    seconds,
                    store = %profile.settings.store.url.as_deref().unwrap_or_default(),
                    "backup done"
                );
            }
            let summary = format!(
                "backup {} of {target}: {} stored in {seconds:.1} s",
                m.id,
                human_size(m.stored_size)
            );
            monitoring::ping(monitoring, &target, Ping::Success, &summary).await;
        }
        // Logged already; reported to monitoring below, then the run stops.
        Err(e) if interrupt::signal_of(e).is_some() => {
            monitoring::ping(monitoring, &target, Ping::Fail, &e.to_string()).await;
        }
        Err(e) => {
            codes.push(crate::report::failure(&target, "backup", e));
            if crate::output::log_failures() {
                tracing::error!(target_profile = %target, seconds, error = %format!("{e:#}"), "backup failed");
            }
            monitoring::ping(monitoring, &target, Ping::Fail, &format!("{e:#}")).await;
        }
    }
    if let Some(file) = &monitoring.metrics_file {
        let outcome = monitoring::Outcome {
            target: target.clone(),
            success: result.is_ok(),
            seconds,
            size: result.as_ref().map_or(0, |m| m.plaintext_size),
            stored: result.as_ref().map_or(0, |m| m.stored_size),
        };
        if let Err(e) = monitoring::record(&ws.home, file, &outcome) {
            tracing::warn!(error = %format!("{e:#}"), "could not write the metrics file");
        }
    }
    let stored = match result {
        Err(e) if interrupt::signal_of(&e).is_some() => return Err(e),
        Err(_) => return Ok(0),
        Ok(m) => m.stored_size,
    };
    if !no_prune {
        // A backup that succeeded stays a success even if cleaning up
        // old ones fails; the failure still shows in the exit status.
        let prune = super::prune::prune_profile(ws, profile, false);
        match interrupt::cancellable(&format!("prune of {target}"), prune).await {
            Err(e) if interrupt::signal_of(&e).is_some() => return Err(e),
            Err(e) => codes.push(crate::report::failure(&target, "prune", &e)),
            Ok(_) => {}
        }
    }
    Ok(stored)
}

/// One backup of one profile, under the profile's lease in the store.
///
/// # Errors
/// Configuration, key, source or store errors, naming the profile's file.
pub async fn backup_profile(
    ws: &Workspace,
    profile: &Profile,
    time: Option<chrono::DateTime<chrono::Utc>>,
    progress: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
) -> Result<Manifest> {
    let s = &profile.settings;
    let origin = profile.file.display().to_string();
    // Keys first: a backup that could not be signed must not start at all.
    let signer = wiring::signer(ws, s).with_context(|| origin.clone())?;
    let encryptor = wiring::encryptor(ws, s).with_context(|| origin.clone())?;
    let store = wiring::store(ws, s, &origin)?;
    let source = kinds::source(ws, profile)?;
    let mut options = BackupOptions::new(&profile.app, &profile.name, profile.dest_prefix())
        .with_chunk_size(usize::try_from(s.backup.chunk_size.0).unwrap_or(usize::MAX).max(1))
        .with_zstd_level(s.backup.zstd_level)
        .with_parallelism(s.backup.parallelism);
    if let Some(time) = time {
        options = options.with_time(time);
    }
    if let Some(progress) = progress {
        options = options.with_progress(progress);
    }
    let lease = lease::acquire(&store, profile.dest_prefix(), PROFILE_LEASE, wiring::lease_ttl(profile)).await?;
    let result = store_backup(ws, profile, &store, source, encryptor, &signer, &options).await;
    lease.release().await;
    result
}

async fn store_backup(
    ws: &Workspace,
    profile: &Profile,
    store: &backup_core::DynStore,
    source: Box<dyn Source>,
    encryptor: std::sync::Arc<dyn backup_core::Encryptor>,
    signer: &backup_core::ManifestSigner,
    options: &BackupOptions,
) -> Result<Manifest> {
    let dir = profile.data_dir(ws);
    if profile.settings.local_copy != LocalCopy::None {
        // The copy is plaintext (or the key-less way to it): owner only.
        crate::private::data_dir(ws, profile)?;
    }
    match profile.settings.local_copy {
        LocalCopy::None => Ok(run_backup(store, source.as_ref(), encryptor, signer, options).await?),
        LocalCopy::Compressed => {
            let file = dir.join(format!("latest.{}.zst", kinds::stream_extension(profile.kind())));
            let tee = TeeSource::new(source, &file);
            let result = run_backup(store, &tee, encryptor, signer, options).await;
            if let Err(e) = tee.finish(&file, result.is_ok()).await {
                tracing::warn!(error = %format!("{e:#}"), "backed up, but the local copy failed");
            }
            Ok(result?)
        }
        LocalCopy::Encrypted => {
            let manifest = run_backup(store, source.as_ref(), encryptor, signer, options).await?;
            let trust = backup_core::Trust::new(backup_core::TrustedSigners::from_keys(vec![signer.public_key()]));
            let listing = backup_core::list_backups(store, &profile.profile_ref(), &trust).await?;
            let copied = match listing.pick(backup_core::Pick::Id(&manifest.id)) {
                Ok(entry) => copy_backup_folder(store, entry, &dir)
                    .await
                    .map_err(anyhow::Error::from),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = copied {
                tracing::warn!(error = %format!("{e:#}"), "backed up, but the local copy failed");
            }
            Ok(manifest)
        }
    }
}
