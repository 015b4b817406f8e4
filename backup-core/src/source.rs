//! The `Source` trait: what gets backed up.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::error::Result;
use crate::store::ByteStream;

/// Something to back up: a folder tree, a database.
///
/// Contract (checked by each source's own test battery):
/// - `open` starts reading and returns the plaintext as one or more named
///   streams, read in order; the first is conventionally `data`.
/// - A stream yields `Err` — never a clean end — when the source could not be
///   read completely (a process failed, a file vanished under the `fail`
///   policy): a truncated stream must never look like a finished backup.
/// - Details the source learns while streaming (file count, server version)
///   go into [`SourceDetails`]; the pipeline reads them after the last stream
///   ended and records them in the manifest.
#[async_trait]
pub trait Source: Send + Sync {
    /// The profile kind this source serves: `files`, `postgres`, or your own.
    fn kind(&self) -> &str;

    /// Starts reading the source.
    ///
    /// # Errors
    /// [`crate::Error::Source`] when the source cannot be opened at all.
    async fn open(&self) -> Result<SourceOutput>;
}

/// The streams of one backup run, with the details the source records.
pub struct SourceOutput {
    /// Named plaintext streams, stored in this order (chunks `<name>-NNNNNN.zst.gpg`).
    pub streams: Vec<(String, ByteStream)>,
    /// Filled by the source while streaming; read after the streams end.
    pub details: SourceDetails,
}

impl std::fmt::Debug for SourceOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.streams.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("SourceOutput")
            .field("streams", &names)
            .finish_non_exhaustive()
    }
}

impl SourceOutput {
    /// One stream named `data`.
    pub fn single(data: ByteStream, details: SourceDetails) -> Self {
        SourceOutput {
            streams: vec![(crate::restore::DATA_STREAM.to_owned(), data)],
            details,
        }
    }
}

/// A shared map of facts about the source (`file_count`, `server_version`, …).
#[derive(Debug, Clone, Default)]
pub struct SourceDetails(Arc<Mutex<Map<String, Value>>>);

impl SourceDetails {
    /// Records `key = value`, replacing an earlier value.
    pub fn set(&self, key: &str, value: impl Into<Value>) {
        self.lock().insert(key.to_owned(), value.into());
    }

    /// The facts recorded so far.
    pub fn snapshot(&self) -> Map<String, Value> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Map<String, Value>> {
        // Each update is a single insert: a poisoned lock holds a consistent map.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
