//! The scheduler's lines in the Prometheus textfile (`[monitoring]
//! metrics_file`): skipped jobs and restore drills. Each update reads the
//! file, replaces or adds its own series and keeps every other line as it
//! is, then renames a new file into place, under the textfile's lock.

use std::path::Path;

use anyhow::Result;

use crate::workspace::{Profile, Workspace};

/// One series to set: name, type, help, labels (`{…}`), value.
struct Series<'a> {
    name: &'a str,
    kind: &'a str,
    help: &'a str,
    labels: String,
    value: String,
}

/// A scheduled job was skipped: `backupapps_schedule_skipped_total{job,target,reason}` + 1.
pub fn record_skip(ws: &Workspace, profile: &Profile, job: &str, reason: &str) {
    let name = "backupapps_schedule_skipped_total";
    let labels = format!(
        "{{job=\"{}\",target=\"{}\",reason=\"{}\"}}",
        escape(job),
        escape(&profile.target()),
        escape(reason)
    );
    update(ws, profile, |text| {
        let before = current(text, name, &labels).unwrap_or(0.0);
        vec![Series {
            name,
            kind: "counter",
            help: "Scheduled runs skipped because the previous run was still queued or running, or a mirror waited too long for its backup.",
            labels: labels.clone(),
            value: format!("{}", before + 1.0),
        }]
    });
}

/// How a restore drill of one profile went.
#[derive(Debug)]
pub struct Drill {
    /// Whether every backup looked at verified fully.
    pub success: bool,
    /// Backups fully verified.
    pub verified: usize,
    /// Seconds it took.
    pub seconds: f64,
}

/// A restore drill of `profile` ended: its `backupapps_drill_*` series.
pub fn record_drill(ws: &Workspace, profile: &Profile, drill: &Drill) {
    let target = profile.target();
    let labels = format!(
        "{{app=\"{}\",profile=\"{}\",target=\"{}\"}}",
        escape(&profile.app),
        escape(&profile.name),
        escape(&target)
    );
    let now = chrono::Utc::now().timestamp();
    update(ws, profile, |text| {
        let failures = current(text, "backupapps_drill_failures_total", &labels).unwrap_or(0.0);
        let mut series = vec![
            Series {
                name: "backupapps_drill_last_run_timestamp_seconds",
                kind: "gauge",
                help: "Unix time of the last restore drill (verify --drill).",
                labels: labels.clone(),
                value: now.to_string(),
            },
            Series {
                name: "backupapps_drill_last_run_success",
                kind: "gauge",
                help: "1 if the last restore drill fully verified every backup it picked, else 0.",
                labels: labels.clone(),
                value: u8::from(drill.success).to_string(),
            },
            Series {
                name: "backupapps_drill_backups_verified",
                kind: "gauge",
                help: "Backups fully verified (decrypted and read) by the last restore drill.",
                labels: labels.clone(),
                value: drill.verified.to_string(),
            },
            Series {
                name: "backupapps_drill_duration_seconds",
                kind: "gauge",
                help: "Duration of the last restore drill.",
                labels: labels.clone(),
                value: format!("{:.3}", drill.seconds),
            },
            Series {
                name: "backupapps_drill_failures_total",
                kind: "counter",
                help: "Failed restore drills.",
                labels: labels.clone(),
                value: format!("{}", failures + f64::from(u8::from(!drill.success))),
            },
        ];
        if drill.success {
            series.push(Series {
                name: "backupapps_drill_last_success_timestamp_seconds",
                kind: "gauge",
                help: "Unix time of the last restore drill that succeeded.",
                labels: labels.clone(),
                value: now.to_string(),
            });
        }
        series
    });
}

/// Applies `series` (computed from the file's current text) to the
/// profile's textfile, if it has one. A failure is a warning: monitoring
/// must not take the job down with it.
fn update(ws: &Workspace, profile: &Profile, series: impl FnOnce(&str) -> Vec<Series<'static>>) {
    let Some(file) = &profile.settings.monitoring.metrics_file else {
        return;
    };
    if let Err(e) = rewrite(&ws.home, &ws.home.join(file), series) {
        tracing::warn!(error = %format!("{e:#}"), "could not write the metrics file");
    }
}

fn rewrite(home: &Path, path: &Path, series: impl FnOnce(&str) -> Vec<Series<'static>>) -> Result<()> {
    crate::monitoring::textfile::rewrite(home, path, |old| {
        let mut lines: Vec<String> = old.lines().map(str::to_owned).collect();
        for s in series(old) {
            let sample = format!("{}{} ", s.name, s.labels);
            lines.retain(|l| !l.starts_with(&sample));
            let help = format!("# HELP {} ", s.name);
            if !lines.iter().any(|l| l.starts_with(&help)) {
                lines.push(format!("# HELP {} {}", s.name, s.help));
                lines.push(format!("# TYPE {} {}", s.name, s.kind));
            }
            // Right after the family's last line, so that families stay together.
            let family = format!("{}{{", s.name);
            let at = lines
                .iter()
                .rposition(|l| l.starts_with(&family) || l.starts_with(&format!("# TYPE {} ", s.name)))
                .map_or(lines.len(), |i| i + 1);
            lines.insert(at, format!("{sample}{}", s.value));
        }
        let mut text = lines.join("\n");
        text.push('\n');
        text
    })
}

/// The value of `name{labels}` in `text`.
fn current(text: &str, name: &str, labels: &str) -> Option<f64> {
    let sample = format!("{name}{labels} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&sample))
        .and_then(|v| v.trim().parse().ok())
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_replaced_and_other_lines_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.prom");
        std::fs::write(&path, "# HELP other x\n# TYPE other gauge\nother{target=\"a\"} 1\n").unwrap();
        let set = |v: &str| {
            let v = v.to_owned();
            rewrite(dir.path(), &path, move |_| {
                vec![Series {
                    name: "mine",
                    kind: "gauge",
                    help: "h",
                    labels: "{target=\"a\"}".into(),
                    value: v,
                }]
            })
            .unwrap();
        };
        set("1");
        set("2");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("other{target=\"a\"} 1\n"), "{text}");
        assert!(text.contains("mine{target=\"a\"} 2\n"), "{text}");
        assert_eq!(text.matches("mine{").count(), 1, "{text}");
        assert_eq!(current(&text, "mine", "{target=\"a\"}"), Some(2.0));
    }
}
