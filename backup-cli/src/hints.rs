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

/// An error with its causes, `outer: cause: cause`, as `{:#}` prints it but
/// without a cause repeated that the text before it already ends with (a
/// context that quotes its source would otherwise show it twice:
/// "Permission denied (os error 13): Permission denied (os error 13)").
pub fn render(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if part.is_empty() || text.ends_with(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn a_cause_the_context_already_quotes_is_shown_once() {
        let os = std::io::Error::from_raw_os_error(13);
        let e = anyhow::Error::new(os).context("cannot read x: Permission denied (os error 13)");
        assert_eq!(render(&e), "cannot read x: Permission denied (os error 13)");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(render(&e), "outer: inner");
    }
}
