//! Per-profile locks: two runs (two cron lines, a cron line and the
//! scheduler) never work on the same profile at once.
//!
//! An OS file lock (`flock`) is released by the kernel when its process dies,
//! however it dies, so a killed run never leaves a lock that blocks later runs.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::workspace::Workspace;

/// Held while a run works on a profile; released on drop.
#[derive(Debug)]
pub struct ProfileLock {
    _file: File,
}

/// Takes the lock `<what>` (e.g. `backup-app-db`) of the workspace, or says
/// who holds it.
///
/// # Errors
/// When another process holds it (naming its pid and start time), or the
/// lock file cannot be created.
pub fn acquire(ws: &Workspace, what: &str) -> Result<ProfileLock> {
    let (mut file, path) = open_lock_file(ws, what)?;
    match file.try_lock() {
        Ok(()) => {
            let holder = format!(
                "pid {} since {}\n",
                std::process::id(),
                backup_core::manifest::rfc3339(chrono::Utc::now())
            );
            file.set_len(0)
                .and_then(|_| file.rewind())
                .and_then(|_| file.write_all(holder.as_bytes()))
                .ok();
            Ok(ProfileLock { _file: file })
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            Err(LockHeld(format!(
                "{what} is already running ({}; lock {}): wait for it to finish",
                holder.trim(),
                path.display()
            ))
            .into())
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
}

/// Another run holds the lock: this run did nothing (exit status 1, like a
/// failed run, so that cron and the scheduler report it).
#[derive(Debug)]
pub struct LockHeld(pub String);

impl std::fmt::Display for LockHeld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LockHeld {}

/// The lock that keeps backups and prunes of one profile apart on this host
/// (the store lease keeps hosts apart).
pub fn profile_lock(profile: &crate::workspace::Profile) -> String {
    format!("profile-{}-{}", profile.app, profile.name)
}

/// Opens (creating it 0600) the lock file `data/locks/<name>.lock`.
///
/// # Errors
/// When the folder or the file cannot be created.
pub fn open_lock_file(ws: &Workspace, name: &str) -> Result<(File, PathBuf)> {
    open_lock_file_at(&ws.home, name)
}

/// [`open_lock_file`] for the workspace at `home`.
///
/// # Errors
/// When the folder or the file cannot be created.
pub fn open_lock_file_at(home: &std::path::Path, name: &str) -> Result<(File, PathBuf)> {
    let dir = home.join("data").join("locks");
    // `data/` holds plaintext too: when the lock is first to make it, 0700.
    crate::private::create_dirs(&dir)?;
    let path = dir.join(format!("{name}.lock"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot open lock file {}", path.display()))?;
    Ok((file, path))
}
