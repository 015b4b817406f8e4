//! `keygen --name NAME [--email E] [--signing]`: a new key pair into secrets/:
//! an encryption pair (backups are encrypted to its public half), or with
//! `--signing` a sign-only pair (the backing-up host signs every backup with
//! it; it cannot decrypt anything).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rand::distributions::Alphanumeric;
use rand::Rng;

/// Paths of a generated key pair.
pub struct KeyFiles {
    pub public: PathBuf,
    pub secret: PathBuf,
    pub passphrase: Option<PathBuf>,
}

/// Generates the pair; the passphrase is `BACKUPAPPS_PASSPHRASE` (for a
/// signing key `BACKUPAPPS_SIGNING_PASSPHRASE`) or a random one written to
/// `secrets/NAME.pass` (mode 0600). Never overwrites a key. An encryption key
/// made while the workspace has no `secrets/signing.sec.asc` yet comes with
/// that signing key too, as `backupapps.toml` expects it.
///
/// # Errors
/// When a key file of that name exists, or files cannot be written.
pub fn run(home: &Path, name: &str, email: Option<&str>, no_passphrase: bool, signing: bool) -> Result<KeyFiles> {
    let files = generate(home, name, email, no_passphrase, signing)?;
    if !signing && !home.join("secrets").join(format!("{DEFAULT_SIGNING}.sec.asc")).exists() {
        println!();
        generate(home, DEFAULT_SIGNING, email, no_passphrase, true)?;
    }
    Ok(files)
}

/// The signing key `backupapps.toml` names by default (`secrets/signing.sec.asc`).
const DEFAULT_SIGNING: &str = "signing";

fn generate(home: &Path, name: &str, email: Option<&str>, no_passphrase: bool, signing: bool) -> Result<KeyFiles> {
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if slug.trim_matches('-').is_empty() {
        bail!("--name {name:?}: use letters or digits");
    }
    let secrets = home.join("secrets");
    fs::create_dir_all(&secrets).with_context(|| format!("cannot create {}", secrets.display()))?;
    // Secret keys and passphrases live here: the folder is its owner's only.
    fs::set_permissions(&secrets, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .with_context(|| format!("cannot restrict {}", secrets.display()))?;
    let files = KeyFiles {
        public: secrets.join(format!("{slug}.pub.asc")),
        secret: secrets.join(format!("{slug}.sec.asc")),
        passphrase: (!no_passphrase).then(|| secrets.join(format!("{slug}.pass"))),
    };
    for path in [Some(&files.public), Some(&files.secret), files.passphrase.as_ref()]
        .into_iter()
        .flatten()
    {
        if path.exists() {
            bail!(
                "{} exists already: keygen never overwrites a key; choose another --name",
                path.display()
            );
        }
    }
    let env = if signing {
        "BACKUPAPPS_SIGNING_PASSPHRASE"
    } else {
        "BACKUPAPPS_PASSPHRASE"
    };
    let from_env = std::env::var(env).ok();
    let passphrase = match (&files.passphrase, from_env) {
        (None, _) => None,
        (Some(_), Some(p)) => Some(p),
        (Some(_), None) => Some(
            rand::thread_rng()
                .sample_iter(&Alphanumeric)
                .take(32)
                .map(char::from)
                .collect(),
        ),
    };
    let user_id = match email {
        Some(e) => format!("{name} <{e}>"),
        None => name.to_owned(),
    };
    let key = if signing {
        backup_core::generate_signing_key(&user_id, passphrase.as_deref())?
    } else {
        backup_core::generate_key(&user_id, passphrase.as_deref())?
    };
    write_private(&files.secret, key.secret_armored.as_bytes())?;
    if let (Some(path), Some(p)) = (&files.passphrase, &passphrase) {
        write_private(path, format!("{p}\n").as_bytes())?;
    }
    fs::write(&files.public, key.public_armored.as_bytes())
        .with_context(|| format!("cannot write {}", files.public.display()))?;
    if signing {
        println!(
            "generated signing key {} ({user_id}); it can sign, not decrypt",
            key.fingerprint
        );
        println!(
            "  public key : {}   (signers = [...] on every host that reads backups)",
            files.public.display()
        );
        println!(
            "  secret key : {}   (signing_key = ... on the backing-up host)",
            files.secret.display()
        );
    } else {
        println!("generated key {} ({user_id})", key.fingerprint);
        println!(
            "  public key : {}   (recipients = [...]: backing up needs only this one)",
            files.public.display()
        );
        println!(
            "  secret key : {}   (restore, verify, mirror; keep a copy off this host)",
            files.secret.display()
        );
    }
    if let Some(p) = &files.passphrase {
        println!("  passphrase : {}", p.display());
    }
    if !signing {
        print_rotation(&secrets, &slug, files.passphrase.is_some());
    }
    Ok(files)
}

/// When the workspace holds older encryption keys, the new one is probably a
/// rotation: say how to take it into use without losing the old backups.
fn print_rotation(secrets: &Path, slug: &str, has_pass: bool) {
    let mut older: Vec<String> = fs::read_dir(secrets)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".sec.asc").map(str::to_owned))
        // Signing keys are not rotated this way (they go to `signers`).
        .filter(|n| n != slug && !n.contains("signing"))
        .collect();
    older.sort();
    let Some(old) = older.first() else { return };
    println!("replacing secrets/{old}.sec.asc? rotate in backupapps.toml:");
    println!(
        "  1. recipients = [\"secrets/{slug}.pub.asc\"]   (instead of the old public key: new backups use the new key)"
    );
    println!(
        "  2. secret_key = [\"secrets/{slug}.sec.asc\", \"secrets/{old}.sec.asc\"]   (newest first; keep the old key \
         until its backups age out of retention)"
    );
    if has_pass {
        println!(
            "  3. passphrase_file = [\"secrets/{slug}.pass\", \"secrets/{old}.pass\"]   (one per key, same order)"
        );
    }
    println!("  `backupapps list --recipients` shows which backups still need the old key");
}

/// Creates a file readable by its owner only, refusing to replace one.
fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(data)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.sync_all().with_context(|| format!("cannot write {}", path.display()))
}
