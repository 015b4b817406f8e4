//! Telling the outside world how runs went: healthcheck pings (the
//! healthchecks.io convention: `URL/start`, `URL`, `URL/fail`) and a
//! Prometheus textfile (node_exporter's textfile collector).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// `[monitoring]`, global or per profile.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringSettings {
    /// Pinged at start (`/start`), on success, and on failure (`/fail`).
    pub healthcheck_url: Option<String>,
    /// Prometheus textfile rewritten after every backup run.
    pub metrics_file: Option<PathBuf>,
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

/// Pings the healthcheck URL, if any. A ping that fails is logged, never
/// fails the run: monitoring must not take backups down with it.
pub async fn ping(settings: &MonitoringSettings, target: &str, what: Ping, body: &str) {
    let Some(url) = &settings.healthcheck_url else { return };
    let url = url.trim_end_matches('/');
    let url = match what {
        Ping::Start => format!("{url}/start"),
        Ping::Success => url.to_owned(),
        Ping::Fail => format!("{url}/fail"),
    };
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(%target, error = %e, "healthcheck ping not sent");
            return;
        }
    };
    let body: String = body.chars().take(10_000).collect();
    if let Err(e) = client
        .post(&url)
        .body(body)
        .send()
        .await
        .and_then(|r| r.error_for_status())
    {
        // The URL may carry a secret token: name the host only.
        let host = reqwest::Url::parse(&url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        tracing::warn!(%target, %host, error = %e.without_url(), "healthcheck ping failed");
    }
}

/// The last outcome of each profile, kept in `data/metrics.json` so that the
/// textfile always covers every profile, not only the last one run.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    profiles: BTreeMap<String, ProfileState>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct ProfileState {
    last_success_timestamp: Option<i64>,
    last_run_timestamp: i64,
    last_run_success: bool,
    last_duration_seconds: f64,
    last_size_bytes: u64,
    last_stored_bytes: u64,
    failures_total: u64,
}

/// One finished run, for [`record`].
pub struct Outcome {
    /// `app/profile`.
    pub target: String,
    /// Whether it succeeded.
    pub success: bool,
    /// Seconds it took.
    pub seconds: f64,
    /// Plaintext bytes (on success).
    pub size: u64,
    /// Stored bytes (on success).
    pub stored: u64,
}

/// Records `outcome` and rewrites `metrics_file` atomically.
///
/// # Errors
/// When the state or the textfile cannot be written.
pub fn record(home: &Path, metrics_file: &Path, outcome: &Outcome) -> Result<()> {
    let state_path = home.join("data").join("metrics.json");
    let mut state: State = std::fs::read(&state_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    let p = state.profiles.entry(outcome.target.clone()).or_default();
    p.last_run_timestamp = now;
    p.last_run_success = outcome.success;
    p.last_duration_seconds = outcome.seconds;
    if outcome.success {
        p.last_success_timestamp = Some(now);
        p.last_size_bytes = outcome.size;
        p.last_stored_bytes = outcome.stored;
    } else {
        p.failures_total += 1;
    }
    if let Some(parent) = state_path.parent() {
        std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
    }
    std::fs::write(&state_path, serde_json::to_vec_pretty(&state)?)
        .with_context(|| state_path.display().to_string())?;
    let path = home.join(metrics_file);
    let tmp = path.with_extension("prom.tmp");
    std::fs::write(&tmp, render(&state)).with_context(|| tmp.display().to_string())?;
    std::fs::rename(&tmp, &path).with_context(|| path.display().to_string())
}

/// Name, type, help text, and the value for one profile (none: not exported).
type Metric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ProfileState) -> Option<String>,
);

fn render(state: &State) -> String {
    let mut out = String::new();
    let metrics: [Metric; 6] = [
        (
            "backupapps_last_success_timestamp_seconds",
            "gauge",
            "Unix time of the last successful backup.",
            |p| p.last_success_timestamp.map(|t| t.to_string()),
        ),
        (
            "backupapps_last_run_success",
            "gauge",
            "1 if the last backup run succeeded, else 0.",
            |p| Some(u8::from(p.last_run_success).to_string()),
        ),
        (
            "backupapps_last_duration_seconds",
            "gauge",
            "Duration of the last backup run.",
            |p| Some(format!("{:.3}", p.last_duration_seconds)),
        ),
        (
            "backupapps_last_size_bytes",
            "gauge",
            "Plaintext bytes of the last successful backup.",
            |p| Some(p.last_size_bytes.to_string()),
        ),
        (
            "backupapps_last_stored_bytes",
            "gauge",
            "Stored (compressed, encrypted) bytes of the last successful backup.",
            |p| Some(p.last_stored_bytes.to_string()),
        ),
        ("backupapps_failures_total", "counter", "Failed backup runs.", |p| {
            Some(p.failures_total.to_string())
        }),
    ];
    for (name, kind, help, value) in metrics {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (target, p) in &state.profiles {
            if let Some(v) = value(p) {
                out.push_str(&format!("{name}{{target=\"{}\"}} {v}\n", target.replace('"', "\\\"")));
            }
        }
    }
    out
}
