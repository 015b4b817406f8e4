use std::path::PathBuf;

/// What went wrong in the filesystem store, with the object it concerns.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FsError {
    #[error("cannot create the store folder {root}")]
    CreateRoot {
        root: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{key} under {root} goes through a symbolic link; refused, as it may lead outside the store")]
    Symlink { key: String, root: PathBuf },
    #[error("{key} under {root} is not a regular file (a FIFO, a device, a socket); refused")]
    NotAFile { key: String, root: PathBuf },
    #[error("{operation} {key} under {root}")]
    Object {
        operation: &'static str,
        key: String,
        root: PathBuf,
        #[source]
        source: object_store::Error,
    },
}

impl From<FsError> for backup_core::Error {
    fn from(e: FsError) -> Self {
        let retryable = matches!(
            &e,
            FsError::Object {
                source: object_store::Error::Generic { .. },
                ..
            }
        );
        backup_core::Error::Backend {
            backend: "file",
            retryable,
            source: Box::new(e),
        }
    }
}
