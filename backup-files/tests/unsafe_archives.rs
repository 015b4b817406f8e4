//! Crafted archives that try to reach outside the restore target, plant
//! privileged files or create devices. Every case restores into a fresh
//! target beside an "outside" tree and checks that the outside tree kept its
//! content, modes, mtimes and link counts.
//!
//! The cases run as whoever runs the tests (root in CI), and `as_nobody`
//! runs this whole binary again as uid 65534 through `setpriv`, so each case
//! is also shown to hold for an unprivileged user.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use backup_core::Error;
use backup_files::{extract_archive, ArchiveSummary, ExtractOptions};
use filetime::FileTime;
use tar::{EntryType, Header};

/// Set in the environment of the re-run as an unprivileged user.
const NOBODY_RUN: &str = "BACKUPAPPS_TEST_UNPRIVILEGED_RUN";

/// An archive written header by header, names and link targets as raw
/// bytes so that the builder's own path checks do not get in the way.
struct Crafted(tar::Builder<Vec<u8>>);

impl Crafted {
    fn new() -> Self {
        Crafted(tar::Builder::new(Vec::new()))
    }

    fn entry(mut self, name: &str, kind: EntryType, mode: u32, link: Option<&str>, data: &[u8]) -> Self {
        let mut h = Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            h.set_link_name_literal(link).unwrap();
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(1234);
        h.set_gid(2345);
        h.set_mtime(1_000_000_000);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn file(self, name: &str, mode: u32, data: &[u8]) -> Self {
        self.entry(name, EntryType::Regular, mode, None, data)
    }

    fn dir(self, name: &str, mode: u32) -> Self {
        self.entry(name, EntryType::Directory, mode, None, b"")
    }

    fn symlink(self, name: &str, target: &Path) -> Self {
        self.entry(name, EntryType::Symlink, 0o777, Some(target.to_str().unwrap()), b"")
    }

    fn hard_link(self, name: &str, target: &str) -> Self {
        self.entry(name, EntryType::Link, 0o644, Some(target), b"")
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// A tree outside the target that crafted archives aim at, owned by whoever
/// runs the test, so that an escape would succeed if extraction allowed it.
struct Outside {
    _dir: tempfile::TempDir,
    root: PathBuf,
    before: BTreeMap<PathBuf, Meta>,
}

/// Mode, mtime, link count and content (files) of one path.
type Meta = (u32, (i64, i64), u64, Option<Vec<u8>>);

impl Outside {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("outside");
        fs::create_dir_all(root.join("dir")).unwrap();
        fs::write(root.join("dir/file.txt"), b"outside file").unwrap();
        fs::write(root.join("secret.txt"), b"outside secret").unwrap();
        let t = FileTime::from_unix_time(1_500_000_000, 5);
        for (rel, mode) in [
            ("dir/file.txt", 0o640),
            ("secret.txt", 0o600),
            ("dir", 0o750),
            ("", 0o755),
        ] {
            let p = root.join(rel);
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            filetime::set_file_mtime(&p, t).unwrap();
        }
        let before = state(&root);
        Outside {
            _dir: dir,
            root,
            before,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn assert_unchanged(&self) {
        assert_eq!(state(&self.root), self.before, "the tree outside the target changed");
    }
}

fn state(root: &Path) -> BTreeMap<PathBuf, Meta> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            let content = m.is_file().then(|| fs::read(e.path()).unwrap());
            let meta = (m.mode(), (m.mtime(), m.mtime_nsec()), m.nlink(), content);
            (e.path().to_owned(), meta)
        })
        .collect()
}

/// A fresh target path (not created) and its tempdir.
fn target() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    (dir, target)
}

fn restore(tar: &[u8], target: &Path) -> backup_core::Result<ArchiveSummary> {
    extract_archive(tar, target, "crafted", &ExtractOptions::new())
}

/// Restores `tar`, expects a refusal naming `entry` and mentioning `needle`,
/// and checks that the target was not created.
fn refused(tar: &[u8], entry: &str, needle: &str) {
    let (_dir, target) = target();
    let err = restore(tar, &target).unwrap_err();
    match &err {
        Error::Target { path, .. } => assert!(path.ends_with(entry), "{err} names {}", path.display()),
        other => panic!("expected a refusal, got {other}"),
    }
    assert!(err.to_string().contains(needle), "{err}");
    assert!(!target.exists(), "target was created: {err}");
}

fn am_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn directory_entry_over_a_symlink_is_refused() {
    let out = Outside::new();
    let tar = Crafted::new().symlink("d", &out.path("dir")).dir("d", 0o777).finish();
    refused(&tar, "d", "symlink");
    out.assert_unchanged();
}

#[test]
fn directory_entry_below_a_symlink_is_refused() {
    let out = Outside::new();
    let tar = Crafted::new()
        .symlink("d", &out.path("dir"))
        .dir("d/sub", 0o777)
        .finish();
    refused(&tar, "d/sub", "symlink");
    out.assert_unchanged();
}

#[test]
fn file_through_a_symlink_is_refused() {
    let out = Outside::new();
    let tar = Crafted::new()
        .dir("a", 0o755)
        .symlink("a/link", &out.path("dir"))
        .file("a/link/planted.txt", 0o644, b"planted")
        .finish();
    refused(&tar, "a/link/planted.txt", "symlink");
    out.assert_unchanged();
}

#[test]
fn file_onto_a_symlink_is_refused() {
    let out = Outside::new();
    let tar = Crafted::new()
        .symlink("f", &out.path("dir/file.txt"))
        .file("f", 0o777, b"overwritten")
        .finish();
    refused(&tar, "f", "symlink");
    out.assert_unchanged();
}

#[test]
fn parent_dir_and_absolute_names_are_refused() {
    let out = Outside::new();
    let tar = Crafted::new().file("ok/../../evil.txt", 0o644, b"x").finish();
    refused(&tar, "ok/../../evil.txt", "escape");
    let absolute = out.path("planted.txt");
    let tar = Crafted::new().file(absolute.to_str().unwrap(), 0o644, b"x").finish();
    refused(&tar, absolute.to_str().unwrap(), "escape");
    out.assert_unchanged();
}

#[test]
fn setuid_setgid_and_owners_are_dropped_by_default() {
    let out = Outside::new();
    let (_dir, target) = target();
    let summary = restore(&privileged_tree(), &target).unwrap();
    assert_eq!((summary.files, summary.dirs, summary.symlinks), (3, 2, 1));
    let mode = |rel: &str| fs::symlink_metadata(target.join(rel)).unwrap().mode() & 0o7777;
    assert_eq!(mode("bin/su"), 0o755, "setuid kept");
    assert_eq!(mode("bin/sg"), 0o755, "setgid kept");
    assert_eq!(mode("bin/sticky"), 0o644, "sticky kept on a file");
    assert_eq!(mode("shared"), 0o1775, "setgid kept on a folder (sticky stays)");
    let me = fs::metadata(&target).unwrap();
    for rel in ["bin/su", "bin/sg", "shared", "bin/link"] {
        let m = fs::symlink_metadata(target.join(rel)).unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (me.uid(), me.gid()),
            "{rel} got the archive's owner"
        );
        assert_eq!(m.mtime(), 1_000_000_000, "{rel} mtime");
    }
    out.assert_unchanged();
}

#[test]
fn preserve_owners_keeps_owners_and_special_bits_as_root() {
    let (_dir, target) = target();
    let options = ExtractOptions::new().with_preserve_owners(true);
    if !am_root() {
        let err = extract_archive(&privileged_tree()[..], &target, "crafted", &options).unwrap_err();
        assert!(err.to_string().contains("root"), "{err}");
        assert!(!target.exists());
        if std::env::var_os(NOBODY_RUN).is_none() {
            not_root("keeping owners and setuid bits as root");
        }
        return;
    }
    extract_archive(&privileged_tree()[..], &target, "crafted", &options).unwrap();
    let meta = |rel: &str| fs::symlink_metadata(target.join(rel)).unwrap();
    assert_eq!(meta("bin/su").mode() & 0o7777, 0o4755);
    assert_eq!(meta("bin/sg").mode() & 0o7777, 0o2755);
    assert_eq!(meta("bin/sticky").mode() & 0o7777, 0o1644);
    assert_eq!(meta("shared").mode() & 0o7777, 0o3775);
    for rel in ["bin/su", "bin/sg", "shared", "bin/link"] {
        assert_eq!((meta(rel).uid(), meta(rel).gid()), (1234, 2345), "{rel} owner");
    }
}

/// setuid, setgid and sticky files, a setgid+sticky folder and a symlink,
/// all owned by 1234:2345.
fn privileged_tree() -> Vec<u8> {
    Crafted::new()
        .dir("bin", 0o755)
        .file("bin/su", 0o4755, b"#!/bin/sh\n")
        .file("bin/sg", 0o2755, b"#!/bin/sh\n")
        .file("bin/sticky", 0o1644, b"data")
        .symlink("bin/link", Path::new("su"))
        .dir("shared", 0o3775)
        .finish()
}

#[test]
fn hard_links_stay_inside_the_archive() {
    let out = Outside::new();
    let (_dir, target) = target();
    let tar = Crafted::new()
        .file("a/f", 0o640, b"linked")
        .hard_link("b/h", "a/f")
        .finish();
    let summary = restore(&tar, &target).unwrap();
    assert_eq!((summary.files, summary.hard_links), (1, 1));
    let (f, h) = (
        fs::metadata(target.join("a/f")).unwrap(),
        fs::metadata(target.join("b/h")).unwrap(),
    );
    assert_eq!((f.ino(), f.nlink()), (h.ino(), 2), "not one file");

    let outside_file = out.path("dir/file.txt");
    let absolute = Crafted::new().hard_link("h", outside_file.to_str().unwrap()).finish();
    refused(&absolute, "h", "escape");
    let dotdot = Crafted::new().hard_link("h", "../outside/dir/file.txt").finish();
    refused(&dotdot, "h", "escape");
    let through = Crafted::new()
        .symlink("l", &out.path("dir"))
        .hard_link("h", "l/file.txt")
        .finish();
    refused(&through, "h", "symlink");
    let later = Crafted::new().hard_link("h", "f").file("f", 0o644, b"x").finish();
    refused(&later, "h", "not an earlier entry");
    let to_dir = Crafted::new().dir("d", 0o755).hard_link("h", "d").finish();
    refused(&to_dir, "h", "directory");
    out.assert_unchanged();
}

#[test]
fn devices_and_fifos_are_skipped() {
    let (_dir, target) = target();
    let tar = Crafted::new()
        .entry("dev/mem", EntryType::Char, 0o666, None, b"")
        .entry("dev/sda", EntryType::Block, 0o666, None, b"")
        .entry("run/pipe", EntryType::Fifo, 0o666, None, b"")
        .file("kept.txt", 0o644, b"kept")
        .finish();
    let summary = restore(&tar, &target).unwrap();
    assert_eq!((summary.files, summary.skipped), (1, 3));
    assert_eq!(fs::read(target.join("kept.txt")).unwrap(), b"kept");
    for rel in ["dev/mem", "dev/sda", "run/pipe"] {
        assert!(fs::symlink_metadata(target.join(rel)).is_err(), "{rel} was created");
    }
}

#[test]
fn existing_target_entries_are_never_written_through() {
    let out = Outside::new();
    let (_dir, target) = target();
    fs::create_dir(&target).unwrap();
    symlink(out.path("dir"), target.join("x")).unwrap();
    let tar = Crafted::new()
        .dir("x", 0o777)
        .file("x/planted.txt", 0o644, b"x")
        .finish();
    let err = restore(&tar, &target).unwrap_err();
    assert!(err.to_string().contains("exists already"), "{err}");
    let left: Vec<_> = fs::read_dir(&target).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["x"], "staging folder left behind");
    out.assert_unchanged();
}

#[test]
fn modes_and_times_are_restored_below_read_only_folders() {
    let (_dir, target) = target();
    // Children listed before their parent's entry: modes still apply deepest first.
    let tar = Crafted::new()
        .file("ro/inner/f.txt", 0o444, b"read only")
        .dir("ro/inner", 0o555)
        .dir("ro", 0o500)
        .finish();
    restore(&tar, &target).unwrap();
    let meta = |rel: &str| fs::symlink_metadata(target.join(rel)).unwrap();
    assert_eq!(meta("ro").mode() & 0o7777, 0o500);
    assert_eq!(meta("ro/inner").mode() & 0o7777, 0o555);
    assert_eq!(meta("ro/inner/f.txt").mode() & 0o7777, 0o444);
    assert_eq!(fs::read(target.join("ro/inner/f.txt")).unwrap(), b"read only");
    for rel in ["ro", "ro/inner", "ro/inner/f.txt"] {
        assert_eq!(meta(rel).mtime(), 1_000_000_000, "{rel} mtime");
    }
    // Let the tempdir go as an unprivileged user.
    for rel in ["ro", "ro/inner"] {
        fs::set_permissions(target.join(rel), fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn truncated_archive_is_a_format_error() {
    let mut tar = Crafted::new().file("file", 0o644, &[7u8; 5000]).finish();
    tar.truncate(2048);
    let (_dir, target) = target();
    let err = restore(&tar, &target).unwrap_err();
    assert!(matches!(err, Error::Format { .. }), "{err}");
    assert!(!target.exists());
}

/// Runs every other case of this binary again as uid/gid 65534.
#[test]
fn as_nobody() {
    if std::env::var_os(NOBODY_RUN).is_some() {
        return;
    }
    if !am_root() {
        not_root("re-running these cases as an unprivileged user");
        return;
    }
    let Ok(setpriv) = which("setpriv") else {
        let hint = "setpriv not found: install util-linux (apt-get install util-linux)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{hint}");
        eprintln!("skipped: {hint}");
        return;
    };
    // A temporary folder the unprivileged run owns.
    let tmp = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(tmp.path(), Some(65534), Some(65534)).unwrap();
    let out = std::process::Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(std::env::current_exe().unwrap())
        .args(["--skip", "as_nobody", "--test-threads=2"])
        .env(NOBODY_RUN, "1")
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "as nobody:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("test result: ok") && !stdout.contains(" 0 passed"),
        "{stdout}"
    );
}

/// Outside CI a case that needs root is skipped with a note; CI runs as
/// root, so there it fails.
fn not_root(what: &str) {
    let message = format!("{what} needs root: run the tests as root (sudo -E cargo test)");
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
    eprintln!("skipped: {message}");
}

fn which(name: &str) -> Result<PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}
