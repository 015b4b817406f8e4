//! `kind = "command"` profiles: a program's stdout is the backup; a program
//! that fails or is killed leaves no listed backup; restores go to a file
//! (0600) or into `restore_command`'s stdin.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use backup_pg::testing::{Auth, TestCluster};
use support::{text, Ws};

/// `argv` as a TOML array.
fn toml_argv(argv: &[&str]) -> String {
    let items: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
    format!("[{}]", items.join(", "))
}

fn command_profile(ws: &Ws, target: &str, command: &[&str], extra: &str) {
    ws.write(
        &format!("apps/{target}.toml"),
        &format!(
            "kind = \"command\"\ndest_prefix = \"{target}\"\ncommand = {}\n{extra}\n[backup]\nchunk_size = \"64KiB\"\n",
            toml_argv(command)
        ),
    );
}

/// Whether any `manifest.json` exists under the profile's store folder.
fn has_manifest(ws: &Ws, prefix: &str) -> bool {
    let mut dirs = vec![ws.path("store").join(prefix)];
    while let Some(dir) = dirs.pop() {
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.file_name().is_some_and(|n| n == "manifest.json") {
                return true;
            }
        }
    }
    false
}

#[test]
fn pg_dumpall_globals_back_up_and_restore_to_a_file_and_into_psql() {
    let Some(pg) = TestCluster::start(Auth::Trust) else {
        return;
    };
    pg.psql("postgres", "CREATE ROLE shop_reader LOGIN CONNECTION LIMIT 7");
    let port = pg.port.to_string();
    let dumpall = pg.bindir.join("pg_dumpall").display().to_string();
    let psql = pg.bindir.join("psql").display().to_string();
    let connect = ["-h", "127.0.0.1", "-p", port.as_str(), "-U", "postgres"];
    // What pg_dumpall printed is kept aside to compare with (its output
    // differs per run: PostgreSQL 17 adds a random \\restrict key).
    let script = format!(
        "{dumpall} --globals-only -h 127.0.0.1 -p {port} -U postgres > data/expected.sql && cat data/expected.sql"
    );
    let command = vec!["sh", "-c", script.as_str()];
    let mut restore = vec![psql.as_str(), "-X", "-q", "-d", "postgres"];
    restore.extend(connect);
    let ws = Ws::new();
    command_profile(
        &ws,
        "shop/globals",
        &command,
        &format!(
            "restore_command = {}\nrestore_file_name = \"globals.sql\"",
            toml_argv(&restore)
        ),
    );
    let out = ws.ok(&["check", "shop/globals"]);
    assert!(out.contains("sh found") && out.contains("psql found"), "{out}");
    ws.ok(&["backup", "shop/globals"]);
    let expected = fs::read(ws.path("data/expected.sql")).unwrap();
    assert!(String::from_utf8_lossy(&expected).contains("shop_reader"));

    // To a file: byte-identical, owner-only.
    let to = ws.path("restored");
    ws.ok(&["restore", "shop/globals", "--to", to.to_str().unwrap()]);
    let file = to.join("globals.sql");
    assert!(fs::read(&file).unwrap() == expected, "byte-identical");
    assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    // Never over an existing file.
    let out = ws.fails(&["restore", "shop/globals", "--to", to.to_str().unwrap()], 2);
    assert!(out.contains("exists"), "{out}");

    // Into psql's stdin: the dropped role comes back.
    pg.psql("postgres", "DROP ROLE shop_reader");
    ws.ok(&["restore", "shop/globals", "--to-command"]);
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'shop_reader'"
        ),
        "7"
    );
    let verify = ws.ok(&["verify", "shop/globals"]);
    assert!(
        verify.contains("OK") && verify.contains("no structure check"),
        "{verify}"
    );
    assert_eq!(ws.list("shop/globals")[0]["marks"]["verified"]["mode"], "full");
}

#[test]
fn a_command_that_prints_data_then_exits_1_leaves_no_listed_backup() {
    let ws = Ws::new();
    command_profile(
        &ws,
        "app/half",
        &[
            "sh",
            "-c",
            "head -c 300000 /dev/urandom; echo broken pipe to the server >&2; exit 1",
        ],
        "",
    );
    let out = ws.fails(&["backup", "app/half"], 1);
    assert!(
        out.contains("exit status: 1") && out.contains("broken pipe to the server"),
        "{out}"
    );
    assert!(ws.list("app/half").is_empty());
    assert!(!has_manifest(&ws, "app/half"));
    // A program that is not installed: a clear failure, nothing stored.
    command_profile(&ws, "app/half", &["no-such-program-here", "x"], "");
    let out = ws.fails(&["backup", "app/half"], 1);
    assert!(
        out.contains("no-such-program-here") && out.contains("cannot start"),
        "{out}"
    );
    let out = ws.run(&["check", "app/half"]);
    assert!(
        text(&out).contains("no-such-program-here not found on PATH"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_killed_command_leaves_no_listed_backup() {
    let ws = Ws::new();
    command_profile(
        &ws,
        "app/killed",
        &[
            "sh",
            "-c",
            "echo $$ > data/cmd.pid; head -c 200000 /dev/zero; sleep 60; echo never",
        ],
        "",
    );
    let child = ws
        .cmd(&["backup", "app/killed"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid_file = ws.path("data/cmd.pid");
    let deadline = Instant::now() + Duration::from_secs(20);
    while fs::read_to_string(&pid_file).map_or(true, |p| p.trim().is_empty()) {
        assert!(Instant::now() < deadline, "the command did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let pid = fs::read_to_string(&pid_file).unwrap();
    Command::new("kill").args(["-KILL", pid.trim()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("signal: 9"), "{}", text(&out));
    assert!(ws.list("app/killed").is_empty());
    assert!(!has_manifest(&ws, "app/killed"));
}

#[test]
fn restore_into_a_failing_restore_command_fails() {
    let ws = Ws::new();
    command_profile(
        &ws,
        "app/out",
        &["sh", "-c", "seq 1 50000"],
        "restore_command = [\"sh\", \"-c\", \"cat > data/fed.txt; exit 4\"]",
    );
    ws.ok(&["backup", "app/out"]);
    let out = ws.fails(&["restore", "app/out", "--to-command"], 1);
    assert!(out.contains("exit status: 4"), "{out}");
    // What it was fed is the whole output, in order.
    let expected: String = (1..=50000).map(|n| format!("{n}\n")).collect();
    assert_eq!(fs::read_to_string(ws.path("data/fed.txt")).unwrap(), expected);
    // Default file name: <profile>.out.
    let to = ws.path("r");
    ws.ok(&["restore", "app/out", "--to", to.to_str().unwrap()]);
    assert_eq!(fs::read_to_string(to.join("out.out")).unwrap(), expected);
    // --to-command needs a restore_command; a bad file name is refused.
    command_profile(
        &ws,
        "app/out",
        &["sh", "-c", "seq 1 3"],
        "restore_file_name = \"../escape\"",
    );
    let out = ws.fails(&["restore", "app/out", "--to-command"], 2);
    assert!(out.contains("restore_command"), "{out}");
    let out = ws.fails(&["restore", "app/out", "--to", ws.path("r2").to_str().unwrap()], 2);
    assert!(out.contains("restore_file_name"), "{out}");
    assert!(!ws.path("escape").exists());
}

#[test]
fn a_restore_command_that_stops_reading_early_fails_and_marks_nothing() {
    let ws = Ws::new();
    // ~1 MiB: more than a pipe holds, so `true` exiting unread is seen.
    command_profile(
        &ws,
        "app/early",
        &["sh", "-c", "seq 1 150000"],
        "restore_command = [\"true\"]",
    );
    ws.ok(&["backup", "app/early"]);
    let out = ws.fails(&["restore", "app/early", "--to-command"], 1);
    assert!(out.contains("without reading all of its input"), "{out}");
    let row = &ws.list("app/early")[0];
    assert_ne!(
        row["restore_verified"], true,
        "an incomplete restore proves nothing: {row}"
    );
}

#[test]
fn the_command_template_is_valid_configuration_with_every_key_uncommented() {
    let ws = Ws::new();
    let template = fs::read_to_string(ws.path("apps/templates/command.toml")).unwrap();
    // `# key = value` and `# [section]` lines become settings.
    let uncommented: String = template
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.starts_with('[')
                    || rest
                        .split_once(" = ")
                        .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_')) =>
            {
                rest
            }
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        uncommented.contains("\nrestore_command = ") && uncommented.contains("\n[verify]"),
        "{uncommented}"
    );
    ws.write("apps/shop/mysql.toml", &uncommented);
    let plan = ws.ok(&["schedule", "list"]);
    assert!(
        plan.contains("backup shop/mysql") && plan.contains("verify shop/mysql"),
        "{plan}"
    );
    // check names the missing program instead of failing later.
    let out = ws.run(&["check", "shop/mysql"]);
    let all = text(&out);
    assert!(all.contains("command") && all.contains("mysqldump"), "{all}");
}
