//! Cuts a byte stream into fixed-size plaintext chunks.

use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream, StreamExt};

use crate::error::Result;
use crate::store::ByteStream;

/// Re-cuts `input` into pieces of exactly `chunk_size` bytes (the last may be
/// shorter). An empty input gives one empty piece, so every stream has a chunk.
/// Holds at most one piece in memory.
pub fn rechunk(input: ByteStream, chunk_size: usize) -> BoxStream<'static, Result<Bytes>> {
    assert!(chunk_size > 0, "chunk size must be positive");
    struct State {
        input: ByteStream,
        buf: BytesMut,
        emitted: bool,
        done: bool,
    }
    let state = State {
        input,
        buf: BytesMut::new(),
        emitted: false,
        done: false,
    };
    stream::unfold(state, move |mut st| async move {
        loop {
            if st.buf.len() >= chunk_size {
                let piece = st.buf.split_to(chunk_size).freeze();
                st.emitted = true;
                return Some((Ok(piece), st));
            }
            if st.done {
                if st.buf.is_empty() && st.emitted {
                    return None;
                }
                st.emitted = true;
                let piece = std::mem::take(&mut st.buf).freeze();
                return Some((Ok(piece), st));
            }
            match st.input.next().await {
                Some(Ok(bytes)) => {
                    if st.buf.capacity() < chunk_size {
                        st.buf.reserve(chunk_size - st.buf.len());
                    }
                    st.buf.extend_from_slice(&bytes);
                }
                Some(Err(e)) => {
                    // Nothing after a failed read is valid: end the stream here.
                    st.done = true;
                    st.emitted = true;
                    st.buf.clear();
                    return Some((Err(e), st));
                }
                None => st.done = true,
            }
        }
    })
    .boxed()
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
    async fn empty_input_gives_one_empty_chunk() {
        let out: Vec<Bytes> = rechunk(input(vec![]), 3).try_collect().await.unwrap();
        assert_eq!(out, vec![Bytes::new()]);
    }

    #[tokio::test]
    async fn exact_multiple_has_no_trailing_empty_chunk() {
        let out: Vec<Bytes> = rechunk(input(vec![b"abcdef"]), 3)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(out.len(), 2);
    }
}
