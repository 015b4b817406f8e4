//! `restore --to DIR` of correctly signed backups whose archives were crafted
//! (a signing host gone bad, or a tar made by another tool): run as root and
//! as an unprivileged user (uid 65534 through `setpriv`), nothing outside the
//! target changes — content, mode, mtime — no setuid bit or archive owner is
//! restored by default, and `--preserve-owners` keeps them for root only.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use backup_core::{Encryptor, ManifestSigner, PgpEncryptor};
use serde_json::{json, Value};
use support::{backup_folder, text, Ws};

const TARGET: &str = "app/files";
const NOBODY: u32 = 65534;

/// One raw ustar header block, owned by 1234:2345.
fn header(name: &str, kind: u8, mode: u32, link: &str, size: usize) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let mut octal = |at: usize, len: usize, value: u64| {
        let digits = format!("{value:0width$o}\0", width = len - 1);
        h[at..at + len].copy_from_slice(digits.as_bytes());
    };
    octal(100, 8, mode.into());
    octal(108, 8, 1234);
    octal(116, 8, 2345);
    octal(124, 12, size as u64);
    octal(136, 12, 1_000_000_000);
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// A tar of `(name, type flag, mode, link target, content)` entries.
fn tar(entries: &[(&str, u8, u32, &str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, mode, link, data) in entries {
        out.extend_from_slice(&header(name, *kind, *mode, link, data.len()));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn sha256(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

/// A workspace with one real backup of `app/files`, to take a well-formed
/// manifest from.
fn workspace() -> Ws {
    let ws = Ws::new();
    let src = ws.path("source");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), b"real").unwrap();
    ws.files_profile(TARGET, &src, "");
    ws.ok(&["backup", TARGET, "--time", "2026-10-01T02:00:00Z", "--no-prune"]);
    ws
}

/// Stores `archive` as backup `id` (a day in November 2026), encrypted to
/// the workspace's recipient and signed with its signing key: trusted.
fn plant(ws: &Ws, id: &str, archive: &[u8]) {
    let real = ws.list(TARGET)[0]["id"].as_str().unwrap().to_owned();
    let base: Value =
        serde_json::from_slice(&fs::read(backup_folder(ws, TARGET, &real).join("manifest.json")).unwrap()).unwrap();
    let encryptor = PgpEncryptor::from_files(&[ws.path("secrets/backup.pub.asc")]).unwrap();
    let compressed = zstd::encode_all(archive, 3).unwrap();
    let mut sealed = Vec::new();
    encryptor.encrypt(&mut &compressed[..], &mut sealed).unwrap();
    let name = "data-000001.zst.gpg";
    let time = format!("{}-{}-{}T03:00:00Z", &id[0..4], &id[4..6], &id[6..8]);
    let mut m = base;
    m["id"] = json!(id);
    for key in ["time", "started_at", "finished_at"] {
        m[key] = json!(time);
    }
    m["chunks"] = json!([{
        "name": name, "stream": "data", "size": sealed.len(),
        "sha256": sha256(&sealed), "plaintext_size": archive.len(),
    }]);
    m["plaintext_size"] = json!(archive.len());
    m["stored_size"] = json!(sealed.len());
    let manifest = serde_json::to_vec_pretty(&m).unwrap();
    let pass = fs::read_to_string(ws.path("secrets/signing.pass")).unwrap_or_default();
    let signer = ManifestSigner::from_file(&ws.path("secrets/signing.sec.asc"), pass.trim()).unwrap();
    let dir = backup_folder(ws, TARGET, id);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), &sealed).unwrap();
    fs::write(dir.join("manifest.json.sig"), signer.sign(&manifest).unwrap()).unwrap();
    fs::write(dir.join("manifest.json"), &manifest).unwrap();
}

/// The crafted backups, by id.
fn plant_all(ws: &Ws, outside: &Path) {
    let dir = outside.join("dir");
    let (dir, file) = (dir.to_str().unwrap(), outside.join("dir/file.txt"));
    let file = file.to_str().unwrap();
    let crafted: [(&str, Vec<u8>); 5] = [
        (
            "20261102T030000Z-0001",
            tar(&[("d", b'2', 0o777, dir, b""), ("d", b'5', 0o777, "", b"")]),
        ),
        (
            "20261103T030000Z-0002",
            tar(&[
                ("l", b'2', 0o777, dir, b""),
                ("l/planted.txt", b'0', 0o644, "", b"planted"),
            ]),
        ),
        (
            "20261104T030000Z-0003",
            tar(&[("f", b'2', 0o777, file, b""), ("f", b'0', 0o777, "", b"overwritten")]),
        ),
        ("20261105T030000Z-0004", tar(&[("h", b'1', 0o644, file, b"")])),
        (
            "20261106T030000Z-0005",
            tar(&[
                ("bin/su", b'0', 0o4755, "", b"#!/bin/sh\n"),
                ("bin/sg", b'0', 0o2755, "", b"#!/bin/sh\n"),
                ("bin/same", b'1', 0o4755, "bin/su", b""),
                ("dev/mem", b'3', 0o666, "", b""),
                ("run/fifo", b'6', 0o666, "", b""),
            ]),
        ),
    ];
    for (id, archive) in &crafted {
        plant(ws, id, archive);
    }
}

/// The tree the crafted archives aim at, owned by `owner`.
fn outside(owner: u32) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("outside");
    fs::create_dir_all(root.join("dir")).unwrap();
    fs::write(root.join("dir/file.txt"), b"outside file").unwrap();
    for (rel, mode) in [("dir/file.txt", 0o640), ("dir", 0o750)] {
        fs::set_permissions(root.join(rel), fs::Permissions::from_mode(mode)).unwrap();
    }
    chown_all(tmp.path(), owner);
    (tmp, root)
}

type Meta = (u32, i64, i64, u64, u32, Option<Vec<u8>>);

fn state(root: &Path) -> BTreeMap<PathBuf, Meta> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_owned()];
    while let Some(p) = todo.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            todo.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
        let content = m.is_file().then(|| fs::read(&p).unwrap());
        out.insert(p, (m.mode(), m.mtime(), m.mtime_nsec(), m.nlink(), m.uid(), content));
    }
    out
}

fn chown_all(path: &Path, owner: u32) {
    let status = Command::new("chown")
        .args(["-R", &format!("{owner}:{owner}")])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Runs the binary, as `nobody` when asked.
fn run(ws: &Ws, args: &[&str], nobody: bool) -> Output {
    let mut c = if nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", support::BIN]);
        c.arg("--home").arg(ws.home()).args(args);
        c.env_remove("BACKUPAPPS_PASSPHRASE").env_remove("BACKUPAPPS_HOME");
        c
    } else {
        ws.cmd(args)
    };
    c.output().unwrap()
}

/// Every crafted backup restored into fresh targets by `nobody` or root.
fn restore_all(nobody: bool) {
    let ws = workspace();
    let owner = if nobody { NOBODY } else { 0 };
    let (_tmp, out) = outside(owner);
    plant_all(&ws, &out);
    let before = state(&out);
    let targets = tempfile::tempdir().unwrap();
    chown_all(targets.path(), owner);
    if nobody {
        chown_all(ws.home(), NOBODY);
    }
    let to = |name: &str| targets.path().join(name);
    let refusals = [
        ("20261102T030000Z-0001", "symlink"),
        ("20261103T030000Z-0002", "symlink"),
        ("20261104T030000Z-0003", "symlink"),
        ("20261105T030000Z-0004", "escape"),
    ];
    for (id, needle) in refusals {
        let into = to(id);
        let result = run(
            &ws,
            &["restore", TARGET, "--id", id, "--to", into.to_str().unwrap()],
            nobody,
        );
        let said = text(&result);
        assert_eq!(result.status.code(), Some(2), "{id}: {said}");
        assert!(said.contains(needle) && said.contains("refused"), "{id}: {said}");
        assert!(!into.exists(), "{id}: refused restore left {}", into.display());
        assert_eq!(state(&out), before, "{id} changed the tree outside the target");
    }
    let into = to("plain");
    let id = "20261106T030000Z-0005";
    let result = run(
        &ws,
        &["restore", TARGET, "--id", id, "--to", into.to_str().unwrap()],
        nobody,
    );
    assert!(result.status.success(), "{}", text(&result));
    let meta = |rel: &str| fs::symlink_metadata(into.join(rel)).unwrap();
    assert_eq!(meta("bin/su").mode() & 0o7777, 0o755, "setuid restored");
    assert_eq!(meta("bin/sg").mode() & 0o7777, 0o755, "setgid restored");
    assert_eq!(
        meta("bin/same").ino(),
        meta("bin/su").ino(),
        "hard link inside the archive"
    );
    assert_eq!(
        (meta("bin/su").uid(), meta("bin/su").gid()),
        (owner, owner),
        "archive owner applied"
    );
    assert!(
        !into.join("dev/mem").exists() && !into.join("run/fifo").exists(),
        "special files created"
    );
    assert_eq!(state(&out), before, "the tree outside the target changed");

    let kept = to("kept");
    let args = [
        "restore",
        TARGET,
        "--id",
        id,
        "--to",
        kept.to_str().unwrap(),
        "--preserve-owners",
    ];
    let result = run(&ws, &args, nobody);
    if nobody {
        let said = text(&result);
        assert_eq!(result.status.code(), Some(2), "{said}");
        assert!(said.contains("root") && said.contains("--preserve-owners"), "{said}");
        assert!(!kept.exists());
        return;
    }
    assert!(result.status.success(), "{}", text(&result));
    let meta = |rel: &str| fs::symlink_metadata(kept.join(rel)).unwrap();
    assert_eq!(meta("bin/su").mode() & 0o7777, 0o4755);
    assert_eq!(meta("bin/sg").mode() & 0o7777, 0o2755);
    assert_eq!((meta("bin/su").uid(), meta("bin/su").gid()), (1234, 2345));
}

fn root_or_skip(what: &str) -> bool {
    if fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        return true;
    }
    let msg = format!("{what} needs root: run the tests as root (CI does)");
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
    eprintln!("SKIPPED (not under CI): {msg}");
    false
}

#[test]
fn crafted_archives_as_root() {
    if root_or_skip("restoring as root and chown'ing fixtures") {
        restore_all(false);
    }
}

#[test]
fn crafted_archives_as_an_unprivileged_user() {
    if root_or_skip("switching to uid 65534") && support::require("setpriv", "util-linux") {
        restore_all(true);
    }
}
