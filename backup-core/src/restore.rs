//! The restore pipeline: each chunk is checked against the (trusted) manifest
//! and authenticated before any of its plaintext is handed on.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::bigbuf::BigBuf;
use crate::catalog::CatalogEntry;
use crate::encrypt::Decryptor;
use crate::error::{Error, Result};
use crate::manifest::{ChunkRecord, Manifest};
use crate::pipeline::AbortOnDrop;
use crate::store::{ByteStream, DynStore, Store};

/// The stream every source stores first (a files backup's tar archive, a
/// PostgreSQL backup's dump).
pub const DATA_STREAM: &str = "data";

/// Streams the plaintext of stream `stream_name` of a trusted backup, in order.
///
/// Up to `parallelism` chunks are fetched and decrypted ahead, so memory is
/// bounded by that many chunks. A chunk whose size or SHA-256 differs from the
/// manifest, whose OpenPGP MDC fails, or that decompresses to more than its
/// recorded size, ends the stream with [`Error::Integrity`] naming the object —
/// before any of that chunk's bytes are yielded. Needs a tokio runtime.
///
/// # Errors
/// [`Error::UnknownStream`] when the backup has no such stream.
pub fn restore_stream(
    store: &DynStore,
    decryptor: Arc<dyn Decryptor>,
    entry: &CatalogEntry,
    stream_name: &str,
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
    let mut work = Vec::new();
    for chunk in m.stream_chunks(stream_name) {
        work.push((entry.folder().chunk_key(&chunk.name)?, chunk.clone()));
    }
    let store = Arc::clone(store);
    let recipients = m.recipients.clone();
    Ok(stream::iter(work)
        .map(move |(key, chunk)| {
            let store = Arc::clone(&store);
            let decryptor = Arc::clone(&decryptor);
            let recipients = recipients.clone();
            // Spawned, so a chunk is fetched and decrypted while the consumer
            // is busy with the previous one (writing into pg_restore's pipe,
            // extracting): `buffered` alone moves its futures only when polled,
            // which left pg_restore waiting for every next chunk.
            let mut task = AbortOnDrop(tokio::spawn(async move {
                let sealed = fetch_checked(&store, &key, &chunk).await?;
                tokio::task::spawn_blocking(move || open_chunk(&key, sealed, &chunk, &*decryptor, &recipients))
                    .await
                    .map_err(|e| Error::worker("chunk decryption", e))?
            }));
            async move { (&mut task.0).await.map_err(|e| Error::worker("chunk fetch", e))? }
        })
        .buffered(parallelism.max(1))
        .boxed())
}

/// Writes the plaintext of one stream of a trusted backup to `out` and
/// returns the number of bytes written.
///
/// # Errors
/// As [`restore_stream`], plus `out`'s error as [`Error::Io`] labelled `label`.
pub async fn restore_to_writer<W: AsyncWrite + Unpin + Send>(
    store: &DynStore,
    decryptor: Arc<dyn Decryptor>,
    entry: &CatalogEntry,
    stream_name: &str,
    out: &mut W,
    label: &Path,
) -> Result<u64> {
    let mut stream = restore_stream(
        store,
        decryptor,
        entry,
        stream_name,
        crate::pipeline::default_parallelism(),
    )?;
    let mut written = 0u64;
    while let Some(piece) = stream.try_next().await? {
        out.write_all(&piece).await.map_err(|e| Error::io(label, e))?;
        written += piece.len() as u64;
    }
    out.flush().await.map_err(|e| Error::io(label, e))?;
    Ok(written)
}

/// Writes one stream of a trusted backup into the new file `path`: first as
/// `path.partial` (created new, readable by its owner only — it is
/// plaintext), renamed onto `path` when complete. `durable` syncs it to disk
/// first (for files kept, not for a dump about to be restored and deleted).
/// An existing `path` is never replaced.
///
/// # Errors
/// [`Error::Target`] when `path` exists; as [`restore_to_writer`] otherwise.
/// Nothing is left at `path` or `path.partial` on error.
pub async fn restore_to_file(
    store: &DynStore,
    decryptor: Arc<dyn Decryptor>,
    entry: &CatalogEntry,
    stream_name: &str,
    path: &Path,
    durable: bool,
) -> Result<u64> {
    if tokio::fs::symlink_metadata(path).await.is_ok() {
        return Err(Error::Target {
            path: path.to_owned(),
            reason: "exists already".into(),
        });
    }
    let partial = partial_path(path);
    let mut file = create_private(&partial).await?;
    // Dropped before the end (a signal), the plaintext is removed all the same.
    let _remove = RemoveOnDrop(&partial);
    let result = async {
        let n = restore_to_writer(store, decryptor, entry, stream_name, &mut file, &partial).await?;
        if durable {
            file.sync_all().await.map_err(|e| Error::io(&partial, e))?;
        }
        drop(file);
        // A hard link fails when something appeared at `path` meanwhile,
        // where a rename would silently replace it.
        tokio::fs::hard_link(&partial, path)
            .await
            .map_err(|e| Error::io(path, e))?;
        tokio::fs::remove_file(&partial)
            .await
            .map_err(|e| Error::io(&partial, e))?;
        Ok(n)
    }
    .await;
    result
}

/// Removes a file when dropped, whether it is still there or not.
struct RemoveOnDrop<'a>(&'a Path);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

/// `x.partial` beside `x`.
fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// Creates `dir` and any missing parents readable by their owner only (0700),
/// for folders that will hold plaintext (local copies, downloaded dumps).
/// Existing folders keep their mode (`--to /tmp` stays as it is).
///
/// # Errors
/// [`Error::Io`] naming `dir`.
pub fn create_private_dirs(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(dir, e))
}

/// Creates a new file readable and writable by its owner only.
async fn create_private(path: &Path) -> Result<tokio::fs::File> {
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true).mode(0o600);
    options.open(path).await.map_err(|e| Error::io(path, e))
}

/// Downloads one chunk and checks its size and SHA-256 against the manifest.
/// Needs no key: this is what a keyless verify does.
///
/// # Errors
/// [`Error::Integrity`] when the chunk is missing or differs from the manifest.
pub async fn fetch_checked(store: &DynStore, key: &str, chunk: &ChunkRecord) -> Result<Bytes> {
    let sealed = read_sized(&**store, key, chunk).await.map_err(|e| match e {
        Error::NotFound { key } => Error::Integrity {
            key,
            reason: "chunk listed in the manifest is missing from the store".into(),
        },
        other => other,
    })?;
    let sha256 = hex::encode(Sha256::digest(&sealed));
    if sha256 != chunk.sha256 {
        return Err(Error::Integrity {
            key: key.to_owned(),
            reason: format!("SHA-256 is {sha256}, manifest says {}", chunk.sha256),
        });
    }
    Ok(sealed)
}

/// Reads an object into a buffer sized from the manifest; reading stops as
/// soon as the object turns out longer.
async fn read_sized(store: &dyn Store, key: &str, chunk: &ChunkRecord) -> Result<Bytes> {
    let size = chunk.size;
    let mut stream = store.get(key).await?;
    let capacity = usize::try_from(size).map_err(|e| Error::resources(key, e))?;
    let mut buf = BigBuf::with_capacity(capacity.max(map_size(chunk))).map_err(|e| Error::resources(key, e))?;
    while let Some(piece) = stream.try_next().await? {
        if (buf.len() + piece.len()) as u64 > size {
            return Err(Error::Integrity {
                key: key.to_owned(),
                reason: format!("is larger than the {size} bytes the manifest says"),
            });
        }
        buf.extend_from_slice(&piece).map_err(|e| Error::resources(key, e))?;
    }
    if (buf.len() as u64) != size {
        return Err(Error::Integrity {
            key: key.to_owned(),
            reason: format!("size is {} bytes, manifest says {size}", buf.len()),
        });
    }
    Ok(buf.freeze())
}

/// The size every buffer of a chunk asks for (see
/// [`crate::pipeline::chunk_buffer_capacity`]): the same for its sealed,
/// compressed and plain bytes, so each can reuse the others' idle maps.
fn map_size(chunk: &ChunkRecord) -> usize {
    usize::try_from(chunk.plaintext_size).map_or(0, crate::pipeline::chunk_buffer_capacity)
}

/// A writer that refuses to grow a buffer past `cap` bytes.
struct Capped<'a> {
    buf: &'a mut BigBuf,
    cap: usize,
}

impl std::io::Write for Capped<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.cap {
            return Err(std::io::Error::other(format!(
                "decrypts to more than the {} bytes a chunk of this size can hold",
                self.cap
            )));
        }
        self.buf.extend_from_slice(data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

thread_local! {
    /// One decompression context per worker thread, reused chunk after chunk.
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Authenticates, decrypts and decompresses one fetched chunk (see
/// [`restore_stream`] for the checks).
pub(crate) fn open_chunk(
    key: &str,
    sealed: Bytes,
    chunk: &ChunkRecord,
    decryptor: &dyn Decryptor,
    recipients: &[String],
) -> Result<Bytes> {
    let integrity = |reason: String| Error::Integrity {
        key: key.to_owned(),
        reason,
    };
    // The compressed frame is never larger than the message that carries it.
    let mut compressed =
        BigBuf::with_capacity(sealed.len().max(map_size(chunk))).map_err(|e| Error::resources(key, e))?;
    // A message may carry an OpenPGP compression packet (gpg adds one): its
    // output is capped at what a chunk of the announced size can compress to.
    let cap = compressed.capacity();
    let mut capped = Capped {
        buf: &mut compressed,
        cap,
    };
    decryptor.decrypt(&sealed, &mut capped).map_err(|e| match e {
        Error::WrongKey { have, .. } => Error::WrongKey {
            key: key.to_owned(),
            recipients: recipients.to_vec(),
            have,
        },
        // A key that cannot be unlocked is the key's fault, not the chunk's.
        e @ (Error::WrongPassphrase { .. } | Error::Key { .. }) => e,
        other => integrity(other.to_string()),
    })?;
    drop(sealed);
    // One-shot decompression into a buffer of exactly the size the manifest
    // announces: zstd stops with an error rather than write past it, so a
    // small chunk cannot expand into gigabytes (a zstd bomb).
    let limit = usize::try_from(chunk.plaintext_size).map_err(|e| Error::resources(key, e))?;
    let mut plain = BigBuf::with_capacity(limit.max(map_size(chunk))).map_err(|e| Error::resources(key, e))?;
    let written = DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some(zstd::bulk::Decompressor::new()?);
        }
        let Some(decompressor) = cell.as_mut() else {
            unreachable!("set just above")
        };
        decompressor.decompress_to_buffer(compressed.as_slice(), &mut plain.spare()[..limit])
    });
    let written = written.map_err(|e| {
        integrity(format!(
            "zstd frame is damaged or decompresses to more than the {limit} bytes the manifest says: {e}"
        ))
    })?;
    plain.advance(written);
    if plain.len() as u64 != chunk.plaintext_size {
        return Err(integrity(format!(
            "decrypted to {} bytes, manifest says {}",
            plain.len(),
            chunk.plaintext_size
        )));
    }
    Ok(plain.freeze())
}

/// The chunks of a manifest with their keys, for checks that need no key.
pub(crate) fn chunk_keys(entry: &CatalogEntry) -> Result<Vec<(String, &ChunkRecord)>> {
    let m: &Manifest = &entry.manifest;
    m.chunks
        .iter()
        .map(|c| Ok((entry.folder().chunk_key(&c.name)?, c)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openpgp::{generate_key, PgpDecryptor};
    use pgp::composed::{Deserializable, MessageBuilder, SignedPublicKey};
    use pgp::crypto::sym::SymmetricKeyAlgorithm;
    use pgp::types::CompressionAlgorithm;

    #[test]
    fn a_compression_packet_cannot_expand_past_the_chunk() {
        let key = generate_key("T <t@example.org>", None).expect("key");
        let (public, _) = SignedPublicKey::from_armor_single(key.public_armored.as_bytes()).expect("public key");
        let mut rng = rand::thread_rng();
        // 64 MiB of zeros in a zlib packet of a few KiB, for a chunk that
        // announces 1 KiB of plaintext.
        let mut builder =
            MessageBuilder::from_bytes("", vec![0u8; 64 << 20]).seipd_v1(&mut rng, SymmetricKeyAlgorithm::AES256);
        builder.compression(CompressionAlgorithm::ZLIB);
        builder
            .encrypt_to_key(&mut rng, &public.public_subkeys[0])
            .expect("recipient");
        let sealed = builder.to_vec(&mut rng).expect("seal");
        let chunk = ChunkRecord {
            name: "data-000001.zst.gpg".into(),
            stream: DATA_STREAM.into(),
            size: sealed.len() as u64,
            sha256: hex::encode(Sha256::digest(&sealed)),
            plaintext_size: 1024,
        };
        let decryptor =
            PgpDecryptor::from_armored(Path::new("k"), key.secret_armored.as_bytes(), "").expect("decryptor");
        let err = open_chunk("k", Bytes::from(sealed), &chunk, &decryptor, &[]).expect_err("refused");
        assert!(
            matches!(&err, Error::Integrity { reason, .. } if reason.contains("decrypts to more")),
            "{err}"
        );
    }
}
