//! Configuration of one profile: built-in defaults < `backupapps.toml` <
//! profile file < environment (`BACKUPAPPS_SECTION__KEY`).

use std::path::PathBuf;

use backup_core::retention::{parse_span, KeepPolicy};
use backup_files::OnUnreadable;
use serde::{Deserialize, Serialize};

/// Everything one profile runs with, after layering.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSettings {
    /// `files` or `postgres`.
    pub kind: Option<String>,
    /// Store folder of this profile's backups, unique in the workspace.
    pub dest_prefix: Option<String>,
    /// Cron expression for `schedule run` / `schedule crontab`.
    pub schedule: Option<String>,
    /// Folders to back up (files profiles).
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// Glob patterns to leave out (files profiles).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// `fail` or `warn` (files profiles).
    #[serde(default)]
    pub on_unreadable: OnUnreadable,
    /// Keep the newest backup in `data/<app>/<profile>/`: `none`, `compressed`, `encrypted`.
    #[serde(default)]
    pub local_copy: crate::local_copy::LocalCopy,
    /// Database connection (postgres profiles).
    pub source: Option<toml::Table>,
    /// Test-database refresh (postgres profiles).
    pub mirror: Option<toml::Table>,
    pub store: StoreSettings,
    pub encryption: EncryptionSettings,
    pub retention: RetentionSettings,
    pub backup: TuningSettings,
    /// `[monitoring]`: healthcheck pings and the Prometheus textfile.
    #[serde(default)]
    pub monitoring: crate::monitoring::MonitoringSettings,
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// `file:///path` or `swift://container[/prefix]`.
    pub url: Option<String>,
    /// An OpenStack RC file (same as `[store.swift] openrc`).
    pub openrc: Option<PathBuf>,
    /// `[store.swift]`: credentials and tuning (see backup_swift::SwiftConfig).
    pub swift: Option<toml::Table>,
}

/// `[encryption]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionSettings {
    /// Armored public keys every chunk is encrypted to.
    #[serde(default)]
    pub recipients: Vec<PathBuf>,
    /// Armored secret key: needed by restore, verify (full), mirror.
    pub secret_key: Option<PathBuf>,
    /// File holding the secret key's passphrase (env `BACKUPAPPS_PASSPHRASE` wins).
    pub passphrase_file: Option<PathBuf>,
}

/// `[retention]`, restic-style rules.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    /// Keep everything this close to the newest backup, e.g. `"30d"`.
    pub within: Option<String>,
    /// IANA time zone in which periods are counted.
    pub timezone: String,
    /// How old a backup without manifest must be before prune removes it.
    pub incomplete_grace: String,
}

/// `[backup]`: pipeline tuning.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TuningSettings {
    /// Plaintext bytes per chunk: `"16MiB"`, `"512KiB"`, or a number of bytes.
    pub chunk_size: ByteSize,
    /// zstd level, 1–19.
    pub zstd_level: i32,
    /// Chunks in flight at once; 0 means one per core.
    pub parallelism: usize,
    /// Seconds a lease in the store holds without renewal: how long a run that
    /// died blocks others sharing the store.
    pub lease_secs: u64,
}

impl Default for ProfileSettings {
    fn default() -> Self {
        ProfileSettings {
            kind: None,
            dest_prefix: None,
            schedule: None,
            paths: Vec::new(),
            exclude: Vec::new(),
            on_unreadable: OnUnreadable::Fail,
            local_copy: Default::default(),
            source: None,
            mirror: None,
            store: StoreSettings {
                url: None,
                openrc: None,
                swift: None,
            },
            encryption: EncryptionSettings::default(),
            retention: RetentionSettings {
                last: 0,
                hourly: 0,
                daily: 7,
                weekly: 4,
                monthly: 12,
                yearly: 0,
                within: None,
                timezone: "UTC".into(),
                incomplete_grace: "24h".into(),
            },
            monitoring: Default::default(),
            backup: TuningSettings {
                chunk_size: ByteSize(backup_core::pipeline::DEFAULT_CHUNK_SIZE as u64),
                zstd_level: backup_core::pipeline::DEFAULT_ZSTD_LEVEL,
                parallelism: 0,
                lease_secs: 600,
            },
        }
    }
}

impl RetentionSettings {
    /// The policy these settings describe.
    ///
    /// # Errors
    /// A message naming the bad key.
    pub fn policy(&self) -> Result<KeepPolicy, String> {
        let timezone = self.timezone.parse().map_err(|_| {
            format!(
                "[retention] timezone {:?} is not an IANA time zone name (e.g. \"Europe/Paris\")",
                self.timezone
            )
        })?;
        let within = match &self.within {
            Some(w) => Some(parse_span(w).map_err(|e| format!("[retention] within: {e}"))?),
            None => None,
        };
        Ok(KeepPolicy {
            last: self.last,
            hourly: self.hourly,
            daily: self.daily,
            weekly: self.weekly,
            monthly: self.monthly,
            yearly: self.yearly,
            within,
            timezone,
        })
    }

    /// `incomplete_grace` as a duration.
    ///
    /// # Errors
    /// A message naming the key.
    pub fn grace(&self) -> Result<chrono::Duration, String> {
        parse_span(&self.incomplete_grace).map_err(|e| format!("[retention] incomplete_grace: {e}"))
    }
}

/// A size in bytes, written as a number or as `"16MiB"`, `"512KiB"`, `"1GiB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "u64")]
pub struct ByteSize(pub u64);

impl From<ByteSize> for u64 {
    fn from(size: ByteSize) -> u64 {
        size.0
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(t) => parse_size(&t).map(ByteSize).map_err(serde::de::Error::custom),
        }
    }
}

fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as \"16MiB\""))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("{text:?}: unknown unit; use KiB, MiB or GiB")),
    };
    Ok(n * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("16MiB").unwrap(), 16 << 20);
        assert_eq!(parse_size("512 KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }
}
