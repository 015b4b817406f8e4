//! Running unattended: locks, the scheduler, signals, healthchecks, metrics,
//! JSON logs, crontab, completions.

mod support;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use support::{text, Ws};

/// A workspace whose profile `app/files` backs up `source` with small chunks,
/// one at a time at zstd level 19,
/// so that a backup of `mib` MiB takes a moment.
fn slow_ws(mib: usize) -> Ws {
    let ws = Ws::new();
    let src = ws.path("source");
    fs::create_dir_all(&src).unwrap();
    let mut data = vec![0u8; mib << 20];
    rand::rngs::StdRng::seed_from_u64(3).fill(&mut data[..]);
    fs::write(src.join("blob.bin"), data).unwrap();
    ws.files_profile("app/files", &src, "");
    let profile = fs::read_to_string(ws.path("apps/app/files.toml"))
        .unwrap()
        // Slow by the slowest valid settings (chunk_size is at least 64KiB).
        .replace(
            "chunk_size = \"64KiB\"",
            "chunk_size = \"64KiB\"\nzstd_level = 19\nparallelism = 1",
        );
    ws.write("apps/app/files.toml", &profile);
    ws
}

fn sigterm(pid: u32) {
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
}

#[test]
fn a_held_lock_refuses_a_second_run_and_a_dead_holder_does_not_block() {
    let ws = slow_ws(1);
    let dir = ws.path("data/locks");
    fs::create_dir_all(&dir).unwrap();
    let mut held = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("profile-app-files.lock"))
        .unwrap();
    held.lock().unwrap();
    held.write_all(format!("pid {} since now\n", std::process::id()).as_bytes())
        .unwrap();
    let out = ws.fails(&["backup", "app/files"], 1);
    assert!(
        out.contains("already running") && out.contains(&format!("pid {}", std::process::id())),
        "{out}"
    );
    assert!(ws.list("app/files").is_empty(), "nothing was written");
    // The lock file stays behind, but an unlocked file blocks nobody (a killed
    // holder's lock is released by the kernel the same way: see killed_backup.rs).
    drop(held);
    ws.ok(&["backup", "app/files"]);

    // Two runs at once: one refuses, never both write.
    let first = ws
        .cmd(&["backup", "app/files", "--no-prune"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let second = ws.run(&["backup", "app/files", "--no-prune"]);
    let first = first.wait_with_output().unwrap();
    let outcomes = [first.status.success(), second.status.success()];
    assert!(outcomes.iter().any(|ok| *ok), "{}\n{}", text(&first), text(&second));
    if outcomes.iter().all(|ok| *ok) {
        // The first finished before the second started: then they did not overlap.
        assert_eq!(ws.list("app/files").len(), 3);
    } else {
        assert!(text(&second).contains("already running"), "{}", text(&second));
        assert_eq!(ws.list("app/files").len(), 2);
    }
}

#[test]
fn sigterm_during_a_backup_leaves_no_listed_partial_backup() {
    let ws = slow_ws(8);
    let child = ws
        .cmd(&["backup", "app/files"])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    sigterm(child.id());
    let status = child.wait_with_output().unwrap().status;
    assert!(!status.success(), "the backup was still running when SIGTERM came");
    assert!(ws.list("app/files").is_empty());
    ws.ok(&["backup", "app/files"]);
    ws.ok(&["verify", "app/files"]);
}

/// (request line, body) of each request received.
type Requests = Arc<Mutex<Vec<(String, String)>>>;

/// Records the requests a loopback HTTP server receives.
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
            record
                .lock()
                .unwrap()
                .push((line.trim().to_owned(), String::from_utf8_lossy(&body).into_owned()));
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK")
                .unwrap();
        }
    });
    (port, seen)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{target=\"app/files\"}}")))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_else(|| panic!("{name} missing in:\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn healthcheck_pings_and_metrics_file_on_success_and_failure() {
    let ws = slow_ws(1);
    let (port, seen) = http_recorder();
    let profile = fs::read_to_string(ws.path("apps/app/files.toml")).unwrap();
    ws.write(
        "apps/app/files.toml",
        &format!("{profile}[monitoring]\nhealthcheck_url = \"http://127.0.0.1:{port}/ping/abc\"\nmetrics_file = \"metrics.prom\"\n"),
    );
    ws.ok(&["backup", "app/files"]);
    let id = ws.list("app/files")[0]["id"].as_str().unwrap().to_owned();
    {
        let requests = seen.lock().unwrap();
        let lines: Vec<&str> = requests.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(lines, vec!["POST /ping/abc/start HTTP/1.1", "POST /ping/abc HTTP/1.1"]);
        assert!(requests[1].1.contains(&id), "{:?}", requests[1]);
    }
    let prom = fs::read_to_string(ws.path("metrics.prom")).unwrap();
    assert_eq!(metric(&prom, "backupapps_last_run_success"), 1.0);
    assert!(metric(&prom, "backupapps_last_size_bytes") >= (1 << 20) as f64);
    assert!(metric(&prom, "backupapps_last_stored_bytes") > 0.0);
    assert_eq!(metric(&prom, "backupapps_failures_total"), 0.0);
    let success_time = metric(&prom, "backupapps_last_success_timestamp_seconds");
    assert!((success_time - chrono::Utc::now().timestamp() as f64).abs() < 120.0);

    fs::remove_dir_all(ws.path("source")).unwrap();
    ws.fails(&["backup", "app/files"], 1);
    {
        let requests = seen.lock().unwrap();
        let (line, body) = requests.last().unwrap();
        assert_eq!(line, "POST /ping/abc/fail HTTP/1.1");
        assert!(body.contains("source"), "{body}");
    }
    let prom = fs::read_to_string(ws.path("metrics.prom")).unwrap();
    assert_eq!(metric(&prom, "backupapps_last_run_success"), 0.0);
    assert_eq!(metric(&prom, "backupapps_failures_total"), 1.0);
    assert_eq!(
        metric(&prom, "backupapps_last_success_timestamp_seconds"),
        success_time,
        "the last success stays"
    );
}

#[test]
fn json_logs_carry_one_summary_per_profile() {
    let ws = slow_ws(1);
    let out = ws.run(&["--log-format", "json", "backup", "app/files"]);
    assert!(out.status.success(), "{}", text(&out));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let summary = events
        .iter()
        .find(|e| e["message"] == "backup done")
        .expect("a summary event");
    assert_eq!(summary["target_profile"], "app/files");
    assert!(summary["stored"].as_u64().unwrap() > 0 && summary["seconds"].is_number() && summary["store"].is_string());
}

#[test]
fn scheduler_fires_skips_overlaps_and_stops_on_sigterm() {
    let ws = slow_ws(6);
    let profile = fs::read_to_string(ws.path("apps/app/files.toml")).unwrap();
    // Every second, with a backup that takes longer than that: overlaps are skipped.
    ws.write("apps/app/files.toml", &format!("schedule = \"* * * * * *\"\n{profile}"));
    let quick = ws.path("quick");
    fs::create_dir_all(&quick).unwrap();
    fs::write(quick.join("q.txt"), b"quick").unwrap();
    ws.files_profile("app/quick", &quick, "schedule = \"*/2 * * * * *\"");
    let crontab = ws.ok(&["schedule", "crontab"]);
    assert!(crontab.contains("cannot express seconds"), "{crontab}");

    let mut child = ws
        .cmd(&["schedule", "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        let text = log.lock().unwrap().clone();
        if text.matches("job=\"backup app/quick\"").count() >= 4 && text.contains("still running") {
            break;
        }
    }
    sigterm(child.id());
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let text = log.lock().unwrap().clone();
    assert!(status.success(), "{text}");
    assert!(text.contains("skipped: its previous run is still running"), "{text}");
    assert!(ws.list("app/quick").len() >= 2, "{text}");
    assert!(text.contains("stopping"), "{text}");
    // Whatever SIGTERM cut short is not listed; what is listed verifies.
    ws.ok(&["verify", "--all"]);
}

#[test]
fn crontab_lines_and_bad_cron_expressions() {
    let ws = slow_ws(1);
    let profile = fs::read_to_string(ws.path("apps/app/files.toml")).unwrap();
    ws.write("apps/app/files.toml", &format!("schedule = \"1 2 * * *\"\n{profile}"));
    let out = ws.ok(&["schedule", "crontab"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("1 2 * * *"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains(&format!("cd '{}'", ws.home().display())) && line.ends_with("-q backup app/files"),
        "{line}"
    );
    ws.write("apps/app/files.toml", &format!("schedule = \"every night\"\n{profile}"));
    let out = ws.fails(&["schedule", "crontab"], 2);
    assert!(
        out.contains("apps/app/files.toml schedule") && out.contains("not a cron expression"),
        "{out}"
    );
}

#[test]
fn completions_and_man_page() {
    let ws = Ws::new();
    let bash = ws.ok(&["completions", "bash"]);
    assert!(bash.contains("backupapps") && bash.contains("restore"), "{bash}");
    let man = ws.ok(&["man"]);
    assert!(man.contains(".TH backupapps") || man.contains(".TH"), "{man}");
}

#[test]
fn progress_shows_on_a_terminal_only() {
    if !support::require("script", "bsdutils") {
        return;
    }
    let ws = slow_ws(6);
    // `script` gives the command a pseudo-terminal, as an operator's shell would.
    let command = format!(
        "{} --home '{}' backup app/files --no-prune",
        support::BIN,
        ws.home().display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{tty}");
    assert!(tty.contains("app/files: backing up") && tty.contains("/s)"), "{tty}");
    // Under cron (no terminal) there is no progress at all.
    let piped = ws.run(&["backup", "app/files", "--no-prune"]);
    assert!(!text(&piped).contains("backing up"), "{}", text(&piped));
}

#[test]
fn a_lease_in_the_shared_store_keeps_two_hosts_apart() {
    // Two workspaces (two hosts: separate lock folders) share one store and profile.
    let a = slow_ws(6);
    let b = slow_ws(1);
    let store_url = format!("file://{}/store", a.home().display());
    for ws in [&a, &b] {
        let global = fs::read_to_string(ws.path("backupapps.toml")).unwrap();
        let start = global.find("url = ").unwrap();
        let end = start + global[start..].find('\n').unwrap();
        ws.write(
            "backupapps.toml",
            &format!("{}url = \"{store_url}\"{}", &global[..start], &global[end..]),
        );
    }
    fs::copy(a.path("secrets/backup.pub.asc"), b.path("secrets/backup.pub.asc")).unwrap();

    // A slow backup on "host" a holds the lease; b is refused, naming a.
    let running = a
        .cmd(&["backup", "app/files", "--no-prune"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lease = a.path("store/app/files/locks/profile.json");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lease.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = b.fails(&["backup", "app/files", "--no-prune"], 1);
    assert!(
        out.contains("in use by host") && out.contains(&format!("pid {}", running.id())),
        "{out}"
    );
    let status = running.wait_with_output().unwrap().status;
    assert!(status.success());
    assert!(!lease.exists(), "released at the end");

    // A lease whose holder died (not renewed, expired) is taken over.
    fs::create_dir_all(lease.parent().unwrap()).unwrap();
    fs::write(
        &lease,
        r#"{"host":"gone-host","pid":4242,"started":"2026-01-01T00:00:00Z","expires":"2026-01-01T00:10:00Z","token":"x"}"#,
    )
    .unwrap();
    let out = b.run(&["backup", "app/files", "--no-prune"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("taking over an expired lease") && text(&out).contains("gone-host"),
        "{}",
        text(&out)
    );
    assert_eq!(a.list("app/files").len(), 2);
}

#[test]
fn sighup_reloads_the_schedules() {
    let ws = slow_ws(1);
    let mut child = ws
        .cmd(&["schedule", "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(ws.list("app/files").is_empty(), "no schedule yet");
    let profile = fs::read_to_string(ws.path("apps/app/files.toml")).unwrap();
    ws.write("apps/app/files.toml", &format!("schedule = \"* * * * * *\"\n{profile}"));
    Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ws.list("app/files").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    sigterm(child.id());
    assert!(child.wait().unwrap().success());
    assert!(!ws.list("app/files").is_empty(), "the reloaded schedule fired");
}
