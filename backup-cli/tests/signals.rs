//! Interrupted runs leave nothing behind (DESIGN §7, issue 13): SIGINT and
//! SIGTERM at several moments of `backup`, `restore` and `mirror` exit
//! 130/143, remove staging folders, partial copies, dumps and temporary
//! databases, give the store lease back and ping `/fail`; after `kill -9`
//! the next run removes the debris first and says so.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use support::{text, Ws};

/// A files profile `app/files` over `mib` MiB of random data with small
/// chunks made one at a time at zstd `level` (19 is slow), a plaintext local
/// copy, and a healthcheck URL on `port` if any.
fn slow_ws(mib: usize, level: u8, port: Option<u16>) -> Ws {
    let ws = Ws::new();
    let src = ws.path("source");
    fs::create_dir_all(&src).unwrap();
    let mut data = vec![0u8; mib << 20];
    rand::rngs::StdRng::seed_from_u64(5).fill(&mut data[..]);
    fs::write(src.join("blob.bin"), data).unwrap();
    let mut extra = "local_copy = \"compressed\"\n".to_owned();
    if let Some(port) = port {
        extra.push_str(&format!(
            "[monitoring]\nhealthcheck_url = \"http://127.0.0.1:{port}/ping\"\n"
        ));
    }
    ws.files_profile("app/files", &src, &extra);
    let profile = fs::read_to_string(ws.path("apps/app/files.toml")).unwrap().replace(
        "chunk_size = \"64KiB\"",
        &format!("chunk_size = \"64KiB\"\nzstd_level = {level}\nparallelism = 1"),
    );
    ws.write("apps/app/files.toml", &profile);
    ws
}

/// Request lines a loopback HTTP server received.
fn http_recorder() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut line, mut length) = (String::new(), 0);
            reader.read_line(&mut line).unwrap();
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                if header.trim().is_empty() {
                    break;
                }
                if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            record.lock().unwrap().push(line.trim().to_owned());
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK");
        }
    });
    (port, seen)
}

fn spawn(ws: &Ws, args: &[&str]) -> Child {
    ws.cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn kill(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits (at most 60 s) until `ready` holds; panics naming `what` otherwise.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < Duration::from_secs(60), "never happened: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `signal` and checks the exit status (130 for SIGINT, 143 for
/// SIGTERM) and the one log line; returns stdout + stderr.
fn interrupt(child: Child, signal: &str) -> String {
    kill(&child, signal);
    let out = child.wait_with_output().unwrap();
    let said = text(&out);
    let code = if signal == "-INT" { 130 } else { 143 };
    assert_eq!(out.status.code(), Some(code), "{signal}: {said}");
    assert!(said.contains("interrupted"), "{said}");
    said
}

/// Every entry below `dir` whose name starts with one of `prefixes` or ends
/// with `.partial`.
fn debris(dir: &Path, prefixes: &[&str]) -> Vec<PathBuf> {
    walkdir(dir)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.ends_with(".partial") || prefixes.iter().any(|x| name.starts_with(x))
        })
        .collect()
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            out.extend(walkdir(&path));
        }
        out.push(path);
    }
    out
}

/// Path → (mode, mtime, content) of everything below `dir`.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, i64, Vec<u8>)> {
    walkdir(dir)
        .into_iter()
        .map(|p| {
            let m = fs::symlink_metadata(&p).unwrap();
            let content = if m.is_file() { fs::read(&p).unwrap() } else { Vec::new() };
            (p, (m.mode(), m.mtime(), content))
        })
        .collect()
}

fn lease(ws: &Ws, target: &str, name: &str) -> PathBuf {
    ws.path(&format!("store/{target}/locks/{name}.json"))
}

/// The next run must not find a lease to take over: it was given back.
fn next_run_takes_over_nothing(ws: &Ws, args: &[&str]) {
    let out = ws.run(args);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("taking over"), "{said}");
    assert!(!said.contains("interrupted run"), "left debris: {said}");
}

#[test]
fn backup_stopped_by_sigint_or_sigterm_cleans_up_and_pings_fail() {
    let (port, pings) = http_recorder();
    let ws = slow_ws(6, 19, Some(port));
    let data = ws.path("data/app/files");
    for (signal, moment) in [
        ("-INT", "start"),
        ("-TERM", "start"),
        ("-INT", "upload"),
        ("-TERM", "upload"),
    ] {
        pings.lock().unwrap().clear();
        let child = spawn(&ws, &["backup", "app/files"]);
        match moment {
            // Right after start: it pinged /start.
            "start" => wait_until("the /start ping", || {
                pings.lock().unwrap().iter().any(|p| p.contains("/ping/start"))
            }),
            // Mid-upload: the plaintext copy grows, chunks are in the store.
            _ => wait_until("a chunk in the store and the partial copy", || {
                let stored = walkdir(&ws.path("store/app/files"))
                    .iter()
                    .any(|p| p.ends_with("data-000003.zst.gpg"));
                stored && data.join("latest.tar.partial").exists()
            }),
        }
        let said = interrupt(child, signal);
        assert_eq!(debris(&data, &[]), Vec::<PathBuf>::new(), "{signal} at {moment}");
        assert!(
            !lease(&ws, "app/files", "profile").exists(),
            "lease left: {signal} at {moment}: {said}"
        );
        assert!(
            pings.lock().unwrap().iter().any(|p| p.starts_with("POST /ping/fail")),
            "{signal} at {moment}: {:?}",
            pings.lock().unwrap()
        );
        assert!(ws.list("app/files").is_empty(), "no backup is listed");
    }
    next_run_takes_over_nothing(&ws, &["backup", "app/files", "--no-prune"]);
    assert!(data.join("latest.tar.zst").exists());
}

#[test]
fn restore_stopped_by_a_signal_leaves_the_target_as_it_was() {
    let ws = slow_ws(24, 1, None);
    ws.ok(&["backup", "app/files", "--no-prune"]);
    let target = ws.path("existing");
    fs::create_dir_all(target.join("sub")).unwrap();
    fs::write(target.join("keep.txt"), "mine").unwrap();
    fs::write(target.join("sub/also.txt"), "also mine").unwrap();
    let before = snapshot(&target);
    let to = target.to_str().unwrap();
    for (signal, moment) in [("-INT", "start"), ("-TERM", "download"), ("-INT", "download")] {
        let child = spawn(&ws, &["restore", "app/files", "--to", to]);
        match moment {
            "start" => std::thread::sleep(Duration::from_millis(150)),
            _ => wait_until("the staging folder", || {
                !debris(&target, &[".backupapps-restore-"]).is_empty()
            }),
        }
        interrupt(child, signal);
        assert_eq!(snapshot(&target), before, "{signal} at {moment}: the target changed");
        assert!(!lease(&ws, "app/files", "profile").exists());
    }
}

#[test]
fn kill_9_debris_is_removed_by_the_next_run_which_says_so() {
    let ws = slow_ws(24, 1, None);
    let data = ws.path("data/app/files");
    let child = spawn(&ws, &["backup", "app/files", "--no-prune"]);
    wait_until("the partial copy", || data.join("latest.tar.partial").exists());
    kill(&child, "-KILL");
    child.wait_with_output().unwrap();
    assert!(lease(&ws, "app/files", "profile").exists(), "kill -9 leaves the lease");
    let out = ws.run(&["backup", "app/files", "--no-prune"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("removed what an interrupted run left"), "{said}");
    assert!(said.contains("latest.tar.partial"), "{said}");
    assert!(
        said.contains("taking over the lease of a run on this host that no longer exists"),
        "{said}"
    );
    assert_eq!(debris(&data, &[]), Vec::<PathBuf>::new());
    assert!(!lease(&ws, "app/files", "profile").exists());

    let target = ws.path("existing");
    fs::create_dir_all(&target).unwrap();
    fs::write(target.join("keep.txt"), "mine").unwrap();
    let to = target.to_str().unwrap();
    let child = spawn(&ws, &["restore", "app/files", "--to", to]);
    wait_until("the staging folder", || {
        !debris(&target, &[".backupapps-restore-"]).is_empty()
    });
    kill(&child, "-KILL");
    child.wait_with_output().unwrap();
    assert!(
        !debris(&target, &[".backupapps-restore-"]).is_empty(),
        "kill -9 leaves the staging folder"
    );
    let out = ws.run(&["restore", "app/files", "--to", to]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("removed the staging folder of an interrupted restore"),
        "{said}"
    );
    assert_eq!(debris(&target, &[".backupapps-restore-"]), Vec::<PathBuf>::new());
    assert_eq!(fs::read_to_string(target.join("keep.txt")).unwrap(), "mine");
}

#[test]
fn mirror_stopped_by_a_signal_drops_its_copy_and_dump() {
    let Some(p) = support::PgWs::new(backup_pg::testing::Auth::Trust, "") else {
        return;
    };
    let (ws, pg) = (&p.ws, &p.prod);
    pg.psql("postgres", "CREATE DATABASE shop_test");
    pg.psql(
        "shop_test",
        "CREATE TABLE marker (v text); INSERT INTO marker VALUES ('old copy')",
    );
    // A sanitize step that takes its time: the copy and the dump exist meanwhile.
    ws.write("apps/shop/slow.sql", "SELECT pg_sleep(60);\n");
    let profile = fs::read_to_string(ws.path("apps/shop/db.toml")).unwrap();
    ws.write(
        "apps/shop/db.toml",
        &format!(
            "{profile}\n[mirror]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"postgres\"\ndatabase = \"shop_test\"\nbin_dir = \"{}\"\nno_owner = true\nsanitize = [\"apps/shop/slow.sql\"]\n",
            pg.port,
            pg.bindir.display()
        ),
    );
    ws.ok(&["backup", "shop/db"]);
    let copies = "SELECT count(*) FROM pg_database WHERE datname LIKE 'shop\\_test\\_\\_%'";
    let data = ws.path("data/shop/db");
    for (signal, moment) in [("-INT", "start"), ("-TERM", "restore"), ("-INT", "sanitize")] {
        let child = spawn(ws, &["mirror", "shop/db"]);
        match moment {
            "start" => std::thread::sleep(Duration::from_millis(150)),
            "restore" => wait_until("the temporary copy", || pg.psql("postgres", copies) != "0"),
            _ => wait_until("the sanitize step", || {
                pg.psql(
                    "postgres",
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'",
                ) != "0"
            }),
        }
        let said = interrupt(child, signal);
        assert_eq!(
            pg.psql("postgres", copies),
            "0",
            "{signal} at {moment}: a temporary copy is left: {said} {}",
            pg.psql("postgres", "SELECT string_agg(datname, ',') FROM pg_database")
        );
        assert_eq!(debris(&data, &[".backupapps-dump-"]), Vec::<PathBuf>::new());
        assert!(!lease(ws, "shop/db", "mirror").exists(), "{signal} at {moment}");
        assert_eq!(pg.psql("shop_test", "SELECT v FROM marker"), "old copy");
    }
    ws.write("apps/shop/slow.sql", "SELECT 1;\n");
    next_run_takes_over_nothing(ws, &["mirror", "shop/db"]);
}
