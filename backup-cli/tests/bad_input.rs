//! Bad input: a clear error naming the file or field, exit status 2, no panic,
//! nothing lost.

mod support;

use std::fs;

use backup_files::testing::snapshot;
use support::{backup_folder, text, Ws};

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
        out.contains("source.hots") && out.contains("apps/shop/db.toml"),
        "{out}"
    );
    ws.write(
        "apps/shop/db.toml",
        "kind = \"postgres\"\ndest_prefix = \"shop/db\"\n[source]\ndatabase = \"shop\"\n[mirror]\nsanitise = []\n",
    );
    let out = ws.fails(&["list"], 2);
    assert!(
        out.contains("sanitise") && out.contains("mirror") && out.contains("apps/shop/db.toml"),
        "{out}"
    );
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

/// A files profile `app/files` over an existing folder, with `body` appended.
fn profile_with(ws: &Ws, body: &str) {
    let src = ws.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    ws.write(
        "apps/app/files.toml",
        &format!(
            "kind = \"files\"\ndest_prefix = \"app/files\"\npaths = [\"{}\"]\n{body}",
            src.display()
        ),
    );
}

#[test]
fn values_that_would_break_a_run_are_refused_at_load_naming_file_and_key() {
    // (profile text, where the error points, a word of the fix)
    let cases = [
        ("[backup]\nchunk_size = 0\n", "[backup] chunk_size", "64KiB"),
        ("[backup]\nchunk_size = 65535\n", "[backup] chunk_size", "64KiB"),
        (
            "[backup]\nchunk_size = \"99999999999999G\"\n",
            "[backup] chunk_size",
            "16MiB",
        ),
        ("[backup]\nchunk_size = \"2GiB\"\n", "[backup] chunk_size", "1GiB"),
        (
            "[backup]\nzstd_level = 99\n",
            "[backup] zstd_level",
            "1 (fastest) to 19",
        ),
        (
            "[backup]\nzstd_level = 25\n",
            "[backup] zstd_level",
            "1 (fastest) to 19",
        ),
        ("[backup]\nzstd_level = 0\n", "[backup] zstd_level", "1 (fastest) to 19"),
        (
            "[backup]\nparallelism = 1000\n",
            "[backup] parallelism",
            "0 for one per core",
        ),
        ("schedule = \"61 2 * * *\"\n", "schedule", "@daily"),
        ("schedule = \"@reboot\"\n", "schedule", "@daily"),
        ("schedule = \"1 2 * *\"\n", "schedule", "minute hour day month weekday"),
        (
            "[retention]\nwithin = \"99999999999999999d\"\n",
            "[retention]",
            "within",
        ),
        ("[retention]\nwithin = \"3 fortnights\"\n", "[retention]", "within"),
        ("[retention]\ntimezone = \"Mars/Olympus_Mons\"\n", "[retention]", "IANA"),
    ];
    let ws = Ws::new();
    for (body, place, fix) in cases {
        profile_with(&ws, body);
        for command in ["check", "backup"] {
            let out = ws.fails(&[command], 2);
            assert!(
                out.contains(&format!("apps/app/files.toml {place}")) && out.contains(fix),
                "{command} with {body:?}:\n{out}"
            );
            assert_no_panic(&out);
        }
        assert!(!ws.path("store/app/files").exists(), "{body:?}: nothing stored");
    }
}

#[test]
fn out_of_range_values_from_the_global_file_or_the_environment_are_named_there() {
    let ws = Ws::new();
    profile_with(&ws, "");
    let global = fs::read_to_string(ws.path("backupapps.toml")).unwrap();
    assert!(global.contains("zstd_level = 3"), "the template sets zstd_level");
    ws.write("backupapps.toml", &global.replace("zstd_level = 3", "zstd_level = 25"));
    let out = ws.fails(&["list"], 2);
    assert!(out.contains("backupapps.toml [backup] zstd_level"), "{out}");
    ws.write("backupapps.toml", &global);
    let out = ws
        .cmd(&["backup"])
        .env("BACKUPAPPS_BACKUP__CHUNK_SIZE", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = support::text(&out);
    assert!(
        text.contains("BACKUPAPPS_BACKUP__CHUNK_SIZE") && text.contains("64KiB"),
        "{text}"
    );
}

#[test]
fn mirror_schedule_is_checked_at_load_and_cron_nicknames_are_accepted() {
    let ws = Ws::new();
    ws.write(
        "apps/shop/db.toml",
        "kind = \"postgres\"\ndest_prefix = \"shop/db\"\n[source]\ndatabase = \"shop\"\n[mirror]\ndatabase = \"shop_test\"\nschedule = \"61 2 * * *\"\n",
    );
    let out = ws.fails(&["check"], 2);
    assert!(
        out.contains("apps/shop/db.toml [mirror]") && out.contains("schedule") && out.contains("61 2"),
        "{out}"
    );
    ws.write(
        "apps/shop/db.toml",
        "kind = \"postgres\"\ndest_prefix = \"shop/db\"\nschedule = \"@daily\"\n[source]\ndatabase = \"shop\"\n[mirror]\ndatabase = \"shop_test\"\nschedule = \"@hourly\"\n",
    );
    profile_with(&ws, "schedule = \"@weekly\"\n");
    let crontab = ws.ok(&["schedule", "crontab"]);
    for line in ["@daily ", "@hourly ", "@weekly "] {
        assert!(
            crontab.lines().any(|l| l.starts_with(line)),
            "crontab prints {line:?} as is:\n{crontab}"
        );
    }
    ws.ok(&["backup", "app/files"]);
}

#[test]
fn secret_files_readable_by_others_are_refused_with_the_fix() {
    let (ws, _) = workspace_with_backup();
    let out_dir = ws.path("out");
    let to = out_dir.to_str().unwrap();
    // (file, commands that read it)
    let cases: [(&str, &[&[&str]]); 4] = [
        (
            "secrets/backup.sec.asc",
            &[&["restore", "app/files", "--to", to], &["verify", "app/files"]],
        ),
        ("secrets/backup.pass", &[&["restore", "app/files", "--to", to]]),
        ("secrets/signing.sec.asc", &[&["backup", "app/files"]]),
        ("secrets/signing.pass", &[&["backup", "app/files"]]),
    ];
    for (file, commands) in cases {
        let path = ws.path(file);
        for mode in [0o640, 0o604] {
            fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
            for args in commands {
                let out = ws.fails(args, 2);
                let fix = format!("chmod 600 {}", path.display());
                assert!(out.contains(&fix), "{args:?} with {file} at {mode:o}:\n{out}");
            }
        }
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    assert!(!out_dir.exists(), "a refused restore writes nothing");
    assert_eq!(ws.list("app/files").len(), 1, "a refused backup stores nothing");
    // An empty value is the workspace folder: named as such, no chmod advice.
    let out = ws
        .cmd(&["verify", "app/files"])
        .env("BACKUPAPPS_ENCRYPTION__SECRET_KEY", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("is a folder, not a file") && !text(&out).contains("chmod"),
        "{}",
        text(&out)
    );
    ws.ok(&["restore", "app/files", "--to", to]);
}
