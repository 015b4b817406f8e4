//! `schedule crontab` and `schedule run`: the profiles' cron expressions as
//! crontab lines, or fired by a long-running scheduler.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use croner::Cron;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};

use crate::workspace::Workspace;

/// One scheduled run: `backup app/profile` or `mirror app/profile`.
pub struct Job {
    /// `backup app/profile`.
    pub name: String,
    /// The command's arguments.
    pub args: Vec<String>,
    /// The cron expression as written.
    pub expression: String,
    cron: Cron,
}

/// The jobs the workspace's profiles ask for.
///
/// # Errors
/// A bad cron expression, naming the profile file.
pub fn jobs(ws: &Workspace) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for profile in ws.profiles.values() {
        let mut add = |verb: &str, expression: &str, field: &str| -> Result<()> {
            // Checked at load already; parsed again for the times.
            let cron = crate::validate::parse_cron(expression)
                .map_err(|e| anyhow::anyhow!("{} {field}: {e}", profile.file.display()))?;
            jobs.push(Job {
                name: format!("{verb} {}", profile.target()),
                args: vec![verb.to_owned(), profile.target()],
                expression: expression.to_owned(),
                cron,
            });
            Ok(())
        };
        if let Some(expression) = &profile.settings.schedule {
            add("backup", expression, "schedule")?;
        }
        if let Some(expression) = profile.settings.mirror.as_ref().and_then(|m| m.schedule.as_ref()) {
            add("mirror", expression, "[mirror] schedule")?;
        }
    }
    Ok(jobs)
}

/// Prints crontab lines equivalent to the configuration.
///
/// # Errors
/// A bad cron expression, or when the binary's path cannot be found.
pub fn crontab(ws: &Workspace) -> Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the backupapps binary")?;
    println!(
        "# backupapps schedules of {} (crontab -e, or /etc/cron.d/ with a user field)",
        ws.home.display()
    );
    for job in jobs(ws)? {
        // cron knows five fields and the nicknames (`@daily`, same meaning).
        let cron_can = crate::validate::is_nickname(&job.expression) || job.expression.split_whitespace().count() == 5;
        if !cron_can {
            println!(
                "# {} runs every {:?}: cron cannot express seconds; use `backupapps schedule run`",
                job.name, job.expression
            );
            continue;
        }
        println!(
            "{} cd {} && {} -q {}",
            job.expression.trim(),
            shell_quote(&ws.home),
            shell_quote(&exe),
            job.args.join(" ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

fn next_after(job: &Job, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    job.cron.find_next_occurrence(&after, false).ok()
}

/// Fires each job at its times as a child `backupapps` process; never runs a
/// job while its previous run is still going; reloads the configuration on
/// SIGHUP; on SIGTERM or SIGINT stops firing, passes SIGTERM to the running
/// jobs (a backup cut short leaves only an incomplete backup, never a listed
/// one) and waits for them.
///
/// # Errors
/// A configuration that cannot be loaded at start.
pub async fn run(home: &Path) -> Result<ExitCode> {
    let exe: PathBuf = std::env::current_exe().context("cannot find the backupapps binary")?;
    let mut ws = Workspace::load(home)?;
    let mut jobs = jobs(&ws)?;
    let mut next: Vec<Option<DateTime<Utc>>> = jobs.iter().map(|j| next_after(j, Utc::now())).collect();
    let mut running: HashMap<String, Child> = HashMap::new();
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tracing::info!(jobs = jobs.len(), home = %ws.home.display(), "scheduler started");
    loop {
        reap(&mut running);
        let now = Utc::now();
        for (i, job) in jobs.iter().enumerate() {
            if next[i].is_some_and(|t| t <= now) {
                next[i] = next_after(job, now);
                if running.contains_key(&job.name) {
                    tracing::warn!(job = %job.name, "skipped: its previous run is still running");
                    continue;
                }
                let child = Command::new(&exe)
                    .arg("--home")
                    .arg(&ws.home)
                    .args(&job.args)
                    .kill_on_drop(false)
                    .spawn();
                match child {
                    Ok(child) => {
                        tracing::info!(job = %job.name, pid = child.id(), "started");
                        running.insert(job.name.clone(), child);
                    }
                    Err(e) => tracing::error!(job = %job.name, error = %e, "could not start"),
                }
            }
        }
        // Wake at the next fire time, or within a second to reap finished jobs.
        let soonest = next.iter().flatten().min().copied();
        let wait = soonest
            .map(|t| (t - Utc::now()).to_std().unwrap_or_default())
            .unwrap_or(std::time::Duration::from_secs(1))
            .min(std::time::Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = hangup.recv() => {
                match Workspace::load(home).and_then(jobs_of) {
                    Ok((w, j)) => {
                        next = j.iter().map(|job| next_after(job, Utc::now())).collect();
                        ws = w;
                        jobs = j;
                        tracing::info!(jobs = jobs.len(), "configuration reloaded");
                    }
                    Err(e) => tracing::error!(error = %format!("{e:#}"), "reload failed; keeping the previous configuration"),
                }
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    tracing::info!(
        running = running.len(),
        "stopping: passing SIGTERM to running jobs and waiting for them"
    );
    for child in running.values() {
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
    for (name, mut child) in running {
        let status = child.wait().await;
        tracing::info!(job = %name, status = ?status.ok(), "stopped");
    }
    Ok(ExitCode::SUCCESS)
}

fn jobs_of(ws: Workspace) -> Result<(Workspace, Vec<Job>)> {
    let jobs = jobs(&ws)?;
    Ok((ws, jobs))
}

fn reap(running: &mut HashMap<String, Child>) {
    running.retain(|name, child| match child.try_wait() {
        Ok(Some(status)) => {
            if status.success() {
                tracing::info!(job = %name, "finished");
            } else {
                tracing::error!(job = %name, %status, "failed; the scheduler goes on");
            }
            false
        }
        Ok(None) => true,
        Err(_) => false,
    });
}
