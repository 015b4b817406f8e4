//! Ranges and formats of settings, checked while the configuration is read
//! (serde `deserialize_with`): figment then names the file and key of a bad
//! value, and every command refuses it — not only the run that would trip
//! over it hours later.

use std::ops::RangeInclusive;

use croner::Cron;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::output::human_size;
use crate::settings::ByteSize;

/// `[backup] chunk_size`: below 64 KiB the cost of each chunk (an OpenPGP
/// message, a store object, a manifest line) dominates; above 1 GiB a
/// restore would refuse the manifest (`backup_core::manifest::MAX_CHUNK_SIZE`).
pub const CHUNK_SIZES: RangeInclusive<u64> = (64 << 10)..=backup_core::manifest::MAX_CHUNK_SIZE;

/// `[backup] zstd_level`: zstd's regular levels. 20–22 ("ultra") need a
/// window of up to 128 MiB on every host that restores.
pub const ZSTD_LEVELS: RangeInclusive<i32> = 1..=19;

/// `[backup] parallelism` (0 = one per core). Memory is about
/// (2 × parallelism + 1) × chunk_size, so a typo such as 6400 would ask for
/// hundreds of GiB; a fixed bound keeps a configuration valid on every host.
pub const MAX_PARALLELISM: usize = 64;

/// The cron nicknames accepted besides five or six fields.
const NICKNAMES: [&str; 6] = ["@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually"];

/// `deserialize_with` for `[backup] chunk_size`.
pub fn chunk_size<'de, D: Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
    let size = ByteSize::deserialize(d)?;
    if !CHUNK_SIZES.contains(&size.0) {
        return Err(D::Error::custom(format!(
            "{} is out of range: use a size from \"64KiB\" to \"1GiB\", e.g. \"16MiB\" (the default)",
            human_size(size.0)
        )));
    }
    Ok(size)
}

/// `deserialize_with` for `[backup] zstd_level`.
pub fn zstd_level<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    let level = i32::deserialize(d)?;
    if !ZSTD_LEVELS.contains(&level) {
        return Err(D::Error::custom(format!(
            "{level} is out of range: use 1 (fastest) to 19 (smallest); 3 is the default"
        )));
    }
    Ok(level)
}

/// `deserialize_with` for `[backup] parallelism`.
pub fn parallelism<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if n > MAX_PARALLELISM {
        return Err(D::Error::custom(format!(
            "{n} is out of range: use 1 to {MAX_PARALLELISM} chunks at once, or 0 for one per core"
        )));
    }
    Ok(n)
}

/// `deserialize_with` for a `schedule` key.
pub fn schedule<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let expression = Option::<String>::deserialize(d)?;
    if let Some(e) = &expression {
        parse_cron(e).map_err(D::Error::custom)?;
    }
    Ok(expression)
}

/// Parses a cron expression: five fields, six with seconds first, or one of
/// `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
///
/// # Errors
/// A message saying what is accepted.
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    let bad = |why: String| {
        format!(
            "{expression:?} is not a cron expression ({why}); use e.g. \"1 2 * * *\" \
             (minute hour day month weekday) or one of {}",
            NICKNAMES[..5].join(", ")
        )
    };
    let trimmed = expression.trim();
    // croner takes a nickname anywhere in the text ("1 @daily"); cron and we
    // take it only alone.
    if trimmed.contains('@') && !NICKNAMES.iter().any(|n| trimmed.eq_ignore_ascii_case(n)) {
        return Err(bad("unknown nickname".into()));
    }
    let mut cron = Cron::new(trimmed);
    cron.with_seconds_optional();
    cron.parse()
        .map_err(|e| bad(e.to_string().trim_end_matches('.').to_owned()))
}

/// Whether `expression` is a nickname (`@daily`) that cron itself knows.
pub fn is_nickname(expression: &str) -> bool {
    NICKNAMES.iter().any(|n| expression.trim().eq_ignore_ascii_case(n))
}

/// `deserialize_with` for `[store] copy_to`: store URLs, so that a typo is an
/// error of every command rather than of the backup run that copies.
pub fn store_urls<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    const SCHEMES: [&str; 4] = ["file://", "swift://", "s3://", "az://"];
    let urls = Vec::<String>::deserialize(d)?;
    for url in &urls {
        let rest = SCHEMES.iter().find_map(|s| url.strip_prefix(s));
        if rest.is_none_or(str::is_empty) {
            return Err(D::Error::custom(format!(
                "{url:?} is not a store URL: use file:///path, swift://container, s3://bucket or az://container"
            )));
        }
    }
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_fields_are_range_checked_and_nicknames_accepted() {
        for good in [
            "1 2 * * *",
            "0 */15 * * * *",
            "@daily",
            "@hourly",
            "@weekly",
            "@monthly",
            "@yearly",
        ] {
            assert!(parse_cron(good).is_ok(), "{good}");
        }
        for bad in [
            "61 2 * * *",
            "1 25 * * *",
            "@reboot",
            "@dialy",
            "1 @daily",
            "",
            "1 2 * *",
        ] {
            let e = parse_cron(bad).unwrap_err();
            assert!(e.contains("@daily"), "{bad}: {e}");
        }
    }

    #[test]
    fn daily_nickname_fires_at_midnight() {
        let cron = parse_cron("@daily").unwrap();
        let after = chrono::DateTime::parse_from_rfc3339("2026-03-04T05:06:07Z").unwrap();
        let next = cron.find_next_occurrence(&after.to_utc(), false).unwrap();
        assert_eq!(next.to_rfc3339(), "2026-03-05T00:00:00+00:00");
    }
}
