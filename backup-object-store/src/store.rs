//! [`CloudStore`]: the [`Store`] contract on an object_store client.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use backup_core::store::{join_key, validate_key, ByteStream, ObjectMeta, Store};
use backup_core::{Error, Result};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::config::{split_url, ConditionalCreate, Tuning};
use crate::error::{into_core, status, CloudError};
use crate::{AzureConfig, S3Config};

/// Parts of one multipart upload in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// A store in an S3 bucket (`s3://BUCKET[/PREFIX]`) or an Azure Blob
/// container (`az://CONTAINER[/PREFIX]`). See the crate docs for its guarantees.
#[derive(Clone)]
pub struct CloudStore {
    backend: &'static str,
    location: String,
    prefix: String,
    inner: Arc<dyn ObjectStore>,
    /// The same service without retries, for conditional creates: a retried
    /// create whose first attempt landed would report the object as someone else's.
    once: Arc<dyn ObjectStore>,
    tuning: Tuning,
    /// Set once the service refused a conditional PUT as not implemented.
    no_conditional_put: Arc<AtomicBool>,
}

impl fmt::Debug for CloudStore {
    // object_store's clients hold the credentials: show none of them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl CloudStore {
    /// A store at `url` (`s3://BUCKET[/PREFIX]`) with `config`, credentials
    /// looked up in `env` (the caller's environment: `AWS_*`, `HOME`) and the
    /// AWS profile files; secret files relative to `base`. The bucket must exist.
    ///
    /// # Errors
    /// [`Error::Config`] naming what is missing or malformed; [`Error::Backend`]
    /// when the client cannot be set up.
    pub fn s3(url: &str, config: &S3Config, base: &Path, env: &BTreeMap<String, String>) -> Result<CloudStore> {
        let (bucket, prefix) = split_url(url, "s3://", "bucket")?;
        let resolved = config.resolve(base, env)?;
        Self::built("s3", url, prefix, resolved.tuning, |retries| {
            resolved.builder(bucket, retries).build()
        })
    }

    /// A store at `url` (`az://CONTAINER[/PREFIX]`) with `config`, credentials
    /// looked up in `env` (`AZURE_STORAGE_*`); secret files relative to
    /// `base`. The container must exist.
    ///
    /// # Errors
    /// As [`CloudStore::s3`].
    pub fn azure(url: &str, config: &AzureConfig, base: &Path, env: &BTreeMap<String, String>) -> Result<CloudStore> {
        let (container, prefix) = split_url(url, "az://", "container")?;
        let resolved = config.resolve(base, env)?;
        Self::built("azure", url, prefix, resolved.tuning, |retries| {
            resolved.builder(container, retries).build()
        })
    }

    /// Two clients from `build`: one retrying `tuning.retries` times, one
    /// that never retries (for conditional creates, where a retried write
    /// that landed the first time would look like someone else's).
    fn built<S: ObjectStore>(
        backend: &'static str,
        url: &str,
        prefix: String,
        tuning: Tuning,
        build: impl Fn(usize) -> object_store::Result<S>,
    ) -> Result<CloudStore> {
        let location = url.trim_end_matches('/').to_owned();
        let open = |e| {
            into_core(
                backend,
                CloudError::Open {
                    location: location.clone(),
                    source: e,
                },
            )
        };
        let inner = build(tuning.retries).map_err(open)?;
        let once = build(0).map_err(open)?;
        Ok(Self::new(
            backend,
            location,
            prefix,
            Arc::new(inner),
            Arc::new(once),
            tuning,
        ))
    }

    fn new(
        backend: &'static str,
        location: String,
        prefix: String,
        inner: Arc<dyn ObjectStore>,
        once: Arc<dyn ObjectStore>,
        tuning: Tuning,
    ) -> CloudStore {
        CloudStore {
            backend,
            location,
            prefix,
            inner,
            once,
            tuning,
            no_conditional_put: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether conditional creates go through the claim protocol: configured
    /// so, or the service refused a conditional PUT.
    pub fn uses_claims(&self) -> bool {
        self.tuning.conditional == ConditionalCreate::Claims || self.no_conditional_put.load(Ordering::Relaxed)
    }

    pub(crate) fn backend(&self) -> &'static str {
        self.backend
    }

    fn path(&self, key: &str) -> ObjectPath {
        ObjectPath::from(join_key([self.prefix.as_str(), key]))
    }

    pub(crate) fn error(&self, operation: &'static str, key: &str, source: object_store::Error) -> Error {
        if let object_store::Error::NotFound { .. } = source {
            return Error::NotFound { key: key.to_owned() };
        }
        into_core(
            self.backend,
            CloudError::Object {
                operation,
                key: key.to_owned(),
                location: self.location.clone(),
                source,
            },
        )
    }

    pub(crate) fn cloud_error(&self, e: CloudError) -> Error {
        into_core(self.backend, e)
    }

    /// Uploads `data` in parts; the object appears only when the last part is
    /// committed. An upload that fails, or whose future is dropped, is aborted.
    async fn put_in_parts(&self, key: &str, data: Bytes) -> Result<()> {
        let upload = self
            .inner
            .put_multipart(&self.path(key))
            .await
            .map_err(|e| self.error("write", key, e))?;
        let mut guard = AbortOnDrop(None);
        let upload = guard.0.insert(upload);
        let part = self.tuning.part_size_for(data.len() as u64) as usize;
        let mut parts = Vec::new();
        let mut at = 0;
        while at < data.len() {
            let end = (at + part).min(data.len());
            parts.push(upload.put_part(PutPayload::from_bytes(data.slice(at..end))));
            at = end;
        }
        futures::stream::iter(parts)
            .buffer_unordered(PARTS_IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await
            .map_err(|e| self.error("write", key, e))?;
        let done = upload.complete().await.map_err(|e| self.error("write", key, e));
        if done.is_ok() {
            guard.0 = None;
        }
        done.map(|_| ())
    }

    /// A plain PUT without retries that gives up after `within`: for the
    /// claim protocol, where a write landing late could meet another
    /// writer's.
    pub(crate) async fn put_once_within(&self, key: &str, data: Bytes, within: std::time::Duration) -> Result<()> {
        validate_key(key)?;
        let path = self.path(key);
        let put = self.once.put(&path, PutPayload::from_bytes(data));
        match tokio::time::timeout(within, put).await {
            Ok(done) => done.map(|_| ()).map_err(|e| self.error("write", key, e)),
            Err(_) => Err(self.cloud_error(CloudError::Contended {
                key: key.to_owned(),
                location: self.location.clone(),
            })),
        }
    }

    /// A conditional PUT (`If-None-Match: *`), without retries.
    async fn create_natively(&self, key: &str, data: Bytes) -> std::result::Result<bool, object_store::Error> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .once
            .put_opts(&self.path(key), PutPayload::from_bytes(data), options)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// A multipart upload that is aborted (in the background) unless completed.
struct AbortOnDrop(Option<Box<dyn object_store::MultipartUpload>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let (Some(mut upload), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move {
                if let Err(e) = upload.abort().await {
                    tracing::warn!(error = %e, "could not abort an unfinished multipart upload; its parts stay until the service expires them");
                }
            });
        }
    }
}

#[async_trait]
impl Store for CloudStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        validate_key(key)?;
        if data.len() as u64 > self.tuning.multipart_threshold {
            return self.put_in_parts(key, data).await;
        }
        self.inner
            .put(&self.path(key), PutPayload::from_bytes(data))
            .await
            .map_err(|e| self.error("write", key, e))?;
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<bool> {
        validate_key(key)?;
        if self.uses_claims() {
            return crate::claims::create(self, key, data).await;
        }
        match self.create_natively(key, data.clone()).await {
            Ok(created) => Ok(created),
            Err(e) if matches!(&e, object_store::Error::Generic { .. }) && status(&e) == Some(501) => {
                if self.tuning.conditional == ConditionalCreate::Native {
                    return Err(self.cloud_error(CloudError::NoConditionalCreate {
                        key: key.to_owned(),
                        location: self.location.clone(),
                        source: e,
                    }));
                }
                tracing::warn!(
                    store = %self.location,
                    "the service does not implement conditional PUT (If-None-Match); creating leases by the claim protocol instead"
                );
                self.no_conditional_put.store(true, Ordering::Relaxed);
                crate::claims::create(self, key, data).await
            }
            Err(e) => Err(self.error("write", key, e)),
        }
    }

    async fn get(&self, key: &str) -> Result<ByteStream> {
        validate_key(key)?;
        let found = self
            .inner
            .get(&self.path(key))
            .await
            .map_err(|e| self.error("read", key, e))?;
        let (this, key) = (self.clone(), key.to_owned());
        // The body streams as the service sends it: memory stays bounded by
        // what the caller holds, however large the object is.
        Ok(found
            .into_stream()
            .map_err(move |e| this.error("read", &key, e))
            .boxed())
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key)?;
        let meta = self
            .inner
            .head(&self.path(key))
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
        let full = join_key([self.prefix.as_str(), prefix]);
        let location = (!full.is_empty()).then(|| ObjectPath::from(full.as_str()));
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut objects: Vec<ObjectMeta> = self
            .inner
            .list(location.as_ref())
            .map_ok(|m| ObjectMeta {
                key: m.location.as_ref().get(strip..).unwrap_or_default().to_owned(),
                size: m.size,
                modified: m.last_modified,
            })
            .try_collect()
            .await
            .map_err(|e| self.error("list", prefix, e))?;
        objects.retain(|o| !o.key.is_empty());
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        match self.inner.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", key, e)),
        }
    }

    async fn sweep(&self, prefix: &str, older_than: DateTime<Utc>) -> Result<u64> {
        // Interrupted multipart uploads are invisible here (object_store lists
        // none); they are aborted when dropped and expire on the service.
        crate::claims::sweep(self, prefix, older_than).await
    }

    fn location(&self) -> String {
        self.location.clone()
    }
}
