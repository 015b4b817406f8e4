//! Test support (feature `testing`): a tree with every kind of entry the
//! source must keep, and a snapshot to compare trees exactly.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use filetime::FileTime;

/// Everything compared of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Snap {
    /// Mode bits, mtime (s, ns), content.
    File(u32, (i64, u32), Vec<u8>),
    /// Mode bits, mtime.
    Dir(u32, (i64, u32)),
    /// Target, mtime.
    Link(PathBuf, (i64, u32)),
}

/// Walks `root` and records every entry below it by relative path.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Snap> {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let entry = entry.unwrap();
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        let rel = entry.path().strip_prefix(root).unwrap().to_path_buf();
        let mtime = (meta.mtime(), meta.mtime_nsec() as u32);
        let mode = meta.mode() & 0o7777;
        let snap = if meta.is_dir() {
            Snap::Dir(mode, mtime)
        } else if meta.file_type().is_symlink() {
            Snap::Link(fs::read_link(entry.path()).unwrap(), mtime)
        } else {
            Snap::File(mode, mtime, fs::read(entry.path()).unwrap())
        };
        out.insert(rel, snap);
    }
    out
}

/// Fills `root` with: nested files, an empty directory, modes 0600/0755/0444,
/// sub-second mtimes, relative, absolute and dangling symlinks, a name longer
/// than 100 bytes in a path longer than 255, a non-UTF-8 name, a file of
/// `big` bytes, and `skip.tmp` files for exclude tests.
pub fn sample_tree(root: &Path, big: usize) {
    let w = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
        p
    };
    w("docs/readme.txt", b"hello\n");
    w("docs/nested/deeper/notes.md", b"# notes\n");
    let secret = w("private/secret.key", b"not really secret");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let script = w("bin/run.sh", b"#!/bin/sh\necho hi\n");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let ro = w("docs/read-only.txt", b"frozen");
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o444)).unwrap();
    w("cache/skip.tmp", b"temporary");
    w("docs/also-skip.tmp", b"temporary");
    let data: Vec<u8> = (0..big as u64)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    w("data/big.bin", &data);
    w("data/empty.bin", b"");
    fs::create_dir_all(root.join("empty/dir")).unwrap();
    let long = format!("{}/{}.txt", "d".repeat(120), "n".repeat(150));
    w(&long, b"long name");
    let odd = root.join("odd").join(OsStr::from_bytes(b"caf\xe9 \xff.txt"));
    fs::create_dir_all(odd.parent().unwrap()).unwrap();
    fs::write(&odd, b"latin-1 name").unwrap();
    symlink("../docs/readme.txt", root.join("bin/readme-link")).unwrap();
    symlink("/etc/hostname", root.join("bin/absolute-link")).unwrap();
    symlink("does-not-exist", root.join("bin/dangling")).unwrap();
    // Sub-second times, set last (children first so directory times stick).
    let mut paths: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .collect();
    paths.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in paths.iter().enumerate() {
        let t = FileTime::from_unix_time(1_700_000_000 + i as i64 * 3_600, 123_456_789 + i as u32);
        if fs::symlink_metadata(p).unwrap().file_type().is_symlink() {
            filetime::set_symlink_file_times(p, t, t).unwrap();
        } else {
            filetime::set_file_mtime(p, t).unwrap();
        }
    }
}
