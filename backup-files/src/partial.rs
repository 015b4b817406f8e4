//! Restoring some entries of a files backup, fetching only their chunks.

use std::ops::Range;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use backup_core::index::{has_index, read_ranges, stream_size};
use backup_core::{default_parallelism, restore_stream, CatalogEntry, Decryptor, DynStore, Error, Result, DATA_STREAM};
use futures::TryStreamExt;

use crate::browse::{list_entries, with_ends};
use crate::extract::{restore_selected_to_dir, ArchiveSummary};
use crate::restore::counted;
use crate::select::Selection;
use crate::ExtractOptions;

/// What a partial restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SelectedRestore {
    /// What was restored.
    pub summary: ArchiveSummary,
    /// True when the index chose the chunks to fetch; false for a backup
    /// without index, whose whole data stream was read and filtered.
    pub indexed: bool,
    /// Entries the index selected (0 without index).
    pub selected: u64,
}

/// Restores the entries of a trusted files backup that `selection` selects
/// (folders with their contents) into `target`, with every rule of
/// [`crate::restore_folder_with`]: staging folder, no link followed, nothing
/// overwritten, modes and times as archived.
///
/// With an index, only the byte ranges of the selected entries are read, so
/// only the chunks that hold them are fetched (each authenticated before
/// use); without one, the whole data stream is read and filtered.
/// Needs a tokio runtime.
///
/// # Errors
/// [`Error::Config`] naming `include` when nothing is selected; as
/// [`crate::restore_folder_with`] otherwise. `target` is left as it was.
pub async fn restore_selection(
    store: &DynStore,
    decryptor: Arc<dyn Decryptor>,
    entry: &CatalogEntry,
    selection: &Selection,
    target: &Path,
    progress: Option<Arc<AtomicU64>>,
    options: &ExtractOptions,
) -> Result<SelectedRestore> {
    options.check()?;
    let id = entry.manifest.id.clone();
    let filter = Some(Arc::new(selection.clone()));
    if !has_index(entry) {
        let data = restore_stream(store, decryptor, entry, DATA_STREAM, default_parallelism())?;
        let summary = restore_selected_to_dir(counted(data, progress), target, &id, options, filter).await?;
        if summary == ArchiveSummary::default() {
            return Err(nothing_selected(&id));
        }
        return Ok(SelectedRestore {
            summary,
            indexed: false,
            selected: 0,
        });
    }
    let listed = list_entries(store, Arc::clone(&decryptor), entry).await?;
    let mut spans = with_ends(listed.stream, stream_size(entry, DATA_STREAM));
    let mut ranges: Vec<Range<u64>> = Vec::new();
    let mut selected = 0u64;
    while let Some((file, end)) = spans.try_next().await? {
        if !selection.selects(&file.path) {
            continue;
        }
        selected += 1;
        // Neighbours selected together (a folder's contents) make one range.
        match ranges.last_mut() {
            Some(last) if last.end == file.offset => last.end = end,
            _ => ranges.push(file.offset..end),
        }
    }
    if selected == 0 {
        return Err(nothing_selected(&id));
    }
    let data =
        read_ranges(store, decryptor, entry, DATA_STREAM, &ranges, default_parallelism()).map_err(|e| match e {
            Error::Config { reason, .. } => Error::Format {
                id: id.clone(),
                reason: format!("its index does not fit its data stream: {reason}"),
            },
            other => other,
        })?;
    let summary = restore_selected_to_dir(counted(data, progress), target, &id, options, filter).await?;
    Ok(SelectedRestore {
        summary,
        indexed: true,
        selected,
    })
}

fn nothing_selected(id: &str) -> Error {
    Error::config("include", format!("the patterns select no entry of backup {id}"))
}
