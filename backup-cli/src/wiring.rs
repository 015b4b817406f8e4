//! Builds stores, keys, signers and connections from a profile's settings,
//! and adds the hints (which key to set, which command to run) that the
//! neutral library errors leave out.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use backup_core::{
    Decryptor, DynStore, Encryptor, KeyRing, LockedKey, ManifestSigner, PgpDecryptor, PgpEncryptor, Trust,
    TrustedSigners,
};

use crate::settings::ProfileSettings;
use crate::workspace::{Profile, Workspace};

/// The store named by `[store] url`.
///
/// # Errors
/// Names the URL and what is wrong with it.
pub fn store(ws: &Workspace, settings: &ProfileSettings, origin: &str) -> Result<DynStore> {
    let Some(url) = settings.store.url.as_deref() else {
        bail!("{origin}: [store] url is missing; set e.g. url = \"file:///var/backups/backupapps\" in backupapps.toml");
    };
    store_at(ws, settings, url, origin)
}

/// A store URL given on the command line: a relative `file://` path is
/// relative to the current directory, like every path there (in the
/// configuration it is relative to the workspace).
///
/// # Errors
/// When the current directory cannot be read.
pub fn command_line_url(url: &str) -> Result<String> {
    const SCHEMES: [&str; 4] = ["file://", "swift://", "s3://", "az://"];
    if !SCHEMES.iter().any(|s| url.starts_with(s)) {
        return Err(crate::workspace::ConfigError(format!(
            "store URL {url:?} is not supported; use file:///path, swift://container, s3://bucket or az://container"
        ))
        .into());
    }
    match url.strip_prefix("file://") {
        Some(path) if !path.is_empty() && !path.starts_with('/') => {
            let cwd = std::env::current_dir().context("cannot read the current directory")?;
            Ok(format!("file://{}", cwd.join(path).display()))
        }
        _ => Ok(url.to_owned()),
    }
}

/// The store at `url` (`[store] url`, a `copy_to` entry, `--to-store`,
/// `list --store`), with the credentials of `[store.swift]` and the
/// environment.
///
/// # Errors
/// Names the URL and what is wrong with it.
pub fn store_at(ws: &Workspace, settings: &ProfileSettings, url: &str, origin: &str) -> Result<DynStore> {
    if let Some(path) = url.strip_prefix("file://") {
        if path.is_empty() {
            bail!("{origin}: store URL {url:?} has no path; use file:///absolute/path");
        }
        let root = ws.path(&PathBuf::from(path));
        let store = backup_fs::FsStore::new(&root).map_err(|e| {
            crate::hints::hint(
                e,
                format!("check the store URL {url:?} and that the volume is mounted and writable"),
            )
        })?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("swift://") {
        let config = settings.swift_config(origin)?;
        let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
        let store = backup_swift::SwiftStore::new(url, &config, &ws.home, &env)
            .with_context(|| format!("{origin}: [store]"))?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("s3://") || url.starts_with("az://") {
        return object_store_at(ws, settings, url, origin);
    }
    bail!("{origin}: store URL {url:?} is not supported; use file:///path, swift://container, s3://bucket or az://container")
}

/// An `s3://` or `az://` store, with `[store.s3]` / `[store.azure]` and the
/// AWS / Azure variables; secret files must be their owner's only.
fn object_store_at(ws: &Workspace, settings: &ProfileSettings, url: &str, origin: &str) -> Result<DynStore> {
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    let (section, built) = if url.starts_with("s3://") {
        let config = settings.s3_config(origin)?;
        for (key, file) in [
            ("secret_access_key_file", &config.secret_access_key_file),
            ("session_token_file", &config.session_token_file),
        ] {
            if let Some(file) = file {
                crate::private::require_private(&ws.path(file), &format!("[store.s3] {key}"))?;
            }
        }
        (
            "[store.s3]",
            backup_object_store::CloudStore::s3(url, &config, &ws.home, &env),
        )
    } else {
        let config = settings.azure_config(origin)?;
        for (key, file) in [
            ("access_key_file", &config.access_key_file),
            ("connection_string_file", &config.connection_string_file),
        ] {
            if let Some(file) = file {
                crate::private::require_private(&ws.path(file), &format!("[store.azure] {key}"))?;
            }
        }
        (
            "[store.azure]",
            backup_object_store::CloudStore::azure(url, &config, &ws.home, &env),
        )
    };
    let store = built.with_context(|| format!("{origin}: {section} for {url}"))?;
    Ok(Arc::new(store))
}

/// The encryptor for `[encryption] recipients`.
///
/// # Errors
/// Names the missing or unusable key file.
pub fn encryptor(ws: &Workspace, settings: &ProfileSettings) -> Result<Arc<dyn Encryptor>> {
    let paths: Vec<PathBuf> = settings.encryption.recipients.iter().map(|p| ws.path(p)).collect();
    if paths.is_empty() {
        bail!(backup_core::Error::config(
            "[encryption] recipients",
            "no recipient public key configured: add the path of an armored public key \
             (from `backupapps keygen` or `gpg --export -a KEYID`)",
        ));
    }
    Ok(Arc::new(PgpEncryptor::from_files(&paths).map_err(key_hint)?))
}

/// The decryptor for `[encryption] secret_key` (one key, or several newest
/// first), each key unlocked with its passphrase (see [`secret_keys`]).
///
/// # Errors
/// Names the missing key or passphrase file; a wrong passphrase is said as
/// such, naming the key file.
pub fn decryptor(ws: &Workspace, settings: &ProfileSettings) -> Result<Arc<dyn Decryptor>> {
    let mut keys = Vec::new();
    for (path, passphrase) in secret_keys(ws, settings)? {
        keys.push(PgpDecryptor::from_file(&path, &passphrase).map_err(key_hint)?);
    }
    Ok(Arc::new(KeyRing::from_unlocked(keys)))
}

/// As [`decryptor`], with each key unlocked on its own thread while the run
/// goes on (see [`crate::unlocking`]). Settings errors and unreadable key
/// files still come at once; a wrong passphrase with the first chunk that
/// needs that key, before any plaintext exists.
///
/// # Errors
/// As [`decryptor`], but for the passphrase.
pub fn decryptor_soon(ws: &Workspace, settings: &ProfileSettings) -> Result<Arc<dyn Decryptor>> {
    let mut keys = Vec::new();
    for (path, passphrase) in secret_keys(ws, settings)? {
        let key = LockedKey::from_file(&path).map_err(key_hint)?;
        let identity = key.identity().clone();
        let unlocking: Arc<dyn Decryptor> = Arc::new(crate::unlocking::Unlocking::start(key, passphrase));
        keys.push((identity, unlocking));
    }
    Ok(Arc::new(KeyRing::new(keys)))
}

/// The secret key files, newest first, each with its passphrase:
/// `BACKUPAPPS_PASSPHRASE` for all of them, else one `passphrase_file` for
/// all, or a list of them matched to `secret_key` by position.
fn secret_keys(ws: &Workspace, settings: &ProfileSettings) -> Result<Vec<(PathBuf, String)>> {
    let e = &settings.encryption;
    let paths = e.secret_key.as_ref().map(|k| k.paths()).unwrap_or_default();
    if paths.is_empty() {
        bail!(backup_core::Error::config(
            "[encryption] secret_key",
            "not set: restoring needs the secret key; set secret_key = \"secrets/backup.sec.asc\" (keep it off the backup host when you can)",
        ));
    }
    let files = e.passphrase_file.as_ref().map(|f| f.paths()).unwrap_or_default();
    if files.len() > 1 && files.len() != paths.len() {
        bail!(backup_core::Error::config(
            "[encryption] passphrase_file",
            format!(
                "{} files for {} secret keys: give one file for every key, or one per key in the order of secret_key",
                files.len(),
                paths.len()
            ),
        ));
    }
    let mut keys = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let path = ws.path(path);
        crate::private::require_private(&path, "[encryption] secret_key")?;
        let file = files.get(i).or(files.first()).map(PathBuf::as_path);
        keys.push((path, passphrase(ws, "BACKUPAPPS_PASSPHRASE", file, "passphrase_file")?));
    }
    Ok(keys)
}

/// What to do when a backup is encrypted to none of the secret keys held.
pub fn wrong_key_hint(e: backup_core::Error) -> anyhow::Error {
    match e {
        backup_core::Error::WrongKey { .. } => crate::hints::hint(
            e,
            "add the secret key of one of those recipients to [encryption] secret_key \
             (a list, newest first: keep an old key there until its backups age out; \
             `backupapps list --recipients` shows each backup's keys)",
        ),
        other => other.into(),
    }
}

/// Whether a secret key is configured (for `verify`: full or checksums only).
pub fn has_secret_key(settings: &ProfileSettings) -> bool {
    settings.encryption.secret_key.is_some()
}

/// The signer for `[encryption] signing_key`: backing up refuses without one.
///
/// # Errors
/// No signing key configured (saying how to make one), an unreadable key, a
/// wrong passphrase.
pub fn signer(ws: &Workspace, settings: &ProfileSettings) -> Result<ManifestSigner> {
    let Some(key) = &settings.encryption.signing_key else {
        bail!(backup_core::Error::config(
            "[encryption] signing_key",
            "not set: every backup is signed so that no one who can write to the store can forge one; \
             make a signing key with `backupapps keygen --name backup-signing --signing` and set \
             signing_key = \"secrets/backup-signing.sec.asc\" in backupapps.toml",
        ));
    };
    crate::private::require_private(&ws.path(key), "[encryption] signing_key")?;
    let passphrase = passphrase(
        ws,
        "BACKUPAPPS_SIGNING_PASSPHRASE",
        settings.encryption.signing_passphrase_file.as_deref(),
        "signing_passphrase_file",
    )?;
    ManifestSigner::from_file(&ws.path(key), &passphrase)
        .map_err(key_hint)
        .context("[encryption] signing_key")
}

/// Whom to trust: `[encryption] signers`, else the public half of
/// `signing_key`; unsigned backups only with `allow_unsigned = true`.
///
/// # Errors
/// Unreadable signer keys; neither signers nor a signing key configured.
pub fn trust(ws: &Workspace, settings: &ProfileSettings) -> Result<Trust> {
    let e = &settings.encryption;
    let signers = if !e.signers.is_empty() {
        let paths: Vec<PathBuf> = e.signers.iter().map(|p| ws.path(p)).collect();
        TrustedSigners::from_files(&paths)
            .map_err(key_hint)
            .context("[encryption] signers")?
    } else if e.signing_key.is_some() {
        TrustedSigners::from_keys(vec![signer(ws, settings)?.public_key()])
    } else if e.allow_unsigned {
        TrustedSigners::from_keys(Vec::new())
    } else {
        bail!(backup_core::Error::config(
            "[encryption] signers",
            "not set, and no signing_key to take it from: only signed backups are read; set \
             signers = [\"secrets/backup-signing.pub.asc\"] (the backing-up host's signing public key)",
        ));
    };
    Ok(Trust::new(signers).allow_unsigned(e.allow_unsigned))
}

fn passphrase(ws: &Workspace, env: &str, file: Option<&Path>, key: &str) -> Result<String> {
    if let Ok(p) = std::env::var(env) {
        return Ok(p);
    }
    match file {
        Some(file) => {
            let path = ws.path(file);
            crate::private::require_private(&path, &format!("[encryption] {key}"))?;
            let text = std::fs::read_to_string(&path).map_err(|e| {
                backup_core::Error::config(
                    format!("[encryption] {key}"),
                    format!("cannot read {} ({e}); create it or set {env}", path.display()),
                )
            })?;
            // Editors and `echo` add a final newline that is not part of the passphrase.
            Ok(text.trim_end_matches(['\n', '\r']).to_owned())
        }
        None => Ok(String::new()),
    }
}

/// Adds what to do to key errors.
fn key_hint(e: backup_core::Error) -> anyhow::Error {
    let hint = match &e {
        backup_core::Error::WrongPassphrase { .. } => {
            "check the passphrase file, or BACKUPAPPS_PASSPHRASE / BACKUPAPPS_SIGNING_PASSPHRASE"
        }
        backup_core::Error::Key { .. } => {
            "check the path in backupapps.toml; export keys with `gpg --export -a KEYID` (public) or \
             `gpg --export-secret-keys -a KEYID` (secret)"
        }
        _ => return e.into(),
    };
    crate::hints::hint(e, hint)
}

/// The profile's resolved production connection.
///
/// # Errors
/// A missing database or password file, naming the profile file.
pub fn pg_conn(ws: &Workspace, profile: &Profile) -> Result<(backup_pg::PgConn, backup_pg::PgConfig)> {
    let config = profile.settings.source.clone().unwrap_or_default();
    let conn = backup_pg::PgConn::from_env(&config, &ws.home)
        .with_context(|| format!("{} [source]", profile.file.display()))?;
    Ok((conn, config))
}

/// Where `restore --to-db` connects and how pg_restore runs: the command
/// line's `--host --port --user --owner --no-owner` over `[restore]` over
/// `[source]`, so that a restore can run as its own role.
///
/// # Errors
/// A missing database or password file, naming the profile file.
pub fn restore_conn(
    ws: &Workspace,
    profile: &Profile,
    args: &crate::cli::DbRestoreArgs,
) -> Result<(backup_pg::PgConn, backup_pg::RestoreOptions)> {
    let source = profile.settings.source.clone().unwrap_or_default();
    let mut config = profile.settings.restore.clone().unwrap_or_default();
    if let Some(host) = &args.host {
        config = config.with_host(host);
    }
    if let Some(port) = args.port {
        config = config.with_port(port);
    }
    if let Some(user) = &args.user {
        config = config.with_user(user);
    }
    if let Some(owner) = &args.owner {
        config = config.with_owner(owner);
    }
    if args.no_owner {
        config = config.with_no_owner();
    }
    let conn = backup_pg::PgConn::from_env(&config.connection(&source), &ws.home)
        .with_context(|| format!("{} [restore]", profile.file.display()))?;
    Ok((conn, config.options()))
}

/// What to do when `restore --to-db` fails for a reason the user can fix.
pub fn db_restore_hint(e: backup_core::Error) -> anyhow::Error {
    let hint = match &e {
        backup_core::Error::Target { .. } => "choose another name with --to-db, or pass --replace",
        backup_core::Error::Config { field, .. } if field.starts_with("role ") => {
            "or restore as a role that has it: --user ROLE, or [restore] user in the profile"
        }
        // pg_restore recreating the dump's owners, which needs membership of
        // each of them (what a superuser has).
        backup_core::Error::Source { reason, .. }
            if reason.contains("must be member of role") || reason.contains("permission denied for schema") =>
        {
            "to restore without superuser rights pass --owner ROLE (ROLE owns everything; the restoring \
             role must be a member of it) or --no-owner (the restoring role owns everything), or set \
             [restore] owner / no_owner in the profile"
        }
        _ => return e.into(),
    };
    crate::hints::hint(e, hint)
}

/// The profile's `[mirror]`, if any, with its resolved test connection.
///
/// # Errors
/// A missing database or password file, naming the profile file.
pub fn mirror(ws: &Workspace, profile: &Profile) -> Result<Option<(backup_pg::PgConn, backup_pg::MirrorConfig)>> {
    let Some(section) = &profile.settings.mirror else {
        return Ok(None);
    };
    let field = format!("{} [mirror]", profile.file.display());
    let conn = backup_pg::PgConn::from_env(&section.config.connection(), &ws.home).context(field)?;
    Ok(Some((conn, section.config.clone())))
}

/// How long a lease holds without renewal.
pub fn lease_ttl(profile: &Profile) -> std::time::Duration {
    std::time::Duration::from_secs(profile.settings.backup.lease_secs.max(4))
}
