//! The manifest: the record that makes a set of chunks a complete backup.

use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::layout::{check_stream_name, is_backup_id, BackupFolder};

/// Largest manifest read from a store: about 40,000 chunks. A bigger object
/// is refused before it is parsed, so a forged one cannot exhaust memory.
pub const MAX_MANIFEST_SIZE: u64 = 8 * 1024 * 1024;

/// Largest plaintext chunk a manifest may announce (the buffer a restore
/// allocates per chunk in flight), and so the largest `chunk_size` a backup
/// may use: 1 GiB, so that a store's ~40,000-chunk manifest limit still
/// allows backups of tens of TiB, while a forged manifest cannot ask a
/// restore for more than that per chunk.
pub const MAX_CHUNK_SIZE: u64 = 1024 * 1024 * 1024;

/// How far in the future a backup's time may lie (clocks of two hosts
/// differ) before it counts as forged or misdated.
pub const MAX_CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(10);

/// Manifest format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Which profile a caller expects backups of: what a manifest must be bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProfileRef {
    /// Application name.
    pub app: String,
    /// Profile name.
    pub profile: String,
    /// Store folder of the profile's backups.
    pub dest_prefix: String,
    /// Source kind, when the caller knows it.
    pub kind: Option<String>,
}

impl ProfileRef {
    /// The profile `app/profile` stored under `dest_prefix`.
    pub fn new(app: &str, profile: &str, dest_prefix: &str) -> Self {
        ProfileRef {
            app: app.to_owned(),
            profile: profile.to_owned(),
            dest_prefix: dest_prefix.trim_matches('/').to_owned(),
            kind: None,
        }
    }

    /// The same, also requiring manifests of `kind`.
    #[must_use]
    pub fn with_kind(mut self, kind: &str) -> Self {
        self.kind = Some(kind.to_owned());
        self
    }

    /// `app/profile`.
    pub fn target(&self) -> String {
        format!("{}/{}", self.app, self.profile)
    }
}

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

    /// Parses a manifest read from `key`. Parsing is not trusting: see
    /// [`Manifest::check_place`] and the catalog.
    ///
    /// # Errors
    /// [`Error::Format`] when it is larger than [`MAX_MANIFEST_SIZE`], not
    /// valid JSON, or from a newer format.
    pub fn from_json(key: &str, bytes: &[u8]) -> Result<Self> {
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(Error::Format {
                id: key.to_owned(),
                reason: format!(
                    "manifest is {} bytes, more than the {MAX_MANIFEST_SIZE} allowed",
                    bytes.len()
                ),
            });
        }
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
        Ok(manifest)
    }

    /// Checks that this manifest belongs where it was found and is safe to act
    /// on: its id is the folder's name (`folder_id`), its `dest_prefix`, `app`,
    /// `profile` (and `kind`, when given) are the expected ones, its chunk and
    /// stream names are plain names, its sizes are bounded and its time is not
    /// in the future beyond [`MAX_CLOCK_SKEW`] of `now`.
    ///
    /// # Errors
    /// The first mismatch, in words.
    pub fn check_place(
        &self,
        folder_id: &str,
        expected: &ProfileRef,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), String> {
        if self.id != folder_id || !is_backup_id(&self.id) {
            return Err(format!(
                "its manifest says id {:?} but it lies in folder {folder_id:?}",
                self.id
            ));
        }
        if self.dest_prefix.trim_matches('/') != expected.dest_prefix.trim_matches('/') {
            return Err(format!(
                "its manifest says dest_prefix {:?}, not this profile's {:?}",
                self.dest_prefix, expected.dest_prefix
            ));
        }
        if self.app != expected.app || self.profile != expected.profile {
            return Err(format!(
                "its manifest is for {}/{}, not {}/{}",
                self.app, self.profile, expected.app, expected.profile
            ));
        }
        if let Some(kind) = &expected.kind {
            if &self.kind != kind {
                return Err(format!("its manifest is of kind {:?}, not {kind:?}", self.kind));
            }
        }
        if self.time > now + MAX_CLOCK_SKEW {
            return Err(format!("it is dated {} — in the future", rfc3339(self.time)));
        }
        if self.chunk_size > MAX_CHUNK_SIZE {
            return Err(format!(
                "chunk_size {} is above the {MAX_CHUNK_SIZE} bytes allowed",
                self.chunk_size
            ));
        }
        let folder = BackupFolder::new(&expected.dest_prefix, &self.id).map_err(|e| e.to_string())?;
        let mut names = std::collections::HashSet::new();
        for chunk in &self.chunks {
            folder.chunk_key(&chunk.name).map_err(|e| e.to_string())?;
            check_stream_name(&chunk.stream)?;
            if !names.insert(chunk.name.as_str()) {
                return Err(format!("chunk {:?} is listed twice", chunk.name));
            }
            if chunk.plaintext_size > self.chunk_size.max(1) || chunk.plaintext_size > MAX_CHUNK_SIZE {
                return Err(format!(
                    "chunk {:?} announces {} plaintext bytes, more than its chunk_size {}",
                    chunk.name, chunk.plaintext_size, self.chunk_size
                ));
            }
            if chunk.size > MAX_CHUNK_SIZE * 2 || chunk.sha256.len() != 64 {
                return Err(format!("chunk {:?} has an impossible size or checksum", chunk.name));
            }
        }
        Ok(())
    }

    /// The names of the streams, in stored order.
    pub fn streams(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for c in &self.chunks {
            if !names.contains(&c.stream) {
                names.push(c.stream.clone());
            }
        }
        names
    }

    /// Whether the backup has a stream `name`.
    pub fn has_stream(&self, name: &str) -> bool {
        self.chunks.iter().any(|c| c.stream == name)
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

/// Serialises a time as [`rfc3339`] does, for report types.
pub(crate) fn serialize_time<S: serde::Serializer>(time: &DateTime<Utc>, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*time))
}

/// RFC 3339 in UTC with seconds, as shown to users: `2026-11-26T02:01:00Z`.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
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

    fn sample() -> Manifest {
        let now: DateTime<Utc> = "2026-01-02T03:04:05Z".parse().unwrap();
        Manifest {
            format_version: FORMAT_VERSION,
            id: "20260102T030405Z-abcd".into(),
            app: "app".into(),
            profile: "db".into(),
            kind: "files".into(),
            dest_prefix: "app/db".into(),
            time: now,
            started_at: now,
            finished_at: now,
            plaintext_size: 10,
            stored_size: 20,
            chunk_size: 16,
            compression: "zstd".into(),
            encryption: "openpgp".into(),
            recipients: vec![],
            chunks: vec![ChunkRecord {
                name: "data-000001.zst.gpg".into(),
                stream: "data".into(),
                size: 20,
                sha256: "0".repeat(64),
                plaintext_size: 10,
            }],
            tool_version: "t".into(),
            source: Map::new(),
        }
    }

    #[test]
    fn manifests_are_bound_to_their_place() {
        let now: DateTime<Utc> = "2026-01-02T03:04:05Z".parse().unwrap();
        let expected = ProfileRef::new("app", "db", "app/db");
        let m = sample();
        assert!(m.check_place(&m.id, &expected, now).is_ok());
        assert!(m.check_place("20260102T030406Z-abcd", &expected, now).is_err());
        assert!(m
            .check_place(&m.id, &ProfileRef::new("app", "other", "app/db"), now)
            .is_err());
        assert!(m
            .check_place(&m.id, &ProfileRef::new("app", "db", "app/other"), now)
            .is_err());
        assert!(m
            .check_place(&m.id, &expected.clone().with_kind("postgres"), now)
            .is_err());
        let future = now - chrono::Duration::days(1);
        assert!(m.check_place(&m.id, &expected, future).is_err());
        for (name, stream) in [
            ("../x", "data"),
            ("a/b", "data"),
            ("manifest.json", "data"),
            ("d-1", "../x"),
        ] {
            let mut bad = sample();
            bad.chunks[0].name = name.into();
            bad.chunks[0].stream = stream.into();
            assert!(bad.check_place(&bad.id, &expected, now).is_err(), "{name:?} {stream:?}");
        }
        let mut bomb = sample();
        bomb.chunks[0].plaintext_size = 1 << 40;
        assert!(bomb.check_place(&bomb.id, &expected, now).is_err());
        let mut abs = sample();
        abs.id = "/etc/cron.d".into();
        assert!(abs.check_place("/etc/cron.d", &expected, now).is_err());
    }

    #[test]
    fn chunk_names_sort_in_order() {
        assert_eq!(chunk_name("data", 0), "data-000001.zst.gpg");
        assert!(chunk_name("data", 9) < chunk_name("data", 10));
    }
}
