//! Dispatch, exit codes, and what every command over several profiles shares.

mod backup;
mod check;
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

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cli, Command, DbCommand, ScheduleCommand};
use crate::workspace::Workspace;

/// The commands that print JSON with `--json`, for the refusal message.
const JSON_COMMANDS: &str = "list, check, verify, prune, restore and db list";

/// The name of a command without JSON output, as the user typed it; `None`
/// for the commands in [`JSON_COMMANDS`]. An exhaustive match, so a new
/// command must decide here.
fn without_json(command: &Command) -> Option<&'static str> {
    match command {
        Command::List { .. }
        | Command::Check { .. }
        | Command::Verify { .. }
        | Command::Prune { .. }
        | Command::Restore { .. }
        | Command::Db {
            command: DbCommand::List { .. },
        } => None,
        Command::Init { .. } => Some("init"),
        Command::Demo { .. } => Some("demo"),
        Command::Keygen { .. } => Some("keygen"),
        Command::Backup { .. } => Some("backup"),
        Command::Mirror { .. } => Some("mirror"),
        Command::Completions { .. } => Some("completions"),
        Command::Man => Some("man"),
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
        Command::Man => {
            let mut text = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut text)?;
            crate::output::write_stdout(&text)?;
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
                } => backup::run(&ws, &targets, time.as_deref(), no_prune).await,
                Command::List { targets, recipients } => list::run(&ws, &targets, json, recipients).await,
                Command::Check { targets } => check::run(&ws, &targets, json).await,
                Command::Restore {
                    target,
                    id,
                    at,
                    to,
                    to_db,
                    replace,
                    preserve_owners,
                    db,
                } => {
                    let dest = crate::kinds::Destination {
                        to,
                        to_db,
                        replace,
                        preserve_owners,
                        db,
                    };
                    restore::run(&ws, &target, id.as_deref(), at.as_deref(), dest, json).await
                }
                Command::Verify { targets, all } => verify::run(&ws, &targets, all, json).await,
                Command::Mirror {
                    targets,
                    backup,
                    dry_run,
                } => mirror::run(&ws, &targets, backup.as_deref(), dry_run).await,
                Command::Db { command } => db::run(&ws, command, json).await,
                Command::Schedule { .. } => schedule::crontab(&ws),
                Command::Prune { targets, dry_run } => prune::run(&ws, &targets, dry_run, json).await,
                Command::Init { .. }
                | Command::Demo { .. }
                | Command::Keygen { .. }
                | Command::Completions { .. }
                | Command::Man => {
                    unreachable!("handled above")
                }
            }
        }
    }
}
