//! The restore pipeline: each chunk is checked against the manifest and
//! authenticated before any of its plaintext is handed on.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use sha2::{Digest, Sha256};

use std::io::Write;

use futures::TryStreamExt;

use crate::bigbuf::BigBuf;
use crate::encrypt::Decryptor;
use crate::error::{Error, Result};
use crate::manifest::{ChunkRecord, Manifest};
use crate::store::{join_key, ByteStream, Store};

/// Streams the plaintext of `stream` (usually `data`) of a backup, in order.
///
/// Up to `parallelism` chunks are fetched and decrypted ahead. A chunk whose
/// size or SHA-256 differs from the manifest, or whose OpenPGP MDC fails, ends
/// the stream with [`Error::Integrity`] naming the object — before any of that
/// chunk's bytes are yielded.
pub fn restore_stream(
    store: Arc<dyn Store>,
    decryptor: Arc<dyn Decryptor>,
    manifest: &Manifest,
    stream_name: &str,
    parallelism: usize,
) -> ByteStream {
    let folder = join_key([manifest.dest_prefix.as_str(), manifest.id.as_str()]);
    let chunks: Vec<ChunkRecord> = manifest.stream_chunks(stream_name).cloned().collect();
    stream::iter(chunks)
        .map(move |chunk| {
            let store = Arc::clone(&store);
            let decryptor = Arc::clone(&decryptor);
            let key = join_key([folder.as_str(), chunk.name.as_str()]);
            async move {
                let sealed = fetch_checked(&*store, &key, &chunk).await?;
                tokio::task::spawn_blocking(move || open_chunk(&key, &sealed, &chunk, &*decryptor))
                    .await
                    .map_err(|e| Error::Crypto {
                        operation: "decrypt",
                        reason: format!("worker failed: {e}"),
                    })?
            }
        })
        .buffered(parallelism.max(1))
        .boxed()
}

/// Downloads one chunk and checks its size and SHA-256 against the manifest.
/// Needs no key: this is what `verify` does without a secret key.
///
/// # Errors
/// [`Error::NotFound`] when the chunk is missing, [`Error::Integrity`] when it
/// differs from the manifest.
pub async fn fetch_checked(store: &dyn Store, key: &str, chunk: &ChunkRecord) -> Result<Bytes> {
    let sealed = read_sized(store, key, chunk.size).await.map_err(|e| match e {
        Error::NotFound { key } => Error::Integrity {
            key,
            reason: "chunk listed in the manifest is missing from the store".into(),
        },
        other => other,
    })?;
    if sealed.len() as u64 != chunk.size {
        return Err(Error::Integrity {
            key: key.to_owned(),
            reason: format!("size is {} bytes, manifest says {}", sealed.len(), chunk.size),
        });
    }
    let sha256 = hex::encode(Sha256::digest(&sealed));
    if sha256 != chunk.sha256 {
        return Err(Error::Integrity {
            key: key.to_owned(),
            reason: format!("SHA-256 is {sha256}, manifest says {}", chunk.sha256),
        });
    }
    Ok(sealed)
}

/// Reads an object into a buffer sized from the manifest (a longer object is
/// still read whole, so that the size check reports it).
async fn read_sized(store: &dyn Store, key: &str, size: u64) -> Result<Bytes> {
    let mut stream = store.get(key).await?;
    let mut buf = BigBuf::with_capacity(usize::try_from(size).unwrap_or(0))
        .map_err(|e| Error::source(key, format!("cannot allocate memory: {e}")))?;
    while let Some(piece) = stream.try_next().await? {
        buf.extend_from_slice(&piece)
            .map_err(|e| Error::source(key, format!("cannot allocate memory: {e}")))?;
    }
    Ok(buf.freeze())
}

fn open_chunk(key: &str, sealed: &[u8], chunk: &ChunkRecord, decryptor: &dyn Decryptor) -> Result<Bytes> {
    let integrity = |reason: String| Error::Integrity {
        key: key.to_owned(),
        reason,
    };
    // Decrypted bytes go straight through zstd into a buffer of the size the
    // manifest announces: no intermediate copy, no regrowth.
    let capacity = usize::try_from(chunk.plaintext_size).unwrap_or(usize::MAX);
    let plain = BigBuf::with_capacity(capacity).map_err(|e| integrity(format!("cannot allocate memory: {e}")))?;
    let mut decoder = zstd::stream::write::Decoder::new(plain).map_err(|e| integrity(format!("zstd: {e}")))?;
    decryptor
        .decrypt(sealed, &mut decoder)
        .map_err(|e| integrity(e.to_string()))?;
    decoder
        .flush()
        .map_err(|e| integrity(format!("zstd frame is damaged: {e}")))?;
    let plain = decoder.into_inner();
    if plain.len() as u64 != chunk.plaintext_size {
        return Err(integrity(format!(
            "decrypted to {} bytes, manifest says {}",
            plain.len(),
            chunk.plaintext_size
        )));
    }
    Ok(plain.freeze())
}
