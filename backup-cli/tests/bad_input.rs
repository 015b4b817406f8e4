//! Bad input: a clear error naming the file or field, exit status 2, no panic,
//! nothing lost.

mod support;

use std::fs;

use backup_files::testing::snapshot;
use support::{backup_folder, Ws};

fn workspace_with_backup() -> (Ws, String) {
    let ws = Ws::new();
    let src = ws.path("source");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), vec![b'a'; 300_000]).unwrap();
    ws.files_profile("app/files", &src, "");
    ws.ok(&["backup", "app/files"]);
    let id = ws.list("app/files")[0]["id"].as_str().unwrap().to_owned();
    (ws, id)
}

fn assert_no_panic(out: &str) {
    assert!(!out.contains("panicked"), "{out}");
}

#[test]
fn invalid_toml_names_the_file() {
    let ws = Ws::new();
    ws.write("apps/app/broken.toml", "kind = \"files\"\ndest_prefix = [unclosed\n");
    let out = ws.fails(&["list"], 2);
    assert!(out.contains("apps/app/broken.toml"), "{out}");
    assert_no_panic(&out);
}

#[test]
fn unknown_field_names_field_and_file() {
    let ws = Ws::new();
    ws.write(
        "apps/app/files.toml",
        "kind = \"files\"\ndest_prefix = \"app/files\"\npaths = [\"/tmp\"]\nexclude_typo = [\"x\"]\n",
    );
    let out = ws.fails(&["backup"], 2);
    assert!(
        out.contains("exclude_typo") && out.contains("apps/app/files.toml"),
        "{out}"
    );
}

#[test]
fn unknown_field_in_global_file_is_named() {
    let ws = Ws::new();
    let global = fs::read_to_string(ws.path("backupapps.toml")).unwrap();
    ws.write(
        "backupapps.toml",
        &global.replace("[retention]", "[retention]\ndialy = 3"),
    );
    let out = ws.fails(&["list"], 2);
    assert!(out.contains("dialy") && out.contains("backupapps.toml"), "{out}");
}

#[test]
fn duplicate_dest_prefix_names_both_files() {
    let ws = Ws::new();
    ws.write(
        "apps/a/x.toml",
        "kind = \"files\"\ndest_prefix = \"same\"\npaths = [\"/tmp\"]\n",
    );
    ws.write(
        "apps/b/y.toml",
        "kind = \"files\"\ndest_prefix = \"same\"\npaths = [\"/tmp\"]\n",
    );
    let out = ws.fails(&["list"], 2);
    assert!(out.contains("apps/a/x.toml") && out.contains("apps/b/y.toml"), "{out}");
}

#[test]
fn missing_public_key_file_is_named() {
    let ws = Ws::new();
    fs::remove_file(ws.path("secrets/backup.pub.asc")).unwrap();
    let src = ws.path("source");
    fs::create_dir_all(&src).unwrap();
    ws.files_profile("app/files", &src, "");
    let out = ws.fails(&["backup"], 2);
    assert!(out.contains("secrets/backup.pub.asc"), "{out}");
    assert!(ws.list("app/files").is_empty());
}

#[test]
fn wrong_passphrase_is_said_as_such() {
    let (ws, _) = workspace_with_backup();
    ws.write("secrets/backup.pass", "not the passphrase\n");
    let out = ws.fails(&["restore", "app/files", "--to", ws.path("out").to_str().unwrap()], 2);
    assert!(
        out.contains("wrong passphrase") && out.contains("backup.sec.asc"),
        "{out}"
    );
    assert!(!out.contains("missing key"), "{out}");
    assert!(!ws.path("out").exists());
    // The environment variable wins over the file.
    let pass = "also wrong";
    let out = ws
        .cmd(&["verify", "app/files"])
        .env("BACKUPAPPS_PASSPHRASE", pass)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !support::text(&out).contains(pass),
        "a passphrase must never be printed"
    );
}

#[test]
fn tampered_chunk_is_refused_and_target_untouched() {
    let (ws, id) = workspace_with_backup();
    let chunk = backup_folder(&ws, "app/files", &id).join("data-000001.zst.gpg");
    let mut bytes = fs::read(&chunk).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x01;
    fs::write(&chunk, bytes).unwrap();

    let target = ws.path("existing");
    fs::create_dir_all(&target).unwrap();
    fs::write(target.join("precious.txt"), b"do not touch").unwrap();
    let before = snapshot(&target);
    let out = ws.fails(&["restore", "app/files", "--to", target.to_str().unwrap()], 2);
    assert!(out.contains("data-000001.zst.gpg") && out.contains("SHA-256"), "{out}");
    assert_eq!(snapshot(&target), before);
    let out = ws.fails(&["verify", "app/files"], 2);
    assert!(out.contains("data-000001.zst.gpg"), "{out}");
}

#[test]
fn unreachable_store_names_the_url() {
    let ws = Ws::new();
    fs::write(ws.path("not-a-dir"), b"x").unwrap();
    let global = fs::read_to_string(ws.path("backupapps.toml")).unwrap();
    let url = format!("file://{}/not-a-dir/store", ws.home().display());
    let start = global.find("url = ").unwrap();
    let end = start + global[start..].find('\n').unwrap();
    ws.write(
        "backupapps.toml",
        &format!("{}url = \"{url}\"{}", &global[..start], &global[end..]),
    );
    let src = ws.path("source");
    fs::create_dir_all(&src).unwrap();
    ws.files_profile("app/files", &src, "");
    let out = ws.fails(&["backup"], 2);
    assert!(out.contains("not-a-dir/store"), "{out}");
    assert_no_panic(&out);
}

#[test]
fn unknown_target_lists_known_ones() {
    let (ws, _) = workspace_with_backup();
    let out = ws.fails(&["list", "nope/x"], 2);
    assert!(out.contains("nope/x") && out.contains("app/files"), "{out}");
}

#[test]
fn missing_source_folder_fails_the_backup() {
    let ws = Ws::new();
    ws.files_profile("app/files", &ws.path("does-not-exist"), "");
    let out = ws.fails(&["backup"], 1);
    assert!(out.contains("mounted"), "{out}");
    assert!(out.contains("does-not-exist"), "{out}");
}

#[test]
fn unknown_key_in_source_or_mirror_is_named_at_load() {
    let ws = Ws::new();
    ws.write(
        "apps/shop/db.toml",
        "kind = \"postgres\"\ndest_prefix = \"shop/db\"\n[source]\ndatabase = \"shop\"\nhots = \"db\"\n",
    );
    let out = ws.fails(&["list"], 2);
    assert!(
        out.contains("hots") && out.contains("apps/shop/db.toml [source]"),
        "{out}"
    );
    ws.write(
        "apps/shop/db.toml",
        "kind = \"postgres\"\ndest_prefix = \"shop/db\"\n[source]\ndatabase = \"shop\"\n[mirror]\nsanitise = []\n",
    );
    let out = ws.fails(&["list"], 2);
    assert!(out.contains("sanitise") && out.contains("[mirror]"), "{out}");
}

#[test]
fn backup_refuses_without_a_signing_key_and_says_how_to_make_one() {
    let ws = Ws::new();
    let src = ws.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    ws.files_profile("app/files", &src, "");
    let global = std::fs::read_to_string(ws.path("backupapps.toml")).unwrap();
    let without: String = global
        .lines()
        .filter(|l| !l.starts_with("signing_key") && !l.starts_with("signers"))
        .map(|l| format!("{l}\n"))
        .collect();
    ws.write("backupapps.toml", &without);
    let out = ws.fails(&["backup", "app/files"], 2);
    assert!(out.contains("signing_key") && out.contains("keygen"), "{out}");
    assert!(!ws.path("store/app/files").exists(), "nothing stored: {out}");
    let check = ws.fails(&["check"], 2);
    assert!(check.contains("FAIL") && check.contains("signing key"), "{check}");
}

#[test]
fn a_signing_key_cannot_decrypt() {
    let ws = Ws::new();
    // The sign-only key has no encryption key: it cannot be a recipient.
    let global = std::fs::read_to_string(ws.path("backupapps.toml")).unwrap().replace(
        "recipients = [\"secrets/backup.pub.asc\"]",
        "recipients = [\"secrets/signing.pub.asc\"]",
    );
    ws.write("backupapps.toml", &global);
    let src = ws.path("src");
    std::fs::create_dir_all(&src).unwrap();
    ws.files_profile("app/files", &src, "");
    let out = ws.fails(&["backup", "app/files"], 2);
    assert!(out.contains("signing.pub.asc") && out.contains("encryption"), "{out}");
}
