//! Key rotation: backups made with key A, then with key B. With
//! `secret_key = [B, A]` every backup verifies and restores; with `[B]`
//! alone the A-backups fail naming A's fingerprint, the B-backups still work.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use backup_files::testing::{snapshot, Snap};
use support::Ws;

const TARGET: &str = "app/files";

/// The fingerprint `keygen` printed: "generated key FPR (NAME)".
fn keygen(ws: &Ws, name: &str) -> String {
    let out = ws.ok(&["keygen", "--name", name]);
    // An older key exists: keygen says how to rotate.
    assert!(
        out.contains(&format!(
            r#"secret_key = ["secrets/{name}.sec.asc", "secrets/backup.sec.asc"]"#
        )),
        "{out}"
    );
    let line = out
        .lines()
        .find(|l| l.starts_with("generated key "))
        .expect("keygen line");
    line.split_whitespace().nth(2).expect("fingerprint").to_owned()
}

/// The fingerprint of the key `Ws::new` made (`secrets/backup.*`).
fn fingerprint_of(ws: &Ws, name: &str) -> String {
    let key = fs::read(ws.path(&format!("secrets/{name}.sec.asc"))).unwrap();
    backup_core::LockedKey::from_armored(Path::new(name), &key)
        .unwrap()
        .identity()
        .fingerprint()
        .to_owned()
}

/// Rewrites one `key = …` line of `[encryption]` in backupapps.toml.
fn set(ws: &Ws, key: &str, value: &str) {
    let path = ws.path("backupapps.toml");
    let text = fs::read_to_string(&path).unwrap();
    let mut found = false;
    let text: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{key} =")) {
                found = true;
                format!("{key} = {value}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert!(found, "backupapps.toml has no {key} line");
    fs::write(path, text.join("\n") + "\n").unwrap();
}

/// Backs up `src` after writing `content` into it; returns the id and what
/// must come back.
fn backup(ws: &Ws, src: &Path, content: &str) -> (String, BTreeMap<PathBuf, Snap>) {
    fs::write(src.join("state.txt"), content).unwrap();
    fs::write(src.join("bulk.bin"), content.repeat(20_000)).unwrap();
    // Not pruned: the retention would keep one backup of the day.
    ws.ok(&["backup", TARGET, "--no-prune"]);
    let id = ws.list(TARGET).last().unwrap()["id"].as_str().unwrap().to_owned();
    (id, snapshot(src))
}

fn restores_identically(ws: &Ws, src: &Path, id: &str, want: &BTreeMap<PathBuf, Snap>, keys: &str) {
    let into = ws.path(&format!("restored-{id}-with-{keys}"));
    ws.ok(&["restore", TARGET, "--id", id, "--to", into.to_str().unwrap()]);
    let got = snapshot(&into.join(src.strip_prefix("/").unwrap()));
    assert_eq!(&got, want, "backup {id} restored differently");
}

#[test]
fn old_backups_stay_readable_with_the_old_key_kept_second() {
    let ws = Ws::new();
    let a = fingerprint_of(&ws, "backup");
    let src = ws.path("source-data");
    fs::create_dir_all(&src).unwrap();
    ws.files_profile(TARGET, &src, "");
    let made_with_a = [backup(&ws, &src, "first, key A"), backup(&ws, &src, "second, key A")];

    // Rotation: a new key; backups are encrypted to it alone from now on.
    let b = keygen(&ws, "backup-2027");
    assert_ne!(a, b);
    set(&ws, "recipients", r#"["secrets/backup-2027.pub.asc"]"#);
    set(
        &ws,
        "secret_key",
        r#"["secrets/backup-2027.sec.asc", "secrets/backup.sec.asc"]"#,
    );
    // Each key has its own passphrase file, matched by position.
    set(
        &ws,
        "passphrase_file",
        r#"["secrets/backup-2027.pass", "secrets/backup.pass"]"#,
    );
    let made_with_b = [backup(&ws, &src, "third, key B")];

    // `list` tells which backups still need the old key.
    let rows = ws.list(TARGET);
    assert_eq!(rows.len(), 3);
    for (row, want) in rows.iter().zip([&a, &a, &b]) {
        assert_eq!(row["recipients"], serde_json::json!([want]), "{row}");
    }
    let table = ws.ok(&["list", TARGET, "--recipients"]);
    assert!(table.contains(&a) && table.contains(&b), "{table}");

    let verified = ws.ok(&["verify", TARGET, "--all"]);
    for (id, _) in made_with_a.iter().chain(&made_with_b) {
        assert!(verified.contains(&format!("backup {id} OK")), "{verified}");
    }
    for (id, want) in made_with_a.iter().chain(&made_with_b) {
        restores_identically(&ws, &src, id, want, "b-a");
    }

    // Without the old key the old backups fail, naming the key they need;
    // the new ones still verify and restore.
    set(&ws, "secret_key", r#"["secrets/backup-2027.sec.asc"]"#);
    set(&ws, "passphrase_file", r#""secrets/backup-2027.pass""#);
    let out = ws.run(&["verify", TARGET, "--all"]);
    // Not a damaged backup: a configuration matter (exit 2, as for a wrong key file).
    assert_eq!(out.status.code(), Some(2), "{}", support::text(&out));
    let out = support::text(&out);
    assert!(out.contains(&a), "the old key's fingerprint is named:\n{out}");
    assert!(out.contains(&b), "the key held is named:\n{out}");
    assert!(out.contains("secret_key"), "says what to set:\n{out}");
    assert!(out.contains(&format!("backup {} OK", made_with_b[0].0)), "{out}");
    let (old_id, _) = &made_with_a[0];
    let out = ws.run(&[
        "restore",
        TARGET,
        "--id",
        old_id,
        "--to",
        ws.path("nope").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let text = support::text(&out);
    assert!(text.contains(&a), "restore names the old key:\n{text}");
    restores_identically(&ws, &src, &made_with_b[0].0, &made_with_b[0].1, "b");

    // A restore unlocks only the key the backup needs: the old key's wrong
    // passphrase does not stop a new backup, and is named for an old one.
    set(
        &ws,
        "secret_key",
        r#"["secrets/backup-2027.sec.asc", "secrets/backup.sec.asc"]"#,
    );
    set(&ws, "passphrase_file", r#""secrets/backup-2027.pass""#);
    restores_identically(&ws, &src, &made_with_b[0].0, &made_with_b[0].1, "b-and-locked-a");
    let out = ws.run(&[
        "restore",
        TARGET,
        "--id",
        old_id,
        "--to",
        ws.path("nope2").to_str().unwrap(),
    ]);
    let text = support::text(&out);
    assert!(!out.status.success() && text.contains("wrong passphrase"), "{text}");
    assert!(text.contains("backup.sec.asc"), "names the key file:\n{text}");
}

#[test]
fn passphrase_files_must_match_the_keys() {
    let ws = Ws::new();
    keygen(&ws, "backup-2027");
    set(
        &ws,
        "secret_key",
        r#"["secrets/backup-2027.sec.asc", "secrets/backup.sec.asc"]"#,
    );
    set(
        &ws,
        "passphrase_file",
        r#"["secrets/backup-2027.pass", "secrets/backup.pass", "secrets/backup.pass"]"#,
    );
    let src = ws.path("source-data");
    fs::create_dir_all(&src).unwrap();
    ws.files_profile(TARGET, &src, "");
    let out = ws.fails(&["check", TARGET], 2);
    assert!(
        out.contains("passphrase_file") && out.contains("3 files for 2 secret keys"),
        "{out}"
    );
}
