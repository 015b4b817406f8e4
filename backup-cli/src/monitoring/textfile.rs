//! The Prometheus textfile: the file itself is the state. Each update reads
//! it, replaces the lines of one job and target, and renames a new file into
//! place (node_exporter never sees a half-written file), under a lock so
//! that a verify and a backup finishing together do not erase each other.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use super::Job;

/// One profile's job, as the textfile records it.
#[derive(Debug)]
pub(super) struct Sample<'a> {
    pub app: &'a str,
    pub profile: &'a str,
    pub target: String,
    pub job: Job,
    pub success: bool,
    pub seconds: f64,
    pub sizes: Option<(u64, u64)>,
    pub now: i64,
}

/// One metric: its help, type, and value per label set (as written).
#[derive(Debug, Default)]
struct Family {
    help: String,
    kind: String,
    series: BTreeMap<String, String>,
}

/// Metric families by name, as read from the file.
#[derive(Debug, Default)]
struct Metrics(BTreeMap<String, Family>);

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let mut m = Metrics::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                if let Some((name, help)) = rest.split_once(' ') {
                    m.0.entry(name.to_owned()).or_default().help = help.to_owned();
                }
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                if let Some((name, kind)) = rest.split_once(' ') {
                    m.0.entry(name.to_owned()).or_default().kind = kind.to_owned();
                }
            } else if let Some((name, labels, value)) = split_sample(line) {
                m.0.entry(name.to_owned())
                    .or_default()
                    .series
                    .insert(labels.to_owned(), value.to_owned());
            }
            // Anything else (a foreign or damaged line) is dropped.
        }
        m
    }

    /// The value for `target` of metric `name`, any label set.
    fn value(&self, name: &str, target: &str) -> Option<&str> {
        let family = self.0.get(name)?;
        family
            .series
            .iter()
            .find(|(labels, _)| target_of(labels).as_deref() == Some(target))
            .map(|(_, v)| v.as_str())
    }

    /// Sets `name` for the target of `labels`, replacing any earlier series
    /// of that target (also ones written with fewer labels by older versions).
    fn set(&mut self, name: &str, kind: &str, help: &str, target: &str, labels: &str, value: String) {
        let family = self.0.entry(name.to_owned()).or_default();
        family.help = help.to_owned();
        family.kind = kind.to_owned();
        family.series.retain(|l, _| target_of(l).as_deref() != Some(target));
        family.series.insert(labels.to_owned(), value);
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (name, family) in &self.0 {
            if family.series.is_empty() {
                continue;
            }
            if !family.help.is_empty() {
                out.push_str(&format!("# HELP {name} {}\n", family.help));
            }
            if !family.kind.is_empty() {
                out.push_str(&format!("# TYPE {name} {}\n", family.kind));
            }
            for (labels, value) in &family.series {
                out.push_str(&format!("{name}{labels} {value}\n"));
            }
        }
        out
    }
}

/// `name{labels} value` → (name, `{labels}`, value); labels may hold `}` or
/// spaces inside quotes.
fn split_sample(line: &str) -> Option<(&str, &str, &str)> {
    let open = line.find('{')?;
    let name = &line[..open];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        return None;
    }
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line[open..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => {
                let close = open + i + 1;
                let value = line[close..].trim();
                return (!value.is_empty()).then(|| (name, &line[open..close], value));
            }
            _ => {}
        }
    }
    None
}

/// The `target` label's value (unescaped) in `{…}`.
fn target_of(labels: &str) -> Option<String> {
    let start = labels.find("target=\"")? + "target=\"".len();
    let mut out = String::new();
    let mut chars = labels[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(match chars.next()? {
                'n' => '\n',
                other => other,
            }),
            '"' => return Some(out),
            c => out.push(c),
        }
    }
    None
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Name suffix, type, help (with `{job}` for the job's name), value.
type Line = (&'static str, &'static str, &'static str, Option<String>);

/// Reads `path`, sets `sample`'s lines, writes it back atomically.
pub(super) fn update(home: &Path, path: &Path, sample: &Sample<'_>) -> Result<()> {
    rewrite(home, path, |old| {
        let mut metrics = Metrics::parse(old);
        apply(&mut metrics, sample);
        metrics.render()
    })
}

/// Replaces the textfile at `path` with `edit(current text)`: one writer at
/// a time (the lock lives in the workspace, so the textfile's folder needs no
/// extra files), and a rename, so node_exporter never reads half a file.
/// Every writer of the textfile goes through here.
///
/// # Errors
/// When the lock, the file or its folder cannot be read or written.
pub(crate) fn rewrite(home: &Path, path: &Path, edit: impl FnOnce(&str) -> String) -> Result<()> {
    let (lock, lock_path) = crate::lock::open_lock_file_at(home, "metrics")?;
    lock.lock()
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    let old = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let text = edit(&old);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".backupapps-metrics")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", tmp.path().display()))?;
    // node_exporter usually runs as another user: readable by all (no secrets).
    std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .with_context(|| format!("cannot set the mode of {}", tmp.path().display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

fn apply(metrics: &mut Metrics, s: &Sample<'_>) {
    let job = s.job.name();
    let target = s.target.as_str();
    let labels = format!(
        "{{app=\"{}\",profile=\"{}\",target=\"{}\"}}",
        escape(s.app),
        escape(s.profile),
        escape(target)
    );
    let prefix = format!("backupapps_{job}_");
    let previous = |name: &str| metrics.value(name, target).map(str::to_owned);
    let last_success = if s.success {
        Some(s.now.to_string())
    } else {
        previous(&format!("{prefix}last_success_timestamp_seconds"))
    };
    let failures = previous(&format!("{prefix}failures_total"))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + u64::from(!s.success);
    let legacy_failures = previous("backupapps_failures_total")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + u64::from(!s.success);
    let mut lines: Vec<Line> = vec![
        (
            "last_success_timestamp_seconds",
            "gauge",
            "Unix time of the last successful {job}.",
            last_success.clone(),
        ),
        (
            "last_run_timestamp_seconds",
            "gauge",
            "Unix time of the last {job} run.",
            Some(s.now.to_string()),
        ),
        (
            "last_status",
            "gauge",
            "1 if the last {job} run succeeded, else 0.",
            Some(u8::from(s.success).to_string()),
        ),
        (
            "last_duration_seconds",
            "gauge",
            "Duration of the last {job} run.",
            Some(format!("{:.3}", s.seconds)),
        ),
        (
            "failures_total",
            "counter",
            "Failed {job} runs.",
            Some(failures.to_string()),
        ),
    ];
    if let Some((size, stored)) = s.sizes {
        lines.push((
            "last_size_bytes",
            "gauge",
            "Plaintext bytes of the last successful {job}.",
            Some(size.to_string()),
        ));
        lines.push((
            "last_stored_bytes",
            "gauge",
            "Stored (compressed, encrypted) bytes of the last successful {job}.",
            Some(stored.to_string()),
        ));
    }
    for (suffix, kind, help, value) in &lines {
        if let Some(value) = value {
            let help = help.replace("{job}", job);
            metrics.set(
                &format!("{prefix}{suffix}"),
                kind,
                &help,
                target,
                &labels,
                value.clone(),
            );
        }
    }
    // The names of the first versions, backups only, with their one label
    // as then: dashboards, alerts and joins written for them keep working.
    let labels = format!("{{target=\"{}\"}}", escape(target));
    if s.job == Job::Backup {
        for (suffix, kind, help, value) in lines {
            let name = match suffix {
                "last_status" => "backupapps_last_run_success".to_owned(),
                "last_run_timestamp_seconds" => continue,
                other => format!("backupapps_{other}"),
            };
            let value = if suffix == "failures_total" {
                Some(legacy_failures.to_string())
            } else {
                value
            };
            if let Some(value) = value {
                metrics.set(&name, kind, &help.replace("{job}", "backup"), target, &labels, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(target: &str, job: Job, success: bool) -> Sample<'static> {
        Sample {
            app: "app",
            profile: "db",
            target: target.to_owned(),
            job,
            success,
            seconds: 1.5,
            sizes: success.then_some((100, 40)),
            now: 1_700_000_000,
        }
    }

    #[test]
    fn jobs_and_targets_keep_each_others_lines() {
        let mut m = Metrics::default();
        apply(&mut m, &sample("app/db", Job::Backup, true));
        apply(&mut m, &sample("app/db", Job::Verify, false));
        apply(&mut m, &sample("o\"dd}/x", Job::Backup, false));
        let text = m.render();
        let again = Metrics::parse(&text);
        assert_eq!(again.render(), text, "parse(render) is the identity");
        assert_eq!(again.value("backupapps_backup_last_status", "app/db"), Some("1"));
        assert_eq!(again.value("backupapps_verify_last_status", "app/db"), Some("0"));
        assert_eq!(again.value("backupapps_verify_failures_total", "app/db"), Some("1"));
        assert_eq!(again.value("backupapps_last_run_success", "o\"dd}/x"), Some("0"));
        assert_eq!(again.value("backupapps_last_size_bytes", "app/db"), Some("100"));
        assert!(text.contains("backupapps_backup_last_status{app=\"app\",profile=\"db\",target=\"app/db\"} 1\n"));
    }

    #[test]
    fn a_failure_keeps_the_last_success_and_counts() {
        let mut m = Metrics::default();
        apply(&mut m, &sample("app/db", Job::Mirror, true));
        let mut later = sample("app/db", Job::Mirror, false);
        later.now += 100;
        apply(&mut m, &later);
        apply(&mut m, &later);
        assert_eq!(
            m.value("backupapps_mirror_last_success_timestamp_seconds", "app/db"),
            Some("1700000000")
        );
        assert_eq!(m.value("backupapps_mirror_failures_total", "app/db"), Some("2"));
    }

    #[test]
    fn lines_of_older_versions_are_replaced_and_junk_dropped() {
        let old = "# HELP backupapps_last_run_success x\n# TYPE backupapps_last_run_success gauge\n\
                   backupapps_last_run_success{target=\"app/db\"} 0\nbackupapps_failures_total{target=\"app/db\"} 4\n\
                   garbage line\n{}\n";
        let mut m = Metrics::parse(old);
        apply(&mut m, &sample("app/db", Job::Backup, false));
        let text = m.render();
        assert!(
            text.contains("backupapps_last_run_success{target=\"app/db\"} 0\n"),
            "{text}"
        );
        assert!(!text.contains("garbage"));
        // The old counter is carried on.
        assert_eq!(m.value("backupapps_failures_total", "app/db"), Some("5"));
        assert_eq!(m.value("backupapps_backup_failures_total", "app/db"), Some("1"));
    }
}
