//! Writing below a staging folder without ever following a symlink.
//!
//! Every path component is opened relative to its parent's descriptor with
//! `O_NOFOLLOW | O_DIRECTORY`, and every change (create, chmod, chown, times)
//! is made through a descriptor or with `AT_SYMLINK_NOFOLLOW`. A link planted
//! by an earlier archive entry — or by anyone racing the restore — makes the
//! operation fail instead of reaching outside: there is no check-then-use gap.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use backup_core::{Error, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Opens an existing directory, never through a symlink at `name`.
const DIR: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Mode of directories the archive implies but does not list (as `tar -x`).
const IMPLIED_DIR: u32 = 0o755;

/// A directory tree being written: its root and the open descriptors of the
/// directory the last entry went into. Entries of a tar come grouped by
/// directory, so most entries reuse the top of `stack` and cost no lookup.
#[derive(Debug)]
pub(crate) struct Tree {
    root_path: PathBuf,
    walk: Walk,
}

/// The descriptors of a [`Tree`], apart from its path so that a borrowed
/// descriptor and the path for messages can be used together.
#[derive(Debug)]
struct Walk {
    root: OwnedFd,
    /// Names and descriptors of the components below `root`, outermost first.
    stack: Vec<(OsString, OwnedFd)>,
}

impl Tree {
    /// A tree rooted at the directory `root` (opened by the caller), shown in
    /// messages as `root_path`.
    pub(crate) fn new(root: OwnedFd, root_path: PathBuf) -> Self {
        Tree {
            root_path,
            walk: Walk {
                root,
                stack: Vec::new(),
            },
        }
    }

    /// The root folder's descriptor.
    pub(crate) fn root(&self) -> BorrowedFd<'_> {
        self.walk.root.as_fd()
    }

    /// Where `rel` is, for messages.
    pub(crate) fn path_of(&self, rel: &Path) -> PathBuf {
        self.root_path.join(rel)
    }

    /// Creates the directory `rel` (mode 0700 until [`Tree::open_dir`]'s
    /// caller sets its own); an existing real directory is fine.
    pub(crate) fn mkdir(&mut self, rel: &Path) -> Result<()> {
        let (parent, name) = self.walk.parent(rel, true, &self.root_path)?;
        match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => match rustix::fs::openat(parent, name, DIR, Mode::empty()) {
                Ok(_) => Ok(()),
                Err(e) => Err(refusal(&self.root_path, parent, name, rel, e)),
            },
            Err(e) => Err(io_error(&self.root_path, rel, e)),
        }
    }

    /// Creates the new regular file `rel`, empty and private; refuses when
    /// anything (a symlink above all) has that name already.
    pub(crate) fn create_file(&mut self, rel: &Path) -> Result<File> {
        let (parent, name) = self.walk.parent(rel, true, &self.root_path)?;
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        rustix::fs::openat(parent, name, flags, Mode::from_raw_mode(0o600))
            .map(File::from)
            .map_err(|e| refusal(&self.root_path, parent, name, rel, e))
    }

    /// Creates the symlink `rel` pointing at `target` (never followed here).
    pub(crate) fn symlink(&mut self, rel: &Path, target: &Path) -> Result<()> {
        let (parent, name) = self.walk.parent(rel, true, &self.root_path)?;
        rustix::fs::symlinkat(target, parent, name).map_err(|e| refusal(&self.root_path, parent, name, rel, e))
    }

    /// Makes `rel` a hard link to `source`, an entry already in this tree.
    pub(crate) fn hard_link(&mut self, rel: &Path, source: &Path) -> Result<()> {
        // The source's folder is walked on its own descriptors, so that the
        // cached stack stays that of `rel`.
        let (source_dir, source_name) = split(source)?;
        let mut dir = None;
        for part in source_dir {
            let at = dir.as_ref().map_or(self.walk.root.as_fd(), |d: &OwnedFd| d.as_fd());
            let opened = rustix::fs::openat(at, part, DIR, Mode::empty()).map_err(|e| match e {
                Errno::NOENT => not_earlier(rel, source),
                e => refusal(&self.root_path, at, part, rel, e),
            })?;
            dir = Some(opened);
        }
        let source_parent = match dir {
            Some(dir) => dir,
            None => self.walk.root.try_clone().map_err(|e| Error::io(&self.root_path, e))?,
        };
        let (parent, name) = self.walk.parent(rel, true, &self.root_path)?;
        // Without AT_SYMLINK_FOLLOW a symlink source is linked as itself.
        match rustix::fs::linkat(source_parent, source_name, parent, name, AtFlags::empty()) {
            Ok(()) => Ok(()),
            Err(Errno::NOENT) => Err(not_earlier(rel, source)),
            Err(Errno::PERM) => Err(Error::Target {
                path: rel.to_owned(),
                reason: format!("hard link to {}, which is a directory; refused", source.display()),
            }),
            Err(e) => Err(refusal(&self.root_path, parent, name, rel, e)),
        }
    }

    /// Sets the times (and, when given, the owner) of the symlink `rel`
    /// itself, which must be the last entry created.
    pub(crate) fn touch_link(
        &mut self,
        rel: &Path,
        times: &rustix::fs::Timestamps,
        owner: Option<Owner>,
    ) -> Result<()> {
        let (parent, name) = self.walk.parent(rel, false, &self.root_path)?;
        if let Some(owner) = owner {
            rustix::fs::chownat(parent, name, owner.uid(), owner.gid(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| io_error(&self.root_path, rel, e))?;
        }
        rustix::fs::utimensat(parent, name, times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io_error(&self.root_path, rel, e))
    }

    /// Opens the existing directory `rel` to change its mode, owner or times.
    pub(crate) fn open_dir(&mut self, rel: &Path) -> Result<OwnedFd> {
        let (parent, name) = self.walk.parent(rel, false, &self.root_path)?;
        rustix::fs::openat(parent, name, DIR, Mode::empty()).map_err(|e| refusal(&self.root_path, parent, name, rel, e))
    }
}

impl Walk {
    /// The descriptor of `rel`'s parent directory and `rel`'s last name,
    /// walking (and with `create`, making) the folders in between.
    fn parent<'a>(&mut self, rel: &'a Path, create: bool, root_path: &Path) -> Result<(BorrowedFd<'_>, &'a OsStr)> {
        let (dirs, name) = split(rel)?;
        let keep = self
            .stack
            .iter()
            .zip(&dirs)
            .take_while(|((have, _), want)| have.as_os_str() == **want)
            .count();
        self.stack.truncate(keep);
        for part in &dirs[keep..] {
            let at = self.stack.last().map_or(self.root.as_fd(), |(_, fd)| fd.as_fd());
            let opened = match rustix::fs::openat(at, *part, DIR, Mode::empty()) {
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(at, *part, Mode::from_raw_mode(IMPLIED_DIR)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(io_error(root_path, rel, e)),
                    }
                    rustix::fs::openat(at, *part, DIR, Mode::empty())
                }
                other => other,
            };
            let opened = opened.map_err(|e| refusal(root_path, at, part, rel, e))?;
            self.stack.push((part.to_os_string(), opened));
        }
        let at = self.stack.last().map_or(self.root.as_fd(), |(_, fd)| fd.as_fd());
        Ok((at, name))
    }
}

/// Who owns an entry when the archive's owners are kept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

impl Owner {
    pub(crate) fn uid(self) -> Option<rustix::fs::Uid> {
        Some(rustix::fs::Uid::from_raw(self.uid))
    }

    pub(crate) fn gid(self) -> Option<rustix::fs::Gid> {
        Some(rustix::fs::Gid::from_raw(self.gid))
    }
}

/// `rel`'s folders and last name; `rel` is relative and free of `..` (made
/// so by the caller), never empty.
fn split(rel: &Path) -> Result<(Vec<&OsStr>, &OsStr)> {
    let mut parts: Vec<&OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part),
            _ => None,
        })
        .collect();
    let name = parts.pop().ok_or_else(|| Error::Target {
        path: rel.to_owned(),
        reason: "archive entry has an empty name; refused".into(),
    })?;
    Ok((parts, name))
}

fn not_earlier(rel: &Path, source: &Path) -> Error {
    Error::Target {
        path: rel.to_owned(),
        reason: format!(
            "hard link to {}, which is not an earlier entry of the archive; refused",
            source.display()
        ),
    }
}

/// The error for a failed operation on `name` in `dir` for entry `rel`:
/// a refusal when a symlink or non-directory is in the way, else the
/// operating system's error.
fn refusal(root_path: &Path, dir: BorrowedFd<'_>, name: &OsStr, rel: &Path, e: Errno) -> Error {
    let found = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .ok()
        .map(|st| FileType::from_raw_mode(st.st_mode));
    let what = match (e, found) {
        (_, Some(FileType::Symlink)) => "would go through or onto a symlink of the archive",
        (Errno::EXIST, Some(_)) => "is in the archive twice, or over another entry",
        (Errno::NOTDIR | Errno::LOOP, Some(_)) => "lies below an entry of the archive that is not a directory",
        _ => return io_error(root_path, rel, e),
    };
    Error::Target {
        path: rel.to_owned(),
        reason: format!("archive entry {what}; refused"),
    }
}

fn io_error(root_path: &Path, rel: &Path, e: Errno) -> Error {
    Error::io(root_path.join(rel), io::Error::from(e))
}
