//! `schedule run` queues: at most `[schedule] max_concurrent` jobs at once,
//! first in first out; a job still queued at its next fire time is skipped
//! (warning + metric); a mirror waits for its profile's backup; `[verify]
//! schedule` runs restore drills. Cron expressions with a seconds field
//! ("S * * * * *": every minute, at second S) keep the waits short.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use backup_pg::testing::Auth;
use support::{PgWs, Ws};

/// "S * * * * *" firing every minute, a few seconds from now.
fn every_minute_soon() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!("{} * * * * *", (now + 5) % 60)
}

/// `schedule run` with its log (stderr, children's included) in a file.
struct Scheduler {
    child: Child,
    log: PathBuf,
}

impl Scheduler {
    fn start(ws: &Ws) -> Scheduler {
        let log = ws.path("scheduler.log");
        let child = ws
            .cmd(&["schedule", "run"])
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Scheduler { child, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `done` holds, or fails showing the log.
    fn wait_for(&self, what: &str, limit: Duration, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            let log = self.log();
            if done(&log) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}:\n{log}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn stop(mut self) -> String {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the scheduler exits 0 on SIGTERM");
        self.log()
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Hooks that record when a backup of `name` started and ended (the
/// `before_backup` also lingers, so that overlapping runs would show).
fn timing_hooks(name: &str) -> String {
    format!(
        "before_backup = [\"sh\", \"-c\", \"date +%s.%N > data/times/{name}.start; sleep 1\"]\n\
         after_backup = [\"sh\", \"-c\", \"date +%s.%N > data/times/{name}.end\"]\n"
    )
}

fn read_time(path: &Path) -> f64 {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .unwrap()
}

/// The line index of the first log line containing all of `parts`.
fn line_of(log: &str, parts: &[&str]) -> Option<usize> {
    log.lines().position(|l| parts.iter().all(|p| l.contains(p)))
}

#[test]
fn five_profiles_run_two_at_a_time_and_the_mirror_waits_for_its_backup() {
    let Some(p) = PgWs::new(Auth::Trust, "") else { return };
    p.prod.psql("postgres", "CREATE DATABASE shop_test");
    // After the slow setup, so that the second has not passed when the scheduler starts.
    let cron = every_minute_soon();
    let ws = &p.ws;
    // The postgres profile: a backup and a mirror due at the same second.
    let db = fs::read_to_string(ws.path("apps/shop/db.toml")).unwrap();
    ws.write(
        "apps/shop/db.toml",
        &format!(
            "schedule = \"{cron}\"\n{}{db}\n[mirror]\nschedule = \"{cron}\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"postgres\"\ndatabase = \"shop_test\"\nbin_dir = \"{}\"\n",
            timing_hooks("shop-db"),
            p.prod.port,
            p.prod.bindir.display()
        ),
    );
    let src = ws.path("source");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), "data\n").unwrap();
    for i in 1..=4 {
        ws.files_profile(
            &format!("app/p{i}"),
            &src,
            &format!("schedule = \"{cron}\"\n{}", timing_hooks(&format!("p{i}"))),
        );
    }
    fs::create_dir_all(ws.path("data/times")).unwrap();
    let global = fs::read_to_string(ws.path("backupapps.toml")).unwrap();
    ws.write(
        "backupapps.toml",
        &format!("{global}\n[schedule]\nmax_concurrent = 2\n"),
    );

    let list = ws.ok(&["schedule", "list", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&list).unwrap();
    let jobs = plan.as_array().unwrap();
    assert_eq!(jobs.len(), 6, "{plan}");
    assert!(
        jobs.iter()
            .all(|j| j["next"].is_string() && j["schedule"] == cron.as_str()),
        "{plan}"
    );
    assert!(jobs
        .iter()
        .any(|j| j["job"] == "mirror shop/db" && j["kind"] == "mirror" && j["target"] == "shop/db"));
    assert!(ws.ok(&["schedule", "list"]).starts_with("max_concurrent = 2,"));

    let scheduler = Scheduler::start(ws);
    scheduler.wait_for("the mirror to finish", Duration::from_secs(150), |log| {
        line_of(log, &["finished", "job=mirror shop/db"]).is_some()
            || line_of(log, &["failed", "job=mirror shop/db"]).is_some()
    });
    let log = scheduler.stop();
    // Each job's next fire time was logged at start.
    for job in ["backup app/p1", "backup app/p4", "backup shop/db", "mirror shop/db"] {
        assert!(
            line_of(&log, &["next run", &format!("job={job}")]).is_some(),
            "{job}:\n{log}"
        );
    }
    let mirror_ok = line_of(&log, &["finished", "job=mirror shop/db"]);
    assert!(mirror_ok.is_some(), "the mirror succeeded:\n{log}");

    // All five backups ran, each once, at most two at any moment.
    let mut spans = Vec::new();
    for name in ["p1", "p2", "p3", "p4", "shop-db"] {
        let times = ws.path("data/times");
        spans.push((
            read_time(&times.join(format!("{name}.start"))),
            read_time(&times.join(format!("{name}.end"))),
        ));
    }
    let mut most = 0;
    for (start, _) in &spans {
        let at_once = spans.iter().filter(|(s, e)| s <= start && start < e).count();
        assert!(at_once <= 2, "{at_once} backups ran at once: {spans:?}\n{log}");
        most = most.max(at_once);
    }
    // And the two slots were used: the queue is not a single file.
    assert_eq!(most, 2, "{spans:?}\n{log}");
    for target in ["app/p1", "app/p2", "app/p3", "app/p4", "shop/db"] {
        assert_eq!(ws.list(target).len(), 1, "{target}");
    }
    // The mirror started only after its profile's backup had finished.
    let backup_done = line_of(&log, &["finished", "job=backup shop/db"]).expect("backup finished");
    let mirror_started = line_of(&log, &[" started", "job=mirror shop/db"]).expect("mirror started");
    assert!(
        backup_done < mirror_started,
        "mirror started before its backup finished:\n{log}"
    );
    let backup_end = read_time(&ws.path("data/times/shop-db.end"));
    let id = ws.list("shop/db")[0]["id"].as_str().unwrap().to_owned();
    assert!(backup_end > 0.0);
    let restored = &ws.list("shop/db")[0]["marks"]["restored"];
    assert!(!restored.is_null(), "the mirror used the new backup {id}");
    assert_eq!(p.prod.psql("shop_test", "SELECT count(*) FROM customers"), "2000");
}

#[test]
fn a_job_still_queued_at_its_next_fire_time_is_skipped_with_a_metric() {
    let ws = Ws::new();
    let src = ws.path("source");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), "data\n").unwrap();
    for i in 1..=2 {
        ws.files_profile(
            &format!("app/slow{i}"),
            &src,
            "schedule = \"*/2 * * * * *\"\nbefore_backup = [\"sleep\", \"5\"]\n[monitoring]\nmetrics_file = \"metrics.prom\"",
        );
    }
    let global = fs::read_to_string(ws.path("backupapps.toml")).unwrap();
    ws.write(
        "backupapps.toml",
        &format!("{global}\n[schedule]\nmax_concurrent = 1\n"),
    );
    let scheduler = Scheduler::start(&ws);
    scheduler.wait_for("a skipped job", Duration::from_secs(60), |log| {
        log.contains("reason=\"still_queued\"") || log.contains("reason=still_queued")
    });
    let log = scheduler.stop();
    assert!(log.contains("still waiting in the queue"), "{log}");
    let metrics = fs::read_to_string(ws.path("metrics.prom")).unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("backupapps_schedule_skipped_total{job=\"backup\"")
                && l.contains("reason=\"still_queued\"")),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE backupapps_schedule_skipped_total counter"),
        "{metrics}"
    );
}

#[test]
fn a_scheduled_drill_fully_verifies_the_newest_and_one_older_backup() {
    let ws = Ws::new();
    ws.write(
        "apps/app/export.toml",
        "kind = \"command\"\ndest_prefix = \"app/export\"\ncommand = [\"sh\", \"-c\", \"seq 1 20000\"]\n\
         [verify]\nschedule = \"*/3 * * * * *\"\n[monitoring]\nmetrics_file = \"metrics.prom\"\n\
         [retention]\nlast = 10\n",
    );
    for time in ["2026-11-01T02:00:00Z", "2026-11-02T02:00:00Z", "2026-11-03T02:00:00Z"] {
        ws.ok(&["backup", "app/export", "--time", time, "--no-prune"]);
    }
    let scheduler = Scheduler::start(&ws);
    scheduler.wait_for("a drill", Duration::from_secs(60), |log| {
        line_of(log, &["finished", "job=verify app/export"]).is_some()
            || line_of(log, &["failed", "job=verify app/export"]).is_some()
    });
    // SIGHUP reloads, and the next fire times are logged again.
    Command::new("kill")
        .args(["-HUP", &scheduler.child.id().to_string()])
        .status()
        .unwrap();
    scheduler.wait_for("the reload", Duration::from_secs(30), |log| {
        line_of(log, &["configuration reloaded"]).is_some_and(|at| {
            log.lines()
                .skip(at)
                .any(|l| l.contains("next run") && l.contains("job=verify app/export"))
        })
    });
    let log = scheduler.stop();
    assert!(line_of(&log, &["finished", "job=verify app/export"]).is_some(), "{log}");
    let backups = ws.list("app/export");
    assert_eq!(backups.len(), 3);
    let newest = backups
        .iter()
        .max_by_key(|b| b["time"].as_str().unwrap().to_owned())
        .unwrap();
    assert_eq!(newest["marks"]["verified"]["mode"], "full", "{newest}");
    assert_eq!(newest["marks"]["verified"]["result"], "ok", "{newest}");
    let older_verified = backups
        .iter()
        .filter(|b| b["id"] != newest["id"] && b["marks"]["verified"]["mode"] == "full")
        .count();
    assert!(older_verified >= 1, "one older backup was drilled: {backups:?}");
    let metrics = fs::read_to_string(ws.path("metrics.prom")).unwrap();
    let labels = "{app=\"app\",profile=\"export\",target=\"app/export\"}";
    assert!(
        metrics.contains(&format!("backupapps_drill_last_run_success{labels} 1")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("backupapps_drill_backups_verified{labels} 2")),
        "{metrics}"
    );
    assert!(
        metrics.contains("backupapps_drill_last_success_timestamp_seconds{"),
        "{metrics}"
    );
}
