//! Splitting an authenticated byte stream into lines, with a cap per line.

use bytes::{Bytes, BytesMut};
use futures::TryStreamExt;

use crate::error::{Error, Result};
use crate::store::ByteStream;

/// Longest index line read: a path of a few KiB, base64-encoded, with its link
/// target fits many times over; a forged or broken index cannot make a reader
/// buffer more than this per line.
pub const MAX_INDEX_LINE: usize = 1024 * 1024;

/// Lines of a stream, without their `\n`.
pub(super) struct Lines {
    stream: ByteStream,
    buf: BytesMut,
    /// Where the search for `\n` resumes in `buf`.
    scanned: usize,
    ended: bool,
    number: u64,
    id: String,
}

impl Lines {
    pub(super) fn new(stream: ByteStream, id: String) -> Self {
        Lines {
            stream,
            buf: BytesMut::new(),
            scanned: 0,
            ended: false,
            number: 0,
            id,
        }
    }

    /// The number of the last line returned (1-based).
    pub(super) fn number(&self) -> u64 {
        self.number
    }

    /// The backup id, for messages.
    pub(super) fn id(&self) -> &str {
        &self.id
    }

    /// The next line; `None` at the end. A last line without `\n` counts.
    pub(super) async fn next(&mut self) -> Result<Option<Bytes>> {
        loop {
            if let Some(at) = self.buf[self.scanned..].iter().position(|b| *b == b'\n') {
                let len = self.scanned + at;
                let line = self.buf.split_to(len + 1);
                self.scanned = 0;
                self.number += 1;
                return Ok(Some(line.freeze().slice(..len)));
            }
            self.scanned = self.buf.len();
            if self.buf.len() > MAX_INDEX_LINE {
                return Err(Error::Format {
                    id: self.id.clone(),
                    reason: format!("index line {} is longer than {MAX_INDEX_LINE} bytes", self.number + 1),
                });
            }
            if self.ended {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                self.number += 1;
                self.scanned = 0;
                return Ok(Some(self.buf.split().freeze()));
            }
            match self.stream.try_next().await? {
                Some(piece) => self.buf.extend_from_slice(&piece),
                None => self.ended = true,
            }
        }
    }
}
