//! What a killed run (`kill -9`, power loss) leaves in `data/<app>/<profile>/`,
//! removed by the next run of the profile before it starts (DESIGN §7): the
//! plaintext `*.partial` local copies of `backup`, and the `.backupapps-dump-*`
//! folders where `mirror` and `restore --to-db` keep a downloaded dump.
//! (Staging folders in a restore's target are the files restore's own
//! business; leftover temporary databases are dropped by the mirror itself;
//! a dead run's store lease on this host is taken over by the lease.)
//! A run cut short by a signal leaves none of these.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::workspace::{Profile, Workspace};

/// Prefix of the dump folders of backup-pg (`from_store.rs`).
const DUMP_PREFIX: &str = ".backupapps-dump-";

/// Removes the `*.partial` files and folders of a killed `backup`. Called
/// under the profile lock: no other backup of the profile is writing them.
pub fn remove_partial_copies(ws: &Workspace, profile: &Profile) {
    remove_matching(&profile.data_dir(ws), |name| name.ends_with(".partial"));
}

/// Held (shared) while a run may keep a dump in the profile's data folder.
#[derive(Debug)]
pub struct DumpFolderUse {
    _file: File,
}

/// Marks the profile's data folder as used for dumps until the returned
/// value is dropped; when no other run uses it, first removes the dump
/// folders that killed runs left.
///
/// # Errors
/// When the lock file cannot be opened.
pub fn use_dump_folder(ws: &Workspace, profile: &Profile) -> Result<DumpFolderUse> {
    let (file, path) = crate::lock::open_lock_file(ws, &format!("dumps-{}-{}", profile.app, profile.name))?;
    // Alone (exclusive): any dump folder there is a dead run's. Then shared,
    // like every other run that keeps a dump there.
    if file.try_lock().is_ok() {
        remove_matching(&profile.data_dir(ws), |name| name.starts_with(DUMP_PREFIX));
    }
    file.lock_shared()
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(DumpFolderUse { _file: file })
}

/// Removes the entries of `dir` whose names match, logging each one.
fn remove_matching(dir: &Path, matches: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if !matches(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        // A symlink is removed itself, never followed.
        let removed = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
        match removed {
            Ok(()) => tracing::warn!(path = %path.display(), "removed what an interrupted run left"),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not remove what an interrupted run left")
            }
        }
    }
}

/// Removes, when dropped armed, the `*.partial` files that appeared in a
/// folder since it was made: the dump files of a cancelled `restore --to
/// DIR` of a postgres profile, written there as `<name>.partial`.
#[derive(Debug)]
pub struct NewPartialFiles {
    dir: PathBuf,
    before: Vec<std::ffi::OsString>,
    armed: bool,
}

impl NewPartialFiles {
    /// Notes the `*.partial` files already in `dir` (never removed).
    pub fn watch(dir: &Path) -> NewPartialFiles {
        NewPartialFiles {
            dir: dir.to_owned(),
            before: partial_names(dir),
            armed: true,
        }
    }

    /// The run ended (well or not) on its own: its own cleanup ran.
    pub fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for NewPartialFiles {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for name in partial_names(&self.dir) {
            if !self.before.contains(&name) {
                let _ = std::fs::remove_file(self.dir.join(name));
            }
        }
    }
}

fn partial_names(dir: &Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().ends_with(".partial"))
        .collect()
}
