//! Files and folders that hold secrets or plaintext are their owner's only:
//! secret keys and passphrase files must not be readable by group or others
//! (refused, with the fix), and `data/` folders are made 0700.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::workspace::{Profile, Workspace};

/// Whether group or others have any access to `path` (following links, as
/// reading it does). A missing file is not open: reading it fails anyway.
pub fn open_to_others(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

/// Refuses the secret file `path` (setting `key`, e.g. `[encryption]
/// secret_key`) when group or others may read it: anyone on the host could
/// then decrypt the backups or forge signed ones.
///
/// # Errors
/// Names the file, the setting, and the `chmod` that fixes it.
pub fn require_private(path: &Path, key: &str) -> Result<()> {
    // An empty value resolves to the workspace folder itself: say so,
    // rather than advise a chmod that would lock the operator out of it.
    if path.is_dir() {
        bail!(
            "{} ({key}) is a folder, not a file: give the path of the file (an empty value means the workspace folder)",
            path.display()
        );
    }
    if open_to_others(path) {
        bail!(
            "{} ({key}) is readable by group or others; a secret must be its owner's only: run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

/// Creates `dir` and its missing parents at 0700; existing ones keep their mode.
///
/// # Errors
/// When a folder cannot be created, naming it.
pub fn create_dirs(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// `data/<app>/<profile>/`, created or tightened to 0700 with `data/` and
/// `data/<app>/` (older versions made them 0755): local copies are plaintext.
///
/// # Errors
/// When a folder cannot be created or restricted, naming it.
pub fn data_dir(ws: &Workspace, profile: &Profile) -> Result<PathBuf> {
    let dir = profile.data_dir(ws);
    create_dirs(&dir)?;
    let data = ws.home.join("data");
    for folder in dir.ancestors().take_while(|f| f.starts_with(&data)) {
        if open_to_others(folder) {
            std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot restrict {} to its owner (chmod 700)", folder.display()))?;
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_readable_secret_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.sec.asc");
        std::fs::write(&key, b"secret").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = require_private(&key, "[encryption] secret_key")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("chmod 600") && e.contains("k.sec.asc") && e.contains("secret_key"),
            "{e}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        require_private(&key, "[encryption] secret_key").unwrap();
        // Missing: left to the reader, which names it.
        require_private(&dir.path().join("missing"), "x").unwrap();
    }
}
