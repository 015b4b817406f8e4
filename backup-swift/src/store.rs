//! `SwiftStore`: a backupapps [`Store`] on an OpenStack Swift container.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backup_core::store::{validate_key, ByteStream, ObjectMeta, Store};
use backup_core::{Error, Result};
use bytes::Bytes;
use chrono::{DateTime, NaiveDateTime, Utc};
use md5::{Digest, Md5};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::Method;
use serde::Deserialize;
use tokio::sync::OnceCell;

use crate::client::{Client, Req};
use crate::config::{Credentials, SwiftConfig};
use crate::error::{hint, SwiftError};

/// Characters left as they are in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Page size of container listings (Swift's default limit).
const PAGE: usize = 1000;

/// A store on `swift://CONTAINER[/PREFIX]`. Objects larger than the segment
/// size go up as Static Large Objects, their segments in `CONTAINER_segments`.
pub struct SwiftStore {
    client: Arc<Client>,
    container: String,
    prefix: String,
    segment_size: u64,
    create_container: bool,
    ready: OnceCell<u64>,
}

impl std::fmt::Debug for SwiftStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwiftStore")
            .field("location", &self.location())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Listed {
    name: String,
    bytes: u64,
    last_modified: String,
}

impl SwiftStore {
    /// A builder for `url` (`swift://container[/prefix]`) from explicit values:
    /// no environment and no files are read.
    ///
    /// ```
    /// # use backup_swift::{Credentials, SwiftStore};
    /// let store = SwiftStore::builder("swift://backups/host-1")
    ///     .credentials(Credentials::V1 {
    ///         auth_url: "http://127.0.0.1:8080/auth/v1.0".into(),
    ///         user: "test:tester".into(),
    ///         key: "testing".into(),
    ///     })
    ///     .retries(3)
    ///     .build()?;
    /// # Ok::<(), backup_core::Error>(())
    /// ```
    pub fn builder(url: &str) -> SwiftStoreBuilder {
        SwiftStoreBuilder {
            url: url.to_owned(),
            credentials: None,
            storage_url: None,
            retries: 5,
            timeout: Duration::from_secs(120),
            segment_size: 1 << 30,
            create_container: true,
        }
    }

    /// Opens `url` with `config`, the RC file it names, and `env` (the
    /// process environment as a map: `OS_*`, `ST_*`); relative paths are
    /// taken relative to `base`. Nothing is contacted yet.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad URL or missing credentials.
    pub fn new(url: &str, config: &SwiftConfig, base: &Path, env: &BTreeMap<String, String>) -> Result<Self> {
        let mut builder = SwiftStore::builder(url)
            .credentials(config.credentials(base, env)?)
            .retries(config.retries.unwrap_or(5))
            .timeout(Duration::from_secs(config.timeout_secs.unwrap_or(120)))
            .segment_size(config.segment_size.unwrap_or(1 << 30))
            .create_container(config.create_container.unwrap_or(true));
        if let Some(storage_url) = &config.storage_url {
            builder = builder.storage_url(storage_url);
        }
        builder.build()
    }

    /// As [`SwiftStore::new`], with this process's environment.
    ///
    /// # Errors
    /// As [`SwiftStore::new`].
    pub fn from_env(url: &str, config: &SwiftConfig, base: &Path) -> Result<Self> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        SwiftStore::new(url, config, base, &env)
    }

    fn segments_container(&self) -> String {
        format!("{}_segments", self.container)
    }

    fn object_name(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn path(container: &str, object: &str) -> String {
        format!(
            "/{}/{}",
            utf8_percent_encode(container, SEGMENT),
            utf8_percent_encode(object, SEGMENT)
        )
    }

    fn http_error(req: &Req, status: u16, body: &str) -> Error {
        SwiftError::Http {
            method: req.method.to_string(),
            what: req.what.clone(),
            status,
            hint: hint(status, body),
        }
        .into()
    }

    /// Makes sure the container (and its segments container) exist, and reads
    /// the cluster's limits from `/info`, once. Returns the segment size to use.
    async fn ready(&self) -> Result<u64> {
        self.ready
            .get_or_try_init(|| async {
                for container in [self.container.clone(), self.segments_container()] {
                    let path = format!("/{}", utf8_percent_encode(&container, SEGMENT));
                    let head = Req::new(Method::HEAD, path.clone(), format!("container {container}"));
                    let resp = self.client.send(&head).await?;
                    match resp.status().as_u16() {
                        200..=299 => {}
                        404 if self.create_container => {
                            let put = Req::new(Method::PUT, path, format!("container {container}"));
                            let resp = self.client.send(&put).await?;
                            let status = resp.status().as_u16();
                            if !(200..300).contains(&status) {
                                return Err(Self::http_error(&put, status, &resp.text().await.unwrap_or_default()));
                            }
                        }
                        404 => {
                            return Err(Error::config(
                                "url",
                                format!("container {container} does not exist: create it (swift post {container}) or set [store.swift] create_container = true"),
                            ))
                        }
                        status => return Err(Self::http_error(&head, status, "")),
                    }
                }
                Ok(self.segment_limit().await)
            })
            .await
            .copied()
    }

    /// The configured segment size, lowered to the cluster's `max_file_size`.
    async fn segment_limit(&self) -> u64 {
        match self.client.info().await {
            Ok(info) => match info["swift"]["max_file_size"].as_u64() {
                Some(max) if max < self.segment_size => {
                    tracing::warn!(
                        configured = self.segment_size,
                        max,
                        "segment_size above the cluster's max_file_size; using max_file_size"
                    );
                    max
                }
                _ => self.segment_size,
            },
            Err(e) => {
                tracing::debug!(error = %e, "no /info; keeping the configured segment size");
                self.segment_size
            }
        }
    }

    async fn put_object(&self, container: &str, name: &str, data: Bytes) -> Result<String> {
        let md5 = hex::encode(Md5::digest(&data));
        let mut req = Req::new(
            Method::PUT,
            Self::path(container, name),
            format!("object {container}/{name}"),
        );
        // Swift checks the body against this ETag and refuses (422) a mismatch.
        req.headers.push(("ETag", md5.clone()));
        req.headers.push(("Content-Type", "application/octet-stream".into()));
        // An empty body would go without Content-Length, which Swift refuses (411).
        req.headers.push(("Content-Length", data.len().to_string()));
        req.body = Some(data);
        let resp = self.client.send(&req).await?;
        let status = resp.status().as_u16();
        if status != 201 {
            return Err(Self::http_error(&req, status, &resp.text().await.unwrap_or_default()));
        }
        let etag = resp
            .headers()
            .get("ETag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .trim_matches('"')
            .to_owned();
        if etag != md5 {
            return Err(SwiftError::Checksum {
                what: req.what,
                expected: etag,
                got: md5,
            }
            .into());
        }
        Ok(md5)
    }

    async fn put_large(&self, name: &str, data: Bytes, segment_size: u64) -> Result<()> {
        let segments = self.segments_container();
        let stamp = Utc::now().format("%Y%m%dT%H%M%S%.9fZ").to_string();
        let mut manifest = Vec::new();
        let mut uploaded = Vec::new();
        let mut offset = 0usize;
        let result: Result<()> = async {
            while offset < data.len() {
                let end = (offset + segment_size as usize).min(data.len());
                let seg_name = format!("{name}/{stamp}/{:08}", uploaded.len());
                let etag = self.put_object(&segments, &seg_name, data.slice(offset..end)).await?;
                uploaded.push(seg_name.clone());
                manifest.push(serde_json::json!({"path": format!("/{segments}/{seg_name}"), "etag": etag, "size_bytes": end - offset}));
                offset = end;
            }
            let mut req = Req::new(Method::PUT, Self::path(&self.container, name), format!("object {}/{name}", self.container));
            req.query.push(("multipart-manifest", "put".into()));
            req.body = Some(Bytes::from(serde_json::to_vec(&manifest).unwrap_or_default()));
            let resp = self.client.send(&req).await?;
            let status = resp.status().as_u16();
            if status != 201 {
                return Err(Self::http_error(&req, status, &resp.text().await.unwrap_or_default()));
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            for seg in uploaded {
                let _ = self.delete_object(&segments, &seg, false).await;
            }
        }
        result
    }

    async fn delete_object(&self, container: &str, name: &str, manifest: bool) -> Result<()> {
        let mut req = Req::new(
            Method::DELETE,
            Self::path(container, name),
            format!("object {container}/{name}"),
        );
        if manifest {
            // Deletes an SLO with its segments; Swift answers 200 with a JSON
            // report, which says "Not an SLO manifest" for a plain object.
            req.query.push(("multipart-manifest", "delete".into()));
            req.headers.push(("Accept", "application/json".into()));
        }
        let resp = self.client.send(&req).await?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        match status {
            404 => Ok(()),
            200..=299 if manifest => {
                let report: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                let errors = report["Errors"].as_array().cloned().unwrap_or_default();
                if errors.is_empty() {
                    Ok(())
                } else if body.contains("Not an SLO manifest") {
                    Box::pin(self.delete_object(container, name, false)).await
                } else {
                    Err(Self::http_error(
                        &req,
                        500,
                        &format!("segment deletion failed: {errors:?}"),
                    ))
                }
            }
            200..=299 => Ok(()),
            status => Err(Self::http_error(&req, status, &body)),
        }
    }

    async fn list_container(&self, container: &str, prefix: &str) -> Result<Vec<Listed>> {
        let mut all = Vec::new();
        let mut marker = String::new();
        loop {
            let mut req = Req::new(
                Method::GET,
                format!("/{}", utf8_percent_encode(container, SEGMENT)),
                format!("container {container}"),
            );
            req.query = vec![
                ("format", "json".into()),
                ("prefix", prefix.to_owned()),
                ("limit", PAGE.to_string()),
            ];
            if !marker.is_empty() {
                req.query.push(("marker", marker.clone()));
            }
            let (status, body) = self.client.get_body(&req).await?;
            match status {
                200 => {}
                204 | 404 => break,
                status => return Err(Self::http_error(&req, status, &String::from_utf8_lossy(&body))),
            }
            let page: Vec<Listed> = serde_json::from_slice(&body).map_err(|e| {
                Error::source_failed(format!("container {container}"), format!("unreadable listing: {e}"))
            })?;
            let done = page.len() < PAGE;
            if let Some(last) = page.last() {
                marker = last.name.clone();
            }
            all.extend(page);
            if done {
                break;
            }
        }
        Ok(all)
    }
}

fn parse_time(text: &str) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|t| t.and_utc())
        .unwrap_or_default()
}

#[async_trait]
impl Store for SwiftStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        validate_key(key)?;
        let segment_size = self.ready().await?;
        let name = self.object_name(key);
        if data.len() as u64 > segment_size {
            self.put_large(&name, data, segment_size).await
        } else {
            self.put_object(&self.container, &name, data).await.map(|_| ())
        }
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<bool> {
        validate_key(key)?;
        self.ready().await?;
        let name = self.object_name(key);
        let mut req = Req::new(
            Method::PUT,
            Self::path(&self.container, &name),
            format!("object {}/{name}", self.container),
        );
        // Swift refuses (412) a create-only PUT onto an existing object.
        req.headers.push(("If-None-Match", "*".into()));
        req.headers.push(("Content-Length", data.len().to_string()));
        req.body = Some(data);
        let resp = self.client.send(&req).await?;
        match resp.status().as_u16() {
            201 => Ok(true),
            412 => Ok(false),
            status => Err(Self::http_error(&req, status, &resp.text().await.unwrap_or_default())),
        }
    }

    async fn get(&self, key: &str) -> Result<ByteStream> {
        validate_key(key)?;
        let name = self.object_name(key);
        let req = Req::new(
            Method::GET,
            Self::path(&self.container, &name),
            format!("object {}/{name}", self.container),
        );
        // Whole objects (chunks are bounded by the chunk size), so that a
        // connection reset mid-body is retried like any other failure.
        let (status, body) = self.client.get_body(&req).await?;
        match status {
            200 => Ok(Box::pin(futures::stream::once(async move { Ok(body) }))),
            404 => Err(Error::NotFound { key: key.to_owned() }),
            status => Err(Self::http_error(&req, status, &String::from_utf8_lossy(&body))),
        }
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key)?;
        let name = self.object_name(key);
        let req = Req::new(
            Method::HEAD,
            Self::path(&self.container, &name),
            format!("object {}/{name}", self.container),
        );
        let resp = self.client.send(&req).await?;
        match resp.status().as_u16() {
            200 => {
                let header = |name: &str| {
                    resp.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                let size = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                let modified = header("last-modified")
                    .and_then(|v| DateTime::parse_from_rfc2822(&v).ok())
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_default();
                Ok(ObjectMeta {
                    key: key.to_owned(),
                    size,
                    modified,
                })
            }
            404 => Err(Error::NotFound { key: key.to_owned() }),
            status => Err(Self::http_error(&req, status, "")),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let folder = prefix.trim_matches('/');
        let wanted = match (self.prefix.is_empty(), folder.is_empty()) {
            (true, true) => String::new(),
            (true, false) => format!("{folder}/"),
            (false, true) => format!("{}/", self.prefix),
            (false, false) => format!("{}/{folder}/", self.prefix),
        };
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut objects: Vec<ObjectMeta> = self
            .list_container(&self.container, &wanted)
            .await?
            .into_iter()
            .map(|o| ObjectMeta {
                key: o.name[strip..].to_owned(),
                size: o.bytes,
                modified: parse_time(&o.last_modified),
            })
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        self.delete_object(&self.container, &self.object_name(key), true).await
    }

    async fn sweep(&self, prefix: &str, older_than: DateTime<Utc>) -> Result<u64> {
        let folder = self.object_name(prefix.trim_matches('/'));
        let segments = self
            .list_container(&self.segments_container(), &format!("{folder}/"))
            .await?;
        // Segments are `<object>/<stamp>/<n>`: orphans of an upload that never
        // got its manifest (the object is missing) are debris.
        let mut by_object: BTreeMap<String, Vec<Listed>> = BTreeMap::new();
        for seg in segments {
            let mut parts = seg.name.rsplitn(3, '/');
            let (_, _, object) = (parts.next(), parts.next(), parts.next());
            if let Some(object) = object {
                by_object.entry(object.to_owned()).or_default().push(seg);
            }
        }
        let mut removed = 0;
        let mut present = BTreeSet::new();
        for (object, segs) in by_object {
            if segs.iter().any(|s| parse_time(&s.last_modified) >= older_than) {
                continue;
            }
            if !present.contains(&object) {
                let head = Req::new(
                    Method::HEAD,
                    Self::path(&self.container, &object),
                    format!("object {object}"),
                );
                if self.client.send(&head).await?.status().as_u16() != 404 {
                    present.insert(object);
                    continue;
                }
            }
            for seg in segs {
                self.delete_object(&self.segments_container(), &seg.name, false).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn location(&self) -> String {
        if self.prefix.is_empty() {
            format!("swift://{}", self.container)
        } else {
            format!("swift://{}/{}", self.container, self.prefix)
        }
    }
}

/// Builds a [`SwiftStore`] from explicit values (see [`SwiftStore::builder`]).
#[derive(Debug, Clone)]
#[must_use]
pub struct SwiftStoreBuilder {
    url: String,
    credentials: Option<Credentials>,
    storage_url: Option<String>,
    retries: u32,
    timeout: Duration,
    segment_size: u64,
    create_container: bool,
}

impl SwiftStoreBuilder {
    /// How to authenticate (required).
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// A storage URL to use instead of the catalog's.
    pub fn storage_url(mut self, url: &str) -> Self {
        self.storage_url = Some(url.to_owned());
        self
    }

    /// Attempts per request for retryable failures (default 5).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries.max(1);
        self
    }

    /// Time per request before it counts as timed out (default 120 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Objects larger than this go up as Static Large Objects (default 1 GiB;
    /// the cluster's `max_file_size` lowers it).
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes.max(1);
        self
    }

    /// Create the container when it is missing (default true).
    pub fn create_container(mut self, create: bool) -> Self {
        self.create_container = create;
        self
    }

    /// The store. Nothing is contacted yet.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad URL or no credentials.
    pub fn build(self) -> Result<SwiftStore> {
        let url = &self.url;
        let rest = url
            .strip_prefix("swift://")
            .ok_or_else(|| Error::config("url", format!("{url:?} is not swift://CONTAINER[/PREFIX]")))?;
        let (container, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if container.is_empty() || container.contains(['?', '#']) {
            return Err(Error::config("url", format!("{url:?} has no valid container name")));
        }
        let creds = self
            .credentials
            .ok_or_else(|| Error::config("credentials", "no Swift credentials given"))?;
        let client = Client::new(creds, self.storage_url, self.retries, self.timeout)?;
        Ok(SwiftStore {
            client: Arc::new(client),
            container: container.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            segment_size: self.segment_size,
            create_container: self.create_container,
            ready: OnceCell::new(),
        })
    }
}
