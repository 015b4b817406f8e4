//! CLI habits of restic/borgmatic users (issue 14): `--at DAY` covers the
//! whole day, `--at latest`, and `--json` honoured or refused, never ignored.

mod support;

use std::fs;

use serde_json::Value;
use support::{text, Ws};

fn ws_with_data() -> Ws {
    let ws = Ws::new();
    let src = ws.path("source");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), b"version 1").unwrap();
    ws.files_profile("app/files", &src, "");
    ws
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

/// `restore app/files --at AT --json` into a fresh folder: the restored id.
fn restore_at(ws: &Ws, at: &str, into: &str) -> String {
    let to = ws.path(into);
    let out = ws.ok(&[
        "restore",
        "app/files",
        "--at",
        at,
        "--to",
        to.to_str().unwrap(),
        "--json",
    ]);
    let row = json(&out);
    assert_eq!(row["into"], to.to_str().unwrap(), "{out}");
    row["id"].as_str().unwrap().to_owned()
}

/// The first file named `name` under `dir` (the restore keeps absolute paths).
fn find(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    for entry in walk(dir) {
        if entry.file_name().is_some_and(|n| n == name) {
            return entry;
        }
    }
    panic!("{name} not restored under {}", dir.display());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn at_today_restores_the_backup_made_today() {
    let ws = ws_with_data();
    ws.ok(&["backup", "app/files"]);
    let newest = ws.list("app/files")[0]["id"].as_str().unwrap().to_owned();
    // A bare day means up to its end (retention timezone, UTC by default),
    // not its midnight, which would exclude the backup just made.
    let today = chrono::Utc::now().date_naive().format("%Y-%m-%d").to_string();
    assert_eq!(restore_at(&ws, &today, "r-today"), newest);
    assert_eq!(restore_at(&ws, "latest", "r-latest"), newest);
    assert_eq!(fs::read(find(&ws.path("r-today"), "a.txt")).unwrap(), b"version 1");
}

#[test]
fn at_a_day_covers_that_whole_day_and_exact_times_stay_exact() {
    let ws = ws_with_data();
    ws.ok(&["backup", "app/files", "--time", "2026-11-20T02:01:00Z"]);
    fs::write(ws.path("source/a.txt"), b"version 2").unwrap();
    ws.ok(&["backup", "app/files", "--time", "2026-11-22T23:30:00Z"]);
    let ids: Vec<String> = ws
        .list("app/files")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let older = ids.iter().find(|id| id.starts_with("20261120")).unwrap();
    let newer = ids.iter().find(|id| id.starts_with("20261122")).unwrap();
    assert_eq!(&restore_at(&ws, "2026-11-20", "r20"), older);
    assert_eq!(&restore_at(&ws, "2026-11-21", "r21"), older);
    // 23:30 is still the 22nd.
    assert_eq!(&restore_at(&ws, "2026-11-22", "r22"), newer);
    assert_eq!(&restore_at(&ws, "latest", "rl"), newer);
    assert_eq!(fs::read(find(&ws.path("rl"), "a.txt")).unwrap(), b"version 2");
    // An exact time keeps its meaning: one second before the first backup
    // finds none, and neither does the day before.
    let to = ws.path("none");
    for at in ["2026-11-20T02:00:59Z", "2026-11-19"] {
        let out = ws.fails(&["restore", "app/files", "--at", at, "--to", to.to_str().unwrap()], 2);
        assert!(out.contains("no trusted backup at or before"), "{out}");
    }
    assert!(!to.exists());
    let bad = ws.fails(&["restore", "app/files", "--at", "yesterday"], 2);
    assert!(bad.contains("latest"), "{bad}");
}

#[test]
fn at_a_day_is_read_in_the_retention_timezone() {
    let ws = ws_with_data();
    // 23:30 UTC on the 22nd is already the 23rd in Tokyo (UTC+9).
    fs::write(ws.path("apps/app/files.toml"), {
        let mut t = fs::read_to_string(ws.path("apps/app/files.toml")).unwrap();
        t.push_str("\n[retention]\nlast = 5\ntimezone = \"Asia/Tokyo\"\n");
        t
    })
    .unwrap();
    ws.ok(&["backup", "app/files", "--time", "2026-11-22T23:30:00Z"]);
    let to = ws.path("none");
    let out = ws.fails(
        &[
            "restore",
            "app/files",
            "--at",
            "2026-11-22",
            "--to",
            to.to_str().unwrap(),
        ],
        2,
    );
    assert!(out.contains("no trusted backup at or before"), "{out}");
    let id = restore_at(&ws, "2026-11-23", "r23");
    assert!(id.starts_with("20261122T233000Z"), "{id}");
}

/// Every command either prints JSON with `--json` or refuses it with exit 2,
/// naming itself, before doing any work.
#[test]
fn json_is_honoured_or_refused_by_every_command() {
    let ws = ws_with_data();
    ws.ok(&["backup", "app/files", "--time", "2026-11-20T02:01:00Z"]);
    let to = ws.path("restored");
    let to = to.to_str().unwrap();
    let honoured: &[&[&str]] = &[
        &["list"],
        &["list", "app/files", "--recipients"],
        &["check"],
        &["verify"],
        &["verify", "--all"],
        &["prune", "--dry-run"],
        &["prune"],
        &["restore", "app/files", "--to", to],
    ];
    for args in honoured {
        for at_end in [false, true] {
            let mut full: Vec<&str> = args.to_vec();
            if at_end {
                full.push("--json");
            } else {
                full.insert(0, "--json");
            }
            if args[0] == "restore" {
                let _ = fs::remove_dir_all(to);
            }
            let out = ws.run(&full);
            assert!(out.status.success(), "{full:?}:\n{}", text(&out));
            json(&String::from_utf8(out.stdout).unwrap());
        }
    }
    let other_key = ws.path("secrets/other.pub.asc");
    let dump = ws.path("dump.pgdump");
    let (new, demo) = (ws.path("new"), ws.path("demo"));
    let refused: &[(&str, &[&str])] = &[
        ("init", &["init", new.to_str().unwrap()]),
        ("demo", &["demo", "--dir", demo.to_str().unwrap()]),
        ("keygen", &["keygen", "--name", "other", "--no-passphrase"]),
        ("schedule run", &["schedule", "run"]),
        ("schedule crontab", &["schedule", "crontab"]),
        ("completions", &["completions", "bash"]),
        ("man", &["man"]),
        ("db ping", &["db", "ping", "prod", "postgres"]),
        ("db dump", &["db", "dump", "prod", "postgres", dump.to_str().unwrap()]),
        ("db restore-to-test", &["db", "restore-to-test", dump.to_str().unwrap()]),
    ];
    for (name, args) in refused {
        let mut full: Vec<&str> = args.to_vec();
        full.push("--json");
        let out = ws.fails(&full, 2);
        assert!(
            out.contains(&format!("--json is not supported by `{name}`")),
            "{full:?}:\n{out}"
        );
    }
    // Refused before any work: nothing was created, no backup was added.
    assert!(!new.exists() && !demo.exists() && !other_key.exists());
    assert_eq!(ws.list("app/files").len(), 1);
    // `backup --json`: one object per profile, also under -q, nothing else on stdout.
    for args in [&["backup", "--json"][..], &["-q", "--json", "backup"]] {
        let rows = json(&ws.ok(args));
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["target"], "app/files");
        assert_eq!(rows[0]["result"], "ok");
        assert!(rows[0]["error"].is_null());
        let id = rows[0]["id"].as_str().unwrap();
        assert!(ws.list("app/files").iter().any(|r| r["id"] == id), "{id}");
        assert!(rows[0]["stored_size"].as_u64().unwrap() > 0 && rows[0]["chunks"].as_u64().unwrap() > 0);
    }
}

/// `verify --json`: one object per verified backup.
#[test]
fn verify_json_has_one_object_per_backup() {
    let ws = ws_with_data();
    ws.ok(&["backup", "app/files", "--time", "2026-11-20T02:01:00Z"]);
    ws.ok(&["backup", "app/files", "--time", "2026-11-21T02:01:00Z"]);
    let rows = json(&ws.ok(&["verify", "--all", "--json", "-q"]));
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in rows {
        assert_eq!(row["target"], "app/files");
        assert_eq!(row["result"], "ok");
        assert_eq!(row["mode"], "full");
        assert!(row["error"].is_null());
        assert!(row["id"].as_str().unwrap().starts_with("202611"));
    }
}
