//! The staging folder of a restore when the run does not end normally.
//!
//! Cancelled (its future dropped), a restore stops its download at once and
//! its extraction worker at the next read; the worker then removes the
//! staging folder like on any error, and [`backup_core::cleanup`] knows to
//! wait for it. Killed (`kill -9`, power loss), a restore leaves its staging
//! folder: the next restore into the same target removes it first. A staging
//! folder is locked (`flock`) while a restore uses it, so that only folders
//! of runs that are gone are removed; the kernel drops the lock of a dead
//! process.

use std::fs;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use backup_core::Error;
use futures::stream::AbortHandle;
use rustix::fs::{FlockOperation, Mode, OFlags};
use tokio::task::JoinHandle;

/// Names of staging folders: `.backupapps-restore-<8 hex>`.
pub(crate) const PREFIX: &str = ".backupapps-restore-";

/// Marks `dir` (an open staging folder) as in use for as long as it is open.
pub(crate) fn lock(dir: impl AsFd) -> io::Result<()> {
    rustix::fs::flock(dir, FlockOperation::NonBlockingLockExclusive).map_err(io::Error::from)
}

/// Removes the staging folders in `target` that no running restore holds,
/// logging each one.
pub(crate) fn remove_stale(target: &Path) {
    let Ok(entries) = fs::read_dir(target) else { return };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let path = entry.path();
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        // Not a real folder (a symlink, a file): not ours to remove.
        let Ok(dir) = rustix::fs::open(&path, flags, Mode::empty()) else {
            continue;
        };
        if lock(&dir).is_err() {
            continue; // another restore is extracting into it right now
        }
        match remove_tree(&path) {
            Ok(()) => tracing::warn!(
                folder = %path.display(),
                "removed the staging folder of an interrupted restore"
            ),
            Err(e) => tracing::warn!(
                folder = %path.display(),
                error = %e,
                "could not remove the staging folder of an interrupted restore"
            ),
        }
    }
}

/// `remove_dir_all`, after making folders writable when a killed run had
/// already given a staged folder a read-only mode.
fn remove_tree(path: &Path) -> io::Result<()> {
    if fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    make_writable(path);
    fs::remove_dir_all(path)
}

fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    // symlink_metadata: never follow a link out of the staging folder.
    if !fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        return;
    }
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        make_writable(&entry.path());
    }
}

/// A reader that fails once the restore was cancelled: a stream cut short
/// must never look like the end of the archive.
pub(crate) struct CancelAware<R> {
    pub(crate) inner: R,
    pub(crate) cancelled: Arc<AtomicBool>,
}

impl<R: Read> Read for CancelAware<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = if self.cancelled.load(Ordering::SeqCst) {
            0
        } else {
            self.inner.read(out)?
        };
        if self.cancelled.load(Ordering::SeqCst) {
            return Err(io::Error::other(Error::Cancelled {
                what: "the restore".into(),
            }));
        }
        Ok(n)
    }
}

/// Held while the extraction worker runs; dropped early (the restore's
/// future was dropped), it cancels the download and the worker, and defers
/// waiting for the worker, which removes the staging folder.
pub(crate) struct WorkerGuard {
    pub(crate) cancelled: Arc<AtomicBool>,
    pub(crate) download: AbortHandle,
    pub(crate) worker: Option<JoinHandle<backup_core::Result<crate::ArchiveSummary>>>,
    pub(crate) target: String,
}

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        let Some(worker) = self.worker.take() else { return };
        // The flag first: the reader sees it before the stream's end.
        self.cancelled.store(true, Ordering::SeqCst);
        self.download.abort();
        backup_core::cleanup::defer(
            format!("remove the restore's staging folder in {}", self.target),
            async move {
                let _ = worker.await;
            },
        );
    }
}
