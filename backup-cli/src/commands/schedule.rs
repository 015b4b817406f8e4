//! `schedule crontab`, `schedule list` and `schedule run`: the profiles'
//! cron expressions as crontab lines, as a table of next fire times, or
//! fired by a long-running scheduler that queues (see `crate::scheduler`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};

use crate::scheduler::config::{self, SchedulerConfig};
use crate::scheduler::jobs::{jobs, Job};
use crate::scheduler::metrics;
use crate::scheduler::queue::{Next, Queue};
use crate::workspace::Workspace;

/// Prints crontab lines equivalent to the configuration (no queue: cron
/// starts every due job at once; `schedule run` queues them).
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
        // cron compares nicknames case-sensitively: `@daily`, never `@Daily`.
        let expression = if crate::validate::is_nickname(&job.expression) {
            job.expression.trim().to_ascii_lowercase()
        } else {
            job.expression.trim().to_owned()
        };
        println!(
            "{expression} cd {} && {} -q {}",
            shell_quote(&ws.home),
            shell_quote(&exe),
            job.args().join(" ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

/// Prints each job with its cron expression and next fire time (with
/// `--json`: an array of `{job, kind, target, schedule, next}`), and, as
/// text, the scheduler's `[schedule]` settings.
///
/// # Errors
/// A bad `[schedule]` section or cron expression.
pub fn list(ws: &Workspace, json: bool) -> Result<ExitCode> {
    let config = config::load(&ws.home)?;
    let jobs = jobs(ws)?;
    let now = Utc::now();
    if json {
        let rows: Vec<_> = jobs
            .iter()
            .map(|j| {
                json!({
                    "job": j.name,
                    "kind": j.kind,
                    "target": j.target,
                    "schedule": j.expression,
                    "next": j.next_after(now).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                })
            })
            .collect();
        // An array like every other `--json` listing; the `[schedule]`
        // settings are in the text header and the scheduler's log.
        let out = serde_json::Value::Array(rows);
        crate::output::write_stdout(format!("{}\n", serde_json::to_string_pretty(&out)?).as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = format!(
        "max_concurrent = {}, mirror_wait = {}\n",
        config.max_concurrent,
        humantime::format_duration(config.mirror_wait)
    );
    if jobs.is_empty() {
        text.push_str("no scheduled jobs: add `schedule = \"1 2 * * *\"` to a profile\n");
    }
    let width = jobs.iter().map(|j| j.name.len()).max().unwrap_or(0);
    for j in &jobs {
        let next = j.next_after(now).map_or_else(
            || "never".to_owned(),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
        text.push_str(&format!("{:width$}  next {next}  ({})\n", j.name, j.expression));
    }
    crate::output::write_stdout(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Logs each job's next fire time (at start and after a reload).
fn log_plan(jobs: &[Job], next: &[Option<DateTime<Utc>>], config: &SchedulerConfig) {
    tracing::info!(
        jobs = jobs.len(),
        max_concurrent = config.max_concurrent,
        mirror_wait = %humantime::format_duration(config.mirror_wait),
        "schedule"
    );
    for (job, next) in jobs.iter().zip(next) {
        match next {
            Some(t) => tracing::info!(job = %job.name, schedule = %job.expression, next = %t.to_rfc3339(), "next run"),
            None => tracing::warn!(job = %job.name, schedule = %job.expression, "never fires"),
        }
    }
}

/// The loaded configuration the scheduler runs with.
struct Plan {
    ws: Workspace,
    config: SchedulerConfig,
    jobs: Vec<Job>,
    next: Vec<Option<DateTime<Utc>>>,
}

impl Plan {
    fn load(home: &Path) -> Result<Plan> {
        let ws = Workspace::load(home)?;
        let config = config::load(&ws.home)?;
        let jobs = jobs(&ws)?;
        let now = Utc::now();
        let next = jobs.iter().map(|j| j.next_after(now)).collect();
        Ok(Plan { ws, config, jobs, next })
    }
}

/// Fires each job at its times into a FIFO queue; starts queued jobs as
/// child `backupapps` processes, at most `[schedule] max_concurrent` at
/// once; skips (with a warning and a metric) a job fired while its previous
/// run is still queued or running; holds a mirror while its profile's
/// backup runs or waits (up to `mirror_wait`). Reloads the configuration on
/// SIGHUP; on SIGTERM or SIGINT stops firing, drops the queue, passes
/// SIGTERM to the running jobs (a backup cut short leaves only an
/// incomplete backup, never a listed one) and waits for them.
///
/// # Errors
/// A configuration that cannot be loaded at start.
pub async fn run(home: &Path) -> Result<ExitCode> {
    let exe: PathBuf = std::env::current_exe().context("cannot find the backupapps binary")?;
    let mut plan = Plan::load(home)?;
    let mut queue = Queue::new(plan.config.max_concurrent, plan.config.mirror_wait);
    let mut running: HashMap<String, Child> = HashMap::new();
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tracing::info!(home = %plan.ws.home.display(), "scheduler started");
    log_plan(&plan.jobs, &plan.next, &plan.config);
    loop {
        reap(&mut running, &mut queue);
        fire_due(&mut plan, &mut queue);
        start_queued(&plan, &exe, &mut queue, &mut running);
        // Wake at the next fire time; often while jobs run, so that a
        // finished one frees its slot for the queue at once.
        let cap = if running.is_empty() {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(200)
        };
        let wait = plan
            .next
            .iter()
            .flatten()
            .min()
            .map_or(cap, |t| (*t - Utc::now()).to_std().unwrap_or_default().min(cap));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = hangup.recv() => match Plan::load(home) {
                Ok(p) => {
                    plan = p;
                    queue.set_limits(plan.config.max_concurrent, plan.config.mirror_wait);
                    tracing::info!("configuration reloaded");
                    log_plan(&plan.jobs, &plan.next, &plan.config);
                }
                Err(e) => tracing::error!(error = %format!("{e:#}"), "reload failed; keeping the previous configuration"),
            },
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    tracing::info!(
        running = running.len(),
        queued = queue.waiting(),
        "stopping: dropping the queue, passing SIGTERM to running jobs and waiting for them"
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

/// Queues every job whose time came; a job whose previous run is still
/// queued or running is skipped.
fn fire_due(plan: &mut Plan, queue: &mut Queue) {
    let now = Utc::now();
    for (i, job) in plan.jobs.iter().enumerate() {
        if plan.next[i].is_none_or(|t| t > now) {
            continue;
        }
        plan.next[i] = job.next_after(now);
        match queue.fire(job, Instant::now()) {
            Ok(()) => {
                tracing::info!(job = %job.name, queued = queue.waiting(), running = queue.running(), "due: queued")
            }
            Err(skip) => {
                tracing::warn!(
                    job = %job.name,
                    reason = skip.reason(),
                    "skipped: its previous run is {}",
                    if skip == crate::scheduler::queue::Skip::StillQueued { "still waiting in the queue (raise [schedule] max_concurrent, or schedule fewer jobs at once)" } else { "still running" }
                );
                if let Some(profile) = plan.ws.profiles.get(&job.target) {
                    metrics::record_skip(&plan.ws, profile, job.kind.name(), skip.reason());
                }
            }
        }
    }
}

/// Starts queued jobs while slots are free.
fn start_queued(plan: &Plan, exe: &Path, queue: &mut Queue, running: &mut HashMap<String, Child>) {
    while let Some(next) = queue.next(Instant::now()) {
        match next {
            Next::Start(job) => {
                let child = Command::new(exe)
                    .arg("--home")
                    .arg(&plan.ws.home)
                    .args(job.args())
                    .kill_on_drop(false)
                    .spawn();
                match child {
                    Ok(child) => {
                        tracing::info!(job = %job.name, pid = child.id(), running = queue.running(), queued = queue.waiting(), "started");
                        running.insert(job.name.clone(), child);
                    }
                    Err(e) => {
                        queue.finished(&job.name);
                        tracing::error!(job = %job.name, error = %e, "could not start");
                    }
                }
            }
            Next::GiveUp(job) => {
                tracing::warn!(
                    job = %job.name,
                    mirror_wait = %humantime::format_duration(plan.config.mirror_wait),
                    "skipped: its profile's backup is still running or queued after mirror_wait; not mirroring an older backup"
                );
                if let Some(profile) = plan.ws.profiles.get(&job.target) {
                    metrics::record_skip(&plan.ws, profile, job.kind.name(), "backup_not_done");
                }
            }
        }
    }
}

fn reap(running: &mut HashMap<String, Child>, queue: &mut Queue) {
    running.retain(|name, child| match child.try_wait() {
        Ok(Some(status)) => {
            if status.success() {
                tracing::info!(job = %name, "finished");
            } else {
                tracing::error!(job = %name, %status, "failed; the scheduler goes on");
            }
            queue.finished(name);
            false
        }
        Ok(None) => true,
        Err(_) => {
            queue.finished(name);
            false
        }
    });
}
