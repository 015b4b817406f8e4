//! `restore TARGET --include GLOB… [--exclude GLOB…]`: some entries of a
//! files backup, fetching only the chunks that hold them.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use backup_core::{CatalogEntry, Decryptor, DynStore};
use backup_files::{ExtractOptions, Selection};

use crate::kinds::{Destination, Restored};
use crate::output::human_size;

/// Restores the entries `dest.files` selects into `dir`, with the rules of a
/// whole restore (staging, no link followed, nothing overwritten).
///
/// # Errors
/// Bad patterns; nothing selected; the library's restore errors.
pub async fn restore_selected(
    store: &DynStore,
    decryptor: Arc<dyn Decryptor>,
    entry: &CatalogEntry,
    dest: &Destination,
    dir: &Path,
) -> Result<Restored> {
    let (include, include_exact) = globs_and_exact_names(&dest.files.include);
    let (exclude, exclude_exact) = globs_and_exact_names(&dest.files.exclude);
    let selection = Selection::new(&include, &exclude)
        .and_then(|s| s.with_exact_names(&include_exact, &exclude_exact))
        .map_err(|e| crate::hints::hint(e, "use globs such as '*.jpg', 'media' or '/srv/app/**/x.txt'"))?;
    let options = ExtractOptions::new().with_preserve_owners(dest.preserve_owners);
    let target = format!("{}/{}", entry.manifest.app, entry.manifest.profile);
    let progress = crate::progress::Progress::start(&format!("{target}: restoring"));
    let counter = Some(progress.counter.clone());
    let done = backup_files::restore_selection(store, decryptor, entry, &selection, dir, counter, &options).await;
    progress.finish();
    let done = done.map_err(|e| match e {
        e @ backup_core::Error::Config { .. } => crate::hints::hint(
            e,
            format!("`ls {target} --id {}` shows what it holds", entry.manifest.id),
        ),
        other => crate::wiring::wrong_key_hint(other),
    })?;
    let s = &done.summary;
    let mut lines = vec![format!(
        "{} files, {} directories, {} symlinks, {} (selected by --include/--exclude)",
        s.files,
        s.dirs,
        s.symlinks,
        human_size(s.bytes)
    )];
    if !done.indexed {
        lines.push("the backup has no index: its whole data stream was read".into());
    }
    Ok(Restored {
        into: dir.display().to_string(),
        lines,
    })
}

/// UTF-8 arguments are globs; others are exact names (bytes no glob can
/// spell, such as a Latin-1 file name).
fn globs_and_exact_names(args: &[std::ffi::OsString]) -> (Vec<String>, Vec<Vec<u8>>) {
    use std::os::unix::ffi::OsStrExt;
    let mut globs = Vec::new();
    let mut exact = Vec::new();
    for arg in args {
        match arg.to_str() {
            Some(glob) => globs.push(glob.to_owned()),
            None => exact.push(arg.as_bytes().to_vec()),
        }
    }
    (globs, exact)
}
