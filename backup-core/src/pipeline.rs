//! The backup pipeline: source → chunks → zstd → OpenPGP → SHA-256 → store,
//! with the manifest written last.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use crate::bigbuf::BigBuf;
use crate::chunker::rechunk;
use crate::encrypt::Encryptor;
use crate::error::{Error, Result};
use crate::layout::{check_stream_name, BackupFolder};
use crate::manifest::{chunk_name, new_backup_id, ChunkRecord, Manifest, FORMAT_VERSION, MAX_CHUNK_SIZE};
use crate::signing::ManifestSigner;
use crate::source::Source;
use crate::store::{validate_key, DynStore};

/// Default plaintext bytes per chunk: 8 MiB keeps memory at a few chunks in
/// flight per core (two buffers per worker, one chunk read ahead) and keeps
/// the last chunk's tail short, while objects stay far from any store's size
/// limit. 16 MiB was no faster in the side-by-side benchmark and used more
/// memory.
pub const DEFAULT_CHUNK_SIZE: usize = 8 * 1024 * 1024;

/// Default zstd level: fast, and still well ahead of gzip in ratio.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// What to back up where, besides the source itself.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BackupOptions {
    /// Application name.
    pub app: String,
    /// Profile name.
    pub profile: String,
    /// Store folder for this profile's backups, e.g. `blahapp/db`.
    pub dest_prefix: String,
    /// The time the backup stands for; `None` means now.
    pub time: Option<DateTime<Utc>>,
    /// Plaintext bytes per chunk.
    pub chunk_size: usize,
    /// zstd compression level (1–19).
    pub zstd_level: i32,
    /// Chunks compressed, encrypted and uploaded at once; default: cores.
    pub parallelism: usize,
    /// Plaintext bytes stored so far, for progress displays.
    pub progress: Option<Arc<AtomicU64>>,
}

impl BackupOptions {
    /// Options with the defaults for `app/profile` stored under `dest_prefix`.
    pub fn new(app: &str, profile: &str, dest_prefix: &str) -> Self {
        BackupOptions {
            app: app.to_owned(),
            profile: profile.to_owned(),
            dest_prefix: dest_prefix.trim_matches('/').to_owned(),
            time: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
            zstd_level: DEFAULT_ZSTD_LEVEL,
            parallelism: default_parallelism(),
            progress: None,
        }
    }

    /// The time the backup stands for, instead of now.
    #[must_use]
    pub fn with_time(mut self, time: DateTime<Utc>) -> Self {
        self.time = Some(time);
        self
    }

    /// Plaintext bytes per chunk.
    #[must_use]
    pub fn with_chunk_size(mut self, chunk_size: usize) -> Self {
        self.chunk_size = chunk_size;
        self
    }

    /// zstd level (1–19).
    #[must_use]
    pub fn with_zstd_level(mut self, level: i32) -> Self {
        self.zstd_level = level;
        self
    }

    /// Chunks in flight at once (0 keeps the default: one per core).
    #[must_use]
    pub fn with_parallelism(mut self, parallelism: usize) -> Self {
        if parallelism > 0 {
            self.parallelism = parallelism;
        }
        self
    }

    /// A counter of plaintext bytes stored, for progress displays.
    #[must_use]
    pub fn with_progress(mut self, progress: Arc<AtomicU64>) -> Self {
        self.progress = Some(progress);
        self
    }
}

/// One worker per core.
pub fn default_parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Runs one backup and returns its manifest.
///
/// Chunks are stored as they are sealed; then the signature over the
/// manifest's bytes, then the manifest itself — the commit point. A run that
/// fails or is killed leaves only an incomplete backup, which is never listed
/// and is removed by prune after a grace period. On failure this also removes
/// what it stored, as far as it can.
///
/// ```
/// # use std::sync::Arc;
/// # use backup_core::{testing::BytesSource, *};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let store: DynStore = Arc::new(MemoryStore::new());
/// let key = generate_key("Backups <ops@example.org>", None)?;
/// let signing = generate_signing_key("Backup host <ops@example.org>", None)?;
/// let encryptor = Arc::new(PgpEncryptor::from_armored([(std::path::Path::new("k"), key.public_armored.as_bytes())])?);
/// let signer = ManifestSigner::from_bytes(std::path::Path::new("s"), signing.secret_armored.as_bytes(), "")?;
/// let source = BytesSource::new(b"hello".to_vec());
/// let options = BackupOptions::new("app", "files", "app/files");
/// let manifest = run_backup(&store, &source, encryptor, &signer, &options).await?;
/// assert_eq!(manifest.plaintext_size, 5);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Config`] for a bad prefix, chunk size or stream name; the
/// source's error when it cannot be read completely; [`Error::Compression`],
/// [`Error::Crypto`] or the store's error. In every case no manifest is written.
pub async fn run_backup(
    store: &DynStore,
    source: &dyn Source,
    encryptor: Arc<dyn Encryptor>,
    signer: &ManifestSigner,
    options: &BackupOptions,
) -> Result<Manifest> {
    validate_key(&options.dest_prefix)?;
    if options.chunk_size == 0 || options.chunk_size as u64 > MAX_CHUNK_SIZE {
        return Err(Error::config(
            "chunk_size",
            format!("must be between 1 byte and {MAX_CHUNK_SIZE} bytes"),
        ));
    }
    let started_at = Utc::now();
    let time = options.time.unwrap_or(started_at);
    let id = new_backup_id(time);
    let backup_folder = BackupFolder::new(&options.dest_prefix, &id)?;
    let folder = backup_folder.key();
    tracing::debug!(target = %format!("{}/{}", options.app, options.profile), %id, "backup started");

    match store_chunks(store, source, &encryptor, options, &backup_folder).await {
        Ok((chunks, details)) => {
            let manifest = Manifest {
                format_version: FORMAT_VERSION,
                id,
                app: options.app.clone(),
                profile: options.profile.clone(),
                kind: source.kind().to_owned(),
                dest_prefix: options.dest_prefix.clone(),
                time,
                started_at,
                finished_at: Utc::now(),
                plaintext_size: chunks.iter().map(|c| c.plaintext_size).sum(),
                stored_size: chunks.iter().map(|c| c.size).sum(),
                chunk_size: options.chunk_size as u64,
                compression: "zstd".into(),
                encryption: "openpgp".into(),
                recipients: encryptor.recipients(),
                chunks,
                tool_version: format!("backupapps {}", env!("CARGO_PKG_VERSION")),
                source: details,
            };
            match commit(store, &backup_folder, &manifest, signer).await {
                Ok(()) => Ok(manifest),
                Err(e) => {
                    remove_folder(store, &folder).await;
                    Err(e)
                }
            }
        }
        Err(e) => {
            remove_folder(store, &folder).await;
            Err(e)
        }
    }
}

/// Signs the manifest's exact bytes, stores the signature, then the manifest.
async fn commit(store: &DynStore, folder: &BackupFolder, manifest: &Manifest, signer: &ManifestSigner) -> Result<()> {
    let bytes = manifest.to_json();
    let signature = signer.sign(&bytes)?;
    store.put(&folder.signature_key(), Bytes::from(signature)).await?;
    store.put(&folder.manifest_key(), Bytes::from(bytes)).await
}

async fn store_chunks(
    store: &DynStore,
    source: &dyn Source,
    encryptor: &Arc<dyn Encryptor>,
    options: &BackupOptions,
    folder: &BackupFolder,
) -> Result<(Vec<ChunkRecord>, serde_json::Map<String, serde_json::Value>)> {
    let output = source.open().await?;
    let mut seen: Vec<&str> = Vec::new();
    for (name, _) in &output.streams {
        check_stream_name(name).map_err(|reason| Error::config("source stream", reason))?;
        if seen.contains(&name.as_str()) {
            return Err(Error::config(
                "source stream",
                format!("stream {name:?} is given twice"),
            ));
        }
        seen.push(name);
    }
    let mut records = Vec::new();
    // Sealing takes a core; storing mostly waits (fsync, the network). With a
    // chunk or two more in flight than sealers, a worker never idles while its
    // last chunk is being stored.
    let sealers = Arc::new(tokio::sync::Semaphore::new(options.parallelism.max(1)));
    let in_flight = options.parallelism.max(1) + options.parallelism.max(1).div_ceil(2);
    for (stream_name, data) in output.streams {
        let sealed = read_ahead(rechunk(data, options.chunk_size))
            .enumerate()
            .map(|(index, piece)| {
                let store = Arc::clone(store);
                let encryptor = Arc::clone(encryptor);
                let name = chunk_name(&stream_name, index);
                let key = folder.chunk_key(&name);
                let stream = stream_name.clone();
                let level = options.zstd_level;
                let progress = options.progress.clone();
                let sealers = Arc::clone(&sealers);
                async move {
                    let key = key?;
                    let plain = piece?;
                    let plaintext_size = plain.len() as u64;
                    let label = key.clone();
                    // The semaphore is never closed.
                    let permit = sealers
                        .acquire_owned()
                        .await
                        .map_err(|e| Error::resources("chunk encryption", e))?;
                    let (sealed, sha256) = tokio::task::spawn_blocking(move || {
                        let sealed = seal(&label, plain, level, &*encryptor);
                        drop(permit);
                        sealed
                    })
                    .await
                    .map_err(|e| Error::worker("chunk encryption", e))??;
                    let size = sealed.len() as u64;
                    store.put(&key, sealed).await?;
                    if let Some(progress) = progress {
                        progress.fetch_add(plaintext_size, Ordering::Relaxed);
                    }
                    tracing::trace!(%key, size, "chunk stored");
                    Ok::<_, Error>(ChunkRecord {
                        name,
                        stream,
                        size,
                        sha256,
                        plaintext_size,
                    })
                }
            })
            .buffered(in_flight);
        let mut part: Vec<ChunkRecord> = sealed.try_collect().await?;
        records.append(&mut part);
    }
    Ok((records, output.details.snapshot()))
}

/// Cuts the next chunk while the workers seal the previous ones: `buffered`
/// alone pulls a chunk only when a worker is free, so reading and sealing took
/// turns instead of overlapping. One chunk waits ready, one more is being cut.
fn read_ahead(pieces: BoxStream<'static, Result<Bytes>>) -> BoxStream<'static, Result<Bytes>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let reader = tokio::spawn(async move {
        let mut pieces = pieces;
        // A slot first, then the chunk: never more than one chunk waiting.
        while let Ok(slot) = tx.reserve().await {
            match pieces.next().await {
                Some(piece) => slot.send(piece),
                None => break,
            }
        }
    });
    // Dropping the stream (a failed chunk ends the backup) stops the reader.
    let guard = AbortOnDrop(reader);
    stream::unfold(Some((rx, guard)), |state| async move {
        let (mut rx, mut guard) = state?;
        match rx.recv().await {
            Some(piece) => Some((piece, Some((rx, guard)))),
            // The sender is gone: the source ended, or the reader panicked
            // polling it — which must fail the backup, not end it truncated.
            None => match (&mut guard.0).await {
                Ok(()) => None,
                Err(e) => Some((Err(Error::worker("reading the source", e)), None)),
            },
        }
    })
    .boxed()
}

/// A spawned task that ends when its handle is dropped (a failed run stops
/// the work it started).
pub(crate) struct AbortOnDrop<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Compresses one chunk into a single zstd frame, encrypts it, and hashes the
/// stored bytes. The plaintext is let go as soon as it is compressed, so a
/// worker holds at most two chunk-sized buffers at once.
pub(crate) fn seal(key: &str, plain: Bytes, zstd_level: i32, encryptor: &dyn Encryptor) -> Result<(Bytes, String)> {
    let compressed = compress(key, &plain, zstd_level)?;
    drop(plain);
    // Room for the OpenPGP framing, so the buffer never doubles (and copies).
    let mut sealed = BigBuf::with_capacity(chunk_buffer_capacity(compressed.len()))
        .map_err(|e| Error::resources(format!("buffer for {key}"), e))?;
    encryptor.encrypt(&mut compressed.as_slice(), &mut sealed)?;
    drop(compressed);
    let sealed = sealed.freeze();
    let sha256 = hex::encode(Sha256::digest(&sealed));
    Ok((sealed, sha256))
}

/// Room for `plain` bytes after compression (an incompressible chunk grows a
/// little) and OpenPGP framing. Every buffer of a chunk — its plaintext, its
/// zstd frame, its sealed message — asks for this much, so that they all can
/// take each other's idle memory maps (only pages written cost memory).
pub(crate) fn chunk_buffer_capacity(plain: usize) -> usize {
    zstd::zstd_safe::compress_bound(plain) + plain / 64 + 4096
}

thread_local! {
    /// One compression context per worker thread and level: a context holds
    /// MiBs of tables, cheaper kept than made for every chunk.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
}

/// One-shot compression of a whole chunk: zstd's fastest path, where the
/// streaming encoder works window by window (`perf`: a third slower).
fn compress(key: &str, plain: &[u8], level: i32) -> Result<BigBuf> {
    let error = |source: std::io::Error| Error::Compression {
        operation: "compress",
        key: key.to_owned(),
        source,
    };
    let mut out = BigBuf::with_capacity(chunk_buffer_capacity(plain.len()))
        .map_err(|e| Error::resources(format!("buffer for {key}"), e))?;
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_none_or(|(l, _)| *l != level) {
            *cell = Some((level, zstd::bulk::Compressor::new(level).map_err(error)?));
        }
        let Some((_, compressor)) = cell.as_mut() else {
            unreachable!("set just above")
        };
        let n = compressor.compress_to_buffer(plain, out.spare()).map_err(error)?;
        out.advance(n);
        Ok(out)
    })
}

/// Best-effort removal of a failed run's objects; prune removes whatever stays.
async fn remove_folder(store: &DynStore, folder: &str) {
    match store.list(folder).await {
        Ok(objects) => {
            for object in objects {
                if let Err(e) = store.delete(&object.key).await {
                    tracing::warn!(key = %object.key, error = %e.report(), "could not remove a chunk of the failed backup; prune will remove it later");
                }
            }
        }
        Err(e) => {
            tracing::warn!(%folder, error = %e.report(), "could not list the failed backup to remove it; prune will remove it later")
        }
    }
}
