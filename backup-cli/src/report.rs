//! Exit statuses and per-profile failure reports (DESIGN §4).

use std::process::ExitCode;

use crate::workspace::ConfigError;

/// 2 for configuration, keys, arguments and damaged or missing backups;
/// 1 for a run that failed on the way (DESIGN §4).
pub fn exit_code(error: &anyhow::Error) -> u8 {
    if let Some(signal) = crate::interrupt::signal_of(error) {
        return signal.exit_code();
    }
    for cause in error.chain() {
        let core = cause
            .downcast_ref::<backup_core::Error>()
            .or_else(|| cause.downcast_ref::<crate::hints::Hinted>().map(|h| &h.error));
        if let Some(core) = core {
            if matches!(core, backup_core::Error::Busy { .. }) {
                return 1;
            }
            return if core.is_bad_input() { 2 } else { 1 };
        }
        if cause.downcast_ref::<ConfigError>().is_some() {
            return 2;
        }
        if cause.downcast_ref::<crate::lock::LockHeld>().is_some() {
            return 1;
        }
    }
    // Errors raised by the CLI itself are about configuration or arguments.
    2
}

/// The exit status for a run over several profiles: the worst one.
pub fn worst(codes: &[u8]) -> ExitCode {
    ExitCode::from(codes.iter().copied().max().unwrap_or(0))
}

/// Prints one profile's failure and returns its exit code.
pub fn failure(target: &str, what: &str, error: &anyhow::Error) -> u8 {
    eprintln!("{target}: {what} failed: {error:#}");
    exit_code(error)
}
