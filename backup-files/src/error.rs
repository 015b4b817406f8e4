use std::path::PathBuf;

/// What went wrong while archiving or extracting, with the path concerned.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FilesError {
    #[error("cannot read {path}: {source}")]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("{path} changed size while being read ({expected} bytes expected, {got} read)")]
    Shrunk { path: PathBuf, expected: u64, got: u64 },
    #[error("exclude pattern {pattern:?}: {reason}")]
    BadPattern { pattern: String, reason: String },
}

impl FilesError {
    pub(crate) fn into_core(self) -> backup_core::Error {
        match self {
            FilesError::BadPattern { pattern, reason } => {
                backup_core::Error::config(format!("exclude {pattern:?}"), reason)
            }
            other => backup_core::Error::source_failed(path_of(&other), other.to_string()),
        }
    }
}

fn path_of(e: &FilesError) -> String {
    match e {
        FilesError::Unreadable { path, .. } | FilesError::Shrunk { path, .. } => path.display().to_string(),
        FilesError::BadPattern { pattern, .. } => pattern.clone(),
    }
}
