//! Safe extraction of a backup's tar stream.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use backup_core::{ByteStream, Error, Result};
use filetime::FileTime;
use rand::Rng;
use tar::EntryType;

use crate::pax;
use crate::pipe::StreamReader;

/// Restores a backup's tar stream into `target` (see [`extract_archive`]).
///
/// # Errors
/// As [`extract_archive`]; a failure of the stream itself (a chunk that did not
/// authenticate) is returned as it is.
pub async fn restore_to_dir(stream: ByteStream, target: &Path, label: &str) -> Result<ArchiveSummary> {
    let reader = StreamReader::new(stream);
    let failure = reader.failure();
    let (target, label) = (target.to_owned(), label.to_owned());
    let result = tokio::task::spawn_blocking(move || extract_archive(reader, &target, &label))
        .await
        .map_err(|e| Error::resources("extraction worker", e))?;
    result.map_err(|e| failure.take().unwrap_or(e))
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

/// Extracts an archive into `target`: first into a staging folder inside it,
/// then — once the whole stream was read and so every chunk authenticated —
/// moves the entries into place. On any error the staging folder is removed
/// and `target` is left as it was.
///
/// # Errors
/// [`Error::Target`] when an entry would escape the target or overwrite an
/// existing file; [`Error::Format`] for a malformed archive; the reader's error.
pub fn extract_archive(reader: impl Read, target: &Path, label: &str) -> Result<ArchiveSummary> {
    let created_target = !target.exists();
    fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
    let staging = target.join(format!(".backupapps-restore-{:08x}", rand::thread_rng().gen::<u32>()));
    fs::create_dir(&staging).map_err(|e| Error::io(&staging, e))?;
    let result = extract_into(reader, &staging, label).and_then(|summary| {
        move_into_place(&staging, target)?;
        Ok(summary)
    });
    let _ = fs::remove_dir_all(&staging);
    if result.is_err() && created_target {
        let _ = fs::remove_dir(target);
    }
    result
}

fn extract_into(reader: impl Read, staging: &Path, label: &str) -> Result<ArchiveSummary> {
    let as_root = fs::metadata(staging).map(|m| m.uid() == 0).unwrap_or(false);
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_preserve_ownerships(as_root);
    archive.set_unpack_xattrs(false);
    let mut summary = ArchiveSummary::default();
    // Directory modes and times are applied last: files written into a
    // directory change its mtime, and a read-only directory would refuse them.
    let mut dirs: Vec<(PathBuf, u32, FileTime)> = Vec::new();
    let mut times: Vec<(PathBuf, FileTime, bool)> = Vec::new();
    for entry in archive.entries().map_err(|e| read_error(e, label))? {
        let mut entry = entry.map_err(|e| read_error(e, label))?;
        let name = entry.path().map_err(|e| read_error(e, label))?.into_owned();
        let relative = safe_relative(&name, label)?;
        if relative.as_os_str().is_empty() {
            continue;
        }
        let dest = staging.join(&relative);
        no_symlink_ancestors(staging, &relative)?;
        let kind = entry.header().entry_type();
        let mtime = match pax::mtime_of(&mut entry).map_err(|e| read_error(e, label))? {
            Some((s, ns)) => FileTime::from_unix_time(s, ns),
            None => FileTime::from_unix_time(entry.header().mtime().unwrap_or(0) as i64, 0),
        };
        count(&mut summary, kind, entry.size());
        match kind {
            EntryType::Directory => {
                // A directory entry over a symlink an earlier entry made would
                // chmod and touch whatever the link points to, outside the target.
                if fs::symlink_metadata(&dest).is_ok_and(|m| !m.is_dir()) {
                    return Err(Error::Target {
                        path: relative,
                        reason: "a directory entry would replace a symlink or file of the archive; refused".into(),
                    });
                }
                fs::create_dir_all(&dest).map_err(|e| Error::io(&dest, e))?;
                let mode = entry.header().mode().unwrap_or(0o755);
                if as_root {
                    entry.unpack(&dest).map_err(|e| Error::io(&dest, e))?;
                }
                dirs.push((dest, mode, mtime));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::Symlink => {
                if let Some(parent) = dest.parent() {
                    fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                }
                entry.unpack(&dest).map_err(|e| read_error_at(e, &dest, label))?;
                times.push((dest, mtime, kind == EntryType::Symlink));
            }
            EntryType::Link => {
                return Err(Error::Target {
                    path: name,
                    reason: "hard-link entries are not restored by backupapps; extract this archive with `tar -x`"
                        .into(),
                })
            }
            other => tracing::warn!(path = %name.display(), kind = ?other, "skipping a special file entry"),
        }
    }
    // Read to the end: the last chunks are authenticated only when they are read.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| read_error(e, label))?;
    for (path, mtime, is_link) in times {
        let set = if is_link {
            filetime::set_symlink_file_times(&path, mtime, mtime)
        } else {
            filetime::set_file_mtime(&path, mtime)
        };
        set.map_err(|e| Error::io(&path, e))?;
    }
    for (path, mode, mtime) in dirs.into_iter().rev() {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(|e| Error::io(&path, e))?;
        filetime::set_file_mtime(&path, mtime).map_err(|e| Error::io(&path, e))?;
    }
    Ok(summary)
}

/// Moves the staged top-level entries into `target`, refusing before moving
/// anything when one of them exists there already.
fn move_into_place(staging: &Path, target: &Path) -> Result<()> {
    let entries: Vec<_> = fs::read_dir(staging)
        .map_err(|e| Error::io(staging, e))?
        .collect::<io::Result<_>>()
        .map_err(|e| Error::io(staging, e))?;
    for entry in &entries {
        let dest = target.join(entry.file_name());
        if fs::symlink_metadata(&dest).is_ok() {
            return Err(Error::Target {
                path: dest,
                reason: "exists already; restore into an empty or new folder (--to DIR), or move it away".into(),
            });
        }
    }
    for entry in entries {
        let dest = target.join(entry.file_name());
        fs::rename(entry.path(), &dest).map_err(|e| Error::io(&dest, e))?;
    }
    Ok(())
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

/// Refuses writing through a symlink that an earlier entry created.
fn no_symlink_ancestors(staging: &Path, relative: &Path) -> Result<()> {
    let mut current = staging.to_path_buf();
    let parents: Vec<_> = relative.components().collect();
    for component in &parents[..parents.len().saturating_sub(1)] {
        current.push(component);
        if let Ok(meta) = fs::symlink_metadata(&current) {
            if meta.file_type().is_symlink() {
                return Err(Error::Target {
                    path: relative.to_owned(),
                    reason: "archive entry lies behind a symlink in the archive; refused".into(),
                });
            }
        }
    }
    Ok(())
}

fn count(summary: &mut ArchiveSummary, kind: EntryType, size: u64) {
    match kind {
        EntryType::Directory => summary.dirs += 1,
        EntryType::Symlink => summary.symlinks += 1,
        EntryType::Regular | EntryType::Continuous => {
            summary.files += 1;
            summary.bytes += size;
        }
        _ => {}
    }
}

fn read_error(e: io::Error, label: &str) -> Error {
    Error::Format {
        id: label.to_owned(),
        reason: format!("not a valid tar stream: {e}"),
    }
}

/// An unpack failure is the local disk's fault when the OS says so; anything
/// else is the archive's.
fn read_error_at(e: io::Error, dest: &Path, label: &str) -> Error {
    use io::ErrorKind::*;
    match e.kind() {
        PermissionDenied | StorageFull | QuotaExceeded | ReadOnlyFilesystem | AlreadyExists => Error::io(dest, e),
        _ => read_error(e, label),
    }
}
