//! The catalog: what backups a profile has, read from the store alone.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::manifest::{is_backup_id, Manifest, MANIFEST_NAME};
use crate::store::{join_key, ObjectMeta, Store, StoreExt};

/// Folder inside a backup for marks added after it was made (verified, restored).
pub const MARKS_FOLDER: &str = "marks";

/// A complete backup: its manifest and the marks recorded on it since.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    /// The manifest.
    pub manifest: Manifest,
    /// Mark name (`verified`, `restored`) → what was recorded.
    pub marks: BTreeMap<String, Value>,
    /// Every object of the backup, manifest and marks included.
    pub objects: Vec<ObjectMeta>,
}

/// A backup folder without a manifest: a run that failed, was killed, or is
/// still going.
#[derive(Debug, Clone)]
pub struct IncompleteBackup {
    /// The backup id (folder name).
    pub id: String,
    /// Its objects.
    pub objects: Vec<ObjectMeta>,
    /// When the newest of its objects was written.
    pub last_modified: DateTime<Utc>,
}

/// Everything under one profile's prefix.
#[derive(Debug, Default)]
pub struct Listing {
    /// Complete backups, oldest first.
    pub complete: Vec<CatalogEntry>,
    /// Backups without a manifest, oldest first.
    pub incomplete: Vec<IncompleteBackup>,
    /// Backups whose manifest cannot be read, with the reason. Never removed
    /// automatically: an operator looks at them.
    pub damaged: Vec<(String, Error)>,
}

impl Listing {
    /// The newest complete backup.
    pub fn newest(&self) -> Option<&CatalogEntry> {
        self.complete.last()
    }
}

/// Lists the backups of one profile.
///
/// # Errors
/// The store's error when it cannot be listed.
pub async fn list_backups(store: &Arc<dyn Store>, dest_prefix: &str) -> Result<Listing> {
    let mut folders: BTreeMap<String, Vec<ObjectMeta>> = BTreeMap::new();
    for object in store.list(dest_prefix).await? {
        let rest = object.key[dest_prefix.trim_matches('/').len()..].trim_start_matches('/');
        if let Some((id, _)) = rest.split_once('/') {
            if is_backup_id(id) {
                folders.entry(id.to_owned()).or_default().push(object);
            }
        }
    }
    let mut listing = Listing::default();
    let mut with_manifest = Vec::new();
    for (id, objects) in folders {
        let manifest_key = join_key([dest_prefix, id.as_str(), MANIFEST_NAME]);
        if objects.iter().any(|o| o.key == manifest_key) {
            with_manifest.push((id, manifest_key, objects));
        } else {
            let last_modified = objects.iter().map(|o| o.modified).max().unwrap_or_default();
            listing.incomplete.push(IncompleteBackup {
                id,
                objects,
                last_modified,
            });
        }
    }
    let read: Vec<_> = stream::iter(with_manifest)
        .map(|(id, manifest_key, objects)| async move {
            let parsed = read_entry(&**store, &manifest_key, objects).await;
            (id, parsed)
        })
        .buffered(8)
        .collect()
        .await;
    for (id, parsed) in read {
        match parsed {
            Ok(entry) => listing.complete.push(entry),
            Err(e) => listing.damaged.push((id, e)),
        }
    }
    listing
        .complete
        .sort_by(|a, b| (a.manifest.time, &a.manifest.id).cmp(&(b.manifest.time, &b.manifest.id)));
    Ok(listing)
}

async fn read_entry(store: &dyn Store, manifest_key: &str, objects: Vec<ObjectMeta>) -> Result<CatalogEntry> {
    let manifest = Manifest::from_json(manifest_key, &store.get_bytes(manifest_key).await?)?;
    let mut marks = BTreeMap::new();
    let marks_prefix = format!(
        "{}/{MARKS_FOLDER}/",
        manifest_key.trim_end_matches(MANIFEST_NAME).trim_end_matches('/')
    );
    for object in objects.iter().filter(|o| o.key.starts_with(&marks_prefix)) {
        let name = object.key[marks_prefix.len()..].trim_end_matches(".json").to_owned();
        // A damaged mark must not hide the backup: it is only a note.
        if let Ok(value) = serde_json::from_slice(&store.get_bytes(&object.key).await?) {
            marks.insert(name, value);
        }
    }
    Ok(CatalogEntry {
        manifest,
        marks,
        objects,
    })
}

/// Records a mark (`verified`, `restored`) on a backup, replacing an older one
/// of the same name.
///
/// # Errors
/// The store's error.
pub async fn write_mark(store: &dyn Store, manifest: &Manifest, name: &str, value: &Value) -> Result<()> {
    let key = join_key([
        manifest.dest_prefix.as_str(),
        manifest.id.as_str(),
        MARKS_FOLDER,
        &format!("{name}.json"),
    ]);
    store
        .put(&key, Bytes::from(serde_json::to_vec_pretty(value).unwrap_or_default()))
        .await
}

/// Removes a backup: its manifest first, so that a removal cut short leaves an
/// incomplete backup (never listed, cleaned later), never a listed backup with
/// missing chunks.
///
/// # Errors
/// The store's error; what was not removed is removed by a later prune.
pub async fn remove_backup(store: &dyn Store, dest_prefix: &str, id: &str, objects: &[ObjectMeta]) -> Result<()> {
    let manifest_key = join_key([dest_prefix, id, MANIFEST_NAME]);
    store.delete(&manifest_key).await?;
    stream::iter(objects.iter().filter(|o| o.key != manifest_key))
        .map(|o| store.delete(&o.key))
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Finds a backup by id, or the newest at or before `at`, or the newest.
///
/// # Errors
/// [`Error::NotFound`] naming what was looked for.
pub fn select<'a>(
    listing: &'a Listing,
    target: &str,
    id: Option<&str>,
    at: Option<DateTime<Utc>>,
) -> Result<&'a CatalogEntry> {
    let found = match (id, at) {
        (Some(id), _) => listing.complete.iter().find(|e| e.manifest.id == id),
        (None, Some(at)) => listing.complete.iter().rev().find(|e| e.manifest.time <= at),
        (None, None) => listing.newest(),
    };
    found.ok_or_else(|| Error::NoBackup {
        target: target.to_owned(),
        what: match (id, at) {
            (Some(id), _) => format!("no complete backup with id {id}; run `backupapps list {target}` to see the ids"),
            (None, Some(at)) => format!("no complete backup at or before {}", crate::manifest::rfc3339(at)),
            (None, None) => {
                format!("no complete backup yet; run `backupapps backup {target}` first")
            }
        },
    })
}
