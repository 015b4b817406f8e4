//! Cuts a byte stream into fixed-size plaintext chunks.

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};

use crate::bigbuf::BigBuf;
use crate::error::{Error, Result};
use crate::store::ByteStream;

/// Re-cuts `input` into pieces of exactly `chunk_size` bytes (the last may be
/// shorter). An empty input gives one empty piece, so every stream has a chunk.
/// Holds at most one piece plus one input item in memory.
pub(crate) fn rechunk(input: ByteStream, chunk_size: usize) -> BoxStream<'static, Result<Bytes>> {
    assert!(chunk_size > 0, "chunk size must be positive");
    let state = State {
        input,
        buf: empty(),
        pending: Bytes::new(),
        emitted: false,
        done: false,
    };
    stream::unfold(state, move |mut st| async move {
        loop {
            if st.buf.len() == chunk_size {
                st.emitted = true;
                let piece = std::mem::replace(&mut st.buf, empty()).freeze();
                return Some((Ok(piece), st));
            }
            if !st.pending.is_empty() {
                if st.buf.is_empty() {
                    match BigBuf::with_capacity(crate::pipeline::chunk_buffer_capacity(chunk_size)) {
                        Ok(buf) => st.buf = buf,
                        Err(e) => return Some((Err(memory_error(e)), finish(st))),
                    }
                }
                let take = st.pending.len().min(chunk_size - st.buf.len());
                if let Err(e) = st.buf.extend_from_slice(&st.pending.split_to(take)) {
                    return Some((Err(memory_error(e)), finish(st)));
                }
                continue;
            }
            if st.done {
                if st.buf.is_empty() && st.emitted {
                    return None;
                }
                st.emitted = true;
                let piece = std::mem::replace(&mut st.buf, empty()).freeze();
                return Some((Ok(piece), st));
            }
            match st.input.next().await {
                Some(Ok(bytes)) => st.pending = bytes,
                // Nothing after a failed read is valid: end the stream here.
                Some(Err(e)) => return Some((Err(e), finish(st))),
                None => st.done = true,
            }
        }
    })
    .boxed()
}

struct State {
    input: ByteStream,
    /// The piece being filled; never grows past `chunk_size`, so it never
    /// reallocates (and copies) itself.
    buf: BigBuf,
    /// What is left of the last input item.
    pending: Bytes,
    emitted: bool,
    done: bool,
}

/// Ends the stream after an error: nothing after it is valid.
fn finish(mut st: State) -> State {
    st.done = true;
    st.emitted = true;
    st.buf = empty();
    st.pending = Bytes::new();
    st
}

fn empty() -> BigBuf {
    // A zero-capacity buffer maps nothing and cannot fail.
    BigBuf::with_capacity(0).unwrap_or_else(|_| unreachable!("nothing to map"))
}

fn memory_error(e: std::io::Error) -> Error {
    Error::resources("chunk buffer", e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    fn input(pieces: Vec<&'static [u8]>) -> ByteStream {
        stream::iter(pieces.into_iter().map(|p| Ok(Bytes::from_static(p)))).boxed()
    }

    #[tokio::test]
    async fn cuts_at_exact_boundaries() {
        let out: Vec<Bytes> = rechunk(input(vec![b"abc", b"defg", b"h"]), 3)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(out, vec![&b"abc"[..], b"def", b"gh"]);
    }

    #[tokio::test]
    async fn one_big_input_item_gives_several_chunks() {
        let out: Vec<Bytes> = rechunk(input(vec![b"abcdefgh"]), 3).try_collect().await.unwrap();
        assert_eq!(out, vec![&b"abc"[..], b"def", b"gh"]);
    }

    #[tokio::test]
    async fn empty_input_gives_one_empty_chunk() {
        let out: Vec<Bytes> = rechunk(input(vec![]), 3).try_collect().await.unwrap();
        assert_eq!(out, vec![Bytes::new()]);
    }

    #[tokio::test]
    async fn exact_multiple_has_no_trailing_empty_chunk() {
        let out: Vec<Bytes> = rechunk(input(vec![b"abcdef"]), 3).try_collect().await.unwrap();
        assert_eq!(out.len(), 2);
    }

    #[tokio::test]
    async fn an_error_ends_the_stream() {
        let items: Vec<Result<Bytes>> = vec![
            Ok(Bytes::from_static(b"ab")),
            Err(crate::Error::source_failed("t", "boom")),
            Ok(Bytes::from_static(b"cd")),
        ];
        let out: Vec<Result<Bytes>> = rechunk(stream::iter(items).boxed(), 4).collect().await;
        assert_eq!(out.len(), 1);
        assert!(out[0].is_err());
    }
}
