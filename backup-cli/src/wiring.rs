//! Builds stores, keys and sources from a profile's settings.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use backup_core::{Decryptor, Encryptor, PgpDecryptor, PgpEncryptor, Store};

use crate::settings::ProfileSettings;
use crate::workspace::{Profile, Workspace};

/// The store named by `[store] url`.
///
/// # Errors
/// Names the URL and what is wrong with it.
pub fn store(ws: &Workspace, settings: &ProfileSettings, origin: &str) -> Result<Arc<dyn Store>> {
    let Some(url) = settings.store.url.as_deref() else {
        bail!("{origin}: [store] url is missing; set e.g. url = \"file:///var/backups/backupapps\" in backupapps.toml");
    };
    if let Some(path) = url.strip_prefix("file://") {
        if path.is_empty() {
            bail!("{origin}: [store] url {url:?} has no path; use file:///absolute/path");
        }
        let root = ws.path(&PathBuf::from(path));
        let store = backup_fs::FsStore::new(&root).with_context(|| format!("[store] url {url:?}"))?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("swift://") {
        let config = swift_config(settings, origin)?;
        let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
        let store = backup_swift::SwiftStore::new(url, &config, &ws.home, &env)
            .with_context(|| format!("{origin}: [store]"))?;
        return Ok(Arc::new(store));
    }
    bail!("{origin}: [store] url {url:?} is not supported; use file:///path or swift://container")
}

/// `[store.swift]` as Swift settings.
///
/// # Errors
/// Names the file and the bad key.
pub fn swift_config(settings: &ProfileSettings, origin: &str) -> Result<backup_swift::SwiftConfig> {
    let table = settings.store.swift.clone().unwrap_or_default();
    let mut config: backup_swift::SwiftConfig = toml::Value::Table(table)
        .try_into()
        .map_err(|e| backup_core::Error::config(format!("{origin} [store.swift]"), e.to_string()))?;
    if config.openrc.is_none() {
        config.openrc = settings.store.openrc.clone();
    }
    Ok(config)
}

/// The encryptor for `[encryption] recipients`.
///
/// # Errors
/// Names the missing or unusable key file.
pub fn encryptor(ws: &Workspace, settings: &ProfileSettings) -> Result<Arc<dyn Encryptor>> {
    let paths: Vec<PathBuf> = settings.encryption.recipients.iter().map(|p| ws.path(p)).collect();
    Ok(Arc::new(PgpEncryptor::from_files(&paths)?))
}

/// The decryptor for `[encryption] secret_key`, unlocked with the passphrase
/// from `BACKUPAPPS_PASSPHRASE` or `passphrase_file`.
///
/// # Errors
/// Names the missing key or passphrase file; a wrong passphrase is said as such.
pub fn decryptor(ws: &Workspace, settings: &ProfileSettings) -> Result<Arc<dyn Decryptor>> {
    let Some(secret) = &settings.encryption.secret_key else {
        return Err(backup_core::Error::config(
            "[encryption] secret_key",
            "not set: restoring needs the secret key; set secret_key = \"secrets/backup.sec.asc\" (keep it off the backup host when you can)",
        )
        .into());
    };
    let passphrase = passphrase(ws, settings)?;
    Ok(Arc::new(PgpDecryptor::from_file(&ws.path(secret), &passphrase)?))
}

/// Whether a secret key is configured (for `verify`: full or checksums only).
pub fn has_secret_key(settings: &ProfileSettings) -> bool {
    settings.encryption.secret_key.is_some()
}

fn passphrase(ws: &Workspace, settings: &ProfileSettings) -> Result<String> {
    if let Ok(p) = std::env::var("BACKUPAPPS_PASSPHRASE") {
        return Ok(p);
    }
    match &settings.encryption.passphrase_file {
        Some(file) => {
            let path = ws.path(file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                backup_core::Error::config(
                    "[encryption] passphrase_file",
                    format!(
                        "cannot read {} ({e}); create it or set BACKUPAPPS_PASSPHRASE",
                        path.display()
                    ),
                )
            })?;
            // Editors and `echo` add a final newline that is not part of the passphrase.
            Ok(text.trim_end_matches(['\n', '\r']).to_owned())
        }
        None => Ok(String::new()),
    }
}

/// The profile's `[source]` as PostgreSQL settings.
///
/// # Errors
/// Names the profile file and the bad key.
pub fn pg_config(profile: &Profile) -> Result<backup_pg::PgConfig> {
    let table = profile.settings.source.clone().unwrap_or_default();
    toml::Value::Table(table)
        .try_into()
        .map_err(|e| backup_core::Error::config(format!("{} [source]", profile.file.display()), e.to_string()).into())
}

/// The profile's resolved production connection.
///
/// # Errors
/// As [`pg_config`], plus a missing database or password file.
pub fn pg_conn(ws: &Workspace, profile: &Profile) -> Result<(backup_pg::PgConn, backup_pg::PgConfig)> {
    let config = pg_config(profile)?;
    let conn = backup_pg::PgConn::resolve(&config, &ws.home, &format!("{} [source]", profile.file.display()))?;
    Ok((conn, config))
}

/// The profile's `[mirror]`, if any, with its resolved test connection.
///
/// # Errors
/// Names the profile file and the bad key.
pub fn mirror(ws: &Workspace, profile: &Profile) -> Result<Option<(backup_pg::PgConn, backup_pg::MirrorConfig)>> {
    let Some(table) = profile.settings.mirror.clone() else {
        return Ok(None);
    };
    let field = format!("{} [mirror]", profile.file.display());
    let config: backup_pg::MirrorConfig = toml::Value::Table(table)
        .try_into()
        .map_err(|e| backup_core::Error::config(field.clone(), e.to_string()))?;
    let conn = backup_pg::PgConn::resolve(&config.connection(), &ws.home, &field)?;
    Ok(Some((conn, config)))
}
