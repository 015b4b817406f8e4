//! Retention: which backups to keep, with the reasons, as restic ≥ 0.16 `forget`.

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// What a policy needs to know of a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    /// Backup id.
    pub id: String,
    /// The time the backup stands for.
    pub time: DateTime<Utc>,
}

/// The fate of one backup, with the reasons it is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Backup id.
    pub id: String,
    /// Its time.
    pub time: DateTime<Utc>,
    /// Kept or removed.
    pub keep: bool,
    /// Why it is kept, e.g. `daily 3/7`, `oldest monthly`, `within 30d`.
    pub reasons: Vec<String>,
}

/// Decides which backups to keep. Pure: the caller does the deleting.
///
/// Contract: one decision per backup given, newest first; the newest backup
/// is always kept.
pub trait RetentionPolicy: Send + Sync {
    /// Plans the fate of `backups` (complete backups, any order) at `now`.
    fn plan(&self, backups: &[BackupSummary], now: DateTime<Utc>) -> Vec<Decision>;
}

/// Keep-N-per-period rules, as restic's `forget --keep-*`. Also the
/// configuration type of a `[retention]` section: `within` and
/// `incomplete_grace` are spans such as `"30d"`, `timezone` an IANA name.
///
/// Each rule keeps the newest backup of each of its N most recent periods that
/// have a backup; rules are independent; a rule with slots left at the oldest
/// backup keeps the oldest; `within` keeps everything no older than that span
/// before the newest backup. No rule at all keeps everything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RetentionSection", into = "RetentionSection")]
pub struct KeepPolicy {
    /// Keep the N newest backups.
    pub last: u32,
    /// Newest backup of each of the N most recent hours.
    pub hourly: u32,
    /// … days (calendar days in `timezone`).
    pub daily: u32,
    /// … ISO weeks (ISO year + week number).
    pub weekly: u32,
    /// … months.
    pub monthly: u32,
    /// … years.
    pub yearly: u32,
    /// Keep everything within this span of the newest backup.
    pub within: Option<Duration>,
    /// Time zone in which hours, days, weeks, months and years are counted.
    pub timezone: Tz,
    /// How long a folder that is not a trusted backup (no manifest, or an
    /// untrusted one) is left alone before prune removes it.
    pub incomplete_grace: Duration,
}

impl Default for KeepPolicy {
    /// No rules (everything is kept), UTC, a grace of 24 hours.
    fn default() -> Self {
        KeepPolicy {
            last: 0,
            hourly: 0,
            daily: 0,
            weekly: 0,
            monthly: 0,
            yearly: 0,
            within: None,
            timezone: Tz::UTC,
            incomplete_grace: Duration::hours(24),
        }
    }
}

/// `[retention]` as written in a configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionSection {
    #[serde(default)]
    last: u32,
    #[serde(default)]
    hourly: u32,
    #[serde(default)]
    daily: u32,
    #[serde(default)]
    weekly: u32,
    #[serde(default)]
    monthly: u32,
    #[serde(default)]
    yearly: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    within: Option<String>,
    #[serde(default = "utc")]
    timezone: String,
    #[serde(default = "day")]
    incomplete_grace: String,
}

fn utc() -> String {
    "UTC".into()
}

fn day() -> String {
    "24h".into()
}

impl TryFrom<RetentionSection> for KeepPolicy {
    type Error = String;

    fn try_from(s: RetentionSection) -> Result<Self, String> {
        let timezone = s.timezone.parse().map_err(|_| {
            format!(
                "timezone {:?} is not an IANA time zone name (e.g. \"Europe/Paris\")",
                s.timezone
            )
        })?;
        let within = match &s.within {
            Some(w) => Some(parse_span(w).map_err(|e| format!("within: {e}"))?),
            None => None,
        };
        let incomplete_grace = parse_span(&s.incomplete_grace).map_err(|e| format!("incomplete_grace: {e}"))?;
        Ok(KeepPolicy {
            last: s.last,
            hourly: s.hourly,
            daily: s.daily,
            weekly: s.weekly,
            monthly: s.monthly,
            yearly: s.yearly,
            within,
            timezone,
            incomplete_grace,
        })
    }
}

impl From<KeepPolicy> for RetentionSection {
    fn from(p: KeepPolicy) -> Self {
        RetentionSection {
            last: p.last,
            hourly: p.hourly,
            daily: p.daily,
            weekly: p.weekly,
            monthly: p.monthly,
            yearly: p.yearly,
            within: p.within.map(format_span),
            timezone: p.timezone.name().to_owned(),
            incomplete_grace: format_span(p.incomplete_grace),
        }
    }
}

impl KeepPolicy {
    /// The product's default window: 7 daily, 4 weekly, 12 monthly.
    pub fn standard() -> Self {
        KeepPolicy {
            daily: 7,
            weekly: 4,
            monthly: 12,
            ..KeepPolicy::default()
        }
    }

    /// True when no rule is set: everything is kept.
    pub fn is_empty(&self) -> bool {
        [
            self.last,
            self.hourly,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ]
        .iter()
        .all(|n| *n == 0)
            && self.within.is_none()
    }

    fn rules(&self) -> Vec<(&'static str, u32, PeriodOf)> {
        vec![
            ("last", self.last, |_| 0),
            ("hourly", self.hourly, |t| {
                (t.year() as i64 * 10_000 + t.ordinal() as i64) * 100 + t.hour() as i64
            }),
            ("daily", self.daily, |t| t.year() as i64 * 10_000 + t.ordinal() as i64),
            ("weekly", self.weekly, |t| {
                let w = t.iso_week();
                w.year() as i64 * 100 + w.week() as i64
            }),
            ("monthly", self.monthly, |t| t.year() as i64 * 100 + t.month() as i64),
            ("yearly", self.yearly, |t| t.year() as i64),
        ]
    }
}

/// Maps a local time to the number of its period (hour, day, ISO week, …).
type PeriodOf = fn(&DateTime<Tz>) -> i64;

/// Parses a span like `30d`, `12h`, `2w`, `1y2m`, `90s` (y = 365 d, m = 30 d).
///
/// # Errors
/// A message saying what is accepted.
pub fn parse_span(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a span: use a number and a unit, e.g. \"30d\", \"12h\", \"2w\"");
    let mut total = Duration::zero();
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: i64 = number.parse().map_err(|_| bad())?;
        number.clear();
        // Checked all the way: chrono's plain constructors panic on a span
        // such as "99999999999999999d", which is a typo, not a crash.
        let part = match c {
            's' => Duration::try_seconds(n),
            'h' => Duration::try_hours(n),
            'd' => Duration::try_days(n),
            'w' => Duration::try_weeks(n),
            'm' => n.checked_mul(30).and_then(Duration::try_days),
            'y' => n.checked_mul(365).and_then(Duration::try_days),
            _ => return Err(bad()),
        };
        total = part
            .and_then(|part| total.checked_add(&part))
            .ok_or_else(|| format!("{text:?} is too long a span; use at most a few years, e.g. \"10y\""))?;
    }
    if !number.is_empty() || total.is_zero() {
        return Err(bad());
    }
    Ok(total)
}

impl RetentionPolicy for KeepPolicy {
    fn plan(&self, backups: &[BackupSummary], _now: DateTime<Utc>) -> Vec<Decision> {
        let mut sorted: Vec<&BackupSummary> = backups.iter().collect();
        sorted.sort_by(|a, b| (b.time, &b.id).cmp(&(a.time, &a.id)));
        let mut decisions: Vec<Decision> = sorted
            .iter()
            .map(|b| Decision {
                id: b.id.clone(),
                time: b.time,
                keep: self.is_empty(),
                reasons: if self.is_empty() {
                    vec!["no retention rules".into()]
                } else {
                    vec![]
                },
            })
            .collect();
        if self.is_empty() || decisions.is_empty() {
            return decisions;
        }
        let oldest = decisions.len() - 1;
        let newest_time = sorted[0].time;
        if let Some(within) = self.within {
            for d in decisions.iter_mut().filter(|d| d.time >= newest_time - within) {
                d.keep = true;
                d.reasons.push(format!("within {}", format_span(within)));
            }
        }
        for (name, count, period) in self.rules() {
            let mut used = 0u32;
            let mut last_period: Option<i64> = None;
            for (n, d) in decisions.iter_mut().enumerate() {
                if used >= count {
                    break;
                }
                let local = self.timezone.from_utc_datetime(&d.time.naive_utc());
                // `last` counts backups, not periods: every backup is its own period.
                let p = if name == "last" { n as i64 } else { period(&local) };
                if last_period != Some(p) {
                    used += 1;
                    last_period = Some(p);
                    d.keep = true;
                    d.reasons.push(format!("{name} {used}/{count}"));
                } else if n == oldest {
                    used += 1;
                    d.keep = true;
                    d.reasons.push(format!("oldest {name}"));
                }
            }
        }
        if !decisions[0].keep {
            decisions[0].keep = true;
            decisions[0].reasons.push("newest (always kept)".into());
        }
        decisions
    }
}

fn format_span(span: Duration) -> String {
    let secs = span.num_seconds();
    if secs % 86_400 == 0 {
        format!("{}d", span.num_days())
    } else if secs % 3_600 == 0 {
        format!("{}h", span.num_hours())
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
