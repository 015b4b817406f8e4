//! Reading what a files backup holds: from its index, or — for backups made
//! before indexes — by reading the tar headers of its data stream.

use std::io::{self, Read, Write};
use std::sync::Arc;

use backup_core::index::{has_index, open_index, read_range, stream_size};
use backup_core::{
    default_parallelism, restore_stream, ByteStream, CatalogEntry, Decryptor, DynStore, Error, Result, DATA_STREAM,
};
use futures::stream::{self, BoxStream, StreamExt};

use crate::entry::{EntryKind, FileEntry};
use crate::pax;
use crate::pipe::{ChannelWriter, StreamReader};

/// The entries of a backup, in archive order.
pub struct Entries {
    /// True when they come from the backup's index; false when the data
    /// stream was read for them (a backup without index: slower, and every
    /// chunk is downloaded).
    pub indexed: bool,
    /// The entries; the first error ends the stream.
    pub stream: BoxStream<'static, Result<FileEntry>>,
}

impl std::fmt::Debug for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entries")
            .field("indexed", &self.indexed)
            .finish_non_exhaustive()
    }
}

/// Lists the entries of a trusted files backup: from its index when it has
/// one (only the index chunks are fetched), else from the tar headers of its
/// data stream. Every chunk read is authenticated first. Needs a tokio runtime.
///
/// # Errors
/// [`Error::Format`] for an index that is not a files index or is malformed;
/// the errors of [`backup_core::index::open_index`] and of the restore stream.
pub async fn list_entries(store: &DynStore, decryptor: Arc<dyn Decryptor>, entry: &CatalogEntry) -> Result<Entries> {
    if has_index(entry) {
        let reader = open_index(store, decryptor, entry).await?;
        if reader.header().kind != crate::KIND {
            return Err(Error::Format {
                id: entry.manifest.id.clone(),
                reason: format!("its index lists {:?} entries, not files", reader.header().kind),
            });
        }
        return Ok(Entries {
            indexed: true,
            stream: reader.entries::<FileEntry>(),
        });
    }
    let data = restore_stream(store, decryptor, entry, DATA_STREAM, default_parallelism())?;
    Ok(Entries {
        indexed: false,
        stream: scan_archive(data, &entry.manifest.id),
    })
}

/// The entries of a tar stream, read from its headers on a blocking thread.
/// Offsets are those of each entry's main header (PAX headers before it are
/// not counted).
pub fn scan_archive(data: ByteStream, label: &str) -> BoxStream<'static, Result<FileEntry>> {
    let reader = StreamReader::new(data);
    let failure = reader.failure();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<FileEntry>>(256);
    let label = label.to_owned();
    tokio::task::spawn_blocking(move || {
        let result = scan(reader, &label, &tx);
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(failure.take().unwrap_or(e)));
        }
    });
    stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}

fn scan(reader: impl Read, label: &str, tx: &tokio::sync::mpsc::Sender<Result<FileEntry>>) -> Result<()> {
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(|e| read_error(e, label))? {
        let mut entry = entry.map_err(|e| read_error(e, label))?;
        let found = describe(&mut entry, label)?;
        if tx.blocking_send(Ok(found)).is_err() {
            return Ok(()); // nobody listens any more
        }
    }
    Ok(())
}

/// An archive entry as an index entry.
fn describe<R: Read>(entry: &mut tar::Entry<'_, R>, label: &str) -> Result<FileEntry> {
    let (mtime, mtime_nsec) = match pax::mtime_of(entry).map_err(|e| read_error(e, label))? {
        Some(t) => t,
        None => (entry.header().mtime().unwrap_or(0) as i64, 0),
    };
    let header = entry.header();
    let kind = EntryKind::of(header.entry_type());
    let mut path = entry.path_bytes().into_owned();
    while path.len() > 1 && path.ends_with(b"/") {
        path.pop();
    }
    Ok(FileEntry {
        path,
        kind,
        size: if kind == EntryKind::File { entry.size() } else { 0 },
        mode: header.mode().map_err(|e| read_error(e, label))? & 0o7777,
        uid: header.uid().unwrap_or(0),
        gid: header.gid().unwrap_or(0),
        mtime,
        mtime_nsec,
        link: entry.link_name_bytes().map(|l| l.into_owned()),
        offset: entry.raw_header_position(),
    })
}

/// Pairs each entry with the end of its bytes in the data stream: the next
/// entry's offset, or `data_end` for the last one.
pub fn with_ends(
    entries: BoxStream<'static, Result<FileEntry>>,
    data_end: u64,
) -> BoxStream<'static, Result<(FileEntry, u64)>> {
    stream::unfold(
        (entries, None::<FileEntry>, false),
        move |(mut entries, held, done)| async move {
            if done {
                return None;
            }
            let mut held = held;
            loop {
                match entries.next().await {
                    Some(Ok(next)) => match held.replace(next) {
                        Some(previous) => {
                            let end = held.as_ref().map_or(data_end, |n| n.offset);
                            return Some((Ok((previous, end)), (entries, held, false)));
                        }
                        None => continue,
                    },
                    Some(Err(e)) => return Some((Err(e), (entries, None, true))),
                    None => return held.map(|last| (Ok((last, data_end)), (entries, None, true))),
                }
            }
        },
    )
    .boxed()
}

/// The content of the file `file` (an entry of `entry`'s index whose bytes
/// end at `end`, see [`with_ends`]), fetching only the chunks that hold it.
/// The entry's tar header is read and must name the same path. Needs a
/// tokio runtime.
///
/// # Errors
/// [`Error::Config`] when `file` is not a regular file; the stream ends with
/// [`Error::Format`] when the archive at its offset does not hold it, or with
/// the errors of [`backup_core::index::read_range`].
pub fn read_file(
    store: &DynStore,
    decryptor: Arc<dyn Decryptor>,
    entry: &CatalogEntry,
    file: &FileEntry,
    end: u64,
) -> Result<ByteStream> {
    if file.kind != EntryKind::File {
        return Err(Error::config(
            "path",
            format!(
                "{} is a {:?} entry, not a regular file",
                file.path().display(),
                file.kind
            ),
        ));
    }
    let end = end.min(stream_size(entry, DATA_STREAM));
    let length = end.saturating_sub(file.offset);
    let range = read_range(store, decryptor, entry, DATA_STREAM, file.offset, Some(length), 2)?;
    let reader = StreamReader::new(range);
    let failure = reader.failure();
    let (mut writer, rx) = ChannelWriter::new(4);
    let errors = writer.error_sender();
    let (want, label) = (file.path.clone(), entry.manifest.id.clone());
    tokio::task::spawn_blocking(move || {
        let copied = copy_first(reader, &want, &label, &mut writer);
        if let Err(e) = copied {
            errors.send(failure.take().unwrap_or(e));
        }
    });
    Ok(stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed())
}

/// Copies the content of the archive's first entry, which must be `want`.
fn copy_first(reader: impl Read, want: &[u8], label: &str, out: &mut ChannelWriter) -> Result<()> {
    let mut archive = tar::Archive::new(reader);
    let mut entries = archive.entries().map_err(|e| read_error(e, label))?;
    let mut first = match entries.next() {
        Some(entry) => entry.map_err(|e| read_error(e, label))?,
        None => return Err(mismatch(label, want, "no entry")),
    };
    let path = first.path_bytes();
    if path.as_ref() != want {
        let found = String::from_utf8_lossy(&path).into_owned();
        return Err(mismatch(label, want, &format!("entry {found:?}")));
    }
    if EntryKind::of(first.header().entry_type()) != EntryKind::File {
        return Err(mismatch(label, want, "an entry that is not a regular file"));
    }
    match io::copy(&mut first, out).and_then(|_| out.flush()) {
        Ok(_) => Ok(()),
        // The reader went away: nothing to report to anyone.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(read_error(e, label)),
    }
}

fn mismatch(label: &str, want: &[u8], found: &str) -> Error {
    Error::Format {
        id: label.to_owned(),
        reason: format!(
            "the index places {:?} where the archive holds {found}",
            String::from_utf8_lossy(want)
        ),
    }
}

pub(crate) fn read_error(e: io::Error, label: &str) -> Error {
    Error::Format {
        id: label.to_owned(),
        reason: format!("not a valid tar stream: {e}"),
    }
}

/// The content of the regular file `want` (an archive name) in a whole tar
/// stream: for backups without index. The stream is read up to that entry.
///
/// The returned stream ends with [`Error::Config`] naming `path` when the
/// archive has no regular file of that name.
pub fn find_file_in_archive(data: ByteStream, want: &[u8], label: &str) -> ByteStream {
    let reader = StreamReader::new(data);
    let failure = reader.failure();
    let (mut writer, rx) = ChannelWriter::new(4);
    let errors = writer.error_sender();
    let (want, label) = (want.to_vec(), label.to_owned());
    tokio::task::spawn_blocking(move || {
        let result = (|| {
            let mut archive = tar::Archive::new(reader);
            for entry in archive.entries().map_err(|e| read_error(e, &label))? {
                let mut entry = entry.map_err(|e| read_error(e, &label))?;
                let name = entry.path_bytes().into_owned();
                if name != want || EntryKind::of(entry.header().entry_type()) != EntryKind::File {
                    continue;
                }
                return match io::copy(&mut entry, &mut writer).and_then(|_| writer.flush()) {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                    Err(e) => Err(read_error(e, &label)),
                };
            }
            Err(Error::config(
                "path",
                format!(
                    "backup {label} holds no regular file {:?}",
                    String::from_utf8_lossy(&want)
                ),
            ))
        })();
        if let Err(e) = result {
            errors.send(failure.take().unwrap_or(e));
        }
    });
    stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}
