//! A custom `Store`: plain files under a folder, written to a temporary file
//! and renamed into place, so a put is atomic.
use std::path::PathBuf;

use async_trait::async_trait;
use backup_core::store::validate_key;
use backup_core::{ByteStream, Error, ObjectMeta, Result, Store};
use bytes::Bytes;
use chrono::{DateTime, Utc};

/// Objects as files under `root`; interrupted puts leave `*.partial` files.
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirStore { root: root.into() }
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    fn io(path: &std::path::Path, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::NotFound {
            return Error::NotFound {
                key: path.display().to_string(),
            };
        }
        Error::Backend {
            backend: "dir",
            retryable: false,
            source: Box::new(e),
        }
    }
}

#[async_trait]
impl Store for DirStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let path = self.path(key)?;
        let partial = path.with_extension(format!("{}.partial", rand_suffix()));
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(path.parent().unwrap_or(&path)).map_err(|e| Self::io(&path, e))?;
            std::fs::write(&partial, &data).map_err(|e| Self::io(&partial, e))?;
            std::fs::rename(&partial, &path).map_err(|e| Self::io(&path, e))
        })
        .await
        .map_err(|e| Error::resources("dir store writer", e))?
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<bool> {
        let path = self.path(key)?;
        std::fs::create_dir_all(path.parent().unwrap_or(&path)).map_err(|e| Self::io(&path, e))?;
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => std::io::Write::write_all(&mut f, &data)
                .map(|_| true)
                .map_err(|e| Self::io(&path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Self::io(&path, e)),
        }
    }

    async fn get(&self, key: &str) -> Result<ByteStream> {
        let path = self.path(key)?;
        let data = std::fs::read(&path).map_err(|e| match Self::io(&path, e) {
            Error::NotFound { .. } => Error::NotFound { key: key.to_owned() },
            other => other,
        })?;
        Ok(Box::pin(futures::stream::once(async move { Ok(Bytes::from(data)) })))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let path = self.path(key)?;
        let meta = std::fs::metadata(&path).map_err(|_| Error::NotFound { key: key.to_owned() })?;
        let modified = meta.modified().map(DateTime::<Utc>::from).unwrap_or_default();
        Ok(ObjectMeta {
            key: key.to_owned(),
            size: meta.len(),
            modified,
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        for (key, meta) in self.walk(prefix)? {
            if !key.ends_with(".partial") {
                let modified = meta.modified().map(DateTime::<Utc>::from).unwrap_or_default();
                out.push(ObjectMeta {
                    key,
                    size: meta.len(),
                    modified,
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Self::io(&path, e)),
            _ => Ok(()),
        }
    }

    async fn sweep(&self, prefix: &str, older_than: DateTime<Utc>) -> Result<u64> {
        let mut swept = 0;
        for (key, meta) in self.walk(prefix)? {
            let old = meta.modified().map(DateTime::<Utc>::from).unwrap_or_default() < older_than;
            if key.ends_with(".partial") && old && std::fs::remove_file(self.root.join(&key)).is_ok() {
                swept += 1;
            }
        }
        Ok(swept)
    }

    fn location(&self) -> String {
        format!("dir://{}", self.root.display())
    }
}

impl DirStore {
    /// Every file under the folder `prefix`, with its key.
    fn walk(&self, prefix: &str) -> Result<Vec<(String, std::fs::Metadata)>> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.join(prefix.trim_matches('/'))];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                let meta = entry.metadata().map_err(|e| Self::io(&path, e))?;
                if meta.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(&self.root) {
                    out.push((rel.to_string_lossy().into_owned(), meta));
                }
            }
        }
        Ok(out)
    }
}

fn rand_suffix() -> String {
    format!("{:08x}", std::process::id() ^ (Utc::now().timestamp_subsec_nanos()))
}
