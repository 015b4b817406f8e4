//! Where a backup's objects live in the store: the one place that builds keys.
//!
//! `<dest_prefix>/<backup-id>/` holds the chunks, `manifest.json.sig`,
//! `manifest.json` and `marks/<name>.json`; `<dest_prefix>/locks/` the leases.
//! Every name that comes from a manifest is checked here before it becomes
//! part of a key.

use crate::error::{Error, Result};
use crate::store::{join_key, validate_key};

/// Object name of the manifest inside a backup's folder. Written last.
pub const MANIFEST_NAME: &str = "manifest.json";

/// Object name of the detached signature over the manifest's bytes, written
/// just before the manifest.
pub const SIGNATURE_NAME: &str = "manifest.json.sig";

/// Folder inside a backup for marks added after it was made (verified, restored).
pub const MARKS_FOLDER: &str = "marks";

/// Folder under a profile's prefix for its leases.
pub const LOCKS_FOLDER: &str = "locks";

/// A backup's folder in the store, from a checked prefix and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupFolder {
    dest_prefix: String,
    id: String,
}

impl BackupFolder {
    /// The folder of backup `id` under `dest_prefix`.
    ///
    /// # Errors
    /// [`Error::Config`] for a prefix that is not a valid key, [`Error::Format`]
    /// for an id that is not a backup id.
    pub fn new(dest_prefix: &str, id: &str) -> Result<Self> {
        let dest_prefix = dest_prefix.trim_matches('/');
        validate_key(dest_prefix)?;
        if !is_backup_id(id) {
            return Err(Error::Format {
                id: id.to_owned(),
                reason: "not a backup id (YYYYMMDDTHHMMSSZ-xxxx)".into(),
            });
        }
        Ok(BackupFolder {
            dest_prefix: dest_prefix.to_owned(),
            id: id.to_owned(),
        })
    }

    /// The backup id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `<dest_prefix>/<id>`.
    pub fn key(&self) -> String {
        join_key([self.dest_prefix.as_str(), self.id.as_str()])
    }

    /// The manifest's key.
    pub fn manifest_key(&self) -> String {
        self.object_key(MANIFEST_NAME)
    }

    /// The signature's key.
    pub fn signature_key(&self) -> String {
        self.object_key(SIGNATURE_NAME)
    }

    /// The key of mark `name` (`verified`, `restored`).
    pub fn mark_key(&self, name: &str) -> String {
        join_key([self.key().as_str(), MARKS_FOLDER, &format!("{name}.json")])
    }

    /// The key of chunk `name`, which must be a plain chunk name.
    ///
    /// # Errors
    /// [`Error::Format`] when `name` is not a safe object name.
    pub fn chunk_key(&self, name: &str) -> Result<String> {
        check_chunk_name(name).map_err(|reason| Error::Format {
            id: self.id.clone(),
            reason,
        })?;
        Ok(self.object_key(name))
    }

    fn object_key(&self, name: &str) -> String {
        join_key([self.key().as_str(), name])
    }
}

/// The key of lease `what` of the profile stored under `dest_prefix`.
pub fn lease_key(dest_prefix: &str, what: &str) -> String {
    join_key([dest_prefix, LOCKS_FOLDER, &format!("{what}.json")])
}

/// Whether `name` looks like a backup id (folder name under a profile's prefix):
/// `20261126T020100Z-3f9a`.
pub fn is_backup_id(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 21
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[16] == b'-'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
        && b[17..].iter().all(u8::is_ascii_hexdigit)
}

/// Checks a stream name: a short plain word (`data`, `globals`, `index`) that is
/// safe inside an object name.
///
/// # Errors
/// A reason when it is empty, longer than 32 bytes, or has anything but ASCII
/// letters, digits, `_` and `-` (starting with a letter).
pub fn check_stream_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "stream name {name:?} is not allowed: use up to 32 ASCII letters, digits, '_' or '-', starting with a letter"
        ))
    }
}

/// Checks a chunk's object name: a plain name inside the backup folder, never
/// the manifest, its signature or a mark.
fn check_chunk_name(name: &str) -> std::result::Result<(), String> {
    let plain = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !plain || name == MANIFEST_NAME || name == SIGNATURE_NAME || name == MARKS_FOLDER || name == LOCKS_FOLDER {
        return Err(format!(
            "chunk name {name:?} is not a plain object name in the backup's folder"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_built_from_checked_parts() {
        let f = BackupFolder::new("/app/db/", "20261126T020100Z-3f9a").unwrap();
        assert_eq!(f.manifest_key(), "app/db/20261126T020100Z-3f9a/manifest.json");
        assert_eq!(f.signature_key(), "app/db/20261126T020100Z-3f9a/manifest.json.sig");
        assert_eq!(
            f.mark_key("verified"),
            "app/db/20261126T020100Z-3f9a/marks/verified.json"
        );
        assert_eq!(
            f.chunk_key("data-000001.zst.gpg").unwrap(),
            "app/db/20261126T020100Z-3f9a/data-000001.zst.gpg"
        );
        for bad in [
            "../x",
            "a/b",
            "",
            ".hidden",
            "manifest.json",
            "manifest.json.sig",
            "x\0y",
            "é",
        ] {
            assert!(f.chunk_key(bad).is_err(), "{bad:?} accepted");
        }
        for bad_id in ["/etc/cron.d", "..", "20261126T020100Z-3f9a/..", "x"] {
            assert!(BackupFolder::new("app/db", bad_id).is_err(), "{bad_id:?} accepted");
        }
        assert!(BackupFolder::new("../x", "20261126T020100Z-3f9a").is_err());
    }

    #[test]
    fn stream_names_are_plain_words() {
        assert!(check_stream_name("data").is_ok());
        assert!(check_stream_name("globals").is_ok());
        for bad in ["", "Data/x", "../x", "a b", "1data", &"x".repeat(33)] {
            assert!(check_stream_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
