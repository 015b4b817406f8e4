//! `local_copy`: the newest backup of a profile kept in `data/<app>/<profile>/`
//! for immediate local access, as the old system did.
//!
//! - `"compressed"`: the plaintext stream zstd-compressed while it is backed
//!   up (`latest.pgdump.zst` / `latest.tar.zst`): `zstd -d` away from use,
//!   no key needed — so only for hosts where the data may lie unencrypted.
//! - `"encrypted"`: a copy of the stored backup folder (`latest/`), restorable
//!   with the README's stock-tools recipe.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use async_trait::async_trait;
use backup_core::store::join_key;
use backup_core::{Manifest, Source, SourceOutput, Store, StoreExt};
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What to keep of the newest backup in `data/`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalCopy {
    /// Nothing (default).
    #[default]
    None,
    /// The plaintext, zstd-compressed.
    Compressed,
    /// The encrypted backup folder.
    Encrypted,
}

/// A source that also writes its `data` stream, zstd-compressed, to a file.
pub struct TeeSource {
    inner: Box<dyn Source>,
    partial: PathBuf,
    writer: Mutex<Option<JoinHandle<std::io::Result<()>>>>,
}

impl TeeSource {
    /// Wraps `inner`; the copy is written next to `file` and renamed onto it by
    /// [`TeeSource::finish`].
    pub fn new(inner: Box<dyn Source>, file: &Path) -> Self {
        TeeSource {
            inner,
            partial: file.with_extension("partial"),
            writer: Mutex::new(None),
        }
    }

    /// After the backup: keeps the copy as `file` when `succeeded`, else removes it.
    ///
    /// # Errors
    /// When the copy could not be written; the backup itself is unaffected.
    pub async fn finish(&self, file: &Path, succeeded: bool) -> Result<()> {
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        let written = match writer {
            Some(handle) => handle.await.map_err(std::io::Error::other).and_then(|r| r),
            None => Ok(()),
        };
        if succeeded && written.is_ok() {
            tokio::fs::rename(&self.partial, file)
                .await
                .with_context(|| file.display().to_string())?;
            return Ok(());
        }
        let _ = tokio::fs::remove_file(&self.partial).await;
        written.with_context(|| format!("local copy {}", self.partial.display()))
    }
}

#[async_trait]
impl Source for TeeSource {
    fn kind(&self) -> &str {
        self.inner.kind()
    }

    async fn open(&self) -> backup_core::Result<SourceOutput> {
        let mut output = self.inner.open().await?;
        if let Some(parent) = self.partial.parent() {
            std::fs::create_dir_all(parent).map_err(|e| backup_core::Error::io(parent, e))?;
        }
        let file = std::fs::File::create(&self.partial).map_err(|e| backup_core::Error::io(&self.partial, e))?;
        let (tx, mut rx) = mpsc::channel::<Bytes>(8);
        let handle = tokio::task::spawn_blocking(move || {
            let mut encoder = zstd::Encoder::new(file, 3)?;
            while let Some(piece) = rx.blocking_recv() {
                encoder.write_all(&piece)?;
            }
            encoder.finish()?.sync_all()
        });
        *self.writer.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        if let Some((_, data)) = output.streams.iter_mut().find(|(name, _)| name == "data") {
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

/// Copies the stored backup folder into `dir/latest/`, replacing the previous copy.
///
/// # Errors
/// Store or file errors; the previous copy stays until the new one is complete.
pub async fn copy_encrypted(store: &Arc<dyn Store>, m: &Manifest, dir: &Path) -> Result<()> {
    let partial = dir.join("latest.partial");
    let latest = dir.join("latest");
    let _ = tokio::fs::remove_dir_all(&partial).await;
    tokio::fs::create_dir_all(&partial)
        .await
        .with_context(|| partial.display().to_string())?;
    let folder = join_key([m.dest_prefix.as_str(), m.id.as_str()]);
    let names = m
        .chunks
        .iter()
        .map(|c| c.name.as_str())
        .chain(std::iter::once(backup_core::manifest::MANIFEST_NAME));
    for name in names {
        let bytes = store.get_bytes(&join_key([folder.as_str(), name])).await?;
        tokio::fs::write(partial.join(name), &bytes)
            .await
            .with_context(|| partial.join(name).display().to_string())?;
    }
    let _ = tokio::fs::remove_dir_all(&latest).await;
    tokio::fs::rename(&partial, &latest)
        .await
        .with_context(|| latest.display().to_string())
}
