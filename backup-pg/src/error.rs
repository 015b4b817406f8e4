/// What went wrong talking to PostgreSQL, with the server and database.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PgError {
    #[error("cannot connect to {server}: {reason}")]
    Connect { server: String, reason: String },
    #[error("{server}: {statement}: {reason}")]
    Statement {
        server: String,
        statement: String,
        reason: String,
    },
    #[error("role {role:?} on {server} {missing}; {fix}")]
    Rights {
        role: String,
        server: String,
        missing: String,
        fix: String,
    },
    #[error("{tool} failed{status}: {stderr}")]
    Tool {
        tool: String,
        status: String,
        stderr: String,
    },
}

impl From<PgError> for backup_core::Error {
    fn from(e: PgError) -> Self {
        match e {
            PgError::Tool { tool, status, stderr } => {
                backup_core::Error::source_failed(tool, format!("failed{status}: {stderr}"))
            }
            PgError::Connect { server, reason } => {
                backup_core::Error::source_failed(server, format!("cannot connect: {reason}"))
            }
            PgError::Rights {
                role,
                server,
                missing,
                fix,
            } => backup_core::Error::config(format!("role {role:?} on {server}"), format!("{missing}; {fix}")),
            PgError::Statement {
                server,
                statement,
                reason,
            } => backup_core::Error::source_failed(server, format!("{statement}: {reason}")),
        }
    }
}

/// The server's own message (with detail and hint), not tokio-postgres' "db error".
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = db.message().to_owned();
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("; hint: {hint}"));
            }
            text
        }
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        }
    }
}
