//! `backupapps`: the command-line front of the backupapps crates.
// Doc comments on the clap types are the `--help` text users read, written
// for the terminal (`[mirror]`, `<app>`), not rustdoc links or HTML.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

mod cli;
mod commands;
mod debris;
mod hints;
mod interrupt;
mod kinds;
mod lock;
mod monitoring;
mod output;
mod private;
mod progress;
mod report;
mod settings;
mod templates;
mod unlocking;
mod validate;
mod wiring;
mod workspace;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging(&cli);
    progress::set_quiet(cli.quiet);
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
                eprintln!("error: {e:#}");
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
        .with_target(false);
    match cli.log_format {
        cli::LogFormat::Text => builder.init(),
        cli::LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
