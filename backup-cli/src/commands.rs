//! Dispatch, exit codes, and what every command over several profiles shares.

mod backup;
mod browse;
mod check;
mod copy;
mod db;
mod demo;
mod init;
mod keygen;
mod list;
mod mirror;
mod prune;
mod restore;
mod schedule;
mod verify;
mod verify_drill;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cli, Command, DbCommand, ScheduleCommand};
use crate::workspace::Workspace;
pub(crate) use browse::partial::restore_selected;

/// The commands that print JSON with `--json`, for the refusal message.
const JSON_COMMANDS: &str =
    "list, check, backup, verify, prune, mirror, restore, copy, schedule list, db list, ls, find, diff, info and dump";

/// The name of a command without JSON output, as the user typed it; `None`
/// for the commands in [`JSON_COMMANDS`]. An exhaustive match, so a new
/// command must decide here.
fn without_json(command: &Command) -> Option<&'static str> {
    match command {
        Command::List { .. }
        | Command::Check { .. }
        | Command::Verify { .. }
        | Command::Prune { .. }
        | Command::Backup { .. }
        | Command::Mirror { .. }
        | Command::Restore { .. }
        | Command::Copy { .. }
        | Command::Ls { .. }
        | Command::Find { .. }
        | Command::Diff { .. }
        | Command::Info { .. }
        | Command::Dump { .. }
        | Command::Schedule {
            command: ScheduleCommand::List,
        }
        | Command::Db {
            command: DbCommand::List { .. },
        } => None,
        Command::Init { .. } => Some("init"),
        Command::Demo { .. } => Some("demo"),
        Command::Keygen { .. } => Some("keygen"),
        Command::Completions { .. } => Some("completions"),
        Command::Man { .. } => Some("man"),
        Command::Schedule {
            command: ScheduleCommand::Run,
        } => Some("schedule run"),
        Command::Schedule {
            command: ScheduleCommand::Crontab,
        } => Some("schedule crontab"),
        Command::Db {
            command: DbCommand::Ping { .. },
        } => Some("db ping"),
        Command::Db {
            command: DbCommand::Dump { .. },
        } => Some("db dump"),
        Command::Db {
            command: DbCommand::RestoreToTest { .. },
        } => Some("db restore-to-test"),
    }
}

/// Runs the command; `Ok` carries the exit status of runs that continue past
/// failing profiles.
///
/// # Errors
/// Whatever stops the command as a whole.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let home = cli.home.clone().unwrap_or_else(|| PathBuf::from("."));
    let json = cli.json;
    if json {
        if let Some(name) = without_json(&cli.command) {
            // Refused before any work: a script asking for JSON must not get
            // text it cannot parse, nor a backup it did not expect to start.
            return Err(crate::workspace::ConfigError(format!(
                "--json is not supported by `{name}`; it is for {JSON_COMMANDS}; leave out --json"
            ))
            .into());
        }
    }
    match cli.command {
        Command::Init { dir, demo } => init::run(&dir.unwrap_or(home), demo).map(|()| ExitCode::SUCCESS),
        Command::Demo { dir } => demo::run(dir).await,
        // Rendered first, then written: `| head` closing the pipe ends the
        // output quietly instead of panicking inside the generator.
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut cmd, "backupapps", &mut text);
            crate::output::write_stdout(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { subcommand, out_dir } => {
            match out_dir {
                Some(dir) => {
                    let written = crate::manpages::write_all(&dir)?;
                    crate::output::say!("wrote {written} man pages to {}", dir.display());
                }
                None => crate::output::write_stdout(&crate::manpages::page(&subcommand)?)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Schedule {
            command: crate::cli::ScheduleCommand::Run,
        } => schedule::run(&home).await,
        Command::Keygen {
            name,
            email,
            no_passphrase,
            signing,
        } => keygen::run(&home, &name, email.as_deref(), no_passphrase, signing).map(|_| ExitCode::SUCCESS),
        command => {
            if matches!(
                command,
                Command::Backup { .. }
                    | Command::Restore { .. }
                    | Command::Verify { .. }
                    | Command::Mirror { .. }
                    | Command::Prune { .. }
                    | Command::Copy { .. }
            ) {
                // These clean up what they started before exiting (DESIGN §7).
                crate::interrupt::install()?;
            }
            let ws = Workspace::load(&home)?;
            match command {
                Command::Backup {
                    targets,
                    time,
                    no_prune,
                } => backup::run(&ws, &targets, time.as_deref(), no_prune, json).await,
                Command::List {
                    targets,
                    recipients,
                    store,
                    all,
                } => {
                    let store = store.as_deref().map(crate::wiring::command_line_url).transpose()?;
                    list::run_with(&ws, &targets, json, recipients, store.as_deref(), all).await
                }
                Command::Check { targets } => check::run(&ws, &targets, json).await,
                Command::Ls { target, path, id, at } => {
                    browse::ls::run(&ws, &target, id.as_deref(), at.as_deref(), path.as_deref(), json).await
                }
                Command::Find {
                    target, pattern, id, ..
                } => browse::find::run(&ws, &target, &pattern, id.as_deref(), json).await,
                Command::Diff { target, id1, id2 } => browse::diff::run(&ws, &target, &id1, &id2, json).await,
                Command::Info { target, id, at } => {
                    browse::info::run(&ws, &target, id.as_deref(), at.as_deref(), json).await
                }
                Command::Dump { target, path, id, at } => {
                    browse::dump::run(&ws, &target, &path, id.as_deref(), at.as_deref(), json).await
                }
                Command::Restore {
                    target,
                    id,
                    at,
                    to,
                    to_db,
                    replace,
                    preserve_owners,
                    to_command,
                    db,
                    files,
                } => {
                    let dest = crate::kinds::Destination {
                        to,
                        to_db,
                        replace,
                        preserve_owners,
                        db,
                        to_command,
                        files,
                    };
                    restore::run(&ws, &target, id.as_deref(), at.as_deref(), dest, json).await
                }
                Command::Verify {
                    targets, drill: true, ..
                } => verify_drill::run(&ws, &targets, json).await,
                Command::Verify { targets, all, .. } => verify::run(&ws, &targets, all, json).await,
                Command::Mirror {
                    targets,
                    backup,
                    dry_run,
                } => mirror::run(&ws, &targets, backup.as_deref(), dry_run, json).await,
                Command::Db { command } => db::run(&ws, command, json).await,
                Command::Schedule {
                    command: ScheduleCommand::List,
                } => schedule::list(&ws, json),
                Command::Schedule { .. } => schedule::crontab(&ws),
                Command::Prune { targets, dry_run } => prune::run(&ws, &targets, dry_run, json).await,
                Command::Copy {
                    targets,
                    to_store,
                    id,
                    all: _,
                    newest,
                    parallelism,
                } => {
                    let which = copy::Which::from_args(id.as_deref(), newest);
                    let to_store = crate::wiring::command_line_url(&to_store)?;
                    copy::run(&ws, &targets, &to_store, which, parallelism as usize, json).await
                }
                Command::Init { .. }
                | Command::Demo { .. }
                | Command::Keygen { .. }
                | Command::Completions { .. }
                | Command::Man { .. } => {
                    unreachable!("handled above")
                }
            }
        }
    }
}
