use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use backup_core::store::{validate_key, ByteStream, ObjectMeta, Store};
use backup_core::{Error, Result};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::FsError;

/// A store on a local folder. See the crate docs for its guarantees.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
    inner: Arc<LocalFileSystem>,
}

impl FsStore {
    /// Opens (and creates when missing) the store folder `root`.
    ///
    /// # Errors
    /// [`Error::Backend`] naming the folder when it cannot be created or used.
    pub fn new(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let create = |source| FsError::CreateRoot {
            root: root.clone(),
            source,
        };
        std::fs::create_dir_all(&root).map_err(create)?;
        let root = root.canonicalize().map_err(create)?;
        let inner = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| create(std::io::Error::other(e.to_string())))?
            .with_fsync(true)
            .with_automatic_cleanup(true);
        Ok(FsStore {
            root,
            inner: Arc::new(inner),
        })
    }

    /// The store's root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Refuses a key whose folders below the root — and with `whole`, the
    /// object itself — include a symbolic link: whoever can write into the
    /// store could otherwise point a backup folder at any directory and have
    /// a prune delete, or a mark overwrite, files outside the store.
    fn no_links(&self, key: &str, whole: bool) -> Result<()> {
        if self.through_link(key, whole) {
            return Err(FsError::Symlink {
                key: key.to_owned(),
                root: self.root.clone(),
            }
            .into());
        }
        Ok(())
    }

    fn through_link(&self, key: &str, whole: bool) -> bool {
        let parts: Vec<&str> = key.split('/').collect();
        let upto = if whole {
            parts.len()
        } else {
            parts.len().saturating_sub(1)
        };
        let mut path = self.root.clone();
        parts[..upto].iter().any(|part| {
            path.push(part);
            std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink())
        })
    }

    /// Opens the stored file of `key` for reading, refusing anything but a
    /// regular file: whoever can write into the store could plant a FIFO,
    /// whose opening would wait for a writer forever (hanging every list,
    /// restore and prune), or link a device there.
    async fn open_regular(&self, key: &str) -> Result<std::fs::File> {
        let path = self
            .inner
            .path_to_filesystem(&ObjectPath::from(key))
            .map_err(|e| self.error("read", key, e))?;
        let opened = tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::OpenOptionsExt;
            // O_NONBLOCK: a FIFO opens at once instead of waiting (reads of
            // a regular file ignore it); O_NOFOLLOW: a symbolic link put
            // there since `no_links` looked is refused all the same.
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
                .open(path)?;
            let kind = file.metadata()?.file_type();
            Ok((file, kind))
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r: std::io::Result<_>| r);
        match opened {
            Ok((file, kind)) if kind.is_file() => Ok(file),
            // As object_store has it: a folder is no object.
            Ok((_, kind)) if kind.is_dir() => Err(Error::NotFound { key: key.to_owned() }),
            Ok(_) => Err(FsError::NotAFile {
                key: key.to_owned(),
                root: self.root.clone(),
            }
            .into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NotFound { key: key.to_owned() }),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(FsError::Symlink {
                key: key.to_owned(),
                root: self.root.clone(),
            }
            .into()),
            Err(e) => Err(self.error(
                "read",
                key,
                object_store::Error::Generic {
                    store: "LocalFileSystem",
                    source: Box::new(e),
                },
            )),
        }
    }

    fn error(&self, operation: &'static str, key: &str, source: object_store::Error) -> Error {
        if let object_store::Error::NotFound { .. } = source {
            return Error::NotFound { key: key.to_owned() };
        }
        FsError::Object {
            operation,
            key: key.to_owned(),
            root: self.root.clone(),
            source,
        }
        .into()
    }
}

#[async_trait]
impl Store for FsStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        validate_key(key)?;
        self.no_links(key, false)?;
        self.inner
            .put(&ObjectPath::from(key), PutPayload::from_bytes(data))
            .await
            .map_err(|e| self.error("write", key, e))?;
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<bool> {
        validate_key(key)?;
        self.no_links(key, false)?;
        let options = object_store::PutOptions {
            mode: object_store::PutMode::Create,
            ..Default::default()
        };
        match self
            .inner
            .put_opts(&ObjectPath::from(key), PutPayload::from_bytes(data), options)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.error("write", key, e)),
        }
    }

    async fn get(&self, key: &str) -> Result<ByteStream> {
        validate_key(key)?;
        self.no_links(key, true)?;
        let file = self.open_regular(key).await?;
        let this = self.clone();
        let key = key.to_owned();
        // object_store reads a local file 8 KiB per blocking task: a
        // thousand thread hand-offs per chunk, a tenth of a restore's CPU.
        Ok(read_in_pieces(file)
            .map_err(move |e| this.error("read", &key, e))
            .boxed())
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key)?;
        self.no_links(key, true)?;
        let meta = self
            .inner
            .head(&ObjectPath::from(key))
            .await
            .map_err(|e| self.error("read", key, e))?;
        Ok(ObjectMeta {
            key: key.to_owned(),
            size: meta.size,
            modified: meta.last_modified,
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let prefix = prefix.trim_matches('/');
        let location = (!prefix.is_empty()).then(|| ObjectPath::from(prefix));
        let mut objects: Vec<ObjectMeta> = self
            .inner
            .list(location.as_ref())
            .map_ok(|m| ObjectMeta {
                key: m.location.to_string(),
                size: m.size,
                modified: m.last_modified,
            })
            .try_collect()
            .await
            .map_err(|e| self.error("list", prefix, e))?;
        // The walk follows links; what lies behind one is not the store's.
        objects.retain(|o| {
            let inside = !self.through_link(&o.key, true);
            if !inside {
                tracing::warn!(key = %o.key, "skipping an object behind a symbolic link in the store");
            }
            inside
        });
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        self.no_links(key, false)?;
        match self.inner.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", key, e)),
        }
    }

    async fn sweep(&self, prefix: &str, older_than: DateTime<Utc>) -> Result<u64> {
        let folder = self.root.join(prefix.trim_matches('/'));
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || sweep_staged(&root, &folder, older_than.into()))
            .await
            .map_err(|e| Error::source_failed("sweep", e.to_string()))?
    }

    fn location(&self) -> String {
        format!("file://{}", self.root.display())
    }
}

/// Removes staged uploads (`<key>#<n>`, left by a killed process) older than
/// `cutoff` under `folder`, then the folders that became empty.
fn sweep_staged(root: &Path, folder: &Path, cutoff: std::time::SystemTime) -> Result<u64> {
    let mut removed = 0;
    if !folder.exists() {
        return Ok(0);
    }
    let mut dirs = Vec::new();
    let mut stack = vec![folder.to_path_buf()];
    // What vanishes meanwhile (an upload finishing or giving up, its empty
    // folder cleaned up) is simply gone, not an error.
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Err(e) if gone(&e) => continue,
            entries => entries.map_err(|e| Error::io(&dir, e))?,
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let path = entry.path();
            let meta = match entry.metadata() {
                Err(e) if gone(&e) => continue,
                meta => meta.map_err(|e| Error::io(&path, e))?,
            };
            if meta.is_dir() {
                stack.push(path);
            } else if entry.file_name().to_string_lossy().contains('#') && meta.modified().is_ok_and(|m| m < cutoff) {
                match std::fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if gone(&e) => {}
                    Err(e) => return Err(Error::io(&path, e)),
                }
            }
        }
        dirs.push(dir);
    }
    // Deepest first; a folder that is not empty simply stays.
    for dir in dirs.iter().rev().filter(|d| d.as_path() != root) {
        let _ = std::fs::remove_dir(dir);
    }
    Ok(removed)
}

/// Bytes read from a stored file per blocking task.
const READ_PIECE: usize = 1024 * 1024;

/// Streams an open file in [`READ_PIECE`]s, each read on a blocking thread.
/// The caller stops reading when the object is longer than it should be, so
/// a forged huge object costs at most one piece more.
fn read_in_pieces(file: std::fs::File) -> futures::stream::BoxStream<'static, object_store::Result<Bytes>> {
    futures::stream::try_unfold(Some(file), |file| async move {
        let Some(mut file) = file else { return Ok(None) };
        let (piece, file) = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut piece = vec![0u8; READ_PIECE];
            let mut filled = 0;
            while filled < piece.len() {
                match file.read(&mut piece[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            piece.truncate(filled);
            Ok((piece, file))
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r)
        .map_err(|e| object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        })?;
        if piece.is_empty() {
            return Ok(None);
        }
        let more = piece.len() == READ_PIECE;
        Ok(Some((Bytes::from(piece), more.then_some(file))))
    })
    .boxed()
}
