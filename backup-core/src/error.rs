//! The one error type every backupapps library returns.

use std::path::PathBuf;

/// A boxed error from a backend or library underneath.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with the object, file or field it concerns.
///
/// Messages are written for operators: each names what it was working on and,
/// where there is one, what to do next. None contains a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object does not exist in the store.
    #[error("object {key} not found in the store")]
    NotFound {
        /// Store key that was asked for.
        key: String,
    },

    /// No backup matches what was asked for.
    #[error("{target}: {what}")]
    NoBackup {
        /// `app/profile`.
        target: String,
        /// What was looked for and what to do.
        what: String,
    },

    /// The object exists already and must not be replaced.
    #[error("object {key} already exists in the store")]
    AlreadyExists {
        /// Store key that was written.
        key: String,
    },

    /// A configuration value is missing or wrong.
    #[error("configuration {field}: {reason}")]
    Config {
        /// The file, section and key, e.g. `backupapps.toml [encryption] recipients`.
        field: String,
        /// What is wrong and what to do.
        reason: String,
    },

    /// Stored bytes do not match what the manifest recorded, or failed authentication.
    #[error("integrity check failed for {key}: {reason}")]
    Integrity {
        /// Store key of the damaged object.
        key: String,
        /// What did not match.
        reason: String,
    },

    /// An OpenPGP key could not be read or used.
    #[error("key {path}: {reason}")]
    Key {
        /// The key file (or a description of where the key came from).
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },

    /// The passphrase does not unlock the secret key.
    #[error("wrong passphrase for secret key {path}: check the passphrase file or BACKUPAPPS_PASSPHRASE")]
    WrongPassphrase {
        /// The secret key file.
        path: PathBuf,
    },

    /// Encryption or decryption failed.
    #[error("OpenPGP {operation} failed: {reason}")]
    Crypto {
        /// `encrypt` or `decrypt`.
        operation: &'static str,
        /// Library message.
        reason: String,
    },

    /// The source could not be read completely (a file vanished, pg_dump failed, ...).
    #[error("{source_name}: {reason}")]
    Source {
        /// What was being read: a path, a database.
        source_name: String,
        /// What happened and what to do.
        reason: String,
    },

    /// A backup or manifest is not in a shape this version understands.
    #[error("backup {id}: {reason}")]
    Format {
        /// The backup id or manifest key.
        id: String,
        /// What is wrong.
        reason: String,
    },

    /// A restore target would be overwritten or is unsafe.
    #[error("restore target {path}: {reason}")]
    Target {
        /// The target path or database.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },

    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// The storage backend failed.
    #[error("{backend} store: {source}")]
    Backend {
        /// Which backend (`file`, `swift`, `memory`).
        backend: &'static str,
        /// Whether trying again may succeed.
        retryable: bool,
        /// The backend's own error, naming the object.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// True when repeating the same request may succeed (timeouts, 5xx, resets).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Backend { retryable: true, .. })
    }

    /// Shorthand for an [`Error::Io`] on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Shorthand for an [`Error::Config`].
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for an [`Error::Source`].
    pub fn source(source_name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Source {
            source_name: source_name.into(),
            reason: reason.into(),
        }
    }

    /// True for errors caused by what the user gave us — configuration, keys,
    /// arguments, a damaged or missing backup, a store that cannot be reached —
    /// rather than by a run that failed on the way. The CLI maps these to exit 2.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Error::Config { .. }
            | Error::Key { .. }
            | Error::WrongPassphrase { .. }
            | Error::Target { .. }
            | Error::Integrity { .. }
            | Error::Format { .. }
            | Error::NoBackup { .. }
            | Error::NotFound { .. } => true,
            Error::Backend { retryable, .. } => !retryable,
            _ => false,
        }
    }
}
