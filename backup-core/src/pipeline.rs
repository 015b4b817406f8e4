//! The backup pipeline: source → chunks → zstd → OpenPGP → SHA-256 → store,
//! with the manifest written last.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use crate::bigbuf::BigBuf;
use crate::chunker::rechunk;
use crate::encrypt::Encryptor;
use crate::error::{Error, Result};
use crate::manifest::{chunk_name, new_backup_id, ChunkRecord, Manifest, FORMAT_VERSION, MANIFEST_NAME};
use crate::source::Source;
use crate::store::{join_key, validate_key, Store};

/// Default plaintext bytes per chunk: 16 MiB keeps memory at a few chunks in
/// flight per core while objects stay far from any store's size limit.
pub const DEFAULT_CHUNK_SIZE: usize = 16 * 1024 * 1024;

/// Default zstd level: fast, and still well ahead of gzip in ratio.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// What to back up where, besides the source itself.
#[derive(Debug, Clone)]
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
}

/// One worker per core.
pub fn default_parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Runs one backup and returns its manifest.
///
/// Chunks are stored as they are sealed; the manifest goes last, so a run that
/// fails or is killed leaves only an incomplete backup, which is never listed
/// and is removed by prune after a grace period. On failure this also removes
/// what it stored, as far as it can.
///
/// # Errors
/// The source's error when it cannot be read completely, [`Error::Crypto`] or
/// the store's error; in every case no manifest is written.
pub async fn run_backup(
    store: Arc<dyn Store>,
    source: &dyn Source,
    encryptor: Arc<dyn Encryptor>,
    options: &BackupOptions,
) -> Result<Manifest> {
    validate_key(&options.dest_prefix)?;
    if options.chunk_size == 0 {
        return Err(Error::config("chunk_size", "must be at least 1 byte"));
    }
    let started_at = Utc::now();
    let time = options.time.unwrap_or(started_at);
    let id = new_backup_id(time);
    let folder = join_key([options.dest_prefix.as_str(), id.as_str()]);
    tracing::debug!(target = %format!("{}/{}", options.app, options.profile), %id, "backup started");

    match store_chunks(&store, source, &encryptor, options, &folder).await {
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
            let key = join_key([folder.as_str(), MANIFEST_NAME]);
            match store.put(&key, Bytes::from(manifest.to_json())).await {
                Ok(()) => Ok(manifest),
                Err(e) => {
                    remove_folder(&store, &folder).await;
                    Err(e)
                }
            }
        }
        Err(e) => {
            remove_folder(&store, &folder).await;
            Err(e)
        }
    }
}

async fn store_chunks(
    store: &Arc<dyn Store>,
    source: &dyn Source,
    encryptor: &Arc<dyn Encryptor>,
    options: &BackupOptions,
    folder: &str,
) -> Result<(Vec<ChunkRecord>, serde_json::Map<String, serde_json::Value>)> {
    let output = source.open().await?;
    let mut records = Vec::new();
    for (stream_name, data) in output.streams {
        let sealed = rechunk(data, options.chunk_size)
            .enumerate()
            .map(|(index, piece)| {
                let store = Arc::clone(store);
                let encryptor = Arc::clone(encryptor);
                let name = chunk_name(&stream_name, index);
                let key = join_key([folder, name.as_str()]);
                let stream = stream_name.clone();
                let level = options.zstd_level;
                let progress = options.progress.clone();
                async move {
                    let plain = piece?;
                    let plaintext_size = plain.len() as u64;
                    let (sealed, sha256) = tokio::task::spawn_blocking(move || seal(&plain, level, &*encryptor))
                        .await
                        .map_err(|e| Error::Crypto {
                            operation: "encrypt",
                            reason: format!("worker failed: {e}"),
                        })??;
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
            .buffered(options.parallelism.max(1));
        let mut part: Vec<ChunkRecord> = sealed.try_collect().await?;
        records.append(&mut part);
    }
    Ok((records, output.details.snapshot()))
}

/// Compresses one chunk into a single zstd frame, encrypts it, and hashes the
/// stored bytes.
///
/// # Errors
/// [`Error::Crypto`] from the encryptor.
pub fn seal(plain: &[u8], zstd_level: i32, encryptor: &dyn Encryptor) -> Result<(Bytes, String)> {
    let mut compressed = zstd::stream::read::Encoder::new(plain, zstd_level).map_err(|e| Error::Crypto {
        operation: "encrypt",
        reason: format!("zstd: {e}"),
    })?;
    // Room for an incompressible chunk plus zstd and OpenPGP framing, so the
    // buffer never doubles (and copies) on the way.
    let mut sealed = BigBuf::with_capacity(plain.len() + plain.len() / 64 + 4096).map_err(|e| Error::Crypto {
        operation: "encrypt",
        reason: format!("cannot allocate memory for a chunk: {e}"),
    })?;
    encryptor.encrypt(&mut compressed as &mut dyn Read, &mut sealed)?;
    let sealed = sealed.freeze();
    let sha256 = hex::encode(Sha256::digest(&sealed));
    Ok((sealed, sha256))
}

/// Best-effort removal of a failed run's objects; prune removes whatever stays.
async fn remove_folder(store: &Arc<dyn Store>, folder: &str) {
    match store.list(folder).await {
        Ok(objects) => {
            for object in objects {
                if let Err(e) = store.delete(&object.key).await {
                    tracing::warn!(key = %object.key, error = %e, "could not remove a chunk of the failed backup; prune will remove it later");
                }
            }
        }
        Err(e) => {
            tracing::warn!(%folder, error = %e, "could not list the failed backup to remove it; prune will remove it later")
        }
    }
}
