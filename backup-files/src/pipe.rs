//! Bridges between synchronous tar code on a blocking thread and async streams.

use std::io::{self, Read, Write};

use backup_core::{ByteStream, Error, Result};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::sync::mpsc;

/// Bytes handed to the async side at once: big enough to keep syscalls and
/// channel hops cheap, small enough to keep memory flat.
const PIECE: usize = 256 * 1024;

/// A `Write` that sends what it is given, in pieces, into a bounded channel.
pub(crate) struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes>>,
    buf: BytesMut,
}

impl ChannelWriter {
    /// A writer and the stream of what it writes; at most `depth` pieces wait.
    pub(crate) fn new(depth: usize) -> (Self, mpsc::Receiver<Result<Bytes>>) {
        let (tx, rx) = mpsc::channel(depth);
        (
            ChannelWriter {
                tx,
                buf: BytesMut::with_capacity(PIECE),
            },
            rx,
        )
    }

    /// A handle that ends the stream with an error.
    pub(crate) fn error_sender(&self) -> ErrorSender {
        ErrorSender(self.tx.clone())
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = self.buf.split().freeze();
        self.buf.reserve(PIECE);
        self.tx
            .blocking_send(Ok(piece))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the backup was abandoned"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Ends a [`ChannelWriter`]'s stream with an error.
pub(crate) struct ErrorSender(mpsc::Sender<Result<Bytes>>);

impl ErrorSender {
    /// Sends `error`; nothing happens when the reader is gone already.
    pub(crate) fn send(&self, error: Error) {
        let _ = self.0.blocking_send(Err(error));
    }
}

/// A blocking `Read` over a [`ByteStream`], for tar code on a blocking thread.
/// Stream errors surface as `io::Error`s wrapping the original [`Error`].
pub(crate) struct StreamReader {
    rx: mpsc::Receiver<Result<Bytes>>,
    current: Bytes,
    failure: FailureSlot,
}

/// Keeps the pipeline error that ended a [`StreamReader`], so that it can be
/// reported as itself after tar code wrapped it in its own I/O errors.
#[derive(Clone, Default)]
pub(crate) struct FailureSlot(std::sync::Arc<std::sync::Mutex<Option<Error>>>);

impl FailureSlot {
    /// The error the stream ended with, if it did.
    pub(crate) fn take(&self) -> Option<Error> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl StreamReader {
    /// Starts forwarding `stream` (on the current Tokio runtime) into a reader.
    pub(crate) fn new(mut stream: ByteStream) -> Self {
        // One piece waiting is enough: the stream itself works ahead (a
        // restore fetches and decrypts the next chunks meanwhile), and each
        // piece waiting here is a whole chunk of memory.
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        StreamReader {
            rx,
            current: Bytes::new(),
            failure: FailureSlot::default(),
        }
    }

    /// Where the stream's own error is kept when it fails.
    pub(crate) fn failure(&self) -> FailureSlot {
        self.failure.clone()
    }
}

impl Read for StreamReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(bytes)) => self.current = bytes,
                Some(Err(e)) => {
                    let message = e.to_string();
                    *self.failure.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    return Err(io::Error::other(message));
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
