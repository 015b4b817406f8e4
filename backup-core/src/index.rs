//! Backup indexes: what a backup holds, readable without its data.
//!
//! A source may store, after its `data` stream, a second stream
//! [`INDEX_STREAM`]: JSON Lines whose first line is an [`IndexHeader`]
//! (`{"format":"backupapps-index","version":1,"kind":"files"}`) and whose
//! other lines are one entry object each, in the source's own shape (a
//! files backup's paths and offsets, a PostgreSQL dump's table of contents).
//! Its chunks are sealed, listed and signed exactly like the data's, so the
//! index is as private and as authenticated as the data itself.
//!
//! [`open_index`] reads it line by line with bounded memory; [`read_ranges`]
//! reads byte ranges of a stream, fetching only the chunks they span.

mod lines;
mod range;

use std::sync::Arc;

use futures::stream::BoxStream;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::catalog::CatalogEntry;
use crate::encrypt::Decryptor;
use crate::error::{Error, Result};
use crate::restore::restore_stream;
use crate::store::DynStore;

pub use lines::MAX_INDEX_LINE;
pub use range::{read_range, read_ranges, stream_size};

/// The name of the index stream (chunks `index-000001.zst.gpg`, …).
pub const INDEX_STREAM: &str = "index";

/// The `format` of an index's header line.
pub const INDEX_FORMAT: &str = "backupapps-index";

/// The index format version this build writes and reads.
pub const INDEX_VERSION: u32 = 1;

/// Chunks of an index fetched ahead while its lines are read: indexes are
/// small next to their data, and a reader stops early (a `find` hit).
const INDEX_READ_AHEAD: usize = 2;

/// The first line of every index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IndexHeader {
    /// Always [`INDEX_FORMAT`].
    pub format: String,
    /// [`INDEX_VERSION`] when written by this build.
    pub version: u32,
    /// What the entries describe: the source kind (`files`, `postgres`, …).
    pub kind: String,
}

impl IndexHeader {
    /// The header of an index of `kind` entries, in this build's version.
    pub fn new(kind: &str) -> Self {
        IndexHeader {
            format: INDEX_FORMAT.to_owned(),
            version: INDEX_VERSION,
            kind: kind.to_owned(),
        }
    }

    /// The header as its line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        // Plain strings and a number: serialising cannot fail.
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// Whether a backup has an index stream (backups made before indexes did not).
pub fn has_index(entry: &CatalogEntry) -> bool {
    entry.manifest.has_stream(INDEX_STREAM)
}

/// An open index: its header, then its entry lines in order.
pub struct IndexReader {
    header: IndexHeader,
    lines: lines::Lines,
}

impl std::fmt::Debug for IndexReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexReader")
            .field("header", &self.header)
            .field("line", &self.lines.number())
            .finish_non_exhaustive()
    }
}

/// Opens the index of a trusted backup and reads its header line.
///
/// Chunks are fetched and authenticated as a restore does (size and SHA-256
/// against the signed manifest, OpenPGP MDC, decompression capped at the
/// recorded size) before any line is parsed; lines longer than
/// [`MAX_INDEX_LINE`] are refused, so memory stays bounded by a few chunks.
/// Needs a tokio runtime.
///
/// # Errors
/// [`Error::UnknownStream`] when the backup has no index; [`Error::Integrity`]
/// for a chunk that fails its checks; [`Error::Format`] when the header is
/// missing, malformed, of another format or of a newer version.
pub async fn open_index(store: &DynStore, decryptor: Arc<dyn Decryptor>, entry: &CatalogEntry) -> Result<IndexReader> {
    let id = entry.manifest.id.clone();
    let stream = restore_stream(store, decryptor, entry, INDEX_STREAM, INDEX_READ_AHEAD)?;
    let mut lines = lines::Lines::new(stream, id.clone());
    let first = lines.next().await?.ok_or_else(|| Error::Format {
        id: id.clone(),
        reason: "the index is empty: its header line is missing".into(),
    })?;
    let header: IndexHeader = serde_json::from_slice(&first).map_err(|e| Error::Format {
        id: id.clone(),
        reason: format!("index line 1 is not an index header: {e}"),
    })?;
    if header.format != INDEX_FORMAT {
        return Err(Error::Format {
            id,
            reason: format!("index format is {:?}, expected {INDEX_FORMAT:?}", header.format),
        });
    }
    if header.version == 0 || header.version > INDEX_VERSION {
        return Err(Error::Format {
            id,
            reason: format!(
                "index version {} is not one this version reads (1 to {INDEX_VERSION})",
                header.version
            ),
        });
    }
    Ok(IndexReader { header, lines })
}

impl IndexReader {
    /// The header line.
    pub fn header(&self) -> &IndexHeader {
        &self.header
    }

    /// The next entry line, raw (without its newline); `None` at the end.
    ///
    /// # Errors
    /// As [`open_index`]: a chunk that fails its checks, a line too long.
    pub async fn next_line(&mut self) -> Result<Option<bytes::Bytes>> {
        self.lines.next().await
    }

    /// The next entry, parsed as `T`; `None` at the end.
    ///
    /// # Errors
    /// As [`IndexReader::next_line`]; [`Error::Format`] naming the line when
    /// it is not a valid `T`.
    pub async fn next_entry<T: DeserializeOwned>(&mut self) -> Result<Option<T>> {
        let Some(line) = self.lines.next().await? else {
            return Ok(None);
        };
        serde_json::from_slice(&line).map(Some).map_err(|e| Error::Format {
            id: self.lines.id().to_owned(),
            reason: format!("index line {} is not a valid entry: {e}", self.lines.number()),
        })
    }

    /// The remaining entries as a stream of `T`; the first error ends it.
    pub fn entries<T: DeserializeOwned + Send + 'static>(self) -> BoxStream<'static, Result<T>> {
        futures::stream::unfold(Some(self), |state| async move {
            let mut reader = state?;
            match reader.next_entry::<T>().await {
                Ok(Some(entry)) => Some((Ok(entry), Some(reader))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        })
        .boxed()
    }
}
