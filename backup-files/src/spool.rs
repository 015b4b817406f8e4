//! The index of a backup being made: its lines are collected while the tar
//! stream is written and stored as the second stream once the data ended.
//!
//! 375,000 entries make an index of tens of MiB, so the lines are kept in
//! memory only up to [`SPILL_AT`] bytes and then spill to an anonymous
//! temporary file (created 0600 and unlinked at once: it holds file names in
//! plaintext, and nothing is left behind by a crash).

use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};

use backup_core::index::{IndexHeader, INDEX_STREAM};
use backup_core::{ByteStream, Error};
use bytes::Bytes;
use futures::{stream, StreamExt};
use tokio::sync::oneshot;

use crate::entry::FileEntry;
use crate::pipe::ChannelWriter;

/// Index bytes kept in memory before they go to a temporary file.
const SPILL_AT: usize = 4 * 1024 * 1024;

/// Index lines collected so far.
pub(crate) struct Spool {
    memory: Vec<u8>,
    file: Option<BufWriter<File>>,
}

/// A finished index, ready to be read back.
pub(crate) enum Spooled {
    Memory(Bytes),
    File(File),
}

impl Spool {
    /// An index of `kind` entries: its header line first.
    pub(crate) fn new(kind: &str) -> Self {
        Spool {
            memory: IndexHeader::new(kind).to_line(),
            file: None,
        }
    }

    /// Adds one entry line.
    pub(crate) fn push(&mut self, entry: &FileEntry) -> io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(io::Error::other)?;
        line.push(b'\n');
        if let Some(file) = self.file.as_mut() {
            return file.write_all(&line);
        }
        self.memory.extend_from_slice(&line);
        if self.memory.len() >= SPILL_AT {
            // tempfile() opens O_TMPFILE (or unlinks at once), mode 0600.
            let mut file = BufWriter::with_capacity(256 * 1024, tempfile::tempfile()?);
            file.write_all(&self.memory)?;
            self.memory = Vec::new();
            self.file = Some(file);
        }
        Ok(())
    }

    /// The index, complete.
    pub(crate) fn finish(self) -> io::Result<Spooled> {
        match self.file {
            None => Ok(Spooled::Memory(Bytes::from(self.memory))),
            Some(file) => {
                let mut file = file.into_inner().map_err(io::IntoInnerError::into_error)?;
                file.rewind()?;
                Ok(Spooled::File(file))
            }
        }
    }
}

/// The index stream: waits for the finished index (sent once the archive is
/// complete, so after the `data` stream ended), then yields it.
pub(crate) fn index_stream(finished: oneshot::Receiver<Spooled>) -> ByteStream {
    stream::once(finished)
        .flat_map(|spooled| match spooled {
            Ok(Spooled::Memory(bytes)) => stream::iter([Ok(bytes)]).boxed(),
            Ok(Spooled::File(file)) => read_file(file),
            // The archiver stopped: its error ended the data stream already.
            Err(_) => stream::iter([Err(Error::source_failed(
                INDEX_STREAM,
                "the archive did not finish, so its index is incomplete",
            ))])
            .boxed(),
        })
        .boxed()
}

/// Streams a spooled index file from a blocking thread.
fn read_file(mut file: File) -> ByteStream {
    let (mut writer, rx) = ChannelWriter::new(4);
    let errors = writer.error_sender();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = io::copy(&mut file, &mut writer).and_then(|_| writer.flush()) {
            if e.kind() != io::ErrorKind::BrokenPipe {
                errors.send(Error::io("index spool file", e));
            }
        }
    });
    stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::EntryKind;
    use futures::TryStreamExt;

    /// Past `SPILL_AT` the lines go to a temporary file and come back whole.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_large_index_spills_and_reads_back() {
        let mut spool = Spool::new("files");
        let mut want = IndexHeader::new("files").to_line();
        for i in 0..60_000u64 {
            let mut e = FileEntry::new(format!("srv/app/folder/file-{i:08}.txt").into_bytes(), EntryKind::File);
            e.offset = i * 1536;
            spool.push(&e).unwrap();
            want.extend_from_slice(&serde_json::to_vec(&e).unwrap());
            want.push(b'\n');
        }
        assert!(want.len() > SPILL_AT, "{} bytes", want.len());
        assert!(spool.file.is_some() && spool.memory.is_empty(), "spilled");
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(spool.finish().unwrap());
        let got: Vec<Bytes> = index_stream(rx).try_collect().await.unwrap();
        assert!(got.concat() == want);
    }

    #[tokio::test]
    async fn an_unfinished_archive_fails_the_index() {
        let (tx, rx) = oneshot::channel::<Spooled>();
        drop(tx);
        let got: Result<Vec<Bytes>, _> = index_stream(rx).try_collect().await;
        assert!(got.is_err());
    }
}
