//! Clean under cron (issue 14): `-q` prints nothing on success, failures
//! one line each, no colour codes in redirected logs, and a closed pipe ends
//! the output without a panic.

mod support;

use std::fs::{self, File};
use std::process::{Command, Output, Stdio};

use support::{Ws, BIN};

/// A workspace with the profiles `app/one` and `app/two` over small folders.
fn two_profiles() -> Ws {
    let ws = Ws::new();
    for name in ["one", "two"] {
        let dir = ws.path(&format!("data/{name}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("a.txt"), format!("content of {name}")).unwrap();
        ws.files_profile(&format!("app/{name}"), &dir, "");
    }
    ws
}

/// Runs with stdout and stderr redirected to files, as cron does; returns the
/// exit code and both files' text.
fn captured(ws: &Ws, args: &[&str]) -> (Option<i32>, String, String) {
    let files = tempfile::tempdir().unwrap();
    let (out, err) = (files.path().join("stdout"), files.path().join("stderr"));
    let status = ws
        .cmd(args)
        .env_remove("NO_COLOR")
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap())
        .status()
        .unwrap();
    let read = |p| fs::read_to_string(p).unwrap();
    (status.code(), read(&out), read(&err))
}

/// Runs with stdout a pipe whose reader is gone before anything is written
/// (`… | head` that has read enough): the first write meets EPIPE.
fn into_closed_pipe(mut command: Command) -> Output {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

fn assert_quiet_end(what: &str, out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{what}: {stderr}");
    assert!(stderr.is_empty(), "{what} printed on a closed pipe: {stderr}");
}

#[test]
fn quiet_backup_prints_nothing_on_success() {
    let ws = two_profiles();
    let (code, stdout, stderr) = captured(&ws, &["-q", "backup"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(stdout, "");
    assert_eq!(stderr, "");
    assert_eq!(ws.list("app/one").len(), 1);
    assert_eq!(ws.list("app/two").len(), 1);
    for args in [["-q", "verify"], ["-q", "prune"]] {
        let (code, stdout, stderr) = captured(&ws, &args);
        assert_eq!((code, stdout.as_str(), stderr.as_str()), (Some(0), "", ""), "{args:?}");
    }
    let restored = ws.path("restored");
    let (code, stdout, stderr) = captured(&ws, &["-q", "restore", "app/one", "--to", restored.to_str().unwrap()]);
    assert_eq!((code, stdout.as_str(), stderr.as_str()), (Some(0), "", ""));
    assert!(restored.is_dir());
}

#[test]
fn quiet_backup_prints_one_line_per_failed_profile() {
    let ws = two_profiles();
    for name in ["gone", "also-gone"] {
        ws.files_profile(&format!("app/{name}"), &ws.path(&format!("data/{name}")), "");
    }
    let (code, stdout, stderr) = captured(&ws, &["-q", "backup"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert_eq!(stdout, "");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].starts_with("app/also-gone: backup failed: "), "{stderr}");
    assert!(lines[1].starts_with("app/gone: backup failed: "), "{stderr}");
    assert_eq!(ws.list("app/one").len(), 1, "the others were backed up");
}

#[test]
fn summaries_once_on_stdout_with_a_total_and_no_colour_in_files() {
    let ws = two_profiles();
    ws.files_profile("app/gone", &ws.path("data/gone"), "");
    let (code, stdout, stderr) = captured(&ws, &["backup"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].starts_with("app/one: backup "), "{stdout}");
    assert!(lines[1].starts_with("app/two: backup "), "{stdout}");
    assert!(
        lines[2].starts_with("3 profiles: 2 ok, 1 failed, ") && lines[2].ends_with(" stored"),
        "{stdout}"
    );
    assert!(!stderr.contains("backup done"), "summary logged as well: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("app/gone: backup failed: "), "{stderr}");

    // A debug log has plenty of lines: none with colour codes in a file.
    let (code, _, stderr) = captured(&ws, &["-v", "backup", "app/one"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("DEBUG"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "ANSI codes in a redirected log: {stderr:?}");
}

#[test]
fn closed_pipes_end_quietly() {
    let mut completions = Command::new(BIN);
    completions.args(["completions", "zsh"]);
    assert_quiet_end("completions zsh", &into_closed_pipe(completions));
    let mut man = Command::new(BIN);
    man.arg("man");
    assert_quiet_end("man", &into_closed_pipe(man));

    let ws = two_profiles();
    ws.ok(&["backup"]);
    assert_quiet_end("list", &into_closed_pipe(ws.cmd(&["list"])));
    assert_quiet_end("verify", &into_closed_pipe(ws.cmd(&["verify"])));
    // A backup whose reader went away still finishes.
    assert_quiet_end("backup", &into_closed_pipe(ws.cmd(&["backup"])));
    assert_eq!(ws.list("app/one").len(), 2);
}
