//! The commands as a new user drives them (DESIGN §3–§6 contracts).

mod support;

use std::fs;

use serde_json::Value;
use support::{backup_folder, Ws, BIN};

fn ws_with_data() -> Ws {
    let ws = Ws::new();
    let src = ws.path("source");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/a.txt"), b"version 1").unwrap();
    ws.files_profile("app/files", &src, "");
    ws
}

/// `# key = value` and `# [section]` lines of a template, made live.
fn uncomment(template: &str) -> String {
    template
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if rest.starts_with('[') || rest.split_once(" = ").is_some_and(|(k, _)| !k.contains(' ')) => {
                rest
            }
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn init_writes_templates_that_are_valid_configuration() {
    let ws = Ws::new();
    for t in [
        "apps/templates/files.toml",
        "apps/templates/postgres.toml",
        "backupapps.toml",
    ] {
        assert!(ws.path(t).is_file(), "{t} missing");
    }
    let files = fs::read_to_string(ws.path("apps/templates/files.toml")).unwrap();
    ws.write(
        "apps/web/media.toml",
        &files.replace("/srv/myapp/media", ws.home().to_str().unwrap()),
    );
    let pg = fs::read_to_string(ws.path("apps/templates/postgres.toml")).unwrap();
    ws.write("apps/web/db.toml", &pg);
    // Every key the templates mention, uncommented, is a key the code reads.
    ws.write(
        "apps/all/files.toml",
        &uncomment(&files.replace("myapp/media", "all/files")),
    );
    ws.write("apps/all/db.toml", &uncomment(&pg.replace("myapp/db", "all/db")));
    let global = fs::read_to_string(ws.path("backupapps.toml")).unwrap();
    ws.write("backupapps.toml", &uncomment(&global));
    let out = ws.ok(&["list"]);
    assert!(out.contains("no backups yet"), "{out}");
    // init refuses to clobber an existing workspace.
    let again = ws.fails(&["init", ws.home().to_str().unwrap()], 2);
    assert!(again.contains("exists already"), "{again}");
}

#[test]
fn list_json_shape_and_json_flag_position() {
    let ws = ws_with_data();
    ws.ok(&["backup", "app/files", "--time", "2026-11-20T02:01:00Z"]);
    let before: Value = serde_json::from_str(&ws.ok(&["--json", "list"])).unwrap();
    let after: Value = serde_json::from_str(&ws.ok(&["list", "--json"])).unwrap();
    assert_eq!(before, after);
    let row = &after[0];
    assert_eq!(row["target"], "app/files");
    assert_eq!(row["kind"], "files");
    assert_eq!(row["time"], "2026-11-20T02:01:00Z");
    let id = row["id"].as_str().unwrap();
    assert!(id.starts_with("20261120T020100Z-"), "{id}");
    let folder = backup_folder(&ws, "app/files", id);
    let chunk_bytes: u64 = fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".zst.gpg"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    // Every chunk counts: the data's and the index's.
    assert_eq!(row["size"].as_u64().unwrap(), chunk_bytes);
    assert_eq!(row["chunks"].as_u64().unwrap(), 2, "one data and one index chunk");
    assert!(
        row["reasons"].as_array().unwrap().iter().any(|r| r == "daily 1/7"),
        "{row}"
    );
}

#[test]
fn restore_by_id_and_by_time() {
    let ws = ws_with_data();
    let file = ws.path("source/sub/a.txt");
    ws.ok(&["backup", "app/files", "--time", "2026-01-01T00:00:00Z", "--no-prune"]);
    fs::write(&file, b"version 2").unwrap();
    ws.ok(&["backup", "app/files", "--time", "2026-02-01T00:00:00Z", "--no-prune"]);
    let list = ws.list("app/files");
    assert_eq!(list.len(), 2);
    let rel = file.strip_prefix("/").unwrap();

    let at = ws.path("at");
    ws.ok(&[
        "restore",
        "app/files",
        "--at",
        "2026-01-15",
        "--to",
        at.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(at.join(rel)).unwrap(), b"version 1");

    let by_id = ws.path("by-id");
    let newest = list[1]["id"].as_str().unwrap();
    ws.ok(&["restore", "app/files", "--id", newest, "--to", by_id.to_str().unwrap()]);
    assert_eq!(fs::read(by_id.join(rel)).unwrap(), b"version 2");

    // A unique prefix of an id is enough; an ambiguous one names the candidates.
    let by_prefix = ws.path("by-prefix");
    ws.ok(&[
        "restore",
        "app/files",
        "--id",
        "20260101",
        "--to",
        by_prefix.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(by_prefix.join(rel)).unwrap(), b"version 1");
    let out = ws.fails(
        &[
            "restore",
            "app/files",
            "--id",
            "2026",
            "--to",
            by_prefix.to_str().unwrap(),
        ],
        2,
    );
    assert!(out.contains("matches 2 backups") && out.contains(newest), "{out}");

    // Default target: restore/<app>/<profile>/<id> in the workspace.
    ws.ok(&["restore", "app/files"]);
    assert_eq!(
        fs::read(ws.path(&format!("restore/app/files/{newest}")).join(rel)).unwrap(),
        b"version 2"
    );

    let out = ws.fails(&["restore", "app/files", "--at", "2025-01-01"], 2);
    assert!(out.contains("no trusted backup at or before"), "{out}");
    let list = ws.list("app/files");
    assert!(list[1]["restored"].is_string(), "restore is marked: {}", list[1]);
}

#[test]
fn verify_marks_the_backup_and_works_without_secret_key() {
    let ws = ws_with_data();
    ws.ok(&["backup", "app/files"]);
    let out = ws.ok(&["verify", "app/files"]);
    assert!(out.contains("OK") && out.contains("tar archive read"), "{out}");
    assert!(ws.list("app/files")[0]["verified"].is_string());

    // A backup host holds only public keys: verify still checks the checksums.
    let global = fs::read_to_string(ws.path("backupapps.toml")).unwrap();
    ws.write("backupapps.toml", &global.replace("secret_key = ", "# secret_key = "));
    let out = ws.ok(&["verify", "app/files"]);
    assert!(out.contains("SHA-256") && out.contains("no secret key"), "{out}");
    let out = ws.fails(&["restore", "app/files"], 2);
    assert!(out.contains("secret_key"), "{out}");
}

#[test]
fn backup_continues_past_a_failing_profile() {
    let ws = ws_with_data();
    ws.files_profile("app/broken", &ws.path("source/sub"), "");
    fs::remove_dir_all(ws.path("source/sub")).unwrap();
    fs::create_dir_all(ws.path("source/other")).unwrap();
    let out = ws.fails(&["backup"], 1);
    assert!(out.contains("app/broken: backup failed"), "{out}");
    assert!(out.contains("app/files: backup"), "{out}");
    assert_eq!(ws.list("app/files").len(), 1);
    assert!(ws.list("app/broken").is_empty());
}

#[test]
fn prune_dry_run_plans_and_prune_removes_exactly_that() {
    let ws = ws_with_data();
    let global = fs::read_to_string(ws.path("backupapps.toml")).unwrap();
    ws.write(
        "backupapps.toml",
        &global
            .replace("daily = 7", "daily = 2")
            .replace("weekly = 4", "weekly = 0")
            .replace("monthly = 12", "monthly = 0"),
    );
    for day in ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"] {
        ws.ok(&[
            "backup",
            "app/files",
            "--time",
            &format!("{day}T02:00:00Z"),
            "--no-prune",
        ]);
    }
    let ids: Vec<String> = ws
        .list("app/files")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let plan: Value = serde_json::from_str(&ws.ok(&["prune", "--dry-run", "--json"])).unwrap();
    let p = &plan[0];
    assert_eq!(p["target"], "app/files");
    let keep: Vec<&str> = p["keep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    let remove: Vec<&str> = p["remove"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(keep, vec![ids[3].as_str(), ids[2].as_str()]);
    assert_eq!(remove, vec![ids[1].as_str(), ids[0].as_str()]);
    assert_eq!(p["keep"][0]["reasons"], serde_json::json!(["daily 1/2"]));
    assert_eq!(p["remove"][0]["time"], "2026-03-02T02:00:00Z");
    assert_eq!(ws.list("app/files").len(), 4, "dry run removes nothing");

    ws.ok(&["prune", "app/files"]);
    let left: Vec<String> = ws
        .list("app/files")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left, vec![ids[2].clone(), ids[3].clone()]);
    for gone in &ids[..2] {
        assert!(
            !backup_folder(&ws, "app/files", gone).exists(),
            "{gone} still in the store"
        );
    }
}

#[test]
fn demo_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["demo", "--dir"])
        .arg(dir.path().join("demo"))
        .env_remove("BACKUPAPPS_PASSPHRASE")
        .output()
        .unwrap();
    let text = support::text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("restored tree equals the original"), "{text}");
    assert!(text.contains("gpg --decrypt"), "{text}");
}

#[test]
fn init_demo_is_ready_to_back_up() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("ws");
    let status = std::process::Command::new(BIN)
        .args(["init", "--demo"])
        .arg(&home)
        .status()
        .unwrap();
    assert!(status.success());
    let out = std::process::Command::new(BIN)
        .arg("--home")
        .arg(&home)
        .arg("backup")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", support::text(&out));
    assert!(support::text(&out).contains("sample/files: backup"));
}

#[test]
fn a_failed_backup_does_not_prune_its_profile() {
    let ws = ws_with_data();
    let global = fs::read_to_string(ws.path("backupapps.toml")).unwrap();
    ws.write(
        "backupapps.toml",
        &global
            .replace("daily = 7", "daily = 1")
            .replace("weekly = 4", "weekly = 0")
            .replace("monthly = 12", "monthly = 0"),
    );
    for day in ["2026-03-01", "2026-03-02", "2026-03-03"] {
        ws.ok(&["backup", "app/files", "--time", day, "--no-prune"]);
    }
    fs::remove_dir_all(ws.path("source")).unwrap();
    ws.fails(&["backup", "app/files"], 1);
    assert_eq!(ws.list("app/files").len(), 3, "nothing pruned after a failed backup");
    // Once a backup succeeds, retention applies.
    fs::create_dir_all(ws.path("source")).unwrap();
    ws.ok(&["backup", "app/files"]);
    assert_eq!(ws.list("app/files").len(), 1);
}

#[test]
fn check_names_each_problem_and_what_to_do() {
    let ws = ws_with_data();
    let out = ws.ok(&["check"]);
    assert!(out.contains("0 failed"), "{out}");
    fs::set_permissions(
        ws.path("secrets/backup.pass"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    ws.files_profile("app/gone", &ws.path("not-mounted"), "");
    fs::rename(ws.path("secrets/backup.pub.asc"), ws.path("secrets/moved.asc")).unwrap();
    let out = ws.fails(&["check"], 2);
    assert!(
        out.contains("FAIL") && out.contains("chmod 600") && out.contains("backup.pass"),
        "{out}"
    );
    assert!(out.contains("not-mounted") && out.contains("mounted?"), "{out}");
    assert!(out.contains("secrets/backup.pub.asc"), "{out}");

    let report: Value = serde_json::from_str(
        &ws.fails(&["check", "app/gone", "--json"], 2)
            .lines()
            .take_while(|l| !l.starts_with("error"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let items = report.as_array().unwrap();
    assert!(items
        .iter()
        .all(|i| i["target"].is_string() && i["check"].is_string() && i["ok"].is_boolean()));
    assert!(items.iter().any(|i| i["check"] == "paths" && i["ok"] == false));
}
