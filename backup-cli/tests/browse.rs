//! `ls`, `find`, `diff`, `info`, `dump` and `restore --include` on a timeline
//! of backups with odd names, checked against `tar -tv` of the stream that
//! stock gpg + zstd decrypt; a tampered index is refused.

mod support;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use base64::Engine;
use serde_json::Value;
use support::{backup_folder, require, text, Gpg, Ws};

const TARGET: &str = "app/files";

fn tools_present() -> bool {
    require("gpg", "gnupg") && require("zstd", "zstd") && require("tar", "tar")
}

/// Archive name of a source path (no leading `/`).
fn name(p: &Path) -> Vec<u8> {
    p.as_os_str().as_bytes()[1..].to_vec()
}

/// A JSON entry's name: `path` or `path_b64`.
fn entry_name(e: &Value) -> Vec<u8> {
    match (e["path"].as_str(), e["path_b64"].as_str()) {
        (Some(p), _) => p.as_bytes().to_vec(),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD.decode(b).unwrap(),
        _ => panic!("entry without name: {e}"),
    }
}

/// The decrypted data stream of a backup, by the stock tools.
fn plain_tar(ws: &Ws, gpg: &Gpg, pass: &str, id: &str, out: &Path) {
    let script = format!(
        "set -euo pipefail; cd '{}'; for c in data-*.zst.gpg; do gpg --homedir '{}' --batch --quiet --pinentry-mode loopback --passphrase '{pass}' --decrypt \"$c\"; done | zstd -d -q > '{}'",
        backup_folder(ws, TARGET, id).display(),
        gpg.home.path().display(),
        out.display()
    );
    let o = Command::new("bash").arg("-c").arg(&script).output().unwrap();
    assert!(o.status.success(), "stock decrypt failed:\n{}", text(&o));
}

/// `tar -tv` of a tar file: name → (type letter, size, link target).
/// Name → (type letter, size, link target).
type Listing = BTreeMap<Vec<u8>, (u8, u64, Option<Vec<u8>>)>;

fn tar_listing(tar: &Path) -> Listing {
    let o = Command::new("tar")
        .args(["--quoting-style=literal", "--numeric-owner", "-tvf"])
        .arg(tar)
        .output()
        .unwrap();
    assert!(o.status.success(), "tar -tv failed:\n{}", text(&o));
    let mut out = BTreeMap::new();
    for line in o.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        // perms owner/group size date time name[ -> target]
        let mut rest = line;
        let mut fields = Vec::new();
        for _ in 0..5 {
            let start = rest.iter().position(|b| *b != b' ').unwrap();
            rest = &rest[start..];
            let end = rest.iter().position(|b| *b == b' ').unwrap();
            fields.push(rest[..end].to_vec());
            rest = &rest[end + 1..];
        }
        let kind = fields[0][0];
        let size: u64 = String::from_utf8_lossy(&fields[2]).parse().unwrap();
        let (name, link) = match (kind, rest.windows(4).position(|w| w == b" -> ")) {
            (b'l', Some(at)) => (rest[..at].to_vec(), Some(rest[at + 4..].to_vec())),
            _ => (rest.to_vec(), None),
        };
        let name = name.strip_suffix(b"/").map(<[u8]>::to_vec).unwrap_or(name);
        out.insert(name, (kind, size, link));
    }
    out
}

/// `ls --json` as name → (type letter, size, link target).
fn ls_listing(ws: &Ws, id: &str) -> Listing {
    let doc: Value = serde_json::from_str(&ws.ok(&["ls", TARGET, "--id", id, "--json"])).unwrap();
    assert_eq!(doc["indexed"], true, "{doc}");
    assert_eq!(doc["id"], id);
    let mut out = BTreeMap::new();
    for e in doc["entries"].as_array().unwrap() {
        let kind = e["mode_text"].as_str().unwrap().as_bytes()[0];
        let link = match (e["link"].as_str(), e["link_b64"].as_str()) {
            (Some(l), _) => Some(l.as_bytes().to_vec()),
            (None, Some(b)) => Some(base64::engine::general_purpose::STANDARD.decode(b).unwrap()),
            _ => None,
        };
        out.insert(entry_name(e), (kind, e["size"].as_u64().unwrap(), link));
    }
    out
}

fn set_mtime(p: &Path, secs: u64, nanos: u32) {
    let t = SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
    fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_times(fs::FileTimes::new().set_modified(t))
        .unwrap();
}

struct Timeline {
    ws: Ws,
    src: PathBuf,
    ids: Vec<String>,
    big: PathBuf,
    odd: PathBuf,
    spaced: PathBuf,
    long: PathBuf,
}

/// Two backups: the second changes, removes and adds entries.
fn timeline() -> Timeline {
    let ws = Ws::new();
    let src = ws.path("source data");
    let spaced = src.join("a b.txt");
    let odd = src.join(OsStr::from_bytes(b"caf\xe9 \xff.txt"));
    let long = src.join("d".repeat(120)).join(format!("{}.txt", "n".repeat(60)));
    let big = src.join("sub/one.bin");
    fs::create_dir_all(long.parent().unwrap()).unwrap();
    fs::create_dir_all(big.parent().unwrap()).unwrap();
    fs::write(&spaced, b"spaces\n").unwrap();
    fs::write(&odd, b"latin-1\n").unwrap();
    fs::write(&long, b"long\n").unwrap();
    // 1 MiB that does not compress, over several 64 KiB chunks.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let content: Vec<u8> = (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    fs::write(&big, &content).unwrap();
    fs::set_permissions(&big, fs::Permissions::from_mode(0o640)).unwrap();
    set_mtime(&big, 1_700_000_000, 123_456_789);
    std::os::unix::fs::symlink("a b.txt", src.join("link to a")).unwrap();
    std::os::unix::fs::symlink(OsStr::from_bytes(b"caf\xe9 \xff.txt"), src.join("odd link")).unwrap();
    ws.files_profile(TARGET, &src, "");
    ws.ok(&["backup", TARGET, "--time", "2026-11-01T02:00:00Z"]);

    fs::write(&spaced, b"spaces, and more\n").unwrap();
    fs::remove_file(&odd).unwrap();
    fs::write(src.join("new.txt"), b"new\n").unwrap();
    ws.ok(&["backup", TARGET, "--time", "2026-11-02T02:00:00Z"]);
    let ids: Vec<String> = ws
        .list(TARGET)
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    Timeline {
        ws,
        src,
        ids,
        big,
        odd,
        spaced,
        long,
    }
}

#[test]
fn browse_commands_agree_with_tar_and_partial_restores_are_exact() {
    if !tools_present() {
        return;
    }
    let t = timeline();
    let ws = &t.ws;
    let (gpg, pass) = Gpg::with_key(ws, "backup");

    // ls = tar -tv of the stream the stock tools decrypt, for both backups.
    let mut tars = Vec::new();
    for id in &t.ids {
        let tar = ws.path(&format!("{id}.tar"));
        plain_tar(ws, &gpg, &pass, id, &tar);
        let by_tar = tar_listing(&tar);
        let by_ls = ls_listing(ws, id);
        assert_eq!(
            by_ls
                .keys()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect::<Vec<_>>(),
            by_tar
                .keys()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect::<Vec<_>>()
        );
        assert_eq!(by_ls, by_tar);
        assert!(by_ls.contains_key(&name(&t.long)), "long name listed");
        tars.push(by_tar);
    }
    let (first, second) = (&t.ids[0], &t.ids[1]);
    assert!(ls_listing(ws, first).contains_key(&name(&t.odd)));
    assert!(!ls_listing(ws, second).contains_key(&name(&t.odd)));

    // ls text: one line per entry, names escaped, PATH narrows it.
    let out = ws.ok(&["ls", TARGET, "--id", first]);
    assert!(out.contains("caf\\351 \\377.txt"), "{out}");
    assert!(out.contains("-> a b.txt"), "{out}");
    let out = ws.ok(&["ls", TARGET, t.big.parent().unwrap().to_str().unwrap()]);
    assert_eq!(out.lines().count(), 2, "the folder and its file:\n{out}");
    assert!(
        out.contains("-rw-r-----") && out.contains(" 1048576 2023-11-14 22:13:20 "),
        "{out}"
    );

    // find: every backup, newest first, size per backup; --id narrows it to one.
    let rows: Value = serde_json::from_str(&ws.ok(&["find", TARGET, "a b.txt", "--json"])).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (rows[0]["id"].as_str(), rows[0]["size"].as_u64()),
        (Some(second.as_str()), Some(17))
    );
    assert_eq!(
        (rows[1]["id"].as_str(), rows[1]["size"].as_u64()),
        (Some(first.as_str()), Some(7))
    );
    let with_all: Value = serde_json::from_str(&ws.ok(&["find", TARGET, "a b.txt", "--all", "--json"])).unwrap();
    assert_eq!(with_all.as_array().unwrap().len(), 2, "--all is the default");
    let rows: Value = serde_json::from_str(&ws.ok(&["find", TARGET, "*.txt", "--id", second, "--json"])).unwrap();
    assert!(!rows.as_array().unwrap().is_empty());
    assert!(rows.as_array().unwrap().iter().all(|r| r["id"] == second.as_str()));
    let out = ws.ok(&["find", TARGET, "caf*", "--all"]);
    assert_eq!(out.lines().count(), 2, "header and one hit:\n{out}");
    ws.fails(&["find", TARGET, "no-such-*"], 1);
    // `*` matches every name: find --all lists each backup's tar entries.
    let rows: Value = serde_json::from_str(&ws.ok(&["find", TARGET, "*", "--all", "--json"])).unwrap();
    for (id, by_tar) in t.ids.iter().zip(&tars) {
        let mut found: Vec<(Vec<u8>, u64)> = rows
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["id"] == id.as_str())
            .map(|r| (entry_name(r), r["size"].as_u64().unwrap()))
            .collect();
        found.sort();
        let want: Vec<(Vec<u8>, u64)> = by_tar.iter().map(|(n, (_, size, _))| (n.clone(), *size)).collect();
        assert_eq!(found, want, "find * --all in {id}");
    }

    // diff: added, removed, changed.
    let d: Value = serde_json::from_str(&ws.ok(&["diff", TARGET, first, second, "--json"])).unwrap();
    let names = |k: &str| d[k].as_array().unwrap().iter().map(entry_name).collect::<Vec<_>>();
    let only_in = |a: usize, b: usize| {
        tars[a]
            .keys()
            .filter(|k| !tars[b].contains_key(*k))
            .cloned()
            .collect::<Vec<_>>()
    };
    let sorted = |mut v: Vec<Vec<u8>>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(names("added")),
        only_in(1, 0),
        "diff added = tar of ID2 minus tar of ID1"
    );
    assert_eq!(sorted(names("removed")), only_in(0, 1));
    assert_eq!(names("added"), vec![name(&t.src.join("new.txt"))]);
    assert_eq!(names("removed"), vec![name(&t.odd)]);
    let changed = names("changed");
    assert!(changed.contains(&name(&t.spaced)), "{d}");
    let spaced = d["changed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| entry_name(c) == name(&t.spaced))
        .unwrap();
    assert_eq!(spaced["changes"]["size"], serde_json::json!([7, 17]));
    // The source folder itself changed (an entry added and one removed).
    assert!(
        changed.iter().all(|c| *c == name(&t.spaced) || *c == name(&t.src)),
        "{d}"
    );
    let out = ws.ok(&["diff", TARGET, &first[..12], &second[..12]]);
    assert!(
        out.contains("+ /") && out.contains("- /") && out.contains("M /"),
        "{out}"
    );

    // info: one backup in full, consistent with list.
    let info: Value = serde_json::from_str(&ws.ok(&["info", TARGET, "--id", first, "--json"])).unwrap();
    let row = &ws.list(TARGET)[0];
    for k in [
        "id",
        "time",
        "size",
        "plaintext_size",
        "chunks",
        "recipients",
        "signer",
        "reasons",
    ] {
        assert_eq!(info[k], row[k], "{k}");
    }
    assert_eq!(info["indexed"], true);
    assert_eq!(info["source"]["file_count"], 4);
    let streams = info["streams"].as_array().unwrap();
    assert_eq!(
        streams.iter().map(|s| s["name"].as_str().unwrap()).collect::<Vec<_>>(),
        ["data", "index"]
    );
    assert!(info["ratio"].as_f64().unwrap() > 0.0 && info["duration_seconds"].as_f64().is_some());
    let out = ws.ok(&["info", TARGET, "--at", "2026-11-01"]);
    assert!(out.contains(first.as_str()) && out.contains("file_count: 4"), "{out}");

    // dump: the file's bytes, raw and in JSON.
    let want = fs::read(&t.big).unwrap();
    let out = ws.cmd(&["dump", TARGET, t.big.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(out.stdout == want, "dump differs from the file");
    let doc: Value = serde_json::from_str(&ws.ok(&["dump", TARGET, t.big.to_str().unwrap(), "--json"])).unwrap();
    let content = base64::engine::general_purpose::STANDARD
        .decode(doc["content_b64"].as_str().unwrap())
        .unwrap();
    assert!(content == want && doc["content_size"] == want.len());
    let odd = ws.cmd(&["dump", TARGET, "--id", first]).arg(&t.odd).output().unwrap();
    assert_eq!(odd.stdout, b"latin-1\n", "{}", text(&odd));
    let out = ws.fails(&["dump", TARGET, t.src.to_str().unwrap()], 2);
    assert!(out.contains("is a folder"), "{out}");

    // restore --include of one file: byte-identical, mode and mtime kept.
    let into = ws.path("partial");
    let out = ws.ok(&[
        "restore",
        TARGET,
        "--include",
        t.big.to_str().unwrap(),
        "--to",
        into.to_str().unwrap(),
    ]);
    assert!(out.contains("1 files"), "{out}");
    let got = into.join(t.big.strip_prefix("/").unwrap());
    assert!(fs::read(&got).unwrap() == want);
    let (a, b) = (fs::metadata(&t.big).unwrap(), fs::metadata(&got).unwrap());
    assert_eq!(
        (a.mode(), a.mtime(), a.mtime_nsec()),
        (b.mode(), b.mtime(), b.mtime_nsec())
    );
    assert_eq!(fs::read_dir(got.parent().unwrap()).unwrap().count(), 1, "only the file");
    // Some chunks read prove nothing about the others: no `restored` mark.
    assert!(ws.list(TARGET).iter().all(|r| r["restored"].is_null()));

    // A folder brings its contents; --exclude leaves some out.
    let into = ws.path("partial-folder");
    ws.ok(&[
        "restore",
        TARGET,
        "--id",
        first,
        "--include",
        t.src.to_str().unwrap(),
        "--exclude",
        "*.bin",
        "--to",
        into.to_str().unwrap(),
    ]);
    let root = into.join(t.src.strip_prefix("/").unwrap());
    assert!(root.join(OsStr::from_bytes(b"caf\xe9 \xff.txt")).is_file());
    assert!(fs::read_link(root.join("link to a")).unwrap() == Path::new("a b.txt"));
    assert!(!root.join("sub/one.bin").exists() && root.join("sub").is_dir());
    let out = ws.fails(&["restore", TARGET, "--include", "nothing-here", "--to", "x"], 2);
    assert!(out.contains("select no entry"), "{out}");
    // Several globs after one --include (`--include GLOB…`).
    let into = ws.path("partial-two");
    ws.ok(&[
        "restore",
        TARGET,
        "--id",
        first,
        "--include",
        t.big.to_str().unwrap(),
        "a b.txt",
        "--to",
        into.to_str().unwrap(),
    ]);
    let root = into.join(t.src.strip_prefix("/").unwrap());
    assert!(root.join("sub/one.bin").is_file());
    assert!(root.join("a b.txt").is_file());
    assert!(root.join("link to a").symlink_metadata().is_err(), "not selected");
    // A name that is not UTF-8, given as it is (no glob can spell it).
    let into = ws.path("partial-odd");
    let out = ws
        .cmd(&[
            "restore",
            TARGET,
            "--id",
            first,
            "--to",
            into.to_str().unwrap(),
            "--include",
        ])
        .arg(&t.odd)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        fs::read(into.join(t.odd.strip_prefix("/").unwrap())).unwrap(),
        b"latin-1\n"
    );
}

#[test]
fn a_tampered_index_chunk_is_refused() {
    if !tools_present() {
        return;
    }
    let ws = Ws::new();
    let src = ws.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f.txt"), b"x").unwrap();
    ws.files_profile(TARGET, &src, "");
    ws.ok(&["backup", TARGET]);
    let id = ws.list(TARGET)[0]["id"].as_str().unwrap().to_owned();
    // Rewrite the index chunk with other bytes of the same length; the
    // manifest (and its signature) stay as they are.
    let chunk = backup_folder(&ws, TARGET, &id).join("index-000001.zst.gpg");
    let mut bytes = fs::read(&chunk).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 0x40;
    fs::write(&chunk, bytes).unwrap();
    for args in [
        vec!["ls", TARGET],
        vec!["find", TARGET, "*"],
        vec!["dump", TARGET, src.join("f.txt").to_str().unwrap()],
        vec!["restore", TARGET, "--include", "*.txt", "--to", "out"],
    ] {
        let out = ws.fails(&args, 2);
        assert!(
            out.contains("index-000001.zst.gpg") && out.contains("integrity"),
            "{args:?}: {out}"
        );
    }
    assert!(!ws.path("out").exists());
    // A whole restore reads data chunks only, and still works.
    ws.ok(&["restore", TARGET, "--to", ws.path("whole").to_str().unwrap()]);
}

/// A backup as versions before the index made them: the files source's
/// `data` stream only.
struct WithoutIndex(backup_files::FilesSource);

#[async_trait::async_trait]
impl backup_core::Source for WithoutIndex {
    fn kind(&self) -> &str {
        self.0.kind()
    }

    async fn open(&self) -> backup_core::Result<backup_core::SourceOutput> {
        let mut output = self.0.open().await?;
        output.streams.retain(|(name, _)| name == backup_core::DATA_STREAM);
        Ok(output)
    }
}

#[test]
fn backups_without_index_are_browsed_by_streaming_with_a_note() {
    if !tools_present() {
        return;
    }
    let ws = Ws::new();
    let src = ws.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/f.txt"), b"old style").unwrap();
    fs::write(src.join(OsStr::from_bytes(b"x\xff")), b"odd").unwrap();
    ws.files_profile(TARGET, &src, "");
    // Made with the library, as an older version would have stored it.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let read = |rel: &str| fs::read(ws.path(rel)).unwrap();
        let store: backup_core::DynStore = std::sync::Arc::new(backup_fs::FsStore::new(ws.path("store")).unwrap());
        let public = read("secrets/backup.pub.asc");
        let encryptor = backup_core::PgpEncryptor::from_armored([(Path::new("k"), public.as_slice())]).unwrap();
        let pass = String::from_utf8(read("secrets/signing.pass")).unwrap();
        let signer =
            backup_core::ManifestSigner::from_bytes(Path::new("s"), &read("secrets/signing.sec.asc"), pass.trim())
                .unwrap();
        let source = WithoutIndex(
            backup_files::FilesSource::new(&backup_files::FilesConfig::new(vec![src.clone()]), Path::new("/")).unwrap(),
        );
        let options = backup_core::BackupOptions::new("app", "files", TARGET).with_chunk_size(64 * 1024);
        backup_core::run_backup(&store, &source, std::sync::Arc::new(encryptor), &signer, &options)
            .await
            .unwrap();
    });
    let info: Value = serde_json::from_str(&ws.ok(&["info", TARGET, "--json"])).unwrap();
    assert_eq!(info["indexed"], false);

    let out = ws.run(&["ls", TARGET, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has no index"),
        "{}",
        text(&out)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["indexed"], false);
    let names: Vec<Vec<u8>> = doc["entries"].as_array().unwrap().iter().map(entry_name).collect();
    for want in [
        src.clone(),
        src.join("sub"),
        src.join("sub/f.txt"),
        src.join(OsStr::from_bytes(b"x\xff")),
    ] {
        assert!(
            names.contains(&name(&want)),
            "{} missing from {names:?}",
            want.display()
        );
    }
    let out = ws.ok(&["find", TARGET, "f.txt"]);
    assert!(out.contains("sub/f.txt"), "{out}");
    let out = ws.cmd(&["dump", TARGET]).arg(src.join("sub/f.txt")).output().unwrap();
    assert_eq!(out.stdout, b"old style", "{}", text(&out));
    let into = ws.path("partial");
    let out = ws.ok(&["restore", TARGET, "--include", "f.txt", "--to", into.to_str().unwrap()]);
    assert!(out.contains("no index"), "{out}");
    let landed = |p: &Path| into.join(p.strip_prefix("/").unwrap());
    assert_eq!(fs::read(landed(&src.join("sub/f.txt"))).unwrap(), b"old style");
    assert!(!landed(&src.join(OsStr::from_bytes(b"x\xff"))).exists(), "not selected");
}
