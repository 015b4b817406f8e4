//! Mistakes are errors, and the CLI habits operators expect (issue 14): no
//! workspace is exit 2, configuration errors blame the file holding the key
//! in plain words, backups under prefixes no profile names are shown, ids
//! take unique prefixes, command-line paths are relative to the current
//! directory, crontab lines keep `@daily`, every subcommand has a man page
//! with EXIT STATUS / ENVIRONMENT / FILES, sizes are in binary units.

mod support;

use std::fs;
use std::process::Command;

use support::{text, Ws, BIN};

/// The binary in `dir`, without any workspace from the environment.
fn in_dir(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .env_remove("BACKUPAPPS_HOME")
        .env_remove("BACKUPAPPS_PASSPHRASE")
        .output()
        .unwrap()
}

/// A workspace with one files profile `app/files`, backed up once.
fn backed_up() -> Ws {
    let ws = Ws::new();
    let src = ws.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), "hello").unwrap();
    ws.files_profile("app/files", &src, "");
    ws.ok(&["backup", "app/files"]);
    ws
}

#[test]
fn no_workspace_is_exit_2_for_every_command_that_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["check"][..],
        &["list"],
        &["verify"],
        &["backup"],
        &["prune"],
        &["mirror"],
        &["restore", "app/files"],
        &["db", "list", "prod"],
        &["schedule", "crontab"],
    ] {
        let out = in_dir(dir.path(), args);
        let text = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}:\n{text}");
        assert!(
            text.contains(&format!(
                "not a workspace: {} has no backupapps.toml — run `backupapps init`",
                dir.path().display()
            )),
            "{args:?}:\n{text}"
        );
        assert!(out.stdout.is_empty(), "{args:?} printed on stdout:\n{text}");
    }
    // These need none.
    for args in [&["man"][..], &["completions", "bash"], &["--version"]] {
        let out = in_dir(dir.path(), args);
        assert!(out.status.success(), "{args:?}:\n{}", text(&out));
    }
    assert!(in_dir(dir.path(), &["init", "ws"]).status.success());
    assert!(
        dir.path().join("ws/backupapps.toml").is_file(),
        "init DIR is relative to the current directory"
    );
}

#[test]
fn config_errors_blame_the_file_that_holds_the_key_in_plain_words() {
    let ws = Ws::new();
    let src = ws.path("src");
    fs::create_dir_all(&src).unwrap();
    ws.files_profile("app/files", &src, "");
    let global = ws.path("backupapps.toml");
    let original = fs::read_to_string(&global).unwrap();
    // In backupapps.toml, with a profile that sets [retention] too.
    ws.write(
        "apps/app/files.toml",
        &format!(
            "kind = \"files\"\ndest_prefix = \"app/files\"\npaths = [\"{}\"]\n[retention]\ndaily = 3\n",
            src.display()
        ),
    );
    for (from, to, says) in [
        ("timezone = \"UTC\"", "timezone = \"Mars/Olympus\"", "Mars/Olympus"),
        ("# within = \"30d\"", "within = \"3x\"", "\"3x\" is not a span"),
    ] {
        assert!(original.contains(from), "the template has {from}");
        fs::write(&global, original.replace(from, to)).unwrap();
        let out = ws.fails(&["check"], 2);
        assert!(out.contains("error: backupapps.toml [retention]"), "{out}");
        assert!(out.contains(says), "{out}");
        assert!(!out.contains("apps/app/files.toml"), "blamed on the profile:\n{out}");
    }
    // Unknown keys: the key as written, the file, no internal prefixes.
    fs::write(&global, original.replace("\ndaily = 7", "\ndayly = 7")).unwrap();
    let out = ws.fails(&["check"], 2);
    assert!(out.contains("unknown key retention.dayly in backupapps.toml"), "{out}");
    assert!(!out.contains("default."), "{out}");
    fs::write(&global, &original).unwrap();
    // The same mistakes in the profile are the profile's.
    ws.write(
        "apps/app/files.toml",
        &format!(
            "kind = \"files\"\ndest_prefix = \"app/files\"\npaths = [\"{}\"]\n[retention]\nwithin = \"3x\"\n",
            src.display()
        ),
    );
    let out = ws.fails(&["check"], 2);
    assert!(out.contains("apps/app/files.toml [retention]"), "{out}");
    ws.write(
        "apps/app/files.toml",
        &format!(
            "kind = \"files\"\ndest_prefix = \"app/files\"\npaths = [\"{}\"]\n[retention]\nhourli = 3\n",
            src.display()
        ),
    );
    let out = ws.fails(&["check"], 2);
    assert!(
        out.contains("unknown key retention.hourli in apps/app/files.toml"),
        "{out}"
    );
}

#[test]
fn list_all_shows_backups_no_profile_names_any_more() {
    let ws = backed_up();
    let src = ws.path("src");
    ws.files_profile("app/other", &src, "");
    ws.ok(&["backup", "app/other"]);
    let old_id = ws.list("app/files")[0]["id"].as_str().unwrap().to_owned();
    // The profile file goes; its backups stay in the store.
    fs::remove_file(ws.path("apps/app/files.toml")).unwrap();
    let out = ws.run(&["list"]);
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("note: the store also holds 1 backup under 1 prefix no profile names (app/files)")
            && stderr.contains("list --all"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&old_id));
    let all = ws.ok(&["list", "--all"]);
    assert!(
        all.contains(&old_id) && all.contains("no profile names dest_prefix app/files"),
        "{all}"
    );
    let rows: serde_json::Value = serde_json::from_str(&ws.ok(&["list", "--all", "--json"])).unwrap();
    let orphan = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == old_id.as_str())
        .expect("the orphan backup is listed");
    assert_eq!(orphan["orphan"], true);
    assert_eq!(orphan["trusted"], true, "signed by the workspace's key: {orphan}");
    assert_eq!(orphan["target"], "app/files");
    // Named again: no note.
    ws.files_profile("app/files", &src, "");
    let out = ws.run(&["list"]);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("note:"),
        "{}",
        text(&out)
    );
    // No profile left at all: the store of backupapps.toml is still looked at.
    fs::remove_dir_all(ws.path("apps/app")).unwrap();
    let out = ws.run(&["list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("2 backups under 2 prefixes no profile names (app/files, app/other)"),
        "{stderr}"
    );
    // Not under -q, nor in JSON.
    for args in [&["-q", "list"][..], &["list", "--json"]] {
        let out = ws.run(args);
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("note:"),
            "{args:?}: {}",
            text(&out)
        );
    }
    let all = ws.ok(&["list", "--all"]);
    assert!(all.contains("app/other") && all.contains(&old_id), "{all}");
}

#[test]
fn ids_take_unique_prefixes_and_ambiguity_lists_the_candidates() {
    let ws = backed_up();
    ws.ok(&["backup", "app/files", "--time", "2026-01-02T03:04:05Z", "--no-prune"]);
    let ids: Vec<String> = ws
        .list("app/files")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let old = &ids[0];
    let into = ws.path("by-prefix");
    ws.ok(&[
        "restore",
        "app/files",
        "--id",
        &old[..10],
        "--to",
        into.to_str().unwrap(),
    ]);
    assert!(into.is_dir());
    // "20" starts both ids.
    let out = ws.fails(
        &[
            "restore",
            "app/files",
            "--id",
            "20",
            "--to",
            ws.path("x").to_str().unwrap(),
        ],
        2,
    );
    assert!(out.contains(&ids[0]) && out.contains(&ids[1]), "{out}");
    // A fragment that starts neither id nor either random part (which is
    // random: a fixed "19" matched one backup in 128).
    let none = (0..=255u8)
        .map(|b| format!("{b:02x}"))
        .find(|f| {
            ids.iter()
                .all(|id| !id.starts_with(f.as_str()) && !id.split('-').nth(1).unwrap_or("").starts_with(f.as_str()))
        })
        .expect("a fragment matching nothing");
    let out = ws.fails(
        &[
            "restore",
            "app/files",
            "--id",
            &none,
            "--to",
            ws.path("y").to_str().unwrap(),
        ],
        2,
    );
    assert!(out.contains(&none), "{out}");
}

#[test]
fn paths_on_the_command_line_are_relative_to_the_current_directory() {
    let ws = backed_up();
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .current_dir(cwd.path())
        .args([
            "--home",
            ws.home().to_str().unwrap(),
            "restore",
            "app/files",
            "--to",
            "./x",
        ])
        .env_remove("BACKUPAPPS_HOME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(cwd.path().join("x").is_dir(), "restored under the current directory");
    assert!(!ws.path("x").exists(), "not under the workspace");
}

#[test]
fn crontab_keeps_daily_style_schedules() {
    let ws = Ws::new();
    let src = ws.path("src");
    fs::create_dir_all(&src).unwrap();
    ws.files_profile("app/files", &src, "schedule = \"@daily\"");
    ws.files_profile("app/weekly", &src, "schedule = \"@Weekly\"");
    ws.files_profile("app/secs", &src, "schedule = \"30 0 2 * * *\"");
    let out = ws.ok(&["schedule", "crontab"]);
    let line = |target: &str| {
        out.lines()
            .find(|l| l.contains(target) && !l.starts_with('#'))
            .map(str::to_owned)
    };
    assert!(line("app/files").unwrap().starts_with("@daily cd "), "{out}");
    assert!(line("app/weekly").unwrap().starts_with("@weekly cd "), "{out}");
    assert!(line("app/secs").is_none(), "{out}");
    assert!(out.contains("app/secs") && out.contains("seconds"), "{out}");
}

#[test]
fn every_subcommand_has_a_man_page_with_the_three_sections() {
    let dir = tempfile::tempdir().unwrap();
    let out = in_dir(dir.path(), &["man", "--out-dir", "pages"]);
    assert!(out.status.success(), "{}", text(&out));
    let pages = dir.path().join("pages");
    let names: Vec<String> = fs::read_dir(&pages)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // Every subcommand clap knows, nested ones too, from its own help.
    let mut expected = vec!["backupapps.1".to_owned()];
    for (parent, help) in [
        ("backupapps", in_dir(dir.path(), &["--help"])),
        ("backupapps-db", in_dir(dir.path(), &["db", "--help"])),
        ("backupapps-schedule", in_dir(dir.path(), &["schedule", "--help"])),
    ] {
        let help = String::from_utf8(help.stdout).unwrap();
        let commands = help.split("Commands:").nth(1).unwrap().split("\n\n").next().unwrap();
        // `  name  about`; wrapped descriptions are indented further.
        for line in commands
            .lines()
            .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        {
            let name = line.split_whitespace().next().unwrap();
            if name != "help" {
                expected.push(format!("{parent}-{name}.1"));
            }
        }
    }
    for page in &expected {
        assert!(names.contains(page), "{page} missing from {names:?}");
        let text = fs::read_to_string(pages.join(page)).unwrap();
        for section in ["EXIT STATUS", "ENVIRONMENT", "FILES"] {
            assert!(text.contains(&format!(".SH \"{section}\"")), "{page} lacks {section}");
        }
        assert!(text.contains("BACKUPAPPS_PASSPHRASE") && text.contains("143"), "{page}");
        // Every page it refers to was generated.
        for word in text.split(|c: char| c.is_whitespace() || c == ',') {
            if let Some(name) = word.replace("\\-", "-").strip_suffix("(1)") {
                if name.starts_with("backupapps") {
                    assert!(names.contains(&format!("{name}.1")), "{page} refers to {name}(1)");
                }
            }
        }
    }
    // One page on stdout, for a nested subcommand too.
    let out = in_dir(dir.path(), &["man", "db", "list"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("backupapps\\-db\\-list"));
    assert_eq!(in_dir(dir.path(), &["man", "nope"]).status.code(), Some(2));
}

#[test]
fn sizes_are_binary_units_and_counts_agree() {
    let ws = Ws::new();
    let src = ws.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), "small").unwrap();
    ws.files_profile("app/files", &src, "");
    // The count and its noun agree: "1 chunk", "2 chunks".
    let agrees = |out: &str, noun: &str| {
        let words: Vec<&str> = out.split_whitespace().collect();
        let mut seen = false;
        for pair in words.windows(2) {
            let word = pair[1].trim_end_matches([',', ')']);
            let number = pair[0].trim_start_matches('(');
            if let (Ok(n), true) = (number.parse::<u64>(), word.starts_with(noun)) {
                seen = true;
                assert_eq!(word == noun, n == 1, "{out}");
            }
        }
        assert!(seen, "no count of {noun} in {out}");
    };
    let out = ws.ok(&["backup", "app/files"]);
    agrees(&out, "chunk");
    assert!(!out.contains("bytes") && !out.contains("(s)"), "{out}");
    assert!(out.contains(" B stored"), "small sizes in bytes, with the unit: {out}");
    let out = ws.ok(&["verify", "app/files"]);
    agrees(&out, "chunk");
    assert!(out.contains("1 file, 1 directory, 0 symlinks, 5 B"), "{out}");
    let restored = ws.ok(&["restore", "app/files", "--to", ws.path("r").to_str().unwrap()]);
    assert!(restored.contains("1 file,") && restored.contains(" B"), "{restored}");
    // Larger: KiB (binary units), never raw byte counts.
    fs::write(
        src.join("big.bin"),
        (0..400_000u32).map(|i| (i * 7919 % 251) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    let out = ws.ok(&["backup", "app/files"]);
    agrees(&out, "chunk");
    assert!(out.contains("KiB read"), "{out}");
    let listed = ws.ok(&["list", "app/files"]);
    assert!(listed.contains(" KiB ") || listed.contains(" B "), "{listed}");
}

#[test]
fn init_next_hint_runs_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("my ws");
    let out = in_dir(dir.path(), &["init", home.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let copy = stdout
        .lines()
        .find(|l| l.contains("cp "))
        .unwrap()
        .trim()
        .split("   (")
        .next()
        .unwrap()
        .to_owned();
    let run = Command::new("bash")
        .arg("-c")
        .arg(&copy)
        .current_dir("/")
        .output()
        .unwrap();
    assert!(run.status.success(), "{copy}:\n{}", text(&run));
    assert!(home.join("apps/myapp/files.toml").is_file(), "{copy}");
}

#[test]
fn db_dump_file_is_relative_to_the_current_directory() {
    let Some(p) = support::PgWs::new(backup_pg::testing::Auth::Trust, "") else {
        return;
    };
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .current_dir(cwd.path())
        .args([
            "--home",
            p.ws.home().to_str().unwrap(),
            "db",
            "dump",
            "prod",
            "shop",
            "shop.pgdump",
        ])
        .env_remove("BACKUPAPPS_HOME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        cwd.path().join("shop.pgdump").is_file(),
        "dumped into the current directory"
    );
    assert!(!p.ws.path("shop.pgdump").exists(), "not into the workspace");
}

#[test]
fn store_urls_on_the_command_line_are_relative_to_the_current_directory() {
    let ws = backed_up();
    let cwd = ws.path("elsewhere");
    fs::create_dir_all(&cwd).unwrap();
    let out = ws
        .cmd(&["copy", "--to-store", "file://second"])
        .current_dir(&cwd)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(cwd.join("second/app/files").is_dir(), "{}", text(&out));
    assert!(!ws.path("second").exists(), "not relative to the workspace");
    let listed = ws
        .cmd(&["list", "--store", "file://second", "--json"])
        .current_dir(&cwd)
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", text(&listed));
    let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    // Not a URL: one error, exit 2.
    let out = ws.fails(&["list", "--store", "/not/a/url"], 2);
    assert_eq!(out.matches("is not supported").count(), 1, "{out}");
}

#[test]
fn bad_copy_to_values_are_errors_of_every_command() {
    let ws = backed_up();
    let global = fs::read_to_string(ws.path("backupapps.toml")).unwrap();
    let url = global
        .lines()
        .find_map(|l| l.strip_prefix("url = "))
        .expect("the store url line")
        .to_owned();
    let with = |copy_to: &str| global.replacen("[store]\n", &format!("[store]\ncopy_to = {copy_to}\n"), 1);
    let edited = with("[\"/tmp/not-a-url\"]");
    assert_ne!(edited, global, "the test expects a [store] section");
    fs::write(ws.path("backupapps.toml"), edited).unwrap();
    for args in [&["list"][..], &["check"], &["backup", "app/files"]] {
        let out = ws.fails(args, 2);
        assert!(
            out.contains("is not a store URL") && out.contains("copy_to"),
            "{args:?}: {out}"
        );
    }
    // The store itself among copy_to (as when the workspace is pointed at a
    // copy for one command): not a copy of itself, nothing to do there.
    fs::write(ws.path("backupapps.toml"), with(&format!("[{url}]"))).unwrap();
    ws.ok(&["backup", "app/files"]);
    assert_eq!(ws.list("app/files").len(), 2, "one before, one now; none refused");
}
