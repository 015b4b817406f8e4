//! `[schedule]` in `backupapps.toml`: the scheduler's own settings.
//!
//! ```toml
//! [schedule]
//! max_concurrent = 2     # jobs running at once (default: half the cores, at least 1)
//! mirror_wait = "2h"     # how long a mirror waits for its profile's backup
//! ```
//!
//! The table shares its name with a profile's `schedule = "cron"` key, so it
//! is read from `backupapps.toml` only (not from `BACKUPAPPS_SCHEDULE__…`
//! variables, which would replace every profile's cron expression).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Deserializer};

use crate::workspace::GLOBAL_FILE;

/// Most jobs at once a configuration may ask for.
pub const MAX_CONCURRENT: usize = 64;

/// How long a mirror waits for its profile's backup when `mirror_wait` is not set.
pub const DEFAULT_MIRROR_WAIT: Duration = Duration::from_secs(2 * 60 * 60);

/// The scheduler's settings, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Jobs running at once; the others wait in a FIFO queue.
    pub max_concurrent: usize,
    /// Longest a mirror waits for its profile's running or queued backup
    /// before it is skipped (never run on the previous backup instead).
    pub mirror_wait: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_concurrent: default_max_concurrent(),
            mirror_wait: DEFAULT_MIRROR_WAIT,
        }
    }
}

/// Half the cores, at least one: each backup uses every core for compression.
pub fn default_max_concurrent() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get() / 2).max(1)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    max_concurrent: Option<usize>,
    mirror_wait: Option<String>,
}

/// Reads `[schedule]` from `home/backupapps.toml`.
///
/// # Errors
/// A bad value, naming the file and key.
pub fn load(home: &Path) -> Result<SchedulerConfig> {
    // Layered into every profile, such a variable would replace each
    // profile's `schedule = "cron"` with a table: every job would vanish.
    if let Some((key, _)) = std::env::vars_os().find(|(k, _)| {
        k.to_str()
            .is_some_and(|k| k.to_ascii_uppercase().starts_with("BACKUPAPPS_SCHEDULE__"))
    }) {
        bail!(
            "{}: [schedule] is read from {GLOBAL_FILE} only; unset it and set the key there",
            key.to_string_lossy()
        );
    }
    let file = home.join(GLOBAL_FILE);
    let mut config = SchedulerConfig::default();
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Ok(config);
    };
    let table: toml::Table = text.parse().with_context(|| file.display().to_string())?;
    let Some(toml::Value::Table(section)) = table.get("schedule") else {
        return Ok(config);
    };
    let raw: Raw = toml::Value::Table(section.clone())
        .try_into()
        .map_err(|e| anyhow::anyhow!("{} [schedule]: {e}", file.display()))?;
    if let Some(n) = raw.max_concurrent {
        if !(1..=MAX_CONCURRENT).contains(&n) {
            bail!(
                "{} [schedule] max_concurrent = {n}: use 1 to {MAX_CONCURRENT} (default: half the cores, here {})",
                file.display(),
                default_max_concurrent()
            );
        }
        config.max_concurrent = n;
    }
    if let Some(wait) = raw.mirror_wait {
        config.mirror_wait = humantime::parse_duration(wait.trim()).map_err(|_| {
            anyhow::anyhow!(
                "{} [schedule] mirror_wait = {wait:?}: use a duration such as \"30m\" or \"2h\"",
                file.display()
            )
        })?;
    }
    Ok(config)
}

/// `deserialize_with` for a profile's `schedule`: a cron expression; the
/// `[schedule]` table layered in from `backupapps.toml` is the scheduler's,
/// not a profile's, and reads as no schedule.
pub fn profile_schedule<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Cron(String),
        Section(toml::Table),
    }
    match Option::<Raw>::deserialize(d)? {
        Some(Raw::Cron(expression)) => {
            crate::validate::parse_cron(&expression).map_err(serde::de::Error::custom)?;
            Ok(Some(expression))
        }
        Some(Raw::Section(section)) => {
            // Checked by `load`, where its file is known.
            drop(section);
            Ok(None)
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_section_and_checks_it() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), SchedulerConfig::default());
        std::fs::write(
            dir.path().join(GLOBAL_FILE),
            "[schedule]\nmax_concurrent = 2\nmirror_wait = \"5m\"\n",
        )
        .unwrap();
        let c = load(dir.path()).unwrap();
        assert_eq!((c.max_concurrent, c.mirror_wait), (2, Duration::from_secs(300)));
        std::fs::write(dir.path().join(GLOBAL_FILE), "[schedule]\nmax_concurrent = 0\n").unwrap();
        assert!(load(dir.path()).unwrap_err().to_string().contains("max_concurrent"));
        std::fs::write(dir.path().join(GLOBAL_FILE), "[schedule]\nmax_concurent = 2\n").unwrap();
        assert!(load(dir.path()).is_err());
    }

    #[test]
    fn a_profile_reads_the_global_section_as_no_schedule() {
        #[derive(Deserialize)]
        struct P {
            #[serde(default, deserialize_with = "profile_schedule")]
            schedule: Option<String>,
        }
        let p: P = toml::from_str("schedule = \"1 2 * * *\"").unwrap();
        assert_eq!(p.schedule.as_deref(), Some("1 2 * * *"));
        let p: P = toml::from_str("[schedule]\nmax_concurrent = 2").unwrap();
        assert_eq!(p.schedule, None);
        assert!(toml::from_str::<P>("schedule = 5").is_err());
        assert!(toml::from_str::<P>("schedule = \"61 2 * * *\"").is_err());
    }
}
