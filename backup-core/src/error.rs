//! The one error type every backupapps library returns.
//!
//! Messages are neutral: they name the object, file, field or database they
//! concern and keep the underlying error as their `source()`; the binary adds
//! what to do (which command, which setting) on top.

use std::path::PathBuf;

/// A boxed error from a backend or library underneath.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with the object, file or field it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object does not exist in the store.
    #[error("object {key} not found in the store")]
    NotFound {
        /// Store key that was asked for.
        key: String,
    },

    /// No trusted backup matches what was asked for.
    #[error("{target}: {what}")]
    NoBackup {
        /// `app/profile`.
        target: String,
        /// What was looked for.
        what: String,
    },

    /// A backup exists but is not trusted (unsigned, signed by a stranger,
    /// not bound to its place, damaged), so it is never used.
    #[error("backup {id} is not trusted: {reason}")]
    Untrusted {
        /// The backup id (its folder name).
        id: String,
        /// Why it is not trusted.
        reason: String,
    },

    /// The object exists already and must not be replaced.
    #[error("object {key} already exists in the store")]
    AlreadyExists {
        /// Store key that was written.
        key: String,
    },

    /// Another run holds the lease on what this run wants to work on.
    #[error("{what} is in use by {holder}")]
    Busy {
        /// What is leased, e.g. `profile lease of app/db`.
        what: String,
        /// Who holds it and until when.
        holder: String,
    },

    /// A configuration value is missing or wrong.
    #[error("configuration {field}: {reason}")]
    Config {
        /// The setting, e.g. `recipients` or `chunk_size`.
        field: String,
        /// What is wrong.
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

    /// A chunk is encrypted to none of the keys this decryptor holds: not
    /// tampering, but the wrong (or a rotated-out) secret key.
    #[error("{key} is encrypted to {recipients:?}, not to the secret key(s) {have:?}")]
    WrongKey {
        /// Store key of the chunk.
        key: String,
        /// Key ids the chunk is encrypted to.
        recipients: Vec<String>,
        /// Fingerprints of the secret keys tried.
        have: Vec<String>,
    },

    /// An OpenPGP key could not be read or used.
    #[error("key {path}: {reason}")]
    Key {
        /// The key file (or a description of where the key came from).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The passphrase does not unlock the secret key.
    #[error("wrong passphrase for secret key {path}")]
    WrongPassphrase {
        /// The secret key file.
        path: PathBuf,
    },

    /// Encryption, decryption or signing failed.
    #[error("OpenPGP {operation} failed: {reason}")]
    Crypto {
        /// `encrypt`, `decrypt` or `sign`.
        operation: &'static str,
        /// Library message.
        reason: String,
    },

    /// zstd could not compress or decompress a chunk.
    #[error("zstd {operation} of {key} failed")]
    Compression {
        /// `compress` or `decompress`.
        operation: &'static str,
        /// The chunk (store key).
        key: String,
        /// zstd's error.
        #[source]
        source: std::io::Error,
    },

    /// Memory or a worker thread could not be had.
    #[error("{what}: out of resources")]
    Resources {
        /// What needed them.
        what: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },

    /// The run was cancelled (a signal, a dropped future) before it finished.
    #[error("{what} was cancelled")]
    Cancelled {
        /// What was cancelled.
        what: String,
    },

    /// The source could not be read completely (a file vanished, pg_dump failed, ...).
    #[error("{source_name}: {reason}")]
    Source {
        /// What was being read: a path, a database.
        source_name: String,
        /// What happened.
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

    /// A stream asked for is not in the backup.
    #[error("backup {id} has no stream {stream:?} (it has {available:?})")]
    UnknownStream {
        /// The backup id.
        id: String,
        /// The stream asked for.
        stream: String,
        /// The streams it has.
        available: Vec<String>,
    },

    /// A restore target would be overwritten or is unsafe.
    #[error("restore target {path}: {reason}")]
    Target {
        /// The target path or database.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A local file operation failed.
    #[error("{path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// The storage backend failed.
    #[error("{backend} store")]
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
    /// The message with every cause after it, `a: b: c`, for logs and for
    /// callers that print one line.
    pub fn report(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }

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

    /// Shorthand for an [`Error::Source`]: `source_name` could not be read.
    pub fn source_failed(source_name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Source {
            source_name: source_name.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for an [`Error::Resources`].
    pub fn resources(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Resources {
            what: what.into(),
            source: source.into(),
        }
    }

    /// A worker task that did not finish: cancelled, or panicked.
    pub(crate) fn worker(what: &str, e: tokio::task::JoinError) -> Self {
        if e.is_cancelled() {
            Error::Cancelled { what: what.to_owned() }
        } else {
            Error::resources(what, e.to_string())
        }
    }

    /// True for errors caused by what the user gave us — configuration, keys,
    /// arguments, a damaged, untrusted or missing backup, a store that cannot be
    /// reached — rather than by a run that failed on the way.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Error::Config { .. }
            | Error::Key { .. }
            | Error::WrongPassphrase { .. }
            | Error::WrongKey { .. }
            | Error::Target { .. }
            | Error::Integrity { .. }
            | Error::Untrusted { .. }
            | Error::Format { .. }
            | Error::UnknownStream { .. }
            | Error::NoBackup { .. }
            | Error::NotFound { .. } => true,
            Error::Backend { retryable, .. } => !retryable,
            _ => false,
        }
    }
}
