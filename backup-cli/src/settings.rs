//! Configuration of one profile: built-in defaults < `backupapps.toml` <
//! profile file < environment (`BACKUPAPPS_SECTION__KEY`). Typed all the way
//! down: the library config types (`PgConfig`, `MirrorConfig`, `KeepPolicy`)
//! are the sections themselves.

use std::path::PathBuf;

use backup_core::KeepPolicy;
use backup_files::OnUnreadable;
use backup_pg::{MirrorConfig, PgConfig, RestoreConfig};
use serde::{Deserialize, Serialize};

/// The kinds of profile this build knows. Each picks its source, restorer and
/// checker in one place (`wiring::Kind`-matching functions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A folder tree (`paths`, `exclude`).
    Files,
    /// A PostgreSQL database (`[source]`, `[mirror]`).
    Postgres,
    /// A program's standard output (`command`, `restore_command`).
    Command,
}

impl Kind {
    /// The kind's name as stored in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Files => backup_files::KIND,
            Kind::Postgres => backup_pg::KIND,
            Kind::Command => backup_command::KIND,
        }
    }
}

/// Everything one profile runs with, after layering.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSettings {
    /// `files` or `postgres`.
    pub kind: Option<Kind>,
    /// Store folder of this profile's backups, unique in the workspace.
    pub dest_prefix: Option<String>,
    /// Cron expression for `schedule run` / `schedule crontab` (the
    /// `[schedule]` table of `backupapps.toml` is the scheduler's own).
    #[serde(default, deserialize_with = "crate::scheduler::config::profile_schedule")]
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
    pub local_copy: LocalCopy,
    /// Database connection (postgres profiles).
    pub source: Option<PgConfig>,
    /// Test-database refresh (postgres profiles).
    pub mirror: Option<MirrorSection>,
    /// How `restore --to-db` connects and who owns the result (postgres profiles).
    pub restore: Option<RestoreConfig>,
    pub store: StoreSettings,
    pub encryption: EncryptionSettings,
    pub retention: KeepPolicy,
    pub backup: TuningSettings,
    /// `[monitoring]`: healthcheck pings and the Prometheus textfile.
    #[serde(default)]
    pub monitoring: crate::monitoring::MonitoringSettings,
    /// Hook run before each backup; failing fails the backup (`hooks.rs`).
    #[serde(default)]
    pub before_backup: Option<crate::hooks::HookCommands>,
    /// Hook run after each stored backup.
    #[serde(default)]
    pub after_backup: Option<crate::hooks::HookCommands>,
    /// Hook run after a failed backup.
    #[serde(default)]
    pub on_error: Option<crate::hooks::HookCommands>,
    /// Longest time each hook may run (`"5m"`, the default).
    #[serde(default, deserialize_with = "crate::hooks::timeout")]
    pub hook_timeout: Option<String>,
    /// Command profiles: the program and arguments whose stdout is backed up.
    #[serde(default)]
    pub command: Vec<String>,
    /// Command profiles: the program `restore` feeds the backup into.
    #[serde(default)]
    pub restore_command: Vec<String>,
    /// Command profiles: the file name `restore --to DIR` writes (default `<profile>.out`).
    pub restore_file_name: Option<String>,
    /// `[verify]`: scheduled restore drills.
    #[serde(default)]
    pub verify: VerifySection,
}

/// `[verify]`, global or per profile.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySection {
    /// Cron expression: `schedule run` fully verifies the newest backup and
    /// one older trusted backup picked at random (`verify --drill`).
    #[serde(default, deserialize_with = "crate::validate::schedule")]
    pub schedule: Option<String>,
}

impl ProfileSettings {
    /// `[store.swift]` as Swift settings, with `[store] openrc` as default.
    ///
    /// # Errors
    /// Names `origin` (the file) and the bad key.
    pub fn swift_config(&self, origin: &str) -> anyhow::Result<backup_swift::SwiftConfig> {
        let table = self.store.swift.clone().unwrap_or_default();
        let mut config: backup_swift::SwiftConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e| backup_core::Error::config(format!("{origin} [store.swift]"), e.to_string()))?;
        if config.openrc.is_none() {
            config.openrc = self.store.openrc.clone();
        }
        Ok(config)
    }

    /// `[store.s3]` as S3 settings.
    ///
    /// # Errors
    /// Names `origin` (the file) and the bad key.
    pub fn s3_config(&self, origin: &str) -> anyhow::Result<backup_object_store::S3Config> {
        let table = self.store.s3.clone().unwrap_or_default();
        no_inline_secret(
            &table,
            origin,
            "[store.s3]",
            &[
                ("secret_access_key", "AWS_SECRET_ACCESS_KEY"),
                ("session_token", "AWS_SESSION_TOKEN"),
            ],
        )?;
        Ok(toml::Value::Table(table)
            .try_into()
            .map_err(|e| backup_core::Error::config(format!("{origin} [store.s3]"), e.to_string()))?)
    }

    /// `[store.azure]` as Azure Blob settings.
    ///
    /// # Errors
    /// Names `origin` (the file) and the bad key.
    pub fn azure_config(&self, origin: &str) -> anyhow::Result<backup_object_store::AzureConfig> {
        let table = self.store.azure.clone().unwrap_or_default();
        no_inline_secret(
            &table,
            origin,
            "[store.azure]",
            &[
                ("access_key", "AZURE_STORAGE_ACCOUNT_KEY"),
                ("connection_string", "AZURE_STORAGE_CONNECTION_STRING"),
            ],
        )?;
        Ok(toml::Value::Table(table)
            .try_into()
            .map_err(|e| backup_core::Error::config(format!("{origin} [store.azure]"), e.to_string()))?)
    }
}

/// Refuses a secret written into the configuration itself (`key = "…"`),
/// saying to use `key_file` or the variable instead.
fn no_inline_secret(table: &toml::Table, origin: &str, section: &str, secrets: &[(&str, &str)]) -> anyhow::Result<()> {
    for (key, var) in secrets {
        if table.contains_key(*key) {
            anyhow::bail!(backup_core::Error::config(
                format!("{origin} {section} {key}"),
                format!("secrets are not kept in the configuration: put it in a file (chmod 600) named by {key}_file, or set {var}"),
            ));
        }
    }
    Ok(())
}

/// What to keep of the newest backup in `data/`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalCopy {
    /// Nothing (default).
    #[default]
    None,
    /// The plaintext, zstd-compressed (`latest.tar.zst`, `latest.pgdump.zst`).
    Compressed,
    /// The encrypted backup folder (`latest/`).
    Encrypted,
}

/// `[mirror]`: the library's [`MirrorConfig`] plus the scheduler's `schedule`.
#[derive(Debug, Clone, Serialize)]
pub struct MirrorSection {
    /// Cron expression for `schedule run` / `schedule crontab`.
    pub schedule: Option<String>,
    /// What the mirror does.
    #[serde(skip)]
    pub config: MirrorConfig,
    #[serde(flatten)]
    raw: toml::Table,
}

impl<'de> Deserialize<'de> for MirrorSection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // serde cannot flatten into a struct that denies unknown fields: take
        // the scheduler's key out, then let MirrorConfig check the rest.
        let raw = toml::Table::deserialize(d)?;
        let mut rest = raw.clone();
        let schedule = match rest.remove("schedule") {
            Some(toml::Value::String(s)) => {
                crate::validate::parse_cron(&s).map_err(|e| serde::de::Error::custom(format!("schedule: {e}")))?;
                Some(s)
            }
            Some(other) => {
                return Err(serde::de::Error::custom(format!(
                    "schedule: expected a cron expression string, found {other}"
                )))
            }
            None => None,
        };
        let config = MirrorConfig::deserialize(toml::Value::Table(rest)).map_err(serde::de::Error::custom)?;
        Ok(MirrorSection { schedule, config, raw })
    }
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// `file:///path`, `swift://container[/prefix]`, `s3://bucket[/prefix]`
    /// or `az://container[/prefix]`.
    pub url: Option<String>,
    /// An OpenStack RC file (same as `[store.swift] openrc`).
    pub openrc: Option<PathBuf>,
    /// `[store.swift]`: credentials and tuning, read as `backup_swift::SwiftConfig`
    /// (kept as a table here so that its secrets are never serialised).
    pub swift: Option<toml::Table>,
    /// `[store.s3]`: S3 endpoint, region, keys, read as `backup_object_store::S3Config`.
    pub s3: Option<toml::Table>,
    /// `[store.azure]`: Azure Blob account and keys, read as `backup_object_store::AzureConfig`.
    pub azure: Option<toml::Table>,
    /// Further stores every new backup is copied to after it is stored
    /// (`copy`), and that `prune` applies retention on: store URLs.
    #[serde(default, deserialize_with = "crate::validate::store_urls")]
    pub copy_to: Vec<String>,
}

impl StoreSettings {
    /// The `copy_to` stores other than `url` itself: pointing the workspace
    /// at a copy for one command (`BACKUPAPPS_STORE__URL=…`, e.g. to verify
    /// it) must not make that store a copy of itself.
    pub fn copy_stores(&self) -> impl Iterator<Item = &String> {
        let main = self.url.as_deref().map(|u| u.trim_end_matches('/'));
        self.copy_to
            .iter()
            .filter(move |u| Some(u.trim_end_matches('/')) != main)
    }
}

/// One path or several (`secret_key = "a"` or `secret_key = ["new", "old"]`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One path.
    One(PathBuf),
    /// Several, newest first.
    Many(Vec<PathBuf>),
}

impl OneOrMany {
    /// The paths, newest first.
    pub fn paths(&self) -> Vec<PathBuf> {
        match self {
            OneOrMany::One(p) => vec![p.clone()],
            OneOrMany::Many(ps) => ps.clone(),
        }
    }
}

/// `[encryption]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionSettings {
    /// Armored public keys every chunk is encrypted to.
    #[serde(default)]
    pub recipients: Vec<PathBuf>,
    /// Armored secret key(s), newest first: needed by restore, verify (full),
    /// mirror. Several while backups made with an older key are kept.
    pub secret_key: Option<OneOrMany>,
    /// File holding the secret key's passphrase, one for every key, or a list
    /// matched to `secret_key` by position (env `BACKUPAPPS_PASSPHRASE` wins).
    pub passphrase_file: Option<OneOrMany>,
    /// Armored secret signing key: the backing-up host signs every manifest with it.
    pub signing_key: Option<PathBuf>,
    /// File holding the signing key's passphrase (env `BACKUPAPPS_SIGNING_PASSPHRASE` wins).
    pub signing_passphrase_file: Option<PathBuf>,
    /// Trusted signing public keys; default: the public half of `signing_key`.
    #[serde(default)]
    pub signers: Vec<PathBuf>,
    /// Also read backups without a signature (made before signing existed).
    /// Unsafe: anyone who can write to the store can then forge backups.
    #[serde(default)]
    pub allow_unsigned: bool,
}

/// `[backup]`: pipeline tuning.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TuningSettings {
    /// Plaintext bytes per chunk: `"16MiB"`, `"512KiB"`, or a number of
    /// bytes; 64 KiB to 1 GiB.
    #[serde(deserialize_with = "crate::validate::chunk_size")]
    pub chunk_size: ByteSize,
    /// zstd level, 1–19.
    #[serde(deserialize_with = "crate::validate::zstd_level")]
    pub zstd_level: i32,
    /// Chunks in flight at once, up to 64; 0 means one per core.
    #[serde(deserialize_with = "crate::validate::parallelism")]
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
            local_copy: LocalCopy::None,
            source: None,
            mirror: None,
            restore: None,
            store: StoreSettings {
                url: None,
                openrc: None,
                swift: None,
                s3: None,
                azure: None,
                copy_to: Vec::new(),
            },
            encryption: EncryptionSettings::default(),
            retention: KeepPolicy::standard(),
            monitoring: Default::default(),
            before_backup: None,
            after_backup: None,
            on_error: None,
            hook_timeout: None,
            command: Vec::new(),
            restore_command: Vec::new(),
            restore_file_name: None,
            verify: VerifySection::default(),
            backup: TuningSettings {
                chunk_size: ByteSize(backup_core::DEFAULT_CHUNK_SIZE as u64),
                zstd_level: backup_core::DEFAULT_ZSTD_LEVEL,
                parallelism: 0,
                lease_secs: backup_core::lease::DEFAULT_LEASE_TTL.as_secs(),
            },
        }
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
    n.checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large; use e.g. \"16MiB\""))
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
        // Overflows are an error, not a wrap or a panic.
        assert!(parse_size("99999999999999G").is_err());
    }

    #[test]
    fn store_secrets_are_refused_inline() {
        let mut settings = ProfileSettings::default();
        settings.store.s3 = Some(toml::from_str("secret_access_key = \"hush\"").unwrap());
        let e = settings.s3_config("backupapps.toml").unwrap_err().to_string();
        assert!(
            e.contains("secret_access_key_file") && e.contains("AWS_SECRET_ACCESS_KEY") && !e.contains("hush"),
            "{e}"
        );
        settings.store.azure = Some(toml::from_str("account = \"a\"\naccess_key_file = \"k\"").unwrap());
        assert!(settings.azure_config("backupapps.toml").is_ok());
    }

    #[test]
    fn mirror_section_takes_schedule_and_checks_the_rest() {
        let m: MirrorSection = toml::from_str("schedule = \"15 2 * * *\"\ndatabase = \"t\"\nno_owner = true").unwrap();
        assert_eq!(m.schedule.as_deref(), Some("15 2 * * *"));
        assert_eq!(m.config.database.as_deref(), Some("t"));
        assert!(toml::from_str::<MirrorSection>("databse = \"t\"").is_err());
        let e = toml::from_str::<MirrorSection>("schedule = \"61 2 * * *\"").unwrap_err();
        assert!(e.to_string().contains("schedule"), "{e}");
        assert!(toml::from_str::<MirrorSection>("schedule = \"@daily\"").is_ok());
    }
}
