//! `FilesSource`: a tar stream of folders, made on a blocking thread.

use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use backup_core::{Error, Result, Source, SourceDetails, SourceOutput};
use futures::stream;
use globset::{Glob, GlobSet, GlobSetBuilder};
use tar::{EntryType, Header, HeaderMode};
use walkdir::WalkDir;

use crate::config::{FilesConfig, OnUnreadable};
use crate::entry::{EntryKind, FileEntry};
use crate::error::FilesError;
use crate::pax;
use crate::pipe::{ChannelWriter, ErrorSender};
use crate::spool::{index_stream, Spool};

/// Backs up folders as one POSIX tar stream. See the crate docs.
#[derive(Debug, Clone)]
pub struct FilesSource {
    paths: Vec<PathBuf>,
    exclude: GlobSet,
    on_unreadable: OnUnreadable,
}

impl FilesSource {
    /// Builds the source; relative `paths` are taken relative to `base`.
    ///
    /// # Errors
    /// [`Error::Config`] for an empty `paths` or an exclude pattern that is not a
    /// valid glob; [`Error::Source`] for a path that does not exist.
    pub fn new(config: &FilesConfig, base: &Path) -> Result<Self> {
        if config.paths.is_empty() {
            return Err(Error::config(
                "paths",
                "no folder to back up: list at least one in `paths = [...]`",
            ));
        }
        let mut paths = Vec::new();
        for p in &config.paths {
            let full = base.join(p);
            // A missing folder is a failed backup, not a configuration
            // mistake: it is usually a volume that is not mounted right now.
            fs::symlink_metadata(&full).map_err(|e| {
                Error::source_failed(
                    full.display().to_string(),
                    format!("cannot back it up: {e}; is the volume mounted? (listed in `paths`)"),
                )
            })?;
            paths.push(std::path::absolute(&full).map_err(|e| Error::io(&full, e))?);
        }
        let mut globs = GlobSetBuilder::new();
        for pattern in &config.exclude {
            let glob = Glob::new(pattern).map_err(|e| {
                FilesError::BadPattern {
                    pattern: pattern.clone(),
                    reason: e.to_string(),
                }
                .into_core()
            })?;
            globs.add(glob);
        }
        let exclude = globs.build().map_err(|e| {
            FilesError::BadPattern {
                pattern: config.exclude.join(", "),
                reason: e.to_string(),
            }
            .into_core()
        })?;
        Ok(FilesSource {
            paths,
            exclude,
            on_unreadable: config.on_unreadable,
        })
    }

    fn excluded(&self, path: &Path) -> bool {
        self.exclude.is_match(path) || path.file_name().is_some_and(|name| self.exclude.is_match(name))
    }
}

#[async_trait]
impl Source for FilesSource {
    fn kind(&self) -> &str {
        crate::KIND
    }

    async fn open(&self) -> Result<SourceOutput> {
        let (writer, rx) = ChannelWriter::new(4);
        let errors = writer.error_sender();
        let details = SourceDetails::default();
        let this = self.clone();
        let recorder = details.clone();
        let (index_tx, index_rx) = tokio::sync::oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let mut archiver = Archiver {
                source: &this,
                tar: tar::Builder::new(Counting {
                    inner: writer,
                    written: 0,
                }),
                errors,
                counts: Counts::default(),
                index: Spool::new(crate::KIND),
            };
            // On failure the error already went down the stream; the stream then
            // ends without the archive's end blocks, so it can never pass as whole.
            if archiver.run().is_ok() {
                let counts = &archiver.counts;
                recorder.set(
                    "paths",
                    this.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                );
                recorder.set("file_count", counts.files);
                recorder.set("dir_count", counts.dirs);
                recorder.set("symlink_count", counts.symlinks);
                recorder.set("skipped", counts.skipped);
                let Archiver { tar, index, errors, .. } = archiver;
                if tar.into_inner().and_then(|mut w| w.flush()).is_ok() {
                    // Sent only for a complete archive: without it the index
                    // stream fails, and with it the backup.
                    match index.finish() {
                        Ok(spooled) => {
                            let _ = index_tx.send(spooled);
                        }
                        Err(e) => errors.send(Error::io("index spool file", e)),
                    }
                }
            }
        });
        let data = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
        Ok(SourceOutput {
            streams: vec![
                (backup_core::DATA_STREAM.to_owned(), Box::pin(data)),
                (backup_core::index::INDEX_STREAM.to_owned(), index_stream(index_rx)),
            ],
            details,
        })
    }
}

#[derive(Default)]
struct Counts {
    files: u64,
    dirs: u64,
    symlinks: u64,
    skipped: u64,
}

/// Archiving stopped: the error (if anyone still listens) is in the stream.
struct Stop;

struct Archiver<'a> {
    source: &'a FilesSource,
    tar: tar::Builder<Counting<ChannelWriter>>,
    errors: ErrorSender,
    counts: Counts,
    index: Spool,
}

/// Counts the bytes written, which are the offsets of the data stream.
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Archiver<'_> {
    fn run(&mut self) -> Result<(), Stop> {
        let roots = self.source.paths.clone();
        for root in roots {
            let walk = WalkDir::new(&root).follow_links(false).sort_by_file_name();
            let mut entries = walk.into_iter();
            while let Some(entry) = entries.next() {
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        let path = e.path().map(Path::to_path_buf).unwrap_or_else(|| root.clone());
                        let io = e.into_io_error().unwrap_or_else(|| io::Error::other("walk failed"));
                        self.unreadable(FilesError::Unreadable { path, source: io })?;
                        continue;
                    }
                };
                let path = entry.path();
                if self.source.excluded(path) {
                    if entry.file_type().is_dir() {
                        entries.skip_current_dir();
                    }
                    continue;
                }
                match fs::symlink_metadata(path) {
                    Ok(meta) => self.append(path, &meta)?,
                    Err(e) => self.unreadable(FilesError::Unreadable {
                        path: path.to_owned(),
                        source: e,
                    })?,
                }
            }
        }
        Ok(())
    }

    fn append(&mut self, path: &Path, meta: &Metadata) -> Result<(), Stop> {
        let name = archive_name(path);
        let mut header = Header::new_gnu();
        header.set_metadata_in_mode(meta, HeaderMode::Complete);
        let kind = meta.file_type();
        if !(kind.is_dir() || kind.is_symlink() || kind.is_file()) {
            tracing::warn!(path = %path.display(), "skipping a socket, FIFO or device file");
            self.counts.skipped += 1;
            return Ok(());
        }
        // Where this entry's first header (the PAX one) starts.
        let mut entry = FileEntry {
            path: name.as_os_str().as_bytes().to_vec(),
            kind: EntryKind::File,
            size: 0,
            mode: meta.mode() & 0o7777,
            uid: meta.uid().into(),
            gid: meta.gid().into(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec() as u32,
            link: None,
            offset: self.tar.get_ref().written,
        };
        if kind.is_symlink() {
            // Read before any header is written: an unreadable link is skipped whole.
            match fs::read_link(path) {
                Ok(target) => entry.link = Some(target.as_os_str().as_bytes().to_vec()),
                Err(e) => {
                    return self.unreadable(FilesError::Unreadable {
                        path: path.to_owned(),
                        source: e,
                    })
                }
            }
        }
        // Opened before any header is written too: a file that cannot be
        // opened is skipped whole, not left as a stray PAX header.
        let file = if kind.is_file() {
            match File::open(path) {
                Ok(f) => Some(f),
                Err(e) => {
                    return self.unreadable(FilesError::Unreadable {
                        path: path.to_owned(),
                        source: e,
                    })
                }
            }
        } else {
            None
        };
        let written = pax::append_mtime(&mut self.tar, meta.mtime(), meta.mtime_nsec() as u32);
        self.io(written)?;
        if kind.is_dir() {
            self.counts.dirs += 1;
            header.set_size(0);
            let r = self.tar.append_data(&mut header, &name, io::empty());
            self.io(r)?;
            entry.kind = EntryKind::Dir;
            self.record(&entry)
        } else if kind.is_symlink() {
            self.counts.symlinks += 1;
            let target = Path::new(std::ffi::OsStr::from_bytes(entry.link.as_deref().unwrap_or_default()));
            header.set_entry_type(EntryType::Symlink);
            header.set_size(0);
            let r = self.tar.append_link(&mut header, &name, target);
            self.io(r)?;
            entry.kind = EntryKind::Symlink;
            self.record(&entry)
        } else if let Some(file) = file {
            entry.size = meta.len();
            self.append_file(path, file, &name, header, entry)
        } else {
            Ok(())
        }
    }

    /// Adds an entry that is in the archive now to the index.
    fn record(&mut self, entry: &FileEntry) -> Result<(), Stop> {
        match self.index.push(entry) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(Error::io("index spool file", e))),
        }
    }

    fn append_file(
        &mut self,
        path: &Path,
        file: File,
        name: &Path,
        mut header: Header,
        entry: FileEntry,
    ) -> Result<(), Stop> {
        let size = entry.size;
        header.set_size(size);
        let mut reader = ExactReader {
            inner: file.take(size),
            remaining: size,
            short: 0,
            error: None,
        };
        let r = self.tar.append_data(&mut header, name, &mut reader);
        if r.is_ok() {
            // In the archive now, zero-padded if it could not be read whole.
            self.record(&entry)?;
        }
        if let Some(e) = reader.error.take() {
            // The header is written: the archive stays valid (zero padding), but the copy is wrong.
            return self.unreadable(FilesError::Unreadable {
                path: path.to_owned(),
                source: e,
            });
        }
        self.io(r)?;
        self.counts.files += 1;
        if reader.short > 0 {
            return self.unreadable(FilesError::Shrunk {
                path: path.to_owned(),
                expected: size,
                got: size - reader.short,
            });
        }
        Ok(())
    }

    fn unreadable(&mut self, error: FilesError) -> Result<(), Stop> {
        match self.source.on_unreadable {
            OnUnreadable::Warn => {
                tracing::warn!("{error}; skipped (on_unreadable = \"warn\")");
                self.counts.skipped += 1;
                Ok(())
            }
            OnUnreadable::Fail => Err(self.fail(error.into_core())),
        }
    }

    fn io(&mut self, result: io::Result<()>) -> Result<(), Stop> {
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(Stop),
            Err(e) => Err(self.fail(Error::source_failed("tar", e.to_string()))),
        }
    }

    fn fail(&mut self, error: Error) -> Stop {
        self.errors.send(error);
        Stop
    }
}

/// `/srv/app/media/x` → `srv/app/media/x`, as GNU tar names members.
fn archive_name(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect()
}

/// Reads exactly the size announced in the header: pads with zeros when the
/// file shrank, so the archive stays valid, and remembers the shortfall.
struct ExactReader<R> {
    inner: R,
    remaining: u64,
    short: u64,
    error: Option<io::Error>,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = out.len().min(self.remaining as usize);
        let n = if self.error.is_some() || self.short > 0 {
            0
        } else {
            match self.inner.read(&mut out[..want]) {
                Ok(n) => n,
                Err(e) => {
                    self.error = Some(e);
                    0
                }
            }
        };
        if n == 0 {
            out[..want].fill(0);
            self.short += want as u64;
            self.remaining -= want as u64;
            return Ok(want);
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}
