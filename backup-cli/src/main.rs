//! `backupapps`: the command-line front of the backupapps crates.
// Doc comments on the clap types are the `--help` text users read, written
// for the terminal (`[mirror]`, `<app>`), not rustdoc links or HTML.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

mod cli;
mod commands;
mod debris;
mod hints;
mod hooks;
mod interrupt;
mod kinds;
mod lock;
mod manpages;
mod monitoring;
mod orphans;
mod output;
mod private;
mod progress;
mod report;
mod scheduler;
mod settings;
mod templates;
mod unlocking;
mod validate;
mod wiring;
mod workspace;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    end_quietly_on_broken_pipe();
    let cli = cli::Cli::parse();
    output::set_mode(cli.quiet, matches!(cli.log_format, cli::LogFormat::Json));
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            // An interruption was logged in one line already.
            if interrupt::signal_of(&e).is_none() {
                eprintln!("error: {}", hints::render(&e));
            }
            ExitCode::from(report::exit_code(&e))
        }
    }
}

fn init_logging(cli: &cli::Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        // rpgp logs harmless re-serialisation notes at warn level: keep them out.
        (false, 0) => "warn,pgp=error,backupapps=info",
        (false, 1) => "info,pgp=error,backupapps=debug,backup_core=debug",
        _ => "debug,pgp=info,backupapps=trace,backup_core=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BACKUPAPPS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(output::colour_on_stderr())
        .with_target(false);
    match cli.log_format {
        cli::LogFormat::Text => builder.init(),
        cli::LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// `println!`/`eprintln!` panic when the reader of the pipe has gone
/// (`backupapps list | head -1`). Result lines of the long-running commands
/// go through `output::write_stdout`, which treats that as the end of the
/// output; for the remaining plain prints the panic is turned into a quiet
/// exit 0 here, like the reader asked. SIGPIPE stays ignored (Rust's
/// default): restoring its default action would also kill a run writing
/// into a `pg_restore` that exited, instead of reporting that as an error.
fn end_quietly_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        // The std message is "failed printing to stdout: Broken pipe (os error 32)".
        if message.contains("Broken pipe (os error 32)") {
            if message.starts_with("failed printing to stdout") {
                std::process::exit(0);
            }
            // stderr gone: a failure may have gone unreported, so not 0;
            // 141 is what a shell shows for a process ended by SIGPIPE.
            if message.starts_with("failed printing to stderr") {
                std::process::exit(141);
            }
        }
        default(info);
    }));
}
