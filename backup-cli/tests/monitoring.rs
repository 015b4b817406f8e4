//! Monitoring of every job (issue 14): healthcheck pings for `backup`,
//! `mirror`, `verify` and `prune` — per profile, and once per run for the
//! global URL, which fails when any profile failed — and the Prometheus
//! textfile, merged per job and target. A local HTTP listener records what
//! arrives.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use support::{PgWs, Ws};

/// One request the listener received.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    body: String,
}

/// A healthchecks-like HTTP server on loopback: records every request and
/// answers 200, or 500 for paths under `/broken`.
struct Listener {
    port: u16,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl Listener {
    fn start() -> Listener {
        let socket = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for stream in socket.incoming().flatten() {
                let record = record.clone();
                std::thread::spawn(move || serve(stream, &record));
            }
        });
        Listener { port, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Takes what arrived so far.
    fn take(&self) -> Vec<Request> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// Serves the requests of one connection (keep-alive: several).
fn serve(stream: TcpStream, record: &Mutex<Vec<Request>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        );
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let status = if path.starts_with("/broken") {
            "500 Internal Server Error"
        } else {
            "200 OK"
        };
        record.lock().unwrap().push(Request {
            method,
            path,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\n\r\nOK");
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn paths(requests: &[Request]) -> Vec<String> {
    requests.iter().map(|r| r.path.clone()).collect()
}

/// Appends a `[monitoring]` section to `backupapps.toml` (the template has
/// it commented out only).
fn global_monitoring(ws: &Ws, keys: &str) {
    let file = ws.path("backupapps.toml");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(&format!("\n[monitoring]\nmetrics_file = \"metrics.prom\"\n{keys}\n"));
    std::fs::write(file, text).unwrap();
}

/// The value of `metric` for `target` in the textfile.
fn metric(ws: &Ws, metric: &str, target: &str) -> Option<String> {
    let text = std::fs::read_to_string(ws.path("metrics.prom")).unwrap();
    text.lines()
        .find(|l| l.starts_with(&format!("{metric}{{")) && l.contains(&format!("target=\"{target}\"")))
        .map(|l| l.rsplit(' ').next().unwrap().to_owned())
}

/// Three profiles: `app/one` and `app/three` back up fine, `app/two` fails
/// (its folder is missing); `app/three` has its own backup URL.
fn three_profiles(hc: &Listener) -> Ws {
    let ws = Ws::new();
    for name in ["one", "three"] {
        let dir = ws.path(&format!("src/{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.txt"), format!("content of {name}")).unwrap();
    }
    ws.files_profile("app/one", &ws.path("src/one"), "");
    ws.files_profile("app/two", &ws.path("src/missing"), "");
    ws.files_profile(
        "app/three",
        &ws.path("src/three"),
        &format!("[monitoring]\nhealthcheck_url = \"{}\"\n", hc.url("/three")),
    );
    global_monitoring(
        &ws,
        &format!(
            "healthcheck_url = \"{}\"\nverify_healthcheck_url = \"{}\"\nprune_healthcheck_url = \"{}\"",
            hc.url("/global"),
            hc.url("/verify"),
            hc.url("/prune")
        ),
    );
    ws
}

#[test]
fn a_failing_profile_among_successes_fails_the_global_ping() {
    let hc = Listener::start();
    let ws = three_profiles(&hc);
    let out = ws.fails(&["backup"], 1);
    assert!(out.contains("app/two: backup failed"), "{out}");
    let seen = hc.take();
    let got = paths(&seen);
    // The run's URL: one start, one fail at the end naming the failed
    // profile (not a success hiding it); app/three's own URL per profile.
    assert_eq!(got.first().map(String::as_str), Some("/global/start"), "{got:?}");
    assert_eq!(got.last().map(String::as_str), Some("/global/fail"), "{got:?}");
    assert_eq!(got.iter().filter(|p| p.starts_with("/global")).count(), 2, "{got:?}");
    assert!(
        got.contains(&"/three/start".to_owned()) && got.contains(&"/three".to_owned()),
        "{got:?}"
    );
    assert!(seen.iter().all(|r| r.method == "POST"));
    let fail = seen.iter().find(|r| r.path == "/global/fail").unwrap();
    assert!(
        fail.body.contains("1 of 3 profiles failed") && fail.body.contains("app/two"),
        "{}",
        fail.body
    );
    assert!(!fail.body.contains("app/one:"), "only failures listed: {}", fail.body);
    // Metrics per job and target, with the first version's names kept.
    assert_eq!(
        metric(&ws, "backupapps_backup_last_status", "app/one").as_deref(),
        Some("1")
    );
    assert_eq!(
        metric(&ws, "backupapps_backup_last_status", "app/two").as_deref(),
        Some("0")
    );
    assert_eq!(
        metric(&ws, "backupapps_backup_failures_total", "app/two").as_deref(),
        Some("1")
    );
    assert_eq!(
        metric(&ws, "backupapps_last_run_success", "app/two").as_deref(),
        Some("0")
    );
    assert!(metric(&ws, "backupapps_last_success_timestamp_seconds", "app/one").is_some());
    assert!(metric(&ws, "backupapps_backup_last_success_timestamp_seconds", "app/two").is_none());
    assert!(metric(&ws, "backupapps_backup_last_duration_seconds", "app/three").is_some());
    // The prune after each successful backup writes its own lines.
    assert_eq!(
        metric(&ws, "backupapps_prune_last_status", "app/one").as_deref(),
        Some("1")
    );
    let text = std::fs::read_to_string(ws.path("metrics.prom")).unwrap();
    assert!(
        text.contains("backupapps_backup_last_status{app=\"app\",profile=\"one\",target=\"app/one\"} 1"),
        "{text}"
    );

    // All well again: the run's ping is a success.
    std::fs::remove_file(ws.path("apps/app/two.toml")).unwrap();
    ws.ok(&["backup"]);
    let got = paths(&hc.take());
    assert_eq!(got.last().map(String::as_str), Some("/global"), "{got:?}");
}

#[test]
fn verify_and_prune_ping_their_own_urls_and_keep_the_backup_lines() {
    let hc = Listener::start();
    let ws = three_profiles(&hc);
    std::fs::remove_file(ws.path("apps/app/two.toml")).unwrap();
    ws.ok(&["backup", "--no-prune"]);
    hc.take();
    ws.ok(&["verify"]);
    let got = paths(&hc.take());
    // Neither the backup URLs nor the profile's own backup URL.
    assert_eq!(got, ["/verify/start", "/verify"], "{got:?}");
    assert_eq!(
        metric(&ws, "backupapps_verify_last_status", "app/one").as_deref(),
        Some("1")
    );
    assert_eq!(
        metric(&ws, "backupapps_backup_last_status", "app/one").as_deref(),
        Some("1")
    );

    // A damaged chunk of app/one: verify fails, and says so to the run's URL.
    let id = ws.list("app/one")[0]["id"].as_str().unwrap().to_owned();
    let chunk = support::backup_folder(&ws, "app/one", &id).join("data-000001.zst.gpg");
    let mut bytes = std::fs::read(&chunk).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&chunk, bytes).unwrap();
    ws.fails(&["verify"], 2);
    let seen = hc.take();
    assert_eq!(paths(&seen), ["/verify/start", "/verify/fail"]);
    assert!(
        seen[1].body.contains("app/one") && !seen[1].body.contains("app/three:"),
        "{}",
        seen[1].body
    );
    assert_eq!(
        metric(&ws, "backupapps_verify_last_status", "app/one").as_deref(),
        Some("0")
    );
    assert_eq!(
        metric(&ws, "backupapps_verify_last_status", "app/three").as_deref(),
        Some("1")
    );

    ws.ok(&["prune"]);
    assert_eq!(paths(&hc.take()), ["/prune/start", "/prune"]);
    assert_eq!(
        metric(&ws, "backupapps_prune_last_status", "app/three").as_deref(),
        Some("1")
    );
    // A dry run changes nothing and reports nothing.
    ws.ok(&["prune", "--dry-run"]);
    assert!(hc.take().is_empty());
    // Every job's lines are still there.
    for job in ["backup", "verify", "prune"] {
        assert!(
            metric(
                &ws,
                &format!("backupapps_{job}_last_success_timestamp_seconds"),
                "app/three"
            )
            .is_some(),
            "{job}"
        );
    }
}

#[test]
fn ping_failures_say_why_and_never_fail_the_job() {
    let hc = Listener::start();
    let ws = Ws::new();
    let dir = ws.path("src/one");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), "x").unwrap();
    ws.files_profile("app/one", &dir, "");
    // A port nobody listens on; one that accepts and never answers.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    global_monitoring(
        &ws,
        &format!(
            "healthcheck_url = \"http://127.0.0.1:{closed}/hc\"\nverify_healthcheck_url = \"{}\"\n\
             prune_healthcheck_url = \"http://{}/hc\"\nping_timeout_secs = 1",
            hc.url("/broken"),
            silent.local_addr().unwrap()
        ),
    );
    let out = ws.run(&["backup"]);
    let text = support::text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("healthcheck ping failed") && text.contains("cannot connect"),
        "{text}"
    );
    assert!(text.to_lowercase().contains("connection refused"), "{text}");
    let out = ws.run(&["verify"]);
    let text = support::text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("HTTP 500 Internal Server Error"), "{text}");
    let out = ws.run(&["prune"]);
    let text = support::text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("no answer within 1 s"), "{text}");
}

#[test]
fn mirror_pings_its_own_url_per_profile_and_writes_its_metrics() {
    let hc = Listener::start();
    let Some(test) = backup_pg::testing::TestCluster::start(backup_pg::testing::Auth::Trust) else {
        return;
    };
    test.psql("postgres", "CREATE DATABASE shop_test");
    let section = format!(
        "[mirror]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"postgres\"\ndatabase = \"shop_test\"\nbin_dir = \"{}\"\n\
         [monitoring]\nmirror_healthcheck_url = \"{}\"\nmetrics_file = \"metrics.prom\"\n",
        test.port,
        test.bindir.display(),
        hc.url("/shop-mirror")
    );
    let Some(p) = PgWs::new(backup_pg::testing::Auth::Trust, &section) else {
        return;
    };
    p.ws.ok(&["backup", "shop/db"]);
    hc.take();
    // `--json`: one object per profile.
    let rows: serde_json::Value = serde_json::from_str(&p.ws.ok(&["mirror", "shop/db", "--json"])).unwrap();
    assert_eq!(rows[0]["target"], "shop/db", "{rows}");
    assert_eq!(rows[0]["result"], "ok", "{rows}");
    assert!(
        rows[0]["id"].is_string() && rows[0]["tables"].as_u64().unwrap() > 0,
        "{rows}"
    );
    assert_eq!(paths(&hc.take()), ["/shop-mirror/start", "/shop-mirror"]);
    assert_eq!(
        metric(&p.ws, "backupapps_mirror_last_status", "shop/db").as_deref(),
        Some("1")
    );
    assert_eq!(
        metric(&p.ws, "backupapps_backup_last_status", "shop/db").as_deref(),
        Some("1")
    );
    // `--backup` takes a unique id prefix, like every id option.
    let id = rows[0]["id"].as_str().unwrap().to_owned();
    let out = p.ws.ok(&["mirror", "shop/db", "--backup", &id[..12]]);
    assert!(out.contains(&id), "{out}");
    hc.take();
    // A mirror that fails (the test server is gone) pings /fail with why.
    drop(test);
    p.ws.fails(&["mirror", "shop/db"], 1);
    let seen = hc.take();
    assert_eq!(paths(&seen), ["/shop-mirror/start", "/shop-mirror/fail"]);
    assert!(!seen[1].body.is_empty());
    assert_eq!(
        metric(&p.ws, "backupapps_mirror_last_status", "shop/db").as_deref(),
        Some("0")
    );
    assert_eq!(
        metric(&p.ws, "backupapps_mirror_failures_total", "shop/db").as_deref(),
        Some("1")
    );
}
