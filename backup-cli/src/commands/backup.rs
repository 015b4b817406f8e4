//! `backup [TARGET..] [--time T] [--no-prune]`.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use backup_core::lease::{self, PROFILE_LEASE};
use backup_core::local_copy::{copy_backup_folder, TeeSource};
use backup_core::{run_backup, BackupOptions, Manifest, Source};

use crate::monitoring::{self, Job, Outcome};
use crate::output::{human_size, parse_time, say};
use crate::progress::Progress;
use crate::settings::LocalCopy;
use crate::workspace::{Profile, Workspace};
use crate::{interrupt, kinds, wiring};

/// Backs up each selected profile, continuing past failures, then prunes each
/// one whose backup succeeded. With `json`, prints one object per profile
/// (target, result, id, sizes, error) instead of the summary lines.
///
/// # Errors
/// Bad arguments; per-profile failures are reported and set the exit status.
pub async fn run(
    ws: &Workspace,
    targets: &[String],
    time: Option<&str>,
    no_prune: bool,
    json: bool,
) -> Result<ExitCode> {
    let time = time.map(|t| parse_time("--time", t)).transpose()?;
    let profiles = ws.select(targets)?;
    if profiles.is_empty() {
        bail!(
            "no profiles in {}/apps: copy one from apps/templates/",
            ws.home.display()
        );
    }
    let mut codes = Vec::new();
    let mut rows = Vec::new();
    let mut tally = crate::report::Tally::default();
    let mut monitor = monitoring::Run::start(ws, Job::Backup).await;
    for profile in profiles {
        let codes_before = codes.len();
        let started = monitor.profile_start(profile).await;
        let result = backup_and_prune(ws, profile, time, no_prune, json, &mut codes).await;
        tally.profile(codes_before, &codes);
        let done = match result {
            Ok(done) => done,
            // An interruption stops the run; it was reported already.
            Err(e) => {
                monitor.profile_done(profile, started, &Outcome::failed(&e)).await;
                monitor.finish(Some(&e)).await;
                return Err(e);
            }
        };
        if let Some(m) = &done.manifest {
            tally.stored(m.stored_size);
        }
        let outcome = Outcome {
            result: match &done.error {
                None => Ok(done.summary.clone()),
                Some(e) => Err(e.clone()),
            },
            sizes: done.manifest.as_ref().map(|m| (m.plaintext_size, m.stored_size)),
        };
        monitor.profile_done(profile, started, &outcome).await;
        rows.push(done.row(&profile.target()));
    }
    monitor.finish(None).await;
    if json {
        // Asked for explicitly, so printed also under `-q`.
        let text = format!("{}\n", serde_json::to_string_pretty(&rows)?);
        crate::output::write_stdout(text.as_bytes())?;
    } else {
        tally.finish("backup");
    }
    Ok(crate::report::worst(&codes))
}

/// How one profile's backup (and prune) went.
#[derive(Debug, Default)]
struct Done {
    /// The backup made, when it succeeded.
    manifest: Option<Manifest>,
    /// The summary line.
    summary: String,
    /// What failed (the backup, or the prune after it), whole.
    error: Option<String>,
    seconds: f64,
}

impl Done {
    /// One `backup --json` object.
    fn row(&self, target: &str) -> serde_json::Value {
        let m = self.manifest.as_ref();
        serde_json::json!({
            "target": target,
            "result": if self.error.is_none() { "ok" } else { "failed" },
            "id": m.map(|m| m.id.clone()),
            "time": m.map(|m| backup_core::manifest::rfc3339(m.time)),
            "plaintext_size": m.map(|m| m.plaintext_size),
            "stored_size": m.map(|m| m.stored_size),
            "chunks": m.map(|m| m.chunks.len()),
            "seconds": (self.seconds * 1000.0).round() / 1000.0,
            "error": self.error,
        })
    }
}

/// Backs up (and prunes) one profile, pushing an exit code for each failure.
/// `Err` only for an interruption, which stops the run.
async fn backup_and_prune(
    ws: &Workspace,
    profile: &Profile,
    time: Option<chrono::DateTime<chrono::Utc>>,
    no_prune: bool,
    json: bool,
    codes: &mut Vec<u8>,
) -> Result<Done> {
    let target = profile.target();
    let started = Instant::now();
    let mut done = Done::default();
    let _lock = match crate::lock::acquire(ws, &crate::lock::profile_lock(profile)) {
        Ok(lock) => lock,
        Err(e) => {
            codes.push(crate::report::failure(&target, "backup", &e));
            done.error = Some(crate::hints::render(&e));
            return Ok(done);
        }
    };
    // A killed earlier run's plaintext copy goes before anything else.
    crate::debris::remove_partial_copies(ws, profile);
    let progress = Progress::start(&format!("{target}: backing up"));
    let work = backup_profile(ws, profile, time, Some(progress.counter.clone()));
    let work = crate::hooks::around_backup(ws, profile, work);
    let result = interrupt::cancellable(&format!("backup of {target}"), work).await;
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    done.seconds = seconds;
    match &result {
        Ok(m) => {
            // One summary per profile: the line on stdout, or (when that
            // is not shown, or for JSON logs) the event for log shippers.
            if !json {
                say!(
                    "{target}: backup {} done: {} read, {} stored in {}, {seconds:.1} s",
                    m.id,
                    human_size(m.plaintext_size),
                    human_size(m.stored_size),
                    crate::output::count(m.chunks.len(), "chunk"),
                );
            }
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
            done.summary = format!(
                "backup {} of {target}: {} stored in {seconds:.1} s",
                m.id,
                human_size(m.stored_size)
            );
        }
        // Logged already; reported to monitoring by the caller.
        Err(e) if interrupt::signal_of(e).is_some() => {}
        Err(e) => {
            codes.push(crate::report::failure(&target, "backup", e));
            if crate::output::log_failures() {
                tracing::error!(target_profile = %target, seconds, error = %format!("{e:#}"), "backup failed");
            }
            done.error = Some(format!("backup failed: {}", crate::hints::render(e)));
        }
    }
    match result {
        Err(e) if interrupt::signal_of(&e).is_some() => return Err(e),
        Err(_) => return Ok(done),
        Ok(m) => done.manifest = Some(m),
    };
    if let (true, Some(m)) = (profile.settings.store.copy_stores().next().is_some(), &done.manifest) {
        // The backup stays stored whatever happens to its copies; a copy
        // that failed fails the run for this profile.
        let copy = super::copy::copy_to_stores(ws, profile, &m.id, json);
        match interrupt::cancellable(&format!("copy of {target}"), copy).await {
            Err(e) if interrupt::signal_of(&e).is_some() => return Err(e),
            Err(e) => {
                codes.push(crate::report::failure(&target, "copy", &e));
                done.error = Some(format!("{}; copy failed: {}", done.summary, crate::hints::render(&e)));
            }
            Ok(()) => {}
        }
    }
    if !no_prune {
        // A backup that succeeded stays a success even if cleaning up
        // old ones fails; the failure still shows in the exit status and
        // in monitoring.
        let prune_started = Instant::now();
        let prune = super::prune::prune_profile(ws, profile, false);
        let pruned = interrupt::cancellable(&format!("prune of {target}"), prune).await;
        let outcome = match &pruned {
            Ok(plan) => Outcome::ok(super::prune::summary(plan, false)),
            Err(e) => Outcome::failed(e),
        };
        monitoring::record_prune(ws, profile, &outcome, prune_started.elapsed().as_secs_f64());
        match pruned {
            Err(e) if interrupt::signal_of(&e).is_some() => return Err(e),
            Err(e) => {
                codes.push(crate::report::failure(&target, "prune", &e));
                done.error = Some(format!("{}; prune failed: {}", done.summary, crate::hints::render(&e)));
            }
            Ok(_) => {}
        }
        for (url, result) in super::prune::prune_copies(ws, profile, false).await {
            match result {
                Err(e) if interrupt::signal_of(&e).is_some() => return Err(e),
                Err(e) => {
                    codes.push(crate::report::failure(&target, &format!("prune on {url}"), &e));
                }
                Ok(_) => {}
            }
        }
    }
    Ok(done)
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
