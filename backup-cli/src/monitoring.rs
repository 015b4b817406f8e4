//! Telling the outside world how runs went: healthcheck pings (the
//! healthchecks.io convention: `URL/start`, `URL`, `URL/fail`) and a
//! Prometheus textfile (node_exporter's textfile collector), for every job.
//!
//! Each job has its own URL key (`healthcheck_url` for backups,
//! `mirror_healthcheck_url`, `verify_healthcheck_url`,
//! `prune_healthcheck_url`): a weekly verify that succeeds must not report a
//! nightly backup that failed as fine. Set in `backupapps.toml`, a URL is the
//! run's: pinged once per command run, `/fail` when any profile failed. Set
//! (to another URL) in a profile file, it is that profile's: pinged for it.

pub(crate) mod textfile;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::workspace::{Profile, Workspace};

/// `[monitoring]`, global or per profile.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringSettings {
    /// Backups: pinged at start (`/start`), on success, and on failure (`/fail`).
    pub healthcheck_url: Option<String>,
    /// Mirrors, likewise.
    pub mirror_healthcheck_url: Option<String>,
    /// Verifies, likewise.
    pub verify_healthcheck_url: Option<String>,
    /// Prunes run on their own (`prune`; the one after a backup is part of
    /// the backup's run), likewise.
    pub prune_healthcheck_url: Option<String>,
    /// Seconds a ping may take (default 10).
    pub ping_timeout_secs: Option<u64>,
    /// Prometheus textfile, updated after every job on a profile.
    pub metrics_file: Option<PathBuf>,
}

impl MonitoringSettings {
    /// The URL pinged for `job`.
    fn url(&self, job: Job) -> Option<&str> {
        match job {
            Job::Backup => self.healthcheck_url.as_deref(),
            Job::Mirror => self.mirror_healthcheck_url.as_deref(),
            Job::Verify => self.verify_healthcheck_url.as_deref(),
            Job::Prune => self.prune_healthcheck_url.as_deref(),
        }
        .filter(|u| !u.trim().is_empty())
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.ping_timeout_secs.unwrap_or(10).clamp(1, 300))
    }
}

/// The jobs that report to monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// `backup` (with its prune).
    Backup,
    /// `mirror`.
    Mirror,
    /// `verify`.
    Verify,
    /// `prune`.
    Prune,
}

impl Job {
    /// The job's name in metric names and messages.
    pub fn name(self) -> &'static str {
        match self {
            Job::Backup => "backup",
            Job::Mirror => "mirror",
            Job::Verify => "verify",
            Job::Prune => "prune",
        }
    }
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    /// Started.
    Start,
    /// Succeeded.
    Success,
    /// Failed.
    Fail,
}

/// How one profile's job went, for [`Run::profile_done`].
#[derive(Debug)]
pub struct Outcome {
    /// `Ok(summary)` or `Err(error text)`.
    pub result: Result<String, String>,
    /// Plaintext and stored bytes of a backup that succeeded.
    pub sizes: Option<(u64, u64)>,
}

impl Outcome {
    /// A success with `summary` as the ping's body.
    pub fn ok(summary: impl Into<String>) -> Self {
        Outcome {
            result: Ok(summary.into()),
            sizes: None,
        }
    }

    /// A failure with `error` (its whole cause chain) as the ping's body.
    pub fn failed(error: &anyhow::Error) -> Self {
        Outcome {
            result: Err(crate::hints::render(error)),
            sizes: None,
        }
    }
}

/// One command run of one job: pings the global URL once (start, then
/// success or fail for the whole run), each profile's own URL per profile,
/// and records metrics per profile.
#[derive(Debug)]
pub struct Run {
    job: Job,
    global: MonitoringSettings,
    home: PathBuf,
    failed: Vec<String>,
    profiles: usize,
}

/// A profile's job in progress (see [`Run::profile_start`]).
#[derive(Debug)]
pub struct ProfileRun {
    started: Instant,
}

impl Run {
    /// Starts a run of `job`: pings the global URL's `/start`.
    pub async fn start(ws: &Workspace, job: Job) -> Run {
        let run = Run {
            job,
            global: ws.global.monitoring.clone(),
            home: ws.home.clone(),
            failed: Vec::new(),
            profiles: 0,
        };
        if let Some(url) = run.global.url(job) {
            ping(url, run.global.timeout(), job.name(), Ping::Start, "").await;
        }
        run
    }

    /// The profile's own URL for this job: set, and not merely inherited
    /// from `backupapps.toml` (the run's URL).
    fn own_url<'p>(&self, profile: &'p Profile) -> Option<&'p str> {
        let own = profile.settings.monitoring.url(self.job)?;
        (Some(own) != self.global.url(self.job)).then_some(own)
    }

    /// A profile's job starts: pings its own URL's `/start`.
    pub async fn profile_start(&self, profile: &Profile) -> ProfileRun {
        if let Some(url) = self.own_url(profile) {
            let timeout = profile.settings.monitoring.timeout();
            ping(url, timeout, &profile.target(), Ping::Start, "").await;
        }
        ProfileRun {
            started: Instant::now(),
        }
    }

    /// A profile's job ended: pings its own URL, writes its metrics, and
    /// remembers a failure for the run's ping.
    pub async fn profile_done(&mut self, profile: &Profile, run: ProfileRun, outcome: &Outcome) {
        let target = profile.target();
        self.profiles += 1;
        if let Err(e) = &outcome.result {
            self.failed.push(format!("{target}: {e}"));
        }
        if let Some(url) = self.own_url(profile) {
            let (what, body) = match &outcome.result {
                Ok(summary) => (Ping::Success, summary.as_str()),
                Err(e) => (Ping::Fail, e.as_str()),
            };
            ping(url, profile.settings.monitoring.timeout(), &target, what, body).await;
        }
        let seconds = run.started.elapsed().as_secs_f64();
        record(&self.home, profile, self.job, outcome, seconds);
    }

    /// The run ended: pings the global URL, `/fail` naming every failed
    /// profile when any failed (or `interrupted` is set).
    pub async fn finish(self, interrupted: Option<&anyhow::Error>) {
        let Some(url) = self.global.url(self.job) else { return };
        let job = self.job.name();
        let mut lines = Vec::new();
        if let Some(e) = interrupted {
            lines.push(format!("{job} run interrupted: {e}"));
        }
        if !self.failed.is_empty() {
            lines.push(format!(
                "{job}: {} of {} profiles failed",
                self.failed.len(),
                self.profiles
            ));
            lines.extend(self.failed.iter().cloned());
        }
        let (what, body) = if lines.is_empty() {
            (Ping::Success, format!("{job}: {} profiles ok", self.profiles))
        } else {
            (Ping::Fail, lines.join("\n"))
        };
        ping(url, self.global.timeout(), job, what, &body).await;
    }
}

/// Records a prune run as part of another job (a backup's own prune): its
/// metrics only, no ping.
pub fn record_prune(ws: &Workspace, profile: &Profile, outcome: &Outcome, seconds: f64) {
    record(&ws.home, profile, Job::Prune, outcome, seconds);
}

fn record(home: &std::path::Path, profile: &Profile, job: Job, outcome: &Outcome, seconds: f64) {
    let Some(file) = &profile.settings.monitoring.metrics_file else {
        return;
    };
    let sample = textfile::Sample {
        app: &profile.app,
        profile: &profile.name,
        target: profile.target(),
        job,
        success: outcome.result.is_ok(),
        seconds,
        sizes: outcome.sizes,
        now: chrono::Utc::now().timestamp(),
    };
    // Monitoring must not take the job down with it: a warning only.
    if let Err(e) = textfile::update(home, &home.join(file), &sample) {
        tracing::warn!(error = %crate::hints::render(&e), "could not write the metrics file");
    }
}

/// POSTs to the healthcheck URL. A ping that fails is logged with why (HTTP
/// status, timeout, refused connection), never fails the run: monitoring
/// must not take backups down with it.
async fn ping(url: &str, timeout: Duration, target: &str, what: Ping, body: &str) {
    let url = url.trim().trim_end_matches('/');
    let url = match what {
        Ping::Start => format!("{url}/start"),
        Ping::Success => url.to_owned(),
        Ping::Fail => format!("{url}/fail"),
    };
    // The URL may carry a secret token: name the host only.
    let host = reqwest::Url::parse(&url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "(not a URL)".to_owned());
    let client = match reqwest::Client::builder().timeout(timeout).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(%target, error = %e, "healthcheck ping not sent");
            return;
        }
    };
    // healthchecks.io keeps the first 100 kB of a body.
    let body: String = body.chars().take(10_000).collect();
    let result = client
        .post(&url)
        .body(body)
        .send()
        .await
        .and_then(|r| r.error_for_status());
    if let Err(e) = result {
        tracing::warn!(%target, %host, error = %why(&e, timeout), "healthcheck ping failed");
    }
}

/// Why a ping failed, in words: `HTTP 404 Not Found`, `no answer within
/// 10 s`, `cannot connect: Connection refused (os error 111)`.
fn why(e: &reqwest::Error, timeout: Duration) -> String {
    if let Some(status) = e.status() {
        return format!("HTTP {status}");
    }
    if e.is_timeout() {
        return format!("no answer within {} s", timeout.as_secs());
    }
    // The innermost cause says what happened (refused, no route, DNS).
    let mut innermost: &dyn std::error::Error = e;
    while let Some(next) = innermost.source() {
        innermost = next;
    }
    let cause = innermost.to_string();
    if e.is_connect() {
        format!("cannot connect: {cause}")
    } else if e.is_builder() {
        format!("bad URL: {cause}")
    } else {
        cause
    }
}
