//! Per-profile hooks: `before_backup` failing fails the backup (no manifest,
//! a `/fail` ping, `on_error` runs); `after_backup` and `on_error` get the
//! documented environment; hook output goes to the log, never to stdout.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{text, Ws};

/// Request lines a loopback HTTP server received.
type Requests = Arc<Mutex<Vec<String>>>;

fn http_recorder() -> (u16, Requests) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut length = 0;
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
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nOK");
        }
    });
    (port, seen)
}

/// `KEY=value` lines a hook wrote with `env`.
fn env_file(ws: &Ws, rel: &str) -> BTreeMap<String, String> {
    fs::read_to_string(ws.path(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Every `manifest.json` under the profile's store folder.
fn manifests(ws: &Ws, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![ws.path("store").join(prefix)];
    while let Some(dir) = dirs.pop() {
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.file_name().is_some_and(|n| n == "manifest.json") {
                found.push(p);
            }
        }
    }
    found
}

/// A files profile `app/files` with `hooks` (TOML lines) and a healthcheck URL.
fn ws_with(hooks: &str, port: u16) -> Ws {
    let ws = Ws::new();
    let src = ws.path("source");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), "some data\n").unwrap();
    ws.files_profile(
        "app/files",
        &src,
        &format!("{hooks}\n[monitoring]\nhealthcheck_url = \"http://127.0.0.1:{port}/check\"\n"),
    );
    ws
}

const DUMP_ENV: &str = "env | grep '^BACKUPAPPS_' | grep -v PASSPHRASE";

#[test]
fn failing_before_backup_fails_the_backup_with_no_manifest_a_fail_ping_and_on_error() {
    let (port, requests) = http_recorder();
    let ws = ws_with(
        &format!(
            "before_backup = [\"sh\", \"-c\", \"echo said-by-the-hook; echo hook-complains >&2; exit 3\"]\n\
             on_error = [[\"sh\", \"-c\", \"{DUMP_ENV} > data/on_error.env; echo on-error-ran\"], [\"true\"]]\n\
             after_backup = [\"sh\", \"-c\", \"touch data/after-ran\"]"
        ),
        port,
    );
    let out = ws.run(&["backup", "app/files"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(all.contains("before_backup hook failed"), "{all}");
    assert!(all.contains("exit status: 3"), "{all}");
    // Hook output is logged (stderr), never printed on stdout.
    assert!(
        stderr.contains("said-by-the-hook") && stderr.contains("hook-complains"),
        "{all}"
    );
    assert!(stderr.contains("on-error-ran"), "{all}");
    assert!(
        !stdout.contains("said-by-the-hook") && !stdout.contains("on-error-ran"),
        "{stdout}"
    );
    assert!(manifests(&ws, "app/files").is_empty(), "no manifest");
    assert!(ws.list("app/files").is_empty());
    assert!(
        !ws.path("data/after-ran").exists(),
        "after_backup does not run after a failure"
    );
    let env = env_file(&ws, "data/on_error.env");
    assert_eq!(env["BACKUPAPPS_TARGET"], "app/files");
    assert_eq!(env["BACKUPAPPS_APP"], "app");
    assert_eq!(env["BACKUPAPPS_PROFILE"], "files");
    assert_eq!(env["BACKUPAPPS_STATUS"], "failed");
    assert_eq!(env["BACKUPAPPS_HOOK"], "on_error");
    assert!(env["BACKUPAPPS_ERROR"].contains("before_backup"), "{env:?}");
    assert!(!env.contains_key("BACKUPAPPS_BACKUP_ID"), "{env:?}");
    let seen = requests.lock().unwrap().clone();
    assert!(seen.iter().any(|r| r.starts_with("POST /check/fail ")), "{seen:?}");
    assert!(
        !seen.iter().any(|r| r.starts_with("POST /check ")),
        "no success ping: {seen:?}"
    );

    // Under -q nothing of the hooks reaches stdout (or stderr, at error level only).
    let out = ws.run(&["-q", "backup", "app/files"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "{}", text(&out));
    assert!(!text(&out).contains("said-by-the-hook"), "{}", text(&out));
}

#[test]
fn after_backup_gets_the_backup_id_and_status_and_its_output_is_logged() {
    let (port, requests) = http_recorder();
    let ws = ws_with(
        &format!(
            "before_backup = [\"sh\", \"-c\", \"pwd > data/before.pwd; echo artefact > data/artefact.txt\"]\n\
             after_backup = [\"sh\", \"-c\", \"{DUMP_ENV} > data/after.env; echo after-said-this\"]\n\
             on_error = [\"sh\", \"-c\", \"touch data/on-error-ran\"]"
        ),
        port,
    );
    let out = ws
        .cmd(&["backup", "app/files"])
        .env("BACKUPAPPS_PASSPHRASE", "not for hooks")
        .output()
        .unwrap();
    // The passphrase variable is wrong for the key: the backup needs no secret key.
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("after-said-this"),
        "{}",
        text(&out)
    );
    assert!(!stdout.contains("after-said-this"), "{stdout}");
    // The hooks run in the workspace folder.
    assert_eq!(
        fs::read_to_string(ws.path("data/before.pwd")).unwrap().trim(),
        fs::canonicalize(ws.home()).unwrap().display().to_string()
    );
    let id = ws.list("app/files")[0]["id"].as_str().unwrap().to_owned();
    let env = env_file(&ws, "data/after.env");
    assert_eq!(env["BACKUPAPPS_BACKUP_ID"], id);
    assert_eq!(env["BACKUPAPPS_STATUS"], "ok");
    assert_eq!(env["BACKUPAPPS_TARGET"], "app/files");
    assert_eq!(env["BACKUPAPPS_HOOK"], "after_backup");
    assert!(!env.contains_key("BACKUPAPPS_ERROR"));
    let raw = fs::read_to_string(ws.path("data/after.env")).unwrap();
    assert!(!raw.contains("not for hooks"), "hooks never get the passphrase");
    assert!(!ws.path("data/on-error-ran").exists());
    assert!(requests.lock().unwrap().iter().any(|r| r.starts_with("POST /check ")));

    let out = ws.run(&["-q", "backup", "app/files"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(out.stdout.is_empty(), "-q: nothing on stdout: {}", text(&out));
}

#[test]
fn a_before_backup_over_its_timeout_is_stopped_and_fails_the_backup() {
    let (port, _requests) = http_recorder();
    let ws = ws_with(
        "before_backup = [\"sh\", \"-c\", \"echo $$ > data/hook.pid; sleep 60\"]\nhook_timeout = \"1s\"",
        port,
    );
    let started = Instant::now();
    let out = ws.fails(&["backup", "app/files"], 1);
    assert!(started.elapsed() < Duration::from_secs(20), "stopped at its timeout");
    assert!(out.contains("did not finish within 1 s"), "{out}");
    assert!(manifests(&ws, "app/files").is_empty());
    let pid = fs::read_to_string(ws.path("data/hook.pid")).unwrap();
    assert!(!alive(pid.trim()), "the hook was killed");
}

#[test]
fn a_hook_is_killed_with_the_run_on_sigterm() {
    let (port, _requests) = http_recorder();
    let ws = ws_with(
        "before_backup = [\"sh\", \"-c\", \"echo $$ > data/hook.pid; sleep 60\"]",
        port,
    );
    let mut child = ws.cmd(&["backup", "app/files"]).spawn().unwrap();
    let pid_file = ws.path("data/hook.pid");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pid_file.exists() || fs::read_to_string(&pid_file).unwrap().trim().is_empty() {
        assert!(Instant::now() < deadline, "the hook did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    let pid = fs::read_to_string(&pid_file).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(!alive(pid.trim()), "the hook died with the run");
    assert!(manifests(&ws, "app/files").is_empty());
}

#[test]
fn check_names_a_hook_program_that_is_missing() {
    let ws = ws_with("before_backup = [\"true\"]\non_error = [\"no-such-hook-program\"]", 9);
    let out = ws.run(&["check", "app/files"]);
    let all = text(&out);
    assert!(all.contains("on_error no-such-hook-program"), "{all}");
}

#[test]
fn bad_hook_settings_are_refused_naming_the_key() {
    let ws = ws_with("before_backup = \"pg_dumpall -g\"", 9);
    let out = ws.fails(&["check"], 2);
    assert!(out.contains("before_backup") && out.contains("argv"), "{out}");
    let ws = ws_with("before_backup = [\"true\"]\nhook_timeout = \"soonish\"", 9);
    let out = ws.fails(&["check"], 2);
    assert!(out.contains("hook_timeout"), "{out}");
}

/// Whether process `pid` exists (and is not a zombie reaped meanwhile).
fn alive(pid: &str) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.split_whitespace().nth(2).is_none_or(|s| s != "Z"),
        Err(_) => false,
    }
}
