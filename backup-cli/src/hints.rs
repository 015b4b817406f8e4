//! What to do next, added by the CLI to the libraries' neutral errors.

/// A library error with the CLI's hint after it: `…: database exists already; pass --replace`.
#[derive(Debug)]
pub struct Hinted {
    /// The library's error (kept for the exit status).
    pub error: backup_core::Error,
    /// What to do.
    pub hint: String,
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The cause chain is printed inline: this error has no `source()`, so
        // `{:#}` does not repeat it.
        write!(f, "{}; {}", self.error.report(), self.hint)
    }
}

impl std::error::Error for Hinted {}

/// Adds `hint` to `error`.
pub fn hint(error: backup_core::Error, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        error,
        hint: hint.into(),
    })
}
