//! Reading byte ranges of a stream, fetching only the chunks they span.

use std::ops::Range;
use std::sync::Arc;

use futures::stream::{self, StreamExt};

use crate::catalog::CatalogEntry;
use crate::encrypt::Decryptor;
use crate::error::{Error, Result};
use crate::manifest::ChunkRecord;
use crate::restore::{fetch_checked, open_chunk};
use crate::store::{ByteStream, DynStore};

/// The plaintext size of stream `stream_name` of a backup: the sum of its
/// chunks' recorded plaintext sizes (0 for a stream it does not have).
pub fn stream_size(entry: &CatalogEntry, stream_name: &str) -> u64 {
    entry
        .manifest
        .stream_chunks(stream_name)
        .map(|c| c.plaintext_size)
        .sum()
}

/// The plaintext of stream `stream_name` from byte `offset`, `length` bytes
/// long (to the stream's end when `None`). See [`read_ranges`].
///
/// # Errors
/// As [`read_ranges`].
pub fn read_range(
    store: &DynStore,
    decryptor: Arc<dyn Decryptor>,
    entry: &CatalogEntry,
    stream_name: &str,
    offset: u64,
    length: Option<u64>,
    parallelism: usize,
) -> Result<ByteStream> {
    let end = match length {
        Some(length) => offset
            .checked_add(length)
            .ok_or_else(|| Error::config("byte range", format!("{offset} + {length} bytes overflows")))?,
        None => stream_size(entry, stream_name).max(offset),
    };
    let range = offset..end;
    read_ranges(
        store,
        decryptor,
        entry,
        stream_name,
        std::slice::from_ref(&range),
        parallelism,
    )
}

/// The plaintext bytes of `ranges` (sorted, not overlapping) of stream
/// `stream_name` of a trusted backup, one after the other.
///
/// Only the chunks that hold some byte of a range are fetched — each once,
/// even when several ranges fall into it — up to `parallelism` at a time.
/// Each is authenticated like a restore's (size and SHA-256 against the
/// manifest, OpenPGP MDC, decompression capped at its recorded size) before
/// any of its bytes are yielded. Needs a tokio runtime.
///
/// # Errors
/// [`Error::UnknownStream`] when the backup has no such stream;
/// [`Error::Config`] when the ranges are not sorted, overlap, or reach past
/// the stream's end. The stream itself ends with [`Error::Integrity`] for a
/// chunk that fails its checks.
pub fn read_ranges(
    store: &DynStore,
    decryptor: Arc<dyn Decryptor>,
    entry: &CatalogEntry,
    stream_name: &str,
    ranges: &[Range<u64>],
    parallelism: usize,
) -> Result<ByteStream> {
    let m = &entry.manifest;
    if !m.has_stream(stream_name) {
        return Err(Error::UnknownStream {
            id: m.id.clone(),
            stream: stream_name.to_owned(),
            available: m.streams(),
        });
    }
    check_ranges(ranges, stream_size(entry, stream_name), stream_name)?;
    let mut work: Vec<(String, ChunkRecord, Vec<Range<usize>>)> = Vec::new();
    let mut next = ranges.iter().filter(|r| r.start < r.end).peekable();
    let mut chunk_start = 0u64;
    for chunk in m.stream_chunks(stream_name) {
        let chunk_end = chunk_start + chunk.plaintext_size;
        let mut slices = Vec::new();
        while let Some(r) = next.peek() {
            if r.start >= chunk_end {
                break;
            }
            let from = r.start.max(chunk_start) - chunk_start;
            let to = r.end.min(chunk_end) - chunk_start;
            if from < to {
                // Within one chunk, whose size the manifest caps at 1 GiB.
                slices.push(from as usize..to as usize);
            }
            if r.end > chunk_end {
                break;
            }
            next.next();
        }
        if !slices.is_empty() {
            work.push((entry.folder().chunk_key(&chunk.name)?, chunk.clone(), slices));
        }
        chunk_start = chunk_end;
    }
    let store = Arc::clone(store);
    let recipients = m.recipients.clone();
    Ok(stream::iter(work)
        .map(move |(key, chunk, slices)| {
            let store = Arc::clone(&store);
            let decryptor = Arc::clone(&decryptor);
            let recipients = recipients.clone();
            async move {
                let sealed = fetch_checked(&store, &key, &chunk).await?;
                let plain =
                    tokio::task::spawn_blocking(move || open_chunk(&key, sealed, &chunk, &*decryptor, &recipients))
                        .await
                        .map_err(|e| Error::worker("chunk decryption", e))??;
                Ok::<_, Error>(slices.into_iter().map(move |s| Ok(plain.slice(s))).collect::<Vec<_>>())
            }
        })
        .buffered(parallelism.max(1))
        .flat_map(|pieces| match pieces {
            Ok(pieces) => stream::iter(pieces).boxed(),
            Err(e) => stream::iter(vec![Err(e)]).boxed(),
        })
        .boxed())
}

/// Refuses ranges that are unsorted, overlap, are reversed, or reach past `size`.
fn check_ranges(ranges: &[Range<u64>], size: u64, stream_name: &str) -> Result<()> {
    let mut previous_end = 0u64;
    for r in ranges {
        let bad = |why: String| {
            Error::config(
                "byte range",
                format!("{}..{} of stream {stream_name}: {why}", r.start, r.end),
            )
        };
        if r.start > r.end {
            return Err(bad("ends before it starts".into()));
        }
        if r.start < previous_end {
            return Err(bad("ranges must be sorted and must not overlap".into()));
        }
        if r.end > size {
            return Err(bad(format!("the stream has only {size} bytes")));
        }
        previous_end = r.end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_ranges;

    #[test]
    #[allow(clippy::single_range_in_vec_init, clippy::reversed_empty_ranges)]
    fn ranges_are_checked() {
        assert!(check_ranges(&[0..5, 5..9], 10, "data").is_ok());
        assert!(check_ranges(&[0..5, 4..9], 10, "data").is_err());
        assert!(check_ranges(&[0..11], 10, "data").is_err());
        assert!(check_ranges(&[5..4], 10, "data").is_err());
    }
}
