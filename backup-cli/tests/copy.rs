//! `copy` between stores and `[store] copy_to`, through the binary: a
//! timeline copied to a second file store and to a real Swift, idempotent
//! reruns, copies killed half-way and resumed, tampered and forged backups
//! left behind, and retention applied on every store.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use backup_core::Store;
use backup_files::testing::{sample_tree, snapshot};
use backup_object_store::testing::{AzuriteServer, ACCOUNT, ACCOUNT_KEY};
use backup_object_store::{AzureConfig, CloudStore};
use backup_swift::testing::{SwiftServer, KEY, S3_ACCESS_KEY_ID, S3_REGION, S3_SECRET_ACCESS_KEY, USER};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use support::{require, text, Ws};

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// A workspace with `app/files` (three backups on three days, the source
/// changed in between) and `app/big` (one backup of 12 MiB of noise in 64 KiB
/// chunks, so that a copy of it takes long enough to be killed half-way).
fn timeline() -> (Ws, Vec<String>) {
    let ws = Ws::new();
    let src = ws.path("source");
    sample_tree(&src, 256 << 10);
    ws.files_profile("app/files", &src, "");
    for day in 1..=3 {
        fs::write(src.join("day.txt"), format!("day {day}\n")).unwrap();
        let time = format!("2026-11-0{day}T02:00:00Z");
        ws.ok(&["backup", "app/files", "--no-prune", "--time", &time]);
    }
    let big = ws.path("big");
    fs::create_dir_all(&big).unwrap();
    let mut noise = vec![0u8; 12 << 20];
    rand::rngs::StdRng::seed_from_u64(17).fill(&mut noise[..]);
    fs::write(big.join("noise.bin"), noise).unwrap();
    ws.files_profile("app/big", &big, "");
    ws.ok(&["backup", "app/big", "--no-prune", "--time", "2026-11-03T03:00:00Z"]);
    let ids = ids(&ws.list("app"));
    assert_eq!(ids.len(), 4);
    (ws, ids)
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

/// Runs `args` with `[store] url` pointed at `url` (the environment wins
/// over backupapps.toml): verify, restore and prune as if on that store.
fn on_store(ws: &Ws, url: &str, args: &[&str]) -> Output {
    ws.cmd(args).env("BACKUPAPPS_STORE__URL", url).output().unwrap()
}

fn json(out: &Output) -> Vec<Value> {
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", text(out)))
        .as_array()
        .unwrap()
        .clone()
}

/// `copy --json` rows: (id, status, objects_present, bytes_sent).
fn copy(ws: &Ws, to: &str, extra: &[&str], code: i32) -> Vec<(String, String, u64, u64)> {
    let mut args = vec!["copy", "--to-store", to, "--json"];
    args.extend(extra);
    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(code), "copy {extra:?}:\n{}", text(&out));
    json(&out)
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or_default().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
                r["objects_present"].as_u64().unwrap(),
                r["bytes_sent"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// `list --store URL --json` of every profile.
fn listed(ws: &Ws, url: &str) -> Vec<Value> {
    let out = ws.run(&["list", "--store", url, "--json"]);
    assert!(out.status.success(), "list --store {url}:\n{}", text(&out));
    json(&out)
}

/// The keys of every object under `root` (a file store), staged pieces of
/// interrupted puts included.
fn file_keys(root: &Path) -> Vec<String> {
    let mut keys = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                keys.push(path.strip_prefix(root).unwrap().to_str().unwrap().to_owned());
            }
        }
    }
    keys.sort();
    keys
}

/// Every key on a store is part of a listed, trusted backup: its folder
/// holds exactly its chunks, its signature and its manifest — no lease, no
/// half-copied folder, no staged piece.
fn no_strays(keys: &[String], listed: &[Value]) {
    let mut folders: BTreeMap<String, usize> = BTreeMap::new();
    for key in keys {
        let (folder, name) = key.rsplit_once('/').unwrap_or(("", key));
        assert!(
            !name.contains('#') && !key.contains("/locks/"),
            "stray object {key} at the destination"
        );
        *folders.entry(folder.to_owned()).or_default() += 1;
    }
    let mut want = BTreeMap::new();
    for row in listed {
        assert_eq!(row["trusted"], true, "{row}");
        let folder = format!("{}/{}", row["target"].as_str().unwrap(), row["id"].as_str().unwrap());
        want.insert(folder, row["chunks"].as_u64().unwrap() as usize + 2);
    }
    assert_eq!(folders, want, "objects per backup folder");
}

/// Every backup on the store at `url` verifies fully and restores to the
/// same tree as from the workspace's own store.
fn same_backups(ws: &Ws, url: &str, ids: &[String]) {
    let out = on_store(ws, url, &["verify", "--all", "--json"]);
    assert!(out.status.success(), "verify on {url}:\n{}", text(&out));
    let verified: BTreeSet<String> = json(&out)
        .iter()
        .filter(|r| r["result"] == "ok" && r["mode"] == "full")
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(verified, ids.iter().cloned().collect(), "verified on {url}");
    for row in ws.list("app") {
        let (target, id) = (row["target"].as_str().unwrap(), row["id"].as_str().unwrap());
        let here = restore_to(ws, None, target, id);
        let there = restore_to(ws, Some(url), target, id);
        // The folders above the source's are made by the restore, just now.
        let source = ws.path(if target == "app/big" { "big" } else { "source" });
        let inside = source.strip_prefix("/").unwrap();
        let want = snapshot(&here.join(inside));
        assert!(!want.is_empty(), "{target} {id} restored nothing");
        assert!(
            snapshot(&there.join(inside)) == want,
            "{target} {id} restores differently from {url}"
        );
        fs::remove_dir_all(&here).unwrap();
        fs::remove_dir_all(&there).unwrap();
    }
}

fn restore_to(ws: &Ws, url: Option<&str>, target: &str, id: &str) -> PathBuf {
    let dir = ws.path(&format!("restored-{}-{id}", url.map_or("here", |_| "there")));
    let args = ["restore", target, "--id", id, "--to", dir.to_str().unwrap()];
    let out = match url {
        Some(url) => on_store(ws, url, &args),
        None => ws.run(&args),
    };
    assert!(out.status.success(), "restore {target} {id}:\n{}", text(&out));
    dir
}

/// Starts `copy` of app/big to `to`, one object at a time, and kills it
/// (SIGKILL: nothing cleans up) once `landed` sees part of the backup at the
/// destination but not its manifest; retried a few times should the copy
/// win the race.
fn kill_half_way(ws: &Ws, to: &str, big: &str, landed: impl Fn() -> (usize, bool), reset: impl Fn()) {
    for _ in 0..5 {
        let mut child = ws
            .cmd(&["copy", "app/big", "--to-store", to, "--parallelism", "1"])
            .spawn()
            .unwrap();
        let started = Instant::now();
        let mut seen = (0, false);
        while started.elapsed() < Duration::from_secs(60) {
            seen = landed();
            if seen.0 > 0 || seen.1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = child.kill();
        child.wait().unwrap();
        let after = landed();
        if seen.0 > 0 && !after.1 {
            assert!(
                !ids(&listed(ws, to)).contains(&big.to_owned()),
                "a half-copied backup is listed"
            );
            return;
        }
        reset();
    }
    panic!("the copy to {to} always finished before it could be killed");
}

#[test]
fn a_timeline_is_copied_to_file_swift_and_s3_stores_resumed_after_a_kill_and_verifies_there() {
    if !require("zstd", "zstd") {
        return;
    }
    let (ws, all) = timeline();
    let big = ws.list("app/big")[0]["id"].as_str().unwrap().to_owned();
    let files: Vec<String> = all.iter().filter(|id| **id != big).cloned().collect();
    let offsite = ws.path("offsite");
    let offsite_url = file_url(&offsite);

    // The files timeline first, then a rerun that sends nothing.
    let first = copy(&ws, &offsite_url, &["app/files"], 0);
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|r| r.1 == "copied" && r.3 > 0), "{first:?}");
    let again = copy(&ws, &offsite_url, &["app/files", "--all"], 0);
    assert!(again.iter().all(|r| r.1 == "skipped" && r.3 == 0), "{again:?}");
    let newest = copy(&ws, &offsite_url, &["app/files", "--newest", "1"], 0);
    assert_eq!(newest.len(), 1, "{newest:?}");
    assert_eq!(newest[0].0, files[2]);
    let out = ws.run(&["copy", "--to-store", &offsite_url, "--id", &files[0]]);
    assert_eq!(out.status.code(), Some(2), "--id needs one profile:\n{}", text(&out));
    let out = ws.run(&["copy", "--to-store", &file_url(&ws.path("store")), "app/files"]);
    assert_eq!(out.status.code(), Some(2), "copy onto itself:\n{}", text(&out));
    assert!(text(&out).contains("own store"), "{}", text(&out));
    assert_eq!(ids(&listed(&ws, &offsite_url)), files);

    // app/big killed half-way, then every profile copied: the killed one
    // resumes (what landed is not sent again), the others are skipped.
    let big_folder = offsite.join("app/big").join(&big);
    kill_half_way(
        &ws,
        &offsite_url,
        &big,
        || match fs::read_dir(&big_folder) {
            Ok(entries) => {
                let names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                (
                    names
                        .iter()
                        .filter(|n| n.starts_with("data-") && !n.contains('#'))
                        .count(),
                    names.iter().any(|n| n == "manifest.json"),
                )
            }
            Err(_) => (0, false),
        },
        || {
            let _ = fs::remove_dir_all(&big_folder);
        },
    );
    let resumed = copy(&ws, &offsite_url, &[], 0);
    let big_row = resumed.iter().find(|r| r.0 == big).unwrap();
    assert!(big_row.1 == "copied" && big_row.2 > 0, "resumed: {resumed:?}");
    assert!(
        resumed.iter().filter(|r| r.0 != big).all(|r| r.1 == "skipped"),
        "{resumed:?}"
    );
    // A SIGKILLed put may leave a staged piece, which prune sweeps once it is
    // older than the grace period (the objects themselves are complete).
    std::thread::sleep(Duration::from_millis(1100));
    let out = ws
        .cmd(&["prune"])
        .env("BACKUPAPPS_STORE__URL", &offsite_url)
        .env("BACKUPAPPS_RETENTION__INCOMPLETE_GRACE", "1s")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let listed_offsite = listed(&ws, &offsite_url);
    assert_eq!(ids(&listed_offsite), all);
    no_strays(&file_keys(&offsite), &listed_offsite);
    same_backups(&ws, &offsite_url, &all);

    // The same to a real Swift, and to S3 (Swift's own S3 API), killed
    // half-way too.
    if !require("swift", "python3-swiftclient") {
        return;
    }
    let Some(server) = SwiftServer::shared() else { return };
    let global = fs::read_to_string(ws.path("backupapps.toml")).unwrap();
    ws.write(
        "backupapps.toml",
        &format!(
            "{global}\n[store.swift]\nauth_url = \"{}\"\nauth_version = \"1\"\nusername = \"{USER}\"\npassword_file = \"secrets/swift.key\"\n\
             [store.s3]\nendpoint = \"{}\"\nregion = \"{S3_REGION}\"\naccess_key_id = \"{S3_ACCESS_KEY_ID}\"\nsecret_access_key_file = \"secrets/swift.key\"\n\
             multipart_threshold = 5242880\npart_size = 5242880\n",
            server.auth_url(),
            server.s3_endpoint(),
        ),
    );
    ws.write("secrets/swift.key", &format!("{KEY}\n"));
    fs::set_permissions(
        ws.path("secrets/swift.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    assert_eq!(S3_SECRET_ACCESS_KEY, KEY, "the S3 secret is the tempauth key");
    copy_resume_verify(&ws, &server, "swift://copies/offsite", "copies", &big, &all);
    // An S3 bucket is a container of the account; the S3 store does not create it.
    swift(&server, &["post", "copies3"]);
    copy_resume_verify(&ws, &server, "s3://copies3/offsite", "copies3", &big, &all);
}

fn swift(server: &SwiftServer, args: &[&str]) -> Output {
    Command::new("swift")
        .args(server.cli_args())
        .args(args)
        .env_remove("OS_AUTH_URL")
        .output()
        .unwrap()
}

/// The timeline to `url` (objects under `offsite/` in the Swift `container`,
/// whether written through Swift or its S3 API).
fn copy_resume_verify(ws: &Ws, server: &SwiftServer, url: &str, container: &str, big: &str, all: &[String]) {
    let keys = || -> Vec<String> {
        let out = swift(server, &["list", container, "--prefix", "offsite/"]);
        if !out.status.success() {
            return Vec::new(); // the container is made by the first copy
        }
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.trim_start_matches("offsite/").to_owned())
            .collect()
    };
    let delete = |key: &str| {
        swift(server, &["delete", container, &format!("offsite/{key}")]);
    };
    resume_and_verify(ws, url, big, all, &keys, &delete);
}

/// The timeline to `url`: app/files first, app/big killed half-way, the
/// rest resumed, a rerun that sends nothing; then every backup there is
/// complete, verifies and restores, and `keys` (a raw listing of the
/// destination, relative to `url`) shows nothing else. `delete` removes a
/// key, should a copy finish before it could be killed.
fn resume_and_verify(
    ws: &Ws,
    url: &str,
    big: &str,
    all: &[String],
    keys: &dyn Fn() -> Vec<String>,
    delete: &dyn Fn(&str),
) {
    let first = copy(ws, url, &["app/files"], 0);
    assert!(first.len() == 3 && first.iter().all(|r| r.1 == "copied"), "{first:?}");
    let big_prefix = format!("app/big/{big}/");
    kill_half_way(
        ws,
        url,
        big,
        || {
            let keys = keys();
            let inside: Vec<&String> = keys.iter().filter(|k| k.starts_with(&big_prefix)).collect();
            (
                inside.iter().filter(|k| k.contains("/data-")).count(),
                inside.iter().any(|k| k.ends_with("/manifest.json")),
            )
        },
        || {
            for key in keys().iter().filter(|k| k.starts_with(&big_prefix)) {
                delete(key);
            }
        },
    );
    let resumed = copy(ws, url, &[], 0);
    let big_row = resumed.iter().find(|r| r.0 == big).unwrap();
    assert!(big_row.1 == "copied" && big_row.2 > 0, "resumed: {resumed:?}");
    assert!(
        resumed.iter().filter(|r| r.0 != big).all(|r| r.1 == "skipped"),
        "{resumed:?}"
    );
    let again = copy(ws, url, &[], 0);
    assert!(again.iter().all(|r| r.1 == "skipped" && r.3 == 0), "{again:?}");
    let listed_there = listed(ws, url);
    assert_eq!(ids(&listed_there), all);
    no_strays(&keys(), &listed_there);
    same_backups(ws, url, all);
}

#[test]
fn a_timeline_is_copied_to_azure_on_azurite_resumed_after_a_kill() {
    if !(require("zstd", "zstd") && require("curl", "curl")) {
        return;
    }
    let Some(server) = AzuriteServer::start() else { return };
    // Public for reading, so that curl lists the raw blobs.
    server.create_container_with("copies", true);
    let (ws, all) = timeline();
    let big = ws.list("app/big")[0]["id"].as_str().unwrap().to_owned();
    let global = fs::read_to_string(ws.path("backupapps.toml")).unwrap();
    ws.write(
        "backupapps.toml",
        &format!(
            "{global}\n[store.azure]\naccount = \"{ACCOUNT}\"\nendpoint = \"{}\"\naccess_key_file = \"secrets/azure.key\"\n",
            server.endpoint()
        ),
    );
    ws.write("secrets/azure.key", &format!("{ACCOUNT_KEY}\n"));
    fs::set_permissions(
        ws.path("secrets/azure.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let url = "az://copies/offsite";
    let endpoint = server.endpoint();
    let keys = || -> Vec<String> {
        let out = Command::new("curl")
            .arg("-sf")
            .arg(format!(
                "{endpoint}/copies?restype=container&comp=list&prefix=offsite/&maxresults=5000"
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8(out.stdout)
            .unwrap()
            .split("<Name>")
            .skip(1)
            .filter_map(|s| {
                s.split_once("</Name>")
                    .map(|(name, _)| name.trim_start_matches("offsite/").to_owned())
            })
            .collect()
    };
    let config = AzureConfig {
        account: Some(ACCOUNT.into()),
        endpoint: Some(endpoint.clone()),
        ..Default::default()
    };
    let env = [("AZURE_STORAGE_ACCOUNT_KEY".to_owned(), ACCOUNT_KEY.to_owned())].into();
    let store = CloudStore::azure(url, &config, Path::new("/"), &env).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let delete = |key: &str| runtime.block_on(store.delete(key)).unwrap();
    resume_and_verify(&ws, url, &big, &all, &keys, &delete);
}

#[test]
fn tampered_and_forged_backups_are_named_and_not_copied() {
    let ws = Ws::new();
    let src = ws.path("source");
    sample_tree(&src, 256 << 10);
    ws.files_profile("app/files", &src, "");
    for day in 1..=3 {
        fs::write(src.join("day.txt"), format!("day {day}\n")).unwrap();
        ws.ok(&[
            "backup",
            "app/files",
            "--no-prune",
            "--time",
            &format!("2026-11-0{day}T02:00:00Z"),
        ]);
    }
    let ids = ids(&ws.list("app/files"));
    let store = ws.path("store/app/files");
    // The middle backup: its last data chunk overwritten with as many bytes.
    let chunk = store.join(&ids[1]).join("data-000002.zst.gpg");
    let size = fs::metadata(&chunk).unwrap().len() as usize;
    fs::write(&chunk, vec![0x5a; size]).unwrap();
    // A forged backup: a real one copied into a folder of another id.
    let forged = "20261104T020000Z-beef";
    fs::create_dir_all(store.join(forged)).unwrap();
    for entry in fs::read_dir(store.join(&ids[2])).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_file() {
            fs::copy(entry.path(), store.join(forged).join(entry.file_name())).unwrap();
        }
    }
    let offsite = ws.path("offsite");
    let url = file_url(&offsite);
    let out = ws.run(&["copy", "--to-store", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("copy of backup {} failed", ids[1])) && stderr.contains("data-000002.zst.gpg"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("copy of backup {forged} failed: not trusted")),
        "{stderr}"
    );
    let there = listed(&ws, &url);
    assert_eq!(ids_of(&there), [ids[0].clone(), ids[2].clone()]);
    no_strays(&file_keys(&offsite), &there);
    // Only the good ones verify there; the damaged one was never sent.
    let out = on_store(&ws, &url, &["verify", "--all"]);
    assert!(out.status.success(), "{}", text(&out));
}

fn ids_of(rows: &[Value]) -> Vec<String> {
    ids(rows)
}

#[test]
fn copy_to_copies_every_new_backup_and_prune_keeps_each_store_in_retention() {
    let ws = Ws::new();
    let second = ws.path("second");
    let global = fs::read_to_string(ws.path("backupapps.toml")).unwrap();
    let at = global.find("[store]\n").unwrap() + "[store]\n".len();
    ws.write(
        "backupapps.toml",
        &format!(
            "{}copy_to = [\"{}\"]\n{}",
            &global[..at],
            file_url(&second),
            &global[at..]
        ),
    );
    let src = ws.path("source");
    sample_tree(&src, 64 << 10);
    ws.files_profile(
        "app/files",
        &src,
        "[retention]\nlast = 0\nhourly = 0\ndaily = 2\nweekly = 0\nmonthly = 0\nyearly = 0\n",
    );
    let second_url = file_url(&second);
    for day in 1..=3 {
        fs::write(src.join("day.txt"), format!("day {day}\n")).unwrap();
        let out = ws.ok(&["backup", "app/files", "--time", &format!("2026-11-0{day}T02:00:00Z")]);
        assert!(out.contains("copied to"), "{out}");
        let main = ids(&ws.list("app/files"));
        assert_eq!(ids(&listed(&ws, &second_url)), main, "after backup {day}");
    }
    let main = ids(&ws.list("app/files"));
    assert_eq!(main.len(), 2, "daily = 2 on the main store");
    let there = listed(&ws, &second_url);
    no_strays(&file_keys(&second), &there);
    same_backups(&ws, &second_url, &main);

    // `prune` alone plans each store from its own catalog: one plan each.
    let out = ws.run(&["prune", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let plans = json(&out);
    let stores: Vec<&str> = plans.iter().map(|p| p["store"].as_str().unwrap()).collect();
    assert_eq!(stores.len(), 2, "{plans:?}");
    assert!(stores.contains(&second_url.as_str()), "{stores:?}");
    assert!(
        plans.iter().all(|p| p["keep"].as_array().unwrap().len() == 2),
        "{plans:?}"
    );

    // A copy_to store that cannot be used fails the run for the profile
    // with a clear message (a store URL that cannot work is a configuration
    // error: exit 2); the backup itself is stored.
    let broken = fs::read_to_string(ws.path("backupapps.toml"))
        .unwrap()
        .replace(&second_url, "file:///proc/backupapps-nowhere");
    ws.write("backupapps.toml", &broken);
    let out = ws.run(&["backup", "app/files", "--time", "2026-11-04T02:00:00Z"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("copy_to") && said.contains("backupapps-nowhere"),
        "{said}"
    );
    assert!(
        ids(&ws.list("app/files"))
            .iter()
            .any(|id| id.starts_with("20261104T02")),
        "the backup itself stays"
    );
}

#[test]
fn sigterm_during_a_copy_gives_the_destination_lease_back() {
    let (ws, _) = timeline();
    let big = ws.list("app/big")[0]["id"].as_str().unwrap().to_owned();
    let offsite = ws.path("offsite");
    let url = file_url(&offsite);
    let folder = offsite.join("app/big").join(&big);
    let landed = || {
        fs::read_dir(&folder).map_or(0, |entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("data-"))
                .count()
        })
    };
    let mut stopped = false;
    for _ in 0..5 {
        let child = ws
            .cmd(&["copy", "app/big", "--to-store", &url, "--parallelism", "1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while landed() == 0 && started.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(2));
        }
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait_with_output().unwrap().status;
        if status.code() == Some(143) {
            stopped = true;
            break;
        }
        assert!(status.success(), "copy: {status:?}");
        let _ = fs::remove_dir_all(&folder); // it finished first: again
    }
    assert!(stopped, "the copy always finished before SIGTERM");
    assert!(
        !offsite.join("app/big/locks/profile.json").exists(),
        "the destination's lease was not given back"
    );
    assert!(!folder.join("manifest.json").exists());
    // The next copy resumes at once: no lease to wait for.
    let rows = copy(&ws, &url, &["app/big"], 0);
    assert!(rows.len() == 1 && rows[0].1 == "copied" && rows[0].2 > 0, "{rows:?}");
}
