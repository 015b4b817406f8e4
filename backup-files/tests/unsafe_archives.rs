//! Archives that try to write outside the restore target are refused whole.

use std::fs;
use std::path::Path;

use backup_core::Error;
use backup_files::extract_archive;
use tar::{EntryType, Header};

/// A tar entry with a raw name, bypassing the builder's own path checks.
fn entry(out: &mut Vec<u8>, name: &str, kind: EntryType, link: Option<&str>, data: &[u8]) {
    let mut h = Header::new_gnu();
    let raw = &mut h.as_old_mut().name;
    raw[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(link) = link {
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn archive(build: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    build(&mut out);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn refused(tar: Vec<u8>) -> (Error, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    let err = extract_archive(&tar[..], &target, "crafted").unwrap_err();
    assert!(matches!(err, Error::Target { .. }), "{err}");
    // Nothing was created: not the target, not the escape.
    assert!(!target.exists(), "target was created");
    (err, dir)
}

#[test]
fn parent_dir_entries_are_refused() {
    let (err, dir) = refused(archive(|a| {
        entry(a, "ok/../../evil.txt", EntryType::Regular, None, b"x")
    }));
    assert!(err.to_string().contains("escape"), "{err}");
    assert!(!dir.path().join("evil.txt").exists());
}

#[test]
fn absolute_entries_are_refused() {
    let (err, _dir) = refused(archive(|a| {
        entry(a, "/tmp/backupapps-evil", EntryType::Regular, None, b"x")
    }));
    assert!(err.to_string().contains("escape"), "{err}");
    assert!(!Path::new("/tmp/backupapps-evil").exists());
}

#[test]
fn writing_through_a_symlink_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let link_target = outside.path().to_str().unwrap().to_owned();
    let (err, _dir) = refused(archive(|a| {
        entry(a, "link", EntryType::Symlink, Some(&link_target), b"");
        entry(a, "link/planted.txt", EntryType::Regular, None, b"x");
    }));
    assert!(err.to_string().contains("symlink"), "{err}");
    assert_eq!(
        fs::read_dir(outside.path()).unwrap().count(),
        0,
        "nothing planted outside"
    );
}

#[test]
fn hard_links_are_refused() {
    let (err, _dir) = refused(archive(|a| entry(a, "hard", EntryType::Link, Some("/etc/passwd"), b"")));
    assert!(err.to_string().contains("hard-link"), "{err}");
}

#[test]
fn truncated_archive_is_a_format_error() {
    let mut tar = archive(|a| entry(a, "file", EntryType::Regular, None, &[7u8; 5000]));
    tar.truncate(2048);
    let dir = tempfile::tempdir().unwrap();
    let err = extract_archive(&tar[..], &dir.path().join("t"), "cut").unwrap_err();
    assert!(matches!(err, Error::Format { .. }), "{err}");
}

#[test]
fn directory_entry_over_a_symlink_never_touches_the_link_target() {
    use std::os::unix::fs::PermissionsExt;
    let outside = tempfile::tempdir().unwrap();
    fs::set_permissions(outside.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let before = fs::metadata(outside.path()).unwrap();
    let link = outside.path().to_str().unwrap().to_owned();
    let tar = archive(|a| {
        entry(a, "d", EntryType::Symlink, Some(&link), b"");
        let mut h = Header::new_gnu();
        h.as_old_mut().name[..1].copy_from_slice(b"d");
        h.set_entry_type(EntryType::Directory);
        h.set_mode(0o777);
        h.set_mtime(1);
        h.set_size(0);
        h.set_cksum();
        a.extend_from_slice(h.as_bytes());
    });
    let (err, _dir) = refused(tar);
    assert!(err.to_string().contains("symlink"), "{err}");
    let after = fs::metadata(outside.path()).unwrap();
    assert_eq!(
        after.permissions().mode() & 0o777,
        0o700,
        "mode of the link target changed"
    );
    assert_eq!(
        after.modified().unwrap(),
        before.modified().unwrap(),
        "mtime of the link target changed"
    );
}
