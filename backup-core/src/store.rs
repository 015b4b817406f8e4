//! The `Store` trait: where backups live.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::TryStreamExt;

use crate::error::{Error, Result};

/// A stream of bytes crossing a trait boundary.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// How stores are passed around: chosen at run time, shared by the tasks of
/// a run. Every operation takes `&DynStore`.
pub type DynStore = Arc<dyn Store>;

/// One object as listed by a [`Store`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Full key, `/`-separated, relative to the store's root.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time, as the backend reports it.
    pub modified: DateTime<Utc>,
}

/// An object store that holds backups: a local folder, OpenStack Swift, memory.
///
/// Keys are `/`-separated relative paths of non-empty segments without `.` or
/// `..` (see [`validate_key`]). Stores only move bytes: they never compress,
/// encrypt or retry on their own — the pipeline and a retry wrapper do that once.
///
/// Contract every implementation keeps (checked by the conformance battery in
/// `backup_core::testing`, feature `testing`):
/// - `put` is atomic and durable: when it returns `Ok` the whole object is
///   readable and survives a crash; when it fails or is interrupted, nothing is
///   visible at the key (a previous object at the key stays intact).
/// - `get` of a missing key is [`Error::NotFound`].
/// - `list(prefix)` returns every object under the folder `prefix` (keys that
///   start with `prefix/`; everything when `prefix` is empty), recursively,
///   sorted by key, complete however many there are.
/// - `delete` of a missing key is `Ok`.
/// - `sweep` removes only debris of interrupted puts, never an object.
/// - `put_if_absent` creates or reports the existing object, atomically.
#[async_trait]
pub trait Store: fmt::Debug + Send + Sync {
    /// Writes `data` at `key`, replacing any object there.
    ///
    /// # Errors
    /// [`Error::Backend`] when the backend fails; nothing is visible at `key` then.
    async fn put(&self, key: &str, data: Bytes) -> Result<()>;

    /// Writes `data` at `key` only if no object is there: `Ok(true)` when it was
    /// created, `Ok(false)` when something exists already (left untouched).
    /// Atomic against concurrent callers, also on other hosts: leases build on it.
    ///
    /// # Errors
    /// [`Error::Backend`] when the backend fails.
    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<bool>;

    /// Streams the object at `key`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such object; [`Error::Backend`] otherwise.
    async fn get(&self, key: &str) -> Result<ByteStream>;

    /// The size and time of the object at `key`, without reading it.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such object; [`Error::Backend`] otherwise.
    async fn head(&self, key: &str) -> Result<ObjectMeta>;

    /// Lists the objects under the folder `prefix`, sorted by key.
    ///
    /// # Errors
    /// [`Error::Backend`] when the backend fails.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Removes the object at `key`; a missing object is not an error.
    ///
    /// # Errors
    /// [`Error::Backend`] when the backend fails.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Removes what interrupted puts left behind under the folder `prefix`
    /// (staging files, orphaned segments) that is older than `older_than`,
    /// and returns how many pieces went. Never touches complete objects.
    ///
    /// # Errors
    /// [`Error::Backend`] when the backend fails.
    async fn sweep(&self, prefix: &str, older_than: DateTime<Utc>) -> Result<u64>;

    /// Where this store is, for messages: `file:///var/backups`, `swift://backups`.
    /// Never contains credentials.
    fn location(&self) -> String;
}

/// Conveniences on top of [`Store`], for every store.
#[async_trait]
pub trait StoreExt: Store {
    /// Reads a whole object into memory, refusing one larger than `max` bytes
    /// (what a store holds may be forged: never read an unbounded object).
    ///
    /// # Errors
    /// As [`Store::get`]; [`Error::Format`] naming the key when it is larger.
    async fn get_bytes(&self, key: &str, max: u64) -> Result<Bytes> {
        let mut stream = self.get(key).await?;
        let mut buf = BytesMut::new();
        while let Some(piece) = stream.try_next().await? {
            if (buf.len() + piece.len()) as u64 > max {
                return Err(Error::Format {
                    id: key.to_owned(),
                    reason: format!("object is larger than the {max} bytes allowed"),
                });
            }
            buf.extend_from_slice(&piece);
        }
        Ok(buf.freeze())
    }

    /// Whether an object exists at `key` (a `head`, nothing downloaded).
    ///
    /// # Errors
    /// As [`Store::head`], except that a missing object is `Ok(false)`.
    async fn exists(&self, key: &str) -> Result<bool> {
        match self.head(key).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

/// Checks that `key` is a well-formed store key.
///
/// # Errors
/// [`Error::Config`] naming the key when it is empty, absolute, has empty
/// segments, `.` or `..`, a backslash or a NUL byte.
pub fn validate_key(key: &str) -> Result<()> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key.contains('\\')
        || key.contains('\0')
        || key.split('/').any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        return Err(Error::config(
            format!("store key {key:?}"),
            "keys are relative /-separated paths without empty, '.' or '..' segments",
        ));
    }
    Ok(())
}

/// Joins key segments with `/`, skipping empty ones.
pub fn join_key<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    parts
        .into_iter()
        .flat_map(|p| p.split('/'))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(validate_key("a/b/data-000001.zst.gpg").is_ok());
        for bad in ["", "/a", "a//b", "a/../b", "./a", "a/", "a\\b"] {
            assert!(validate_key(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn join_skips_empty_segments() {
        assert_eq!(
            join_key(["", "app/db/", "/id", "manifest.json"]),
            "app/db/id/manifest.json"
        );
    }
}
