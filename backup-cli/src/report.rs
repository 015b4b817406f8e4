//! Exit statuses and per-profile failure reports (DESIGN §4).

use std::io::Write;
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
    // Not `eprintln!`: a closed stderr must not turn the failure into a panic.
    let _ = writeln!(
        std::io::stderr(),
        "{target}: {what} failed: {}",
        crate::hints::render(error)
    );
    exit_code(error)
}

/// How the profiles of a multi-profile run went, for its closing total line.
#[derive(Debug, Default)]
pub struct Tally {
    ok: usize,
    failed: usize,
    stored: Option<u64>,
}

impl Tally {
    /// Counts one profile; `codes_before` is `codes.len()` before its work,
    /// so a profile that added an exit code counts as failed.
    pub fn profile(&mut self, codes_before: usize, codes: &[u8]) {
        if codes.len() > codes_before {
            self.failed += 1;
        } else {
            self.ok += 1;
        }
    }

    /// Adds bytes stored by a backup, shown in the total.
    pub fn stored(&mut self, bytes: u64) {
        *self.stored.get_or_insert(0) += bytes;
    }

    /// The total line, for runs over more than one profile:
    /// `3 profiles: 2 ok, 1 failed, 1.2 GiB stored`.
    pub fn line(&self) -> Option<String> {
        let profiles = self.ok + self.failed;
        (profiles > 1).then(|| {
            let stored = self
                .stored
                .map(|b| format!(", {} stored", crate::output::human_size(b)))
                .unwrap_or_default();
            format!("{profiles} profiles: {} ok, {} failed{stored}", self.ok, self.failed)
        })
    }

    /// Prints the total line (unless `-q`), and logs it as the run's event
    /// where summaries are logged.
    pub fn finish(&self, job: &str) {
        let Some(line) = self.line() else { return };
        crate::output::say!("{line}");
        if crate::output::log_summaries() {
            tracing::info!(
                job,
                ok = self.ok,
                failed = self.failed,
                stored = self.stored,
                "{job} run done"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Tally;

    #[test]
    fn total_line_only_for_several_profiles() {
        let mut one = Tally::default();
        one.profile(0, &[]);
        assert_eq!(one.line(), None);
        let mut t = Tally::default();
        t.profile(0, &[]);
        t.profile(0, &[1]);
        t.profile(1, &[1]);
        t.stored(3 << 29);
        assert_eq!(t.line().unwrap(), "3 profiles: 2 ok, 1 failed, 1.5 GiB stored");
    }
}
