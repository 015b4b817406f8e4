//! Small helpers for what the commands print.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
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
}
