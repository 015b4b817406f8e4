//! Honest marks (issue 14): `list` shows how deep a verify went, that it
//! failed and why, and a forged or damaged mark as unreadable — never as a
//! success, never as an error that hides the backup.

mod support;

use std::fs;

use serde_json::Value;
use support::{backup_folder, text, Ws};

const TARGET: &str = "app/files";

fn ws_with_backup() -> (Ws, String) {
    let ws = Ws::new();
    let src = ws.path("source");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), b"some data worth keeping").unwrap();
    ws.files_profile(TARGET, &src, "");
    ws.ok(&["backup", TARGET]);
    let id = ws.list(TARGET)[0]["id"].as_str().unwrap().to_owned();
    (ws, id)
}

fn row(ws: &Ws) -> Value {
    let rows = ws.list(TARGET);
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0].clone()
}

/// Comments out or restores the secret key in the global configuration.
fn set_secret_key(ws: &Ws, on: bool) {
    let global = fs::read_to_string(ws.path("backupapps.toml")).unwrap();
    let global = if on {
        global.replace("# secret_key = ", "secret_key = ")
    } else {
        global.replace("secret_key = ", "# secret_key = ")
    };
    ws.write("backupapps.toml", &global);
}

#[test]
fn list_shows_the_verify_mode_and_a_failed_verify() {
    let (ws, id) = ws_with_backup();
    let r = row(&ws);
    assert!(r["verified"].is_null() && r["marks"]["verified"].is_null(), "{r}");

    // Without a secret key only checksums are checked, and list says so.
    set_secret_key(&ws, false);
    ws.ok(&["verify", TARGET]);
    let r = row(&ws);
    let mark = &r["marks"]["verified"];
    assert_eq!(mark["mode"], "checksums", "{r}");
    assert_eq!(mark["result"], "ok", "{r}");
    assert!(mark["reason"].is_null(), "{r}");
    assert_eq!(r["verified_mode"], "checksums", "old field kept: {r}");
    assert_eq!(r["verified"], mark["time"], "old field kept: {r}");
    let table = ws.ok(&["list", TARGET]);
    assert!(table.contains("verified (checksums) "), "{table}");

    // With the key the verify is full.
    set_secret_key(&ws, true);
    ws.ok(&["verify", TARGET]);
    let r = row(&ws);
    assert_eq!(r["marks"]["verified"]["mode"], "full", "{r}");
    assert_eq!(r["marks"]["verified"]["result"], "ok", "{r}");
    assert_eq!(r["verified_mode"], "full", "{r}");
    let ok_time = r["verified"].as_str().unwrap().to_owned();
    let table = ws.ok(&["list", TARGET]);
    assert!(table.contains("verified (full) "), "{table}");

    // A damaged chunk: verify fails, and the failure replaces the success.
    let chunk = backup_folder(&ws, TARGET, &id).join("data-000001.zst.gpg");
    let mut bytes = fs::read(&chunk).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&chunk, bytes).unwrap();
    let out = ws.run(&["verify", TARGET]);
    assert!(
        !out.status.success(),
        "verify of a damaged chunk fails:\n{}",
        text(&out)
    );
    let r = row(&ws);
    let mark = &r["marks"]["verified"];
    assert_eq!(mark["result"], "failed", "{r}");
    assert_eq!(mark["mode"], "full", "{r}");
    let reason = mark["reason"].as_str().unwrap();
    assert!(reason.contains("data-000001"), "the reason names the chunk: {r}");
    assert_eq!(
        mark["last_ok"],
        ok_time.as_str(),
        "the earlier success is kept as such: {r}"
    );
    assert!(
        r["verified"].is_null() && r["verified_mode"].is_null(),
        "a failed verify is not shown as verified: {r}"
    );
    let table = ws.ok(&["list", TARGET]);
    assert!(table.contains("verify FAILED (full) "), "{table}");
    assert!(table.contains(reason), "{table}");
    assert!(!table.contains("verified (full)"), "{table}");
}

#[test]
fn forged_marks_are_shown_as_unreadable_and_bounded() {
    let (ws, id) = ws_with_backup();
    let marks = backup_folder(&ws, TARGET, &id).join("marks");
    fs::create_dir_all(&marks).unwrap();
    fs::write(marks.join("verified.json"), b"{\"time\": \"yesterday\", not json").unwrap();
    // Far beyond any real mark: not read at all.
    fs::write(marks.join("restored.json"), vec![b' '; 1 << 20]).unwrap();

    let r = row(&ws);
    assert_eq!(r["trusted"], true, "a bad mark does not hide the backup: {r}");
    assert_eq!(r["marks"]["verified"]["result"], "unreadable", "{r}");
    assert_eq!(r["marks"]["restored"]["result"], "unreadable", "{r}");
    assert!(r["verified"].is_null() && r["restored"].is_null(), "{r}");
    assert_eq!(r["restore_verified"], false, "{r}");
    let table = ws.ok(&["list", TARGET]);
    assert!(table.contains("unreadable mark 'verified'"), "{table}");
    assert!(table.contains("unreadable mark 'restored'"), "{table}");

    // Well-formed JSON with the wrong shape is unreadable too, and a forged
    // reason cannot put escape sequences on the terminal or flood it.
    fs::write(
        marks.join("verified.json"),
        br#"{"time": "2026-01-01T00:00:00Z", "mode": "paranoid"}"#,
    )
    .unwrap();
    let forged = format!(
        r#"{{"time": "2026-01-01T00:00:00Z", "result": "failed", "reason": "\u001b[2J{}"}}"#,
        "x".repeat(5000)
    );
    fs::write(marks.join("restored.json"), forged).unwrap();
    let r = row(&ws);
    assert_eq!(r["marks"]["verified"]["result"], "unreadable", "{r}");
    let mark = &r["marks"]["restored"];
    assert_eq!(mark["result"], "failed", "{r}");
    assert_eq!(mark["mode"], "restored", "{r}");
    let reason = mark["reason"].as_str().unwrap();
    assert!(reason.chars().count() <= 200 && !reason.contains('\u{1b}'), "{reason}");
    let table = ws.ok(&["list", TARGET]);
    assert!(table.contains("restore FAILED 2026-01-01T00:00:00Z: "), "{table}");
    assert!(!table.contains('\u{1b}'), "{table}");
}
