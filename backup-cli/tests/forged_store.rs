//! An attacker who can write to the store (DESIGN §5 "Trusted backups", §7),
//! against the real binary: forged, stranger-signed, replayed and hostile-named
//! backups are listed as untrusted with the reason, make `verify` fail, are never
//! restored or mirrored, never make the tool write outside its target, and never
//! push a real backup out of retention.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use backup_core::{generate_signing_key, Encryptor, ManifestSigner, PgpEncryptor};
use backup_pg::testing::{Auth, TestCluster};
use serde_json::{json, Value};
use support::{backup_folder, text, PgWs, Ws};

const FILES: &str = "app/files";
const OTHER: &str = "app/other";
/// The attacker's own file: found anywhere outside the store, a forgery was used.
const MARKER: &str = "PWNED-by-forgery.txt";

/// How a forged manifest is signed.
enum Sig {
    /// No `manifest.json.sig`.
    Unsigned,
    /// Signed by a key nobody configured as a signer.
    Stranger,
    /// These signature bytes (a real signature, replayed).
    Bytes(Vec<u8>),
}

impl Sig {
    fn name(&self) -> &'static str {
        match self {
            Sig::Unsigned => "unsigned",
            Sig::Stranger => "stranger-signed",
            Sig::Bytes(_) => "signature copied from a real backup",
        }
    }
}

/// A signing key that is not the workspace's: what the attacker signs with.
fn stranger() -> ManifestSigner {
    let key = generate_signing_key("Mallory <mallory@example.org>", None).unwrap();
    ManifestSigner::from_bytes(Path::new("mallory.sec.asc"), key.secret_armored.as_bytes(), "").unwrap()
}

/// `20261102T030000Z-f001` → `2026-11-02T03:00:00Z`.
fn id_time(id: &str) -> String {
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        &id[0..4],
        &id[4..6],
        &id[6..8],
        &id[9..11],
        &id[11..13],
        &id[13..15]
    )
}

/// A forged id on day `n` of November 2026: newer than every real backup made
/// in setup, older than now.
fn forged_id(n: u32) -> String {
    assert!((1..=25).contains(&n));
    format!("202611{n:02}T030000Z-f{n:03x}")
}

/// A copy of `base` that claims to be backup `id`, made at the id's time.
fn rebind(base: &Value, id: &str) -> Value {
    let mut m = base.clone();
    let time = id_time(id);
    m["id"] = json!(id);
    m["time"] = json!(time);
    m["started_at"] = json!(time);
    m["finished_at"] = json!(time);
    m
}

fn sha256(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

/// Bytes zstd cannot shrink, so that a backup of them has several 64 KiB chunks.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The manifest of a stored backup, parsed.
fn manifest_of(ws: &Ws, target: &str, id: &str) -> Value {
    serde_json::from_slice(&fs::read(backup_folder(ws, target, id).join("manifest.json")).unwrap()).unwrap()
}

/// The chunk objects of a stored backup, by name.
fn chunks_of(ws: &Ws, target: &str, id: &str) -> Vec<(String, Vec<u8>)> {
    let folder = backup_folder(ws, target, id);
    manifest_of(ws, target, id)["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap().to_owned();
            let bytes = fs::read(folder.join(&name)).unwrap();
            (name, bytes)
        })
        .collect()
}

/// Sets the modification time of every file under `dir` to three days ago:
/// past prune's grace period, so prune acts on the forged folder.
fn backdate(dir: &Path) {
    let then = SystemTime::now() - Duration::from_secs(3 * 24 * 3600);
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            backdate(&path);
        } else {
            fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(then)
                .unwrap();
        }
    }
}

/// Writes a forged backup into `target`'s store folder `folder_id`: the
/// `objects`, the signature `sig` asks for, then `manifest` (exact bytes).
fn plant(
    ws: &Ws,
    signer: &ManifestSigner,
    target: &str,
    folder_id: &str,
    manifest: &[u8],
    objects: &[(String, Vec<u8>)],
    sig: &Sig,
) -> PathBuf {
    let dir = backup_folder(ws, target, folder_id);
    assert!(!dir.exists(), "{} exists already", dir.display());
    fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in objects {
        fs::write(dir.join(name), bytes).unwrap();
    }
    match sig {
        Sig::Unsigned => {}
        Sig::Stranger => fs::write(dir.join("manifest.json.sig"), signer.sign(manifest).unwrap()).unwrap(),
        Sig::Bytes(b) => fs::write(dir.join("manifest.json.sig"), b).unwrap(),
    }
    fs::write(dir.join("manifest.json"), manifest).unwrap();
    dir
}

/// Every path under `dir` (symlinks not followed).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.unwrap().path();
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            walk(&path, out);
        }
        out.push(path);
    }
}

/// A real backup and what it restores.
struct Real {
    target: &'static str,
    id: String,
    /// Source file (absolute) and its content at backup time.
    files: Vec<(PathBuf, Vec<u8>)>,
}

/// A workspace with real backups of `app/files` (three) and `app/other` (one),
/// and an attacker with write access to its store.
struct Victim {
    ws: Ws,
    real: Vec<Real>,
    stranger: ManifestSigner,
    /// Outside the workspace: commands run in `outside/cwd/a/b`, absolute
    /// names in forged manifests point here.
    outside: tempfile::TempDir,
    /// Files the attacker placed outside backup folders, with their content:
    /// they must stay as they are.
    baits: Vec<(PathBuf, Vec<u8>)>,
    restores: usize,
}

impl Victim {
    fn new() -> Victim {
        let ws = Ws::new();
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir_all(outside.path().join("cwd/a/b")).unwrap();
        let src = ws.path("source");
        fs::create_dir_all(src.join("sub")).unwrap();
        let big = noise(200_000);
        fs::write(src.join("big.bin"), &big).unwrap();
        ws.files_profile(FILES, &src, "");
        let other = ws.path("other-source");
        fs::create_dir_all(&other).unwrap();
        fs::write(other.join("o.txt"), b"the other profile's data").unwrap();
        ws.files_profile(OTHER, &other, "");
        let mut v = Victim {
            ws,
            real: Vec::new(),
            stranger: stranger(),
            outside,
            baits: Vec::new(),
            restores: 0,
        };
        v.ok(&["backup", OTHER, "--time", "2026-07-15T02:00:00Z", "--no-prune"]);
        let id = v.list(OTHER)[0]["id"].as_str().unwrap().to_owned();
        v.real.push(Real {
            target: OTHER,
            id,
            files: vec![(other.join("o.txt"), b"the other profile's data".to_vec())],
        });
        for (n, month) in ["2026-08-01", "2026-09-01", "2026-10-01"].iter().enumerate() {
            let version = format!("version {}", n + 1).into_bytes();
            fs::write(src.join("sub/a.txt"), &version).unwrap();
            v.ok(&["backup", FILES, "--time", &format!("{month}T02:00:00Z"), "--no-prune"]);
            let rows = v.list(FILES);
            assert_eq!(rows.len(), n + 1, "{rows:#?}");
            let id = rows[n]["id"].as_str().unwrap().to_owned();
            assert!(id.starts_with(&month.replace('-', "")), "{id}");
            v.real.push(Real {
                target: FILES,
                id,
                files: vec![(src.join("sub/a.txt"), version), (src.join("big.bin"), big.clone())],
            });
        }
        let chunks = manifest_of(&v.ws, FILES, &v.real_ids(FILES)[2])["chunks"]
            .as_array()
            .unwrap()
            .len();
        assert!(chunks >= 3, "every real backup has several chunks: {chunks}");
        v
    }

    fn cwd(&self) -> PathBuf {
        self.outside.path().join("cwd/a/b")
    }

    /// Runs the binary in [`Victim::cwd`]; returns the exit code and stdout + stderr.
    fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = self.ws.cmd(args).current_dir(self.cwd()).output().unwrap();
        let all = text(&out);
        assert!(
            !all.contains("panicked") && !all.contains("RUST_BACKTRACE"),
            "backupapps {args:?} panicked:\n{all}"
        );
        (out.status.code(), all)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out) = self.run(args);
        assert_eq!(code, Some(0), "backupapps {args:?} failed:\n{out}");
        out
    }

    /// Runs a command that must fail (exit 1 or 2, not a crash) and name `forged`.
    fn refused(&self, args: &[&str], forged: &str) -> String {
        let (code, out) = self.run(args);
        assert!(
            matches!(code, Some(1 | 2)),
            "backupapps {args:?} must fail on forged backup {forged} (exit {code:?}):\n{out}"
        );
        assert!(
            out.contains(forged),
            "backupapps {args:?} does not name {forged}:\n{out}"
        );
        out
    }

    /// `list TARGET --json` rows.
    fn list(&self, target: &str) -> Vec<Value> {
        let out = self
            .ws
            .cmd(&["list", target, "--json"])
            .current_dir(self.cwd())
            .output()
            .unwrap();
        assert!(out.status.success(), "list {target}:\n{}", text(&out));
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap_or_else(|e| panic!("list {target} --json: {e}:\n{}", text(&out)))
            .as_array()
            .unwrap()
            .clone()
    }

    fn real_ids(&self, target: &str) -> Vec<String> {
        self.real
            .iter()
            .filter(|r| r.target == target)
            .map(|r| r.id.clone())
            .collect()
    }

    fn newest_real(&self, target: &str) -> &Real {
        self.real
            .iter()
            .filter(|r| r.target == target)
            .max_by_key(|r| &r.id)
            .unwrap()
    }

    fn forge(
        &mut self,
        target: &'static str,
        folder_id: &str,
        manifest: &[u8],
        objects: &[(String, Vec<u8>)],
        sig: &Sig,
    ) {
        let dir = plant(&self.ws, &self.stranger, target, folder_id, manifest, objects, sig);
        backdate(&dir);
    }

    /// `base` rebound to `folder_id`, with `edit` applied, serialised.
    fn forged_manifest(&self, base: &Value, folder_id: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut m = rebind(base, folder_id);
        edit(&mut m);
        serde_json::to_vec_pretty(&m).unwrap()
    }

    /// A complete backup of the attacker's own file: a tar, zstd-compressed,
    /// encrypted to the workspace's recipient key as one chunk, with a manifest
    /// for `id` that is right in every field but the signature.
    fn attacker_backup(&self, id: &str) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(MARKER), b"attacker data").unwrap();
        let tar = Command::new("tar")
            .arg("-c")
            .arg("-C")
            .arg(dir.path())
            .arg(MARKER)
            .output()
            .unwrap();
        assert!(tar.status.success(), "{}", text(&tar));
        let tar = tar.stdout;
        let compressed = zstd::encode_all(&tar[..], 3).unwrap();
        let encryptor = PgpEncryptor::from_files(&[self.ws.path("secrets/backup.pub.asc")]).unwrap();
        let mut sealed = Vec::new();
        encryptor.encrypt(&mut &compressed[..], &mut sealed).unwrap();
        let name = "data-000001.zst.gpg".to_owned();
        let base = manifest_of(&self.ws, FILES, &self.newest_real(FILES).id);
        let manifest = self.forged_manifest(&base, id, |m| {
            m["chunks"] = json!([{
                "name": name,
                "stream": "data",
                "size": sealed.len(),
                "sha256": sha256(&sealed),
                "plaintext_size": tar.len(),
            }]);
            m["plaintext_size"] = json!(tar.len());
            m["stored_size"] = json!(sealed.len());
            m["recipients"] = json!(encryptor.recipients());
            m["source"]["files"] = json!(1);
        });
        (manifest, vec![(name, sealed)])
    }

    /// Everything the forgery in `target`'s folder `forged` must not achieve,
    /// through the binary. `newest`: it is the newest folder of the profile.
    fn assert_rejected(&mut self, target: &str, forged: &str, what: &str, newest: bool) {
        let rows = self.list(target);
        let row = rows
            .iter()
            .find(|r| r["id"] == forged)
            .unwrap_or_else(|| panic!("{what}: {forged} is not listed: {rows:#?}"));
        assert_eq!(
            row["trusted"],
            json!(false),
            "{what}: forged {forged} is trusted: {row:#}"
        );
        let reason = row["reason"].as_str().unwrap_or_default().to_owned();
        assert!(!reason.trim().is_empty(), "{what}: no reason: {row:#}");
        self.assert_real_trusted(target, &rows);

        let (code, out) = self.run(&["verify", target]);
        assert_eq!(code, Some(1), "{what}: verify {target} must exit 1:\n{out}");
        assert!(out.contains(forged), "{what}: verify does not name {forged}:\n{out}");

        if newest {
            let out = self.refused(&["restore", target], forged);
            assert!(
                out.contains(&reason),
                "{what}: restore does not give the reason {reason:?}:\n{out}"
            );
        }
        self.refused(&["restore", target, "--id", forged], forged);
        let to = self.outside.path().join(format!("to-{forged}"));
        self.refused(
            &["restore", target, "--id", forged, "--to", to.to_str().unwrap()],
            forged,
        );
        assert!(!to.exists(), "{what}: a refused restore created {}", to.display());
        self.assert_nothing_escaped(what);
        self.assert_restores_real(target, what);
    }

    /// The real backups of `target` are exactly the trusted rows.
    fn assert_real_trusted(&self, target: &str, rows: &[Value]) {
        let trusted: BTreeSet<&str> = rows
            .iter()
            .filter(|r| r["trusted"] == json!(true))
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        let real = self.real_ids(target);
        let real: BTreeSet<&str> = real.iter().map(String::as_str).collect();
        assert_eq!(
            trusted, real,
            "trusted rows of {target} are the real backups: {rows:#?}"
        );
        for r in rows.iter().filter(|r| r["trusted"] == json!(true)) {
            assert_eq!(r["status"], "trusted", "{r:#}");
        }
    }

    /// The newest real backup of `target` still restores, by id, into a new folder.
    fn assert_restores_real(&mut self, target: &str, what: &str) {
        self.restores += 1;
        let to = self.ws.path(&format!("restored/{}", self.restores));
        let real = self.newest_real(target);
        let (code, out) = self.run(&["restore", target, "--id", &real.id, "--to", to.to_str().unwrap()]);
        assert_eq!(
            code,
            Some(0),
            "{what}: restore of real backup {} failed:\n{out}",
            real.id
        );
        for (file, content) in &real.files {
            let restored = to.join(file.strip_prefix("/").unwrap());
            assert_eq!(
                fs::read(&restored).ok().as_deref(),
                Some(content.as_slice()),
                "{what}: {} of real backup {}",
                restored.display(),
                real.id
            );
        }
    }

    /// Nothing was restored into the default folder, no attacker file and no
    /// file named by a hostile manifest exists outside the store, and every
    /// bait is as the attacker left it.
    fn assert_nothing_escaped(&self, what: &str) {
        let restore = self.ws.path("restore");
        let mut restored = Vec::new();
        walk(&restore, &mut restored);
        // `init` makes the folder; nothing may appear in it.
        assert!(
            restored.is_empty(),
            "{what}: the default restore folder {} was written: {restored:#?}",
            restore.display()
        );
        let baits: BTreeSet<&Path> = self.baits.iter().map(|(p, _)| p.as_path()).collect();
        let store = self.ws.path("store");
        let mut paths = Vec::new();
        walk(self.ws.home(), &mut paths);
        walk(self.outside.path(), &mut paths);
        for path in &paths {
            let name = path.file_name().unwrap().to_string_lossy();
            let suspicious = name == MARKER || name.contains("escape") || name.contains("evil");
            let forged_object = path.starts_with(&store) && name == MARKER;
            assert!(
                !suspicious || baits.contains(path.as_path()) || forged_object,
                "{what}: {} was written",
                path.display()
            );
        }
        let mut outside_files: Vec<&PathBuf> = paths
            .iter()
            .filter(|p| p.starts_with(self.outside.path()) && !p.is_dir())
            .filter(|p| !baits.contains(p.as_path()))
            .collect();
        outside_files.sort();
        assert!(
            outside_files.is_empty(),
            "{what}: written outside the workspace: {outside_files:?}"
        );
        for p in ["x", "store/x", "store/app/x"] {
            assert!(!self.ws.path(p).exists(), "{what}: {p} was created in the workspace");
        }
        for (path, content) in &self.baits {
            assert_eq!(
                fs::read(path).ok().as_deref(),
                Some(content.as_slice()),
                "{what}: {} was changed or removed",
                path.display()
            );
        }
    }

    /// `backup` (with prune, default retention) of `targets`; every real backup
    /// is still there and trusted, and the new ones join them.
    fn backup_keeps_real(&mut self, targets: &[&'static str], all: bool) {
        let mut args = vec!["backup"];
        if !all {
            args.extend(targets);
        }
        let out = self.ok(&args);
        for &target in targets {
            let rows = self.list(target);
            let known: BTreeSet<String> = self.real_ids(target).into_iter().collect();
            let new: Vec<&Value> = rows
                .iter()
                .filter(|r| r["trusted"] == json!(true) && !known.contains(r["id"].as_str().unwrap()))
                .collect();
            assert_eq!(new.len(), 1, "one new backup of {target}:\n{out}\n{rows:#?}");
            let time = chrono::DateTime::parse_from_rfc3339(new[0]["time"].as_str().unwrap()).unwrap();
            let age = chrono::Utc::now().signed_duration_since(time);
            assert!(
                age < chrono::Duration::hours(1) && age > chrono::Duration::minutes(-1),
                "the new trusted backup is the one just made, not a forgery: {:#}",
                new[0]
            );
            let id = new[0]["id"].as_str().unwrap().to_owned();
            let files = self.newest_real(target).files.clone();
            let files = files
                .into_iter()
                .map(|(p, _)| {
                    let now = fs::read(&p).unwrap();
                    (p, now)
                })
                .collect();
            self.real.push(Real { target, id, files });
            self.assert_real_trusted(target, &rows);
            for id in self.real_ids(target) {
                assert!(
                    backup_folder(&self.ws, target, &id).join("manifest.json").is_file(),
                    "real backup {id} of {target} was removed from the store:\n{out}"
                );
            }
            self.assert_restores_real(target, "after backup with prune");
        }
        self.assert_nothing_escaped("after backup with prune");
    }
}

/// Families 1 and 2: a complete backup under a newer id, of the attacker's
/// files or a copy of a real backup's chunks, signed as `sig` says.
fn complete_forgeries(sig: impl Fn(&Victim) -> Sig) {
    if !support::require("tar", "tar") {
        return;
    }
    let mut v = Victim::new();
    let newest = v.newest_real(FILES).id.clone();

    let id = forged_id(2);
    let (manifest, objects) = v.attacker_backup(&id);
    let s = sig(&v);
    let what = format!("attacker's files, {}", s.name());
    v.forge(FILES, &id, &manifest, &objects, &s);
    v.assert_rejected(FILES, &id, &what, true);

    let id = forged_id(3);
    let base = manifest_of(&v.ws, FILES, &newest);
    let manifest = v.forged_manifest(&base, &id, |_| {});
    let objects = chunks_of(&v.ws, FILES, &newest);
    let s = sig(&v);
    let what = format!("real chunks under a new id, {}", s.name());
    v.forge(FILES, &id, &manifest, &objects, &s);
    v.assert_rejected(FILES, &id, &what, true);

    v.backup_keeps_real(&[FILES], false);
}

#[test]
fn unsigned_complete_backup_under_a_newer_id_is_never_used() {
    complete_forgeries(|_| Sig::Unsigned);
}

#[test]
fn stranger_signed_complete_backup_under_a_newer_id_is_never_used() {
    complete_forgeries(|_| Sig::Stranger);
}

#[test]
fn real_signature_over_forged_manifest_is_never_used() {
    // The real key's signature of an older manifest, next to the attacker's.
    complete_forgeries(|v| {
        let oldest = &v.real_ids(FILES)[0];
        Sig::Bytes(fs::read(backup_folder(&v.ws, FILES, oldest).join("manifest.json.sig")).unwrap())
    });
}

/// Family 3: a real manifest with its real signature, replayed.
#[test]
fn replayed_real_backup_is_bound_to_its_folder_and_profile() {
    let mut v = Victim::new();
    let ids = v.real_ids(FILES);

    // The oldest backup, folder and all, under a newer id: a rollback.
    let oldest = backup_folder(&v.ws, FILES, &ids[0]);
    let manifest = fs::read(oldest.join("manifest.json")).unwrap();
    let sig = Sig::Bytes(fs::read(oldest.join("manifest.json.sig")).unwrap());
    let objects = chunks_of(&v.ws, FILES, &ids[0]);
    let id = forged_id(4);
    v.forge(FILES, &id, &manifest, &objects, &sig);
    v.assert_rejected(FILES, &id, "oldest real backup replayed under a newer id", true);

    // The newest backup of app/files, under the same id in app/other's folder.
    let newest = backup_folder(&v.ws, FILES, &ids[2]);
    let manifest = fs::read(newest.join("manifest.json")).unwrap();
    let sig = Sig::Bytes(fs::read(newest.join("manifest.json.sig")).unwrap());
    let objects = chunks_of(&v.ws, FILES, &ids[2]);
    v.forge(OTHER, &ids[2], &manifest, &objects, &sig);
    v.assert_rejected(OTHER, &ids[2], "app/files backup replayed into app/other", true);
    // app/files itself is untouched by it.
    let rows = v.list(FILES);
    v.assert_real_trusted(FILES, &rows);

    v.backup_keeps_real(&[FILES, OTHER], true);
}

/// Family 4: names from a manifest that would be paths outside the backup's
/// folder or the restore target.
#[test]
fn hostile_names_in_manifests_never_become_paths() {
    let mut v = Victim::new();
    let newest = v.newest_real(FILES).id.clone();
    let base = manifest_of(&v.ws, FILES, &newest);
    let real_chunks = chunks_of(&v.ws, FILES, &newest);
    let store = v.ws.path("store");
    let mut n = 4;
    for sig in [Sig::Unsigned, Sig::Stranger] {
        let abs_id = v.outside.path().join(format!("abs-escape-{n}"));
        let abs_chunk = v.outside.path().join(format!("abs-evil-{n}"));
        // Where `../../evil` leads from the forged folder: the bait is the real
        // first chunk, so that following the name would even "work".
        let rel_chunk = store.join(format!("app/evil-{n}"));
        for (bait, bytes) in [(&abs_chunk, &real_chunks[0].1), (&rel_chunk, &real_chunks[0].1)] {
            fs::write(bait, bytes).unwrap();
            v.baits.push((bait.clone(), bytes.clone()));
        }
        let abs_id_text = abs_id.to_str().unwrap().to_owned();
        let abs_chunk_text = abs_chunk.to_str().unwrap().to_owned();
        let rel_chunk_text = format!("../../evil-{n}");
        // (case, field path, new value); a renamed first chunk is not in the folder.
        let cases = [
            ("absolute id", "/id", json!(abs_id_text)),
            ("id ../../escape", "/id", json!("../../escape")),
            ("dest_prefix ../x", "/dest_prefix", json!("../x")),
            ("chunk name ../../evil", "/chunks/0/name", json!(rel_chunk_text)),
            ("absolute chunk name", "/chunks/0/name", json!(abs_chunk_text)),
        ];
        for (case, field, value) in cases {
            let id = forged_id(n);
            n += 1;
            let manifest = v.forged_manifest(&base, &id, |m| *m.pointer_mut(field).unwrap() = value);
            let skip = usize::from(field.starts_with("/chunks"));
            let objects: Vec<(String, Vec<u8>)> = real_chunks[skip..].to_vec();
            let what = format!("{case}, {}", sig.name());
            v.forge(FILES, &id, &manifest, &objects, &sig);
            v.assert_rejected(FILES, &id, &what, true);
            assert!(!abs_id.exists(), "{what}: {} was created", abs_id.display());
            assert!(!Path::new("/escape").exists() && !store.join("escape").exists());
        }
    }
    v.backup_keeps_real(&[FILES], false);
    assert!(!v.outside.path().join("abs-escape-4").exists());
}

/// Family 5: forgeries dated in the future must not take retention's slots.
#[test]
fn future_dated_forgeries_never_push_real_backups_out() {
    let mut v = Victim::new();
    let newest = v.newest_real(FILES).id.clone();
    let base = manifest_of(&v.ws, FILES, &newest);
    let objects = chunks_of(&v.ws, FILES, &newest);
    // One a month through 2027: twelve days, weeks and months that would fill
    // every daily, weekly and monthly slot of the default retention.
    let mut ids = Vec::new();
    for month in 1..=12u32 {
        let id = format!("2027{month:02}10T030000Z-e{month:03x}");
        let sig = if month % 2 == 0 { Sig::Stranger } else { Sig::Unsigned };
        let manifest = v.forged_manifest(&base, &id, |_| {});
        let dir = plant(&v.ws, &v.stranger, FILES, &id, &manifest, &objects, &sig);
        assert!(dir.join("manifest.json").is_file());
        ids.push(id);
    }
    let rows = v.list(FILES);
    for id in &ids {
        let row = rows
            .iter()
            .find(|r| r["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id}: {rows:#?}"));
        assert_eq!(row["trusted"], json!(false), "{row:#}");
        assert!(!row["reason"].as_str().unwrap_or_default().is_empty(), "{row:#}");
    }
    let (code, out) = v.run(&["verify", FILES]);
    assert_eq!(code, Some(1), "{out}");
    for id in &ids {
        assert!(out.contains(id.as_str()), "verify does not name {id}:\n{out}");
    }
    v.assert_rejected(FILES, &ids[11], "twelfth future-dated forgery", true);
    v.assert_rejected(FILES, &ids[0], "first future-dated forgery", false);

    let plan: Value = serde_json::from_str(&v.ok(&["prune", FILES, "--dry-run", "--json"])).unwrap();
    let keep: BTreeSet<&str> = plan[0]["keep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    let real = v.real_ids(FILES);
    assert_eq!(keep, real.iter().map(String::as_str).collect(), "{plan:#}");
    assert!(plan[0]["remove"].as_array().unwrap().is_empty(), "{plan:#}");

    v.backup_keeps_real(&[FILES], false);
    let rows = v.list(FILES);
    assert!(
        rows.iter()
            .filter(|r| ids.contains(&r["id"].as_str().unwrap().to_owned()))
            .all(|r| r["trusted"] == json!(false)),
        "{rows:#?}"
    );
}

/// Family 6: `mirror` never takes a forged newer backup; the test database
/// stays exactly as it was.
#[test]
fn mirror_never_uses_a_forged_newer_backup() {
    let Some(test) = TestCluster::start(Auth::Trust) else {
        return;
    };
    test.psql("postgres", "CREATE DATABASE shop_test");
    test.psql(
        "shop_test",
        "CREATE TABLE customers (id int, email text); INSERT INTO customers VALUES (1, 'old@copy')",
    );
    let section = format!(
        "[mirror]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"postgres\"\ndatabase = \"shop_test\"\nbin_dir = \"{}\"\nsanitize = [\"apps/shop/scrub.sql\"]\ncheck_sql = \"SELECT count(*) = 0 FROM customers WHERE email LIKE '%@example.org'\"\n",
        test.port,
        test.bindir.display()
    );
    let Some(p) = PgWs::new(Auth::Trust, &section) else {
        return;
    };
    p.ws.write(
        "apps/shop/scrub.sql",
        "UPDATE customers SET email = 'user' || id || '@invalid';\n",
    );
    p.ws.ok(&["backup", "shop/db", "--time", "2026-11-01T02:00:00Z", "--no-prune"]);
    let list = p.ws.list("shop/db");
    assert_eq!(list.len(), 1, "{list:#?}");
    let real = list[0]["id"].as_str().unwrap().to_owned();
    let base = manifest_of(&p.ws, "shop/db", &real);
    let objects = chunks_of(&p.ws, "shop/db", &real);
    let signer = stranger();
    let state = || {
        (
            test.psql("postgres", "SELECT oid FROM pg_database WHERE datname = 'shop_test'"),
            test.psql(
                "shop_test",
                "SELECT string_agg(id || ':' || email, ',' ORDER BY id) FROM customers",
            ),
            test.psql(
                "postgres",
                "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database",
            ),
        )
    };
    for (n, sig) in [(2, Sig::Unsigned), (3, Sig::Stranger)] {
        let id = forged_id(n);
        let manifest = serde_json::to_vec_pretty(&rebind(&base, &id)).unwrap();
        plant(&p.ws, &signer, "shop/db", &id, &manifest, &objects, &sig);
        let row =
            p.ws.list("shop/db")
                .into_iter()
                .find(|r| r["id"] == id.as_str())
                .unwrap();
        assert_eq!(row["trusted"], json!(false), "{row:#}");
        for args in [
            vec!["mirror", "shop/db"],
            vec!["mirror", "shop/db", "--backup", id.as_str()],
        ] {
            let before = state();
            let out = p.ws.run(&args);
            let all = text(&out);
            assert!(
                !out.status.success(),
                "{} forgery {id}: {args:?} succeeded:\n{all}",
                sig.name()
            );
            assert!(!all.contains("panicked"), "{all}");
            assert!(all.contains(&id), "{args:?} does not name {id}:\n{all}");
            assert_eq!(
                state(),
                before,
                "{} forgery {id}: the test database changed:\n{all}",
                sig.name()
            );
            assert!(
                p.ws.list("shop/db").iter().all(|b| b["restored"].is_null()),
                "no restore-verified mark"
            );
        }
    }
    // The same setup mirrors the real backup when asked for it by id.
    let before = state();
    p.ws.ok(&["mirror", "shop/db", "--backup", &real]);
    assert_ne!(state().0, before.0, "the real backup was swapped in");
    assert_eq!(test.psql("shop_test", "SELECT count(*) FROM customers"), "2000");
}
