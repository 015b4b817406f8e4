//! The manifest: the record that makes a set of chunks a complete backup.

use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Object name of the manifest inside a backup's folder. Written last.
pub const MANIFEST_NAME: &str = "manifest.json";

/// Manifest format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// What `manifest.json` holds. Unknown fields are ignored on read so that newer
/// minor additions stay readable; `format_version` guards breaking changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_VERSION`] when written by this build.
    pub format_version: u32,
    /// The backup id, also the name of its folder.
    pub id: String,
    /// Application name (first part of the target).
    pub app: String,
    /// Profile name (second part of the target).
    pub profile: String,
    /// Source kind: `files`, `postgres`, …
    pub kind: String,
    /// Store folder of this profile's backups.
    pub dest_prefix: String,
    /// The time the backup stands for (`backup --time` sets it; else `started_at`).
    pub time: DateTime<Utc>,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When the last chunk was stored.
    pub finished_at: DateTime<Utc>,
    /// Bytes read from the source.
    pub plaintext_size: u64,
    /// Bytes stored, over all chunks (manifest excluded).
    pub stored_size: u64,
    /// Plaintext bytes per chunk (the last of each stream may be shorter).
    pub chunk_size: u64,
    /// `zstd`.
    pub compression: String,
    /// `openpgp`.
    pub encryption: String,
    /// Fingerprints of the keys every chunk is encrypted to.
    pub recipients: Vec<String>,
    /// Every chunk, in restore order.
    pub chunks: Vec<ChunkRecord>,
    /// `backupapps X.Y.Z`.
    pub tool_version: String,
    /// Facts from the source: file count, server and pg_dump versions, database…
    pub source: Map<String, Value>,
}

/// One stored chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRecord {
    /// Object name inside the backup's folder, e.g. `data-000001.zst.gpg`.
    pub name: String,
    /// Which source stream it belongs to (`data`, …).
    pub stream: String,
    /// Stored (encrypted) size in bytes.
    pub size: u64,
    /// SHA-256 of the stored bytes, lower-case hex.
    pub sha256: String,
    /// Plaintext bytes in this chunk.
    pub plaintext_size: u64,
}

impl Manifest {
    /// `app/profile`.
    pub fn target(&self) -> String {
        format!("{}/{}", self.app, self.profile)
    }

    /// The chunks of one stream, in order.
    pub fn stream_chunks<'a>(&'a self, stream: &'a str) -> impl Iterator<Item = &'a ChunkRecord> {
        self.chunks.iter().filter(move |c| c.stream == stream)
    }

    /// Parses and checks a manifest read from `key`.
    ///
    /// # Errors
    /// [`Error::Format`] when it is not valid JSON, from a newer format, or its
    /// chunk names are unsafe.
    pub fn from_json(key: &str, bytes: &[u8]) -> Result<Self> {
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| Error::Format {
            id: key.to_owned(),
            reason: format!("manifest is not valid: {e}"),
        })?;
        if manifest.format_version > FORMAT_VERSION {
            return Err(Error::Format {
                id: key.to_owned(),
                reason: format!(
                    "manifest format {} is newer than this backupapps understands ({}); upgrade backupapps",
                    manifest.format_version, FORMAT_VERSION
                ),
            });
        }
        if let Some(bad) = manifest
            .chunks
            .iter()
            .find(|c| c.name.contains('/') || c.name.starts_with('.') || c.name == MANIFEST_NAME)
        {
            return Err(Error::Format {
                id: key.to_owned(),
                reason: format!("chunk name {:?} is not allowed", bad.name),
            });
        }
        Ok(manifest)
    }

    /// Pretty JSON, as stored.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

/// Name of chunk `index` (0-based) of `stream`: `data-000001.zst.gpg`.
pub fn chunk_name(stream: &str, index: usize) -> String {
    format!("{stream}-{:06}.zst.gpg", index + 1)
}

/// A new backup id for `time`: `20261126T020100Z-3f9a`. Ids sort by time; the
/// random suffix keeps two runs in the same second apart.
pub fn new_backup_id(time: DateTime<Utc>) -> String {
    let suffix: u16 = rand::thread_rng().gen();
    format!("{}-{suffix:04x}", time.format("%Y%m%dT%H%M%SZ"))
}

/// RFC 3339 in UTC with seconds, as shown to users: `2026-11-26T02:01:00Z`.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Whether `name` looks like a backup id (folder name under a profile's prefix).
pub fn is_backup_id(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 21
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[16] == b'-'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
        && b[17..].iter().all(u8::is_ascii_hexdigit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_are_recognised() {
        let a = new_backup_id("2026-01-02T03:04:05Z".parse().unwrap());
        let b = new_backup_id("2026-01-02T03:04:06Z".parse().unwrap());
        assert!(a < b);
        assert!(a.starts_with("20260102T030405Z-"));
        assert!(is_backup_id(&a));
        assert!(!is_backup_id("manifest.json"));
    }

    #[test]
    fn chunk_names_sort_in_order() {
        assert_eq!(chunk_name("data", 0), "data-000001.zst.gpg");
        assert!(chunk_name("data", 9) < chunk_name("data", 10));
    }
}
