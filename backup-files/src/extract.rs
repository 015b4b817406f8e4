//! Safe extraction of a backup's tar stream.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use backup_core::{ByteStream, Error, Result};
use rand::Rng;
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, Timespec, Timestamps};
use rustix::io::Errno;
use tar::EntryType;

use crate::nofollow::{Owner, Tree};
use crate::options::ExtractOptions;
use crate::pax;
use crate::pipe::StreamReader;
use crate::select::Selection;
use crate::staging::{self, CancelAware, WorkerGuard};

/// Restores a backup's tar stream into `target` (see [`extract_archive`]).
/// Cancel-safe: dropped, it stops the download, and the extraction worker
/// removes the staging folder (awaited by [`backup_core::cleanup::finish`]).
///
/// # Errors
/// As [`extract_archive`]; a failure of the stream itself (a chunk that did not
/// authenticate) is returned as it is.
pub async fn restore_to_dir(
    stream: ByteStream,
    target: &Path,
    label: &str,
    options: &ExtractOptions,
) -> Result<ArchiveSummary> {
    restore_selected_to_dir(stream, target, label, options, None).await
}

/// [`restore_to_dir`] restoring only the entries `selection` selects.
pub(crate) async fn restore_selected_to_dir(
    stream: ByteStream,
    target: &Path,
    label: &str,
    options: &ExtractOptions,
    selection: Option<Arc<Selection>>,
) -> Result<ArchiveSummary> {
    options.check()?;
    let (download, registration) = futures::stream::AbortHandle::new_pair();
    let reader = StreamReader::new(Box::pin(futures::stream::Abortable::new(stream, registration)));
    let failure = reader.failure();
    let cancelled = Arc::new(AtomicBool::new(false));
    let reader = CancelAware {
        inner: reader,
        cancelled: cancelled.clone(),
    };
    let (dir, label, options) = (target.to_owned(), label.to_owned(), options.clone());
    let worker =
        tokio::task::spawn_blocking(move || extract_selected(reader, &dir, &label, &options, selection.as_deref()));
    let mut guard = WorkerGuard {
        cancelled,
        download,
        worker: Some(worker),
        target: target.display().to_string(),
    };
    let result = match guard.worker.as_mut() {
        Some(worker) => worker.await.map_err(|e| Error::resources("extraction worker", e)),
        None => Err(Error::resources("extraction worker", "not started")),
    };
    // Finished: nothing left for the guard to cancel.
    guard.worker = None;
    result?.map_err(|e| failure.take().unwrap_or(e))
}

/// Reads a backup's tar stream to its end and checks its structure (see
/// [`check_archive`]).
///
/// # Errors
/// As [`check_archive`]; a failure of the stream itself is returned as it is.
pub async fn check_stream(stream: ByteStream, label: &str) -> Result<ArchiveSummary> {
    let reader = StreamReader::new(stream);
    let failure = reader.failure();
    let label = label.to_owned();
    let result = tokio::task::spawn_blocking(move || check_archive(reader, &label))
        .await
        .map_err(|e| Error::resources("archive check worker", e))?;
    result.map_err(|e| failure.take().unwrap_or(e))
}

/// What an archive held.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ArchiveSummary {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Hard links to earlier entries.
    pub hard_links: u64,
    /// Entries not restored: devices, FIFOs, unknown kinds.
    pub skipped: u64,
    /// Bytes of file content.
    pub bytes: u64,
}

/// Reads a whole archive and checks its structure without writing anything.
///
/// # Errors
/// [`Error::Format`] when the stream is not a valid tar archive, or the
/// reader's error (an integrity failure of a chunk, say).
pub fn check_archive(reader: impl Read, label: &str) -> Result<ArchiveSummary> {
    let mut archive = tar::Archive::new(reader);
    let mut summary = ArchiveSummary::default();
    let entries = archive.entries().map_err(|e| read_error(e, label))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| read_error(e, label))?;
        let path = entry.path().map_err(|e| read_error(e, label))?.into_owned();
        safe_relative(&path, label)?;
        count(&mut summary, entry.header().entry_type(), entry.size());
        io::copy(&mut entry, &mut io::sink()).map_err(|e| read_error(e, label))?;
    }
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| read_error(e, label))?;
    Ok(summary)
}

/// Extracts an archive into `target`: first into a private staging folder
/// inside it, then — once the whole stream was read and so every chunk
/// authenticated — moves the entries into place. On any error the staging
/// folder is removed and `target` is left as it was. Staging folders that a
/// killed restore left in `target` are removed first (and logged).
///
/// Nothing is ever written through or onto a symlink: every folder is
/// opened without following links, files are created exclusively, and modes,
/// owners and times are set on open descriptors. Hard links may only point
/// at earlier entries of the archive. Device and FIFO entries are skipped
/// with a warning (counted in [`ArchiveSummary::skipped`]). Modes and owners
/// follow `options` (see [`ExtractOptions`]).
///
/// # Errors
/// [`Error::Target`] when an entry would escape the target, go through or
/// onto a symlink, or overwrite an existing file, and when `options` ask for
/// owners without root; [`Error::Format`] for a malformed archive; the
/// reader's error.
pub fn extract_archive(
    reader: impl Read,
    target: &Path,
    label: &str,
    options: &ExtractOptions,
) -> Result<ArchiveSummary> {
    extract_selected(reader, target, label, options, None)
}

/// [`extract_archive`] of only the entries `selection` selects (all when `None`).
pub(crate) fn extract_selected(
    reader: impl Read,
    target: &Path,
    label: &str,
    options: &ExtractOptions,
    selection: Option<&Selection>,
) -> Result<ArchiveSummary> {
    options.check()?;
    let created_target = fs::symlink_metadata(target).is_err();
    fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
    staging::remove_stale(target);
    let name = format!("{}{:08x}", staging::PREFIX, rand::thread_rng().gen::<u32>());
    let staging = target.join(&name);
    let result = open_staging(target, &name, &staging).and_then(|(target_dir, staging_dir)| {
        let mut tree = Tree::new(staging_dir, staging.clone());
        let (summary, dirs) = extract_into(reader, &mut tree, label, options, selection)?;
        let names = staged_names(&staging)?;
        // Refused before folder modes are applied: a read-only staged folder
        // could not be removed by an unprivileged user afterwards.
        check_free(&target_dir, target, &names)?;
        // Moving a folder to another parent rewrites its `..`, which needs
        // write access to it: top-level folders get their modes once moved.
        let (top, below): (Vec<_>, Vec<_>) = dirs.into_iter().partition(|d| d.rel.components().count() == 1);
        settle_dirs(&mut tree, below)?;
        move_into_place(tree.root(), &target_dir, target, &names)?;
        settle_dirs(&mut Tree::new(target_dir, target.to_owned()), top)?;
        Ok(summary)
    });
    let _ = fs::remove_dir_all(&staging);
    if result.is_err() && created_target {
        let _ = fs::remove_dir(target);
    }
    result
}

/// Opens `target` and makes the staging folder `name` in it, private.
fn open_staging(target: &Path, name: &str, staging: &Path) -> Result<(OwnedFd, OwnedFd)> {
    let target_dir = rustix::fs::open(
        target,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(target, e.into()))?;
    rustix::fs::mkdirat(&target_dir, name, Mode::from_raw_mode(0o700)).map_err(|e| Error::io(staging, e.into()))?;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let staging_dir =
        rustix::fs::openat(&target_dir, name, flags, Mode::empty()).map_err(|e| Error::io(staging, e.into()))?;
    // Held until the staging folder is closed: not stale while in use.
    staging::lock(&staging_dir).map_err(|e| Error::io(staging, e))?;
    Ok((target_dir, staging_dir))
}

/// A directory entry's mode, owner and times, applied once its content is in.
struct DirFix {
    rel: PathBuf,
    mode: u32,
    times: Timestamps,
    owner: Option<Owner>,
}

fn extract_into(
    reader: impl Read,
    tree: &mut Tree,
    label: &str,
    options: &ExtractOptions,
    selection: Option<&Selection>,
) -> Result<(ArchiveSummary, Vec<DirFix>)> {
    let mut archive = tar::Archive::new(reader);
    let mut summary = ArchiveSummary::default();
    // Directory modes and times are applied last: files written into a
    // directory change its mtime, and a read-only directory would refuse them.
    let mut dirs = Vec::new();
    let mut buf = vec![0u8; COPY_BUFFER];
    for entry in archive.entries().map_err(|e| read_error(e, label))? {
        let mut entry = entry.map_err(|e| read_error(e, label))?;
        let name = entry.path().map_err(|e| read_error(e, label))?.into_owned();
        let rel = safe_relative(&name, label)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        if selection.is_some_and(|s| !s.selects(name.as_os_str().as_bytes())) {
            continue; // its content is skipped by the next header read
        }
        let kind = entry.header().entry_type();
        let times = times_of(&mut entry, label)?;
        let mode = entry.header().mode().map_err(|e| read_error(e, label))?;
        let owner = options.owner_of(entry.header(), &rel)?;
        count(&mut summary, kind, entry.size());
        match kind {
            EntryType::Directory => {
                tree.mkdir(&rel)?;
                let mode = options.kept_mode(mode, true);
                dirs.push(DirFix {
                    rel,
                    mode,
                    times,
                    owner,
                });
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let mut file = tree.create_file(&rel)?;
                copy(&mut entry, &mut file, &mut buf, label).map_err(|e| e.at(tree.path_of(&rel)))?;
                settle(&file, options.kept_mode(mode, false), &times, owner)
                    .map_err(|e| Error::io(tree.path_of(&rel), e))?;
            }
            EntryType::Symlink => {
                let target = link_name(&mut entry, &name, label)?;
                tree.symlink(&rel, &target)?;
                tree.touch_link(&rel, &times, owner)?;
            }
            EntryType::Link => {
                let source = link_name(&mut entry, &name, label)?;
                let source = safe_relative(&source, label).map_err(|_| Error::Target {
                    path: rel.clone(),
                    reason: format!(
                        "hard link to {} would escape the restore target; refused",
                        source.display()
                    ),
                })?;
                tree.hard_link(&rel, &source)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                // Never created: a device node in a restored tree is a way
                // around file permissions. The source never archives them.
                tracing::warn!(path = %name.display(), kind = ?kind, "skipping a device or FIFO entry");
            }
            other => {
                tracing::warn!(path = %name.display(), kind = ?other, "skipping an entry of an unknown kind");
            }
        }
    }
    // Read to the end: the last chunks are authenticated only when they are read.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| read_error(e, label))?;
    Ok((summary, dirs))
}

/// Applies the folders' modes, owners and times, deepest first so that a
/// folder made read-only never blocks one below it.
fn settle_dirs(tree: &mut Tree, mut dirs: Vec<DirFix>) -> Result<()> {
    dirs.sort_by_key(|d| std::cmp::Reverse(d.rel.components().count()));
    for d in dirs {
        let dir = tree.open_dir(&d.rel)?;
        settle(&dir, d.mode, &d.times, d.owner).map_err(|e| Error::io(tree.path_of(&d.rel), e))?;
    }
    Ok(())
}

/// Owner first: chown(2) clears setuid and setgid bits.
fn settle(fd: impl AsFd, mode: u32, times: &Timestamps, owner: Option<Owner>) -> io::Result<()> {
    if let Some(owner) = owner {
        rustix::fs::fchown(&fd, owner.uid(), owner.gid())?;
    }
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
    rustix::fs::futimens(&fd, times)?;
    Ok(())
}

/// The mtime of an entry (PAX nanoseconds when there), access time left alone.
fn times_of<R: Read>(entry: &mut tar::Entry<'_, R>, label: &str) -> Result<Timestamps> {
    let (secs, nanos) = match pax::mtime_of(entry).map_err(|e| read_error(e, label))? {
        Some((s, ns)) => (s, ns),
        None => (entry.header().mtime().unwrap_or(0) as i64, 0),
    };
    Ok(Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: secs,
            tv_nsec: nanos.into(),
        },
    })
}

fn link_name<R: Read>(entry: &mut tar::Entry<'_, R>, name: &Path, label: &str) -> Result<PathBuf> {
    match entry.link_name().map_err(|e| read_error(e, label))? {
        Some(link) => Ok(link.into_owned()),
        None => Err(Error::Format {
            id: label.to_owned(),
            reason: format!("link entry {} has no target", name.display()),
        }),
    }
}

/// Bytes read from the archive before each write: few, large writes.
const COPY_BUFFER: usize = 256 * 1024;

/// Where a copy failed: the archive's side or the disk's.
enum CopyError {
    Archive(Error),
    Disk(io::Error),
}

impl CopyError {
    fn at(self, path: PathBuf) -> Error {
        match self {
            CopyError::Archive(e) => e,
            CopyError::Disk(e) => Error::io(path, e),
        }
    }
}

/// Copies an entry's content into `file`, filling `buf` before each write.
fn copy(entry: &mut impl Read, file: &mut fs::File, buf: &mut [u8], label: &str) -> Result<(), CopyError> {
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match entry.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CopyError::Archive(read_error(e, label))),
            }
        }
        file.write_all(&buf[..filled]).map_err(CopyError::Disk)?;
        if filled < buf.len() {
            return Ok(());
        }
    }
}

/// The names of the staged top-level entries.
fn staged_names(staging: &Path) -> Result<Vec<OsString>> {
    fs::read_dir(staging)
        .and_then(|entries| entries.map(|e| e.map(|e| e.file_name())).collect())
        .map_err(|e| Error::io(staging, e))
}

/// Refuses when one of `names` exists in `target` already.
fn check_free(target_dir: &OwnedFd, target: &Path, names: &[OsString]) -> Result<()> {
    for name in names {
        if rustix::fs::statat(target_dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW).is_ok() {
            return Err(exists(target.join(name)));
        }
    }
    Ok(())
}

/// Moves the staged top-level entries into `target`, never replacing
/// anything that appeared there meanwhile.
fn move_into_place(staging_dir: BorrowedFd<'_>, target_dir: &OwnedFd, target: &Path, names: &[OsString]) -> Result<()> {
    for name in names {
        let name = name.as_os_str();
        let moved = match rustix::fs::renameat_with(staging_dir, name, target_dir, name, RenameFlags::NOREPLACE) {
            // Filesystems without RENAME_NOREPLACE: check_free ran just before.
            Err(Errno::INVAL) => rustix::fs::renameat(staging_dir, name, target_dir, name),
            other => other,
        };
        match moved {
            Ok(()) => {}
            Err(Errno::EXIST | Errno::NOTEMPTY) => return Err(exists(target.join(name))),
            Err(e) => return Err(Error::io(target.join(name), e.into())),
        }
    }
    Ok(())
}

fn exists(path: PathBuf) -> Error {
    Error::Target {
        path,
        reason: "exists already; restore into an empty or new folder (--to DIR), or move it away".into(),
    }
}

/// The entry's path made relative; refuses absolute paths and `..`.
fn safe_relative(name: &Path, label: &str) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for component in name.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(Error::Target {
                    path: name.to_owned(),
                    reason: format!("archive entry in {label} would escape the restore target; refused"),
                })
            }
        }
    }
    Ok(out)
}

fn count(summary: &mut ArchiveSummary, kind: EntryType, size: u64) {
    match kind {
        EntryType::Directory => summary.dirs += 1,
        EntryType::Symlink => summary.symlinks += 1,
        EntryType::Link => summary.hard_links += 1,
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
            summary.files += 1;
            summary.bytes += size;
        }
        _ => summary.skipped += 1,
    }
}

fn read_error(e: io::Error, label: &str) -> Error {
    Error::Format {
        id: label.to_owned(),
        reason: format!("not a valid tar stream: {e}"),
    }
}
