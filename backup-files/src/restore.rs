//! Restoring a files backup from the store: into a folder, or checked.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use backup_core::{
    default_parallelism, restore_stream, ByteStream, CatalogEntry, Decryptor, DynStore, Result, StreamCheck,
    DATA_STREAM,
};
use futures::StreamExt;

use crate::extract::{check_stream, restore_to_dir, ArchiveSummary};
use crate::ExtractOptions;

/// The profile kind of files backups.
pub const KIND: &str = "files";

/// Restores a trusted files backup into the folder `target`, with the safety
/// rules of [`crate::extract_archive`]: everything is extracted into a staging
/// folder inside `target` and moved into place only after every chunk
/// authenticated; nothing is written through symlinks or outside `target`;
/// existing entries are never overwritten; archive owners and setuid/setgid
/// bits are not restored. `progress`, when given, counts the plaintext bytes
/// read. Needs a tokio runtime.
///
/// # Errors
/// Integrity, decryption, archive or file errors; `target` is left as it was.
pub async fn restore_folder(
    store: &DynStore,
    decryptor: Arc<dyn Decryptor>,
    entry: &CatalogEntry,
    target: &Path,
    progress: Option<Arc<AtomicU64>>,
) -> Result<ArchiveSummary> {
    restore_folder_with(store, decryptor, entry, target, progress, &ExtractOptions::new()).await
}

/// [`restore_folder`] with explicit [`ExtractOptions`], e.g. to keep the
/// archive's owners when restoring a system as root.
///
/// # Errors
/// As [`restore_folder`]; [`backup_core::Error::Target`] before anything is
/// downloaded when `options` keep owners and the process is not root.
pub async fn restore_folder_with(
    store: &DynStore,
    decryptor: Arc<dyn Decryptor>,
    entry: &CatalogEntry,
    target: &Path,
    progress: Option<Arc<AtomicU64>>,
    options: &ExtractOptions,
) -> Result<ArchiveSummary> {
    options.check()?;
    let stream = restore_stream(store, decryptor, entry, DATA_STREAM, default_parallelism())?;
    restore_to_dir(counted(stream, progress), target, &entry.manifest.id, options).await
}

/// Counts the bytes of `stream` into `progress`.
pub(crate) fn counted(stream: ByteStream, progress: Option<Arc<AtomicU64>>) -> ByteStream {
    match progress {
        None => stream,
        Some(counter) => stream
            .inspect(move |piece| {
                if let Ok(bytes) = piece {
                    counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
            })
            .boxed(),
    }
}

/// Checks a files backup's data stream by reading it as a tar archive.
#[derive(Debug, Clone, Copy, Default)]
pub struct TarCheck;

#[async_trait]
impl StreamCheck for TarCheck {
    async fn check(&self, data: ByteStream, entry: &CatalogEntry) -> Result<String> {
        let s = check_stream(data, &entry.manifest.id).await?;
        Ok(format!(
            "tar archive read: {} files, {} directories, {} symlinks, {} bytes",
            s.files, s.dirs, s.symlinks, s.bytes
        ))
    }
}
