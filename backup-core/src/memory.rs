//! An in-memory [`Store`] for unit tests and examples.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream;

use crate::error::{Error, Result};
use crate::store::{validate_key, ByteStream, ObjectMeta, Store};

/// Keeps objects in a map. Lost when dropped; for tests and examples only.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, (Bytes, DateTime<Utc>)>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn objects(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Bytes, DateTime<Utc>)>> {
        // A panic while holding the lock cannot leave the map half-updated
        // (every update is one insert or remove), so a poisoned lock is safe to use.
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        validate_key(key)?;
        self.objects().insert(key.to_owned(), (data, Utc::now()));
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<bool> {
        validate_key(key)?;
        let mut objects = self.objects();
        if objects.contains_key(key) {
            return Ok(false);
        }
        objects.insert(key.to_owned(), (data, Utc::now()));
        Ok(true)
    }

    async fn get(&self, key: &str) -> Result<ByteStream> {
        validate_key(key)?;
        let data = self
            .objects()
            .get(key)
            .map(|(data, _)| data.clone())
            .ok_or_else(|| Error::NotFound { key: key.to_owned() })?;
        Ok(Box::pin(stream::once(async move { Ok(data) })))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key)?;
        self.objects()
            .get(key)
            .map(|(data, modified)| ObjectMeta {
                key: key.to_owned(),
                size: data.len() as u64,
                modified: *modified,
            })
            .ok_or_else(|| Error::NotFound { key: key.to_owned() })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let folder = if prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", prefix.trim_end_matches('/'))
        };
        Ok(self
            .objects()
            .range(folder.clone()..)
            .take_while(|(key, _)| key.starts_with(&folder))
            .map(|(key, (data, modified))| ObjectMeta {
                key: key.clone(),
                size: data.len() as u64,
                modified: *modified,
            })
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        self.objects().remove(key);
        Ok(())
    }

    async fn sweep(&self, _prefix: &str, _older_than: DateTime<Utc>) -> Result<u64> {
        // Puts are a single map insert: there is never any debris.
        Ok(0)
    }

    fn location(&self) -> String {
        "memory://".to_owned()
    }
}
