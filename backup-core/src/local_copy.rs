//! Local copies of the newest backup, for immediate access on the backup host:
//!
//! - [`TeeSource`]: the plaintext data stream, zstd-compressed while it is
//!   backed up (`zstd -d` away from use, no key needed — so only for hosts
//!   where the data may lie unencrypted; the file is readable by its owner only);
//! - [`copy_backup_folder`]: a copy of the stored (encrypted, signed) backup
//!   folder, restorable with stock gpg and zstd.
//!
//! Both write a `*.partial` first and rename it when complete. Cancelled
//! (their future or the [`TeeSource`] dropped), they remove it at once.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::catalog::CatalogEntry;
use crate::error::{Error, Result};
use crate::layout::{MANIFEST_NAME, SIGNATURE_NAME};
use crate::restore::{create_private_dirs, DATA_STREAM};
use crate::source::{Source, SourceOutput};
use crate::store::{DynStore, StoreExt};

/// A source that also writes its data stream, zstd-compressed, to a file.
pub struct TeeSource {
    inner: Box<dyn Source>,
    partial: PathBuf,
    writer: Mutex<Option<JoinHandle<std::io::Result<()>>>>,
    finished: AtomicBool,
}

impl TeeSource {
    /// Wraps `inner`; the copy is written next to `file` and renamed onto it by
    /// [`TeeSource::finish`].
    pub fn new(inner: Box<dyn Source>, file: &Path) -> Self {
        TeeSource {
            inner,
            partial: file.with_extension("partial"),
            writer: Mutex::new(None),
            finished: AtomicBool::new(false),
        }
    }

    /// After the backup: keeps the copy as `file` when `succeeded`, else removes it.
    ///
    /// # Errors
    /// [`Error::Io`] when the copy could not be written; the backup itself is unaffected.
    pub async fn finish(&self, file: &Path, succeeded: bool) -> Result<()> {
        let result = self.settle(file, succeeded).await;
        self.finished.store(true, Ordering::SeqCst);
        result
    }

    async fn settle(&self, file: &Path, succeeded: bool) -> Result<()> {
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        let written = match writer {
            Some(handle) => handle.await.map_err(std::io::Error::other).and_then(|r| r),
            None => Ok(()),
        };
        if succeeded && written.is_ok() {
            return tokio::fs::rename(&self.partial, file)
                .await
                .map_err(|e| Error::io(file, e));
        }
        let _ = tokio::fs::remove_file(&self.partial).await;
        written.map_err(|e| Error::io(&self.partial, e))
    }
}

impl Drop for TeeSource {
    /// A backup cancelled before [`TeeSource::finish`] leaves no plaintext
    /// behind. The writer thread may still hold the file open: unlinking it
    /// is enough, it ends when the dropped stream closes its channel.
    fn drop(&mut self) {
        if !self.finished.load(Ordering::SeqCst) {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

impl std::fmt::Debug for TeeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeeSource")
            .field("partial", &self.partial)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Source for TeeSource {
    fn kind(&self) -> &str {
        self.inner.kind()
    }

    async fn open(&self) -> Result<SourceOutput> {
        let mut output = self.inner.open().await?;
        if let Some(parent) = self.partial.parent() {
            create_private_dirs(parent)?;
        }
        // Plaintext: readable by its owner only, from the first byte. A
        // partial file left by a killed run may have another mode: start anew.
        match std::fs::remove_file(&self.partial) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&self.partial, e)),
            _ => {}
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.partial)
            .map_err(|e| Error::io(&self.partial, e))?;
        let (tx, mut rx) = mpsc::channel::<Bytes>(8);
        let handle = tokio::task::spawn_blocking(move || {
            let mut encoder = zstd::Encoder::new(file, 3)?;
            while let Some(piece) = rx.blocking_recv() {
                encoder.write_all(&piece)?;
            }
            encoder.finish()?.sync_all()
        });
        *self.writer.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        if let Some((_, data)) = output.streams.iter_mut().find(|(name, _)| name == DATA_STREAM) {
            let stream = std::mem::replace(data, futures::stream::empty().boxed());
            *data = stream
                .then(move |item| {
                    let tx = tx.clone();
                    async move {
                        if let Ok(piece) = &item {
                            // A failed copy must not fail the backup: the writer reports it.
                            let _ = tx.send(piece.clone()).await;
                        }
                        item
                    }
                })
                .boxed();
        }
        Ok(output)
    }
}

/// Copies a trusted backup's stored folder (chunks, signature, manifest) into
/// `dir/latest/`, replacing the previous copy.
///
/// # Errors
/// Store or file errors; the previous copy stays until the new one is complete.
pub async fn copy_backup_folder(store: &DynStore, entry: &CatalogEntry, dir: &Path) -> Result<()> {
    let partial = dir.join("latest.partial");
    let latest = dir.join("latest");
    let _ = tokio::fs::remove_dir_all(&partial).await;
    create_private_dirs(&partial)?;
    let _unfinished = RemoveDirOnDrop(partial.clone());
    let folder = entry.folder();
    let mut objects = Vec::new();
    for chunk in &entry.manifest.chunks {
        objects.push((chunk.name.clone(), folder.chunk_key(&chunk.name)?, chunk.size));
    }
    objects.push((SIGNATURE_NAME.into(), folder.signature_key(), 64 * 1024));
    objects.push((
        MANIFEST_NAME.into(),
        folder.manifest_key(),
        crate::manifest::MAX_MANIFEST_SIZE,
    ));
    for (name, key, max) in objects {
        let bytes = match store.get_bytes(&key, max).await {
            Ok(bytes) => bytes,
            // Backups made before signing have no signature.
            Err(Error::NotFound { .. }) if name == SIGNATURE_NAME => continue,
            Err(e) => return Err(e),
        };
        // Encrypted, but private like the rest of `data/`.
        let path = partial.join(&name);
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .await
            .map_err(|e| Error::io(&path, e))?;
        tokio::io::AsyncWriteExt::write_all(&mut file, &bytes)
            .await
            .map_err(|e| Error::io(&path, e))?;
    }
    let _ = tokio::fs::remove_dir_all(&latest).await;
    tokio::fs::rename(&partial, &latest)
        .await
        .map_err(|e| Error::io(&latest, e))
}

/// Removes a folder when dropped: `latest.partial` of a copy that failed or
/// was cancelled (after the rename there is nothing left to remove).
struct RemoveDirOnDrop(PathBuf);

impl Drop for RemoveDirOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
