//! Small helpers for what the commands print, and how: result lines go to
//! stdout unless `-q`; a closed pipe on stdout ends the output, not the run.

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

static QUIET: AtomicBool = AtomicBool::new(false);
static JSON_LOGS: AtomicBool = AtomicBool::new(false);
/// Set once stdout's reader has gone (`| head`): nothing more is written.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// Records `-q` and `--log-format json` for the whole run (set once, in `main`).
pub fn set_mode(quiet: bool, json_logs: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
    JSON_LOGS.store(json_logs, Ordering::Relaxed);
}

/// `-q`: nothing on stdout, no progress; failures still go to stderr.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Whether a summary also goes out as a log event: when its stdout line is
/// not shown (`-q`), or when the logs are JSON for a machine to read. A
/// human reading text logs would otherwise see each summary twice.
pub fn log_summaries() -> bool {
    quiet() || JSON_LOGS.load(Ordering::Relaxed)
}

/// Whether structured failure events go to stderr: only for JSON logs, since
/// in text the one `TARGET: … failed: …` line already says it.
pub fn log_failures() -> bool {
    JSON_LOGS.load(Ordering::Relaxed)
}

/// ANSI colour on stderr: only on a terminal, and never with `NO_COLOR` set
/// to anything non-empty (<https://no-color.org>).
pub fn colour_on_stderr() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && io::stderr().is_terminal()
}

/// Writes `bytes` to stdout. A reader that went away (`EPIPE`) is not an
/// error: the output is simply over, and the command goes on (a backup
/// piped into `head` still finishes). `println!` would panic instead.
///
/// # Errors
/// Other write errors (a full disk behind a redirection).
pub fn write_stdout(bytes: &[u8]) -> io::Result<()> {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            STDOUT_GONE.store(true, Ordering::Relaxed);
            Ok(())
        }
        other => other,
    }
}

/// One result line on stdout, unless `-q`; see [`say!`].
pub fn say_line(args: fmt::Arguments<'_>) {
    if quiet() {
        return;
    }
    if let Err(e) = write_stdout(format!("{args}\n").as_bytes()) {
        // The run's work matters more than its report: note it, go on.
        STDOUT_GONE.store(true, Ordering::Relaxed);
        tracing::warn!(error = %e, "cannot write to stdout; further output is dropped");
    }
}

/// `println!` for result lines: silent under `-q`, quiet on a closed pipe.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::say_line(format_args!($($arg)*))
    };
}
pub(crate) use say;

/// `1.5 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `1 chunk`, `2 chunks`: a count with its noun, plural when not one.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// What a files archive holds, as `restore` and `verify` print it:
/// `12 files, 3 directories, 1 symlink, 1.5 MiB`.
pub fn archive_summary(files: u64, dirs: u64, symlinks: u64, bytes: u64) -> String {
    let n = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    format!(
        "{}, {}, {}, {}",
        count(n(files), "file"),
        count(n(dirs), "directory").replace("directorys", "directories"),
        count(n(symlinks), "symlink"),
        human_size(bytes)
    )
}

/// `verify`'s structure check of a files backup (the library's `TarCheck`,
/// worded like every other line of the CLI).
#[derive(Debug, Clone, Copy, Default)]
pub struct TarSummary;

#[async_trait::async_trait]
impl backup_core::StreamCheck for TarSummary {
    async fn check(
        &self,
        data: backup_core::ByteStream,
        entry: &backup_core::CatalogEntry,
    ) -> backup_core::Result<String> {
        let s = backup_files::check_stream(data, &entry.manifest.id).await?;
        Ok(format!(
            "tar archive read: {}",
            archive_summary(s.files, s.dirs, s.symlinks, s.bytes)
        ))
    }
}

/// Parses a time given on the command line: RFC 3339, or
/// `YYYY-MM-DD[THH:MM[:SS]]` taken as UTC.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_time(flag: &str, text: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    Err(crate::workspace::ConfigError(format!(
        "{flag} {text:?} is not a time: use RFC 3339 (2026-11-26T02:01:00Z) or YYYY-MM-DD[THH:MM:SS] in UTC"
    ))
    .into())
}

/// What `--at` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// `latest`: the newest backup.
    Latest,
    /// A full timestamp: the newest backup at or before exactly this instant.
    Exact(DateTime<Utc>),
    /// A bare `YYYY-MM-DD`: the newest backup on or before the end of that
    /// day. Read as midnight it would exclude every backup of the day itself,
    /// which is never what "restore as of the 27th" means.
    Day(NaiveDate),
}

impl At {
    /// The last instant `--at` covers, or `None` for the newest backup. A
    /// day ends where the next one starts in `zone`, the profile's retention
    /// `timezone`: the same calendar days the `daily` rule keeps, and the
    /// same answer on every machine reading the store (the host's zone would
    /// differ between the backing-up host and a fresh recovery host).
    pub fn until(self, zone: Tz) -> Option<DateTime<Utc>> {
        match self {
            At::Latest => None,
            At::Exact(t) => Some(t),
            At::Day(day) => {
                let next = day.succ_opt().unwrap_or(day).and_hms_opt(0, 0, 0).unwrap_or_default();
                // Midnight can fall into a DST gap (some zones switch at
                // 00:00): the day then ends at the first instant that exists.
                let start_of_next = (0..=3)
                    .find_map(|h| zone.from_local_datetime(&(next + Duration::hours(h))).earliest())
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_else(|| next.and_utc());
                Some(start_of_next - Duration::nanoseconds(1))
            }
        }
    }
}

/// Parses `--at`: `latest`, a bare `YYYY-MM-DD` (the whole day, see
/// [`At::until`]), or a full time as [`parse_time`] reads it.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_at(text: &str) -> anyhow::Result<At> {
    if text.eq_ignore_ascii_case("latest") {
        return Ok(At::Latest);
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(At::Day(day));
    }
    parse_time("--at", text).map(At::Exact).map_err(|_| {
        crate::workspace::ConfigError(format!(
            "--at {text:?} is not a time: use latest, a day (2026-11-26: the newest backup of that day \
             or before, in the profile's retention timezone), or a time in RFC 3339 (2026-11-26T02:01:00Z) \
             or YYYY-MM-DD[THH:MM:SS] in UTC"
        ))
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
        assert_eq!(count(1, "chunk"), "1 chunk");
        assert_eq!(count(0, "chunk"), "0 chunks");
        assert_eq!(count(2, "profile"), "2 profiles");
        assert_eq!(archive_summary(1, 2, 1, 5), "1 file, 2 directories, 1 symlink, 5 B");
    }

    #[test]
    fn times_parse_in_several_forms() {
        let t = parse_time("--time", "2026-11-26T02:01:00Z").unwrap();
        assert_eq!(parse_time("--time", "2026-11-26T03:01:00+01:00").unwrap(), t);
        assert_eq!(parse_time("--time", "2026-11-26T02:01:00").unwrap(), t);
        assert_eq!(
            parse_time("--time", "2026-11-26").unwrap().to_rfc3339(),
            "2026-11-26T00:00:00+00:00"
        );
        assert!(parse_time("--time", "yesterday").is_err());
    }

    #[test]
    fn at_a_day_means_its_end_in_the_zone() {
        let utc = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let end = parse_at("2026-11-27").unwrap().until(Tz::UTC).unwrap();
        assert!(end < utc("2026-11-28T00:00:00Z") && end > utc("2026-11-27T23:59:59.999Z"));
        // In Paris (UTC+1 in November) the 27th ends at 23:00 UTC.
        let paris = parse_at("2026-11-27").unwrap().until(chrono_tz::Europe::Paris).unwrap();
        assert!(paris < utc("2026-11-27T23:00:00Z") && paris > utc("2026-11-27T22:59:59Z"));
        // Full times keep their exact meaning, whatever the zone.
        let exact = parse_at("2026-11-27T02:01:00Z").unwrap();
        assert_eq!(exact.until(chrono_tz::Europe::Paris), Some(utc("2026-11-27T02:01:00Z")));
        assert_eq!(parse_at("latest").unwrap(), At::Latest);
        assert_eq!(At::Latest.until(Tz::UTC), None);
        assert!(parse_at("yesterday").is_err());
    }
}
