/// What went wrong talking to Swift, with the object or container concerned.
/// Never contains credentials or tokens.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SwiftError {
    #[error("{method} {what}: HTTP {status}: {hint}")]
    Http {
        method: String,
        what: String,
        status: u16,
        hint: String,
    },
    #[error("{method} {what}: {reason}")]
    Transport {
        method: String,
        what: String,
        reason: String,
    },
    #[error("authentication at {auth_url} failed: {reason}")]
    Auth { auth_url: String, reason: String },
    #[error("{what}: uploaded segment's MD5 {got} differs from Swift's ETag {expected}")]
    Checksum {
        what: String,
        expected: String,
        got: String,
    },
}

impl SwiftError {
    pub(crate) fn retryable(&self) -> bool {
        match self {
            SwiftError::Http { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            SwiftError::Transport { .. } => true,
            SwiftError::Checksum { .. } => true,
            SwiftError::Auth { .. } => false,
        }
    }
}

impl From<SwiftError> for backup_core::Error {
    fn from(e: SwiftError) -> Self {
        backup_core::Error::Backend {
            backend: "swift",
            retryable: e.retryable(),
            source: Box::new(e),
        }
    }
}

/// What to tell the user for a status.
pub(crate) fn hint(status: u16, body: &str) -> String {
    let body: String = body.chars().take(200).collect();
    let advice = match status {
        401 => "not authenticated: check the credentials (OS_USERNAME/OS_PASSWORD, application credential, ST_USER/ST_KEY)",
        403 => "forbidden: the credentials are valid but lack permission on this account or container (ask for the member/swiftoperator role)",
        404 => "not found",
        413 => "too large for this Swift: lower [store.swift] segment_size below its max_file_size (see /info)",
        429 => "rate limited",
        507 => "insufficient storage on the Swift cluster",
        s if s >= 500 => "server error",
        _ => "unexpected response",
    };
    if body.trim().is_empty() {
        advice.to_owned()
    } else {
        format!("{advice} ({})", body.trim())
    }
}
