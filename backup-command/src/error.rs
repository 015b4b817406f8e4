//! What went wrong running a program.

use std::time::Duration;

/// A program that could not be started, failed, or ran too long. Names the
/// program only: its arguments may hold things that do not belong in logs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The argv was empty.
    #[error("empty command: give the program and its arguments, e.g. [\"mysqldump\", \"shop\"]")]
    Empty,
    /// The program could not be started (not installed, not executable).
    #[error("cannot start {program}")]
    Start {
        /// The program (argv\[0\]).
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The program exited non-zero or was killed by a signal.
    #[error("{program} failed ({status}){stderr}")]
    Failed {
        /// The program (argv\[0\]).
        program: String,
        /// Its exit status as the system describes it.
        status: String,
        /// `: ` and the tail of its standard error, or nothing.
        stderr: String,
    },
    /// The program exited successfully without reading all of its input:
    /// what it restored is incomplete.
    #[error("{program} exited without reading all of its input (it took {fed} bytes, then closed it): the restore is incomplete")]
    StoppedReading {
        /// The program (argv\[0\]).
        program: String,
        /// Bytes it read before closing its input.
        fed: u64,
    },
    /// The program did not finish within its time and was stopped.
    #[error("{program} did not finish within {} s; it was stopped", timeout.as_secs())]
    TimedOut {
        /// The program (argv\[0\]).
        program: String,
        /// The time it had.
        timeout: Duration,
    },
    /// Talking to the program failed.
    #[error("{program}: {what}")]
    Io {
        /// The program (argv\[0\]).
        program: String,
        /// What was being done.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl CommandError {
    /// The program this error is about, if any.
    pub fn program(&self) -> Option<&str> {
        match self {
            CommandError::Empty => None,
            CommandError::Start { program, .. }
            | CommandError::Failed { program, .. }
            | CommandError::TimedOut { program, .. }
            | CommandError::StoppedReading { program, .. }
            | CommandError::Io { program, .. } => Some(program),
        }
    }
}

impl From<CommandError> for backup_core::Error {
    fn from(e: CommandError) -> Self {
        // The core error names the source itself: the reason goes without
        // the program, with the cause chain in the text (there is no slot).
        let reason = match &e {
            CommandError::Empty => e.to_string(),
            CommandError::Start { source, .. } => format!("cannot start it: {source}"),
            CommandError::Failed { status, stderr, .. } => format!("failed ({status}){stderr}"),
            CommandError::TimedOut { timeout, .. } => {
                format!("did not finish within {} s; it was stopped", timeout.as_secs())
            }
            CommandError::StoppedReading { fed, .. } => format!(
                "exited without reading all of its input (it took {fed} bytes, then closed it): the restore is incomplete"
            ),
            CommandError::Io { what, source, .. } => format!("{what}: {source}"),
        };
        backup_core::Error::source_failed(e.program().unwrap_or("command"), reason)
    }
}
