//! The catalog: what backups a profile has, read from the store alone — and
//! which of them can be trusted.
//!
//! A backup is **trusted** when its `manifest.json.sig` is a valid signature by
//! one of the [`Trust`]'s signers over the exact bytes of `manifest.json`
//! (or it is unsigned and the trust allows unsigned backups), and the
//! manifest is bound to its place ([`Manifest::check_place`]). Everything else
//! is listed as untrusted with the reason and never used.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::layout::{is_backup_id, BackupFolder, SIGNATURE_NAME};
use crate::manifest::{rfc3339, Manifest, ProfileRef, MAX_MANIFEST_SIZE};
use crate::signing::TrustedSigners;
use crate::store::{DynStore, ObjectMeta, Store, StoreExt};

/// The mark a successful verification records (`marks/verified.json`).
pub const VERIFIED_MARK: &str = "verified";

/// The mark a successful restore or mirror records (`marks/restored.json`):
/// the backup was proven restorable.
pub const RESTORED_MARK: &str = "restored";

/// Largest mark read: marks are notes, never more than a few hundred bytes.
const MAX_MARK_SIZE: u64 = 64 * 1024;

/// Largest signature read.
const MAX_SIGNATURE_SIZE: u64 = 64 * 1024;

/// Manifests read and parsed at once while listing: bounds memory to this
/// many [`MAX_MANIFEST_SIZE`]s (and what parsing them takes).
const MANIFESTS_IN_FLIGHT: usize = 2;

/// Whom to trust when reading backups.
#[derive(Debug, Clone)]
pub struct Trust {
    signers: TrustedSigners,
    allow_unsigned: bool,
}

impl Trust {
    /// Trust backups signed by `signers` only.
    pub fn new(signers: TrustedSigners) -> Self {
        Trust {
            signers,
            allow_unsigned: false,
        }
    }

    /// Also accept backups without a signature (made before signing existed).
    /// Unsafe: anyone who can write to the store can then forge backups.
    #[must_use]
    pub fn allow_unsigned(mut self, allow: bool) -> Self {
        self.allow_unsigned = allow;
        self
    }

    /// The trusted signers.
    pub fn signers(&self) -> &TrustedSigners {
        &self.signers
    }
}

/// How a trusted backup earned the trust.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "signer")]
#[non_exhaustive]
pub enum Signed {
    /// Signed by this trusted key (fingerprint).
    By(String),
    /// Not signed; accepted because unsigned backups are allowed.
    Unsigned,
}

/// A trusted backup: its manifest and the marks recorded on it since.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CatalogEntry {
    /// The manifest (signature checked, bound to its place).
    pub manifest: Manifest,
    /// Who signed it.
    pub signed: Signed,
    /// Mark name (`verified`, `restored`) → what was recorded. Marks are notes
    /// written after the fact and are not signed: shown, never relied on.
    pub marks: BTreeMap<String, Value>,
    /// Every object of the backup, manifest and marks included.
    pub objects: Vec<ObjectMeta>,
    /// Marks present in the store but not readable (too large, not JSON),
    /// with why: shown as such, so that a damaged note is not mistaken for
    /// no note at all.
    pub unreadable_marks: BTreeMap<String, String>,
    folder: BackupFolder,
}

impl CatalogEntry {
    /// The backup's folder in the store (the one its manifest was found in).
    pub fn folder(&self) -> &BackupFolder {
        &self.folder
    }

    /// The mark `name` as a [`Mark`], `Err` with why when it is present but
    /// unreadable, `None` when there is none. For display only: marks are
    /// unsigned and anyone who can write to the store can forge them.
    pub fn mark(&self, name: &str) -> Option<std::result::Result<Mark, String>> {
        if let Some(reason) = self.unreadable_marks.get(name) {
            return Some(Err(reason.clone()));
        }
        self.marks.get(name).map(|v| Mark::from_value(name, v))
    }
}

/// What a mark says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MarkResult {
    /// It worked.
    Ok,
    /// It failed (the mark's `reason` says why).
    Failed,
}

/// A mark, read and bounded: the fields a user is shown, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Mark {
    /// `checksums` or `full` (verify), `restored` (restore or mirror).
    pub mode: String,
    /// Whether it worked.
    pub result: MarkResult,
    /// When (RFC 3339 UTC, as re-rendered here, never the stored text).
    pub time: String,
    /// Why it failed, shortened to [`MAX_MARK_REASON`] characters with
    /// control characters removed (it is printed to terminals).
    pub reason: Option<String>,
    /// For a failure: when the last success before it was (RFC 3339 UTC).
    pub last_ok: Option<String>,
}

/// Longest failure reason a mark keeps (in characters).
pub const MAX_MARK_REASON: usize = 200;

/// Modes a mark may record; anything else makes the mark unreadable.
const MARK_MODES: [&str; 3] = ["checksums", "full", "restored"];

impl Mark {
    /// Interprets the stored JSON of mark `name`. Marks written before modes
    /// and results were recorded are read as successes (only successes were
    /// recorded then); a `restored` mark without a mode is a restore.
    ///
    /// # Errors
    /// Why the mark cannot be read (not an object, no valid time, unknown
    /// mode or result).
    pub fn from_value(name: &str, value: &Value) -> std::result::Result<Mark, String> {
        let obj = value.as_object().ok_or("not a JSON object")?;
        let time = obj
            .get("time")
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .ok_or("no valid time")?;
        let mode = match obj.get("mode") {
            Some(Value::String(m)) if MARK_MODES.contains(&m.as_str()) => m.clone(),
            None | Some(Value::Null) if name == RESTORED_MARK => "restored".to_owned(),
            _ => return Err("unknown or missing mode".into()),
        };
        let result = match obj.get("result") {
            None | Some(Value::Null) => MarkResult::Ok,
            Some(Value::String(r)) if r == "ok" => MarkResult::Ok,
            Some(Value::String(r)) if r == "failed" => MarkResult::Failed,
            _ => return Err("unknown result".into()),
        };
        let reason = obj.get("reason").and_then(Value::as_str).map(short_reason);
        let last_ok = obj
            .get("last_ok")
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| rfc3339(t.with_timezone(&Utc)));
        Ok(Mark {
            mode,
            result,
            time: rfc3339(time.with_timezone(&Utc)),
            reason,
            last_ok,
        })
    }
}

/// A reason fit to store and print: one line, no control characters, at
/// most [`MAX_MARK_REASON`] characters.
pub fn short_reason(reason: &str) -> String {
    let clean: String = reason.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let clean = clean.trim();
    if clean.chars().count() <= MAX_MARK_REASON {
        return clean.to_owned();
    }
    let mut short: String = clean.chars().take(MAX_MARK_REASON - 1).collect();
    short.push('…');
    short
}

/// A backup folder with a manifest that is not trusted, with the reason.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UntrustedBackup {
    /// The folder name.
    pub id: String,
    /// Why it is not trusted.
    pub reason: String,
    /// The manifest, for display only, when it is genuine (signed by a trusted
    /// signer); `None` for forged or damaged ones.
    pub manifest: Option<Manifest>,
    /// True when a trusted signer signed exactly these manifest bytes, for this
    /// folder and profile (a genuine backup refused for another reason, e.g.
    /// dated in the future): prune never removes those.
    pub genuine: bool,
    /// Its objects.
    pub objects: Vec<ObjectMeta>,
    /// When the newest of its objects was written.
    pub last_modified: DateTime<Utc>,
}

/// A backup folder without a manifest: a run that failed, was killed, or is
/// still going.
#[derive(Debug, Clone)]
#[non_exhaustive]
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
#[non_exhaustive]
pub struct Listing {
    /// The profile listed (`app/profile`).
    pub target: String,
    /// Trusted backups, oldest first.
    pub trusted: Vec<CatalogEntry>,
    /// Folders with a manifest that is not trusted, by id.
    pub untrusted: Vec<UntrustedBackup>,
    /// Folders without a manifest, by id.
    pub incomplete: Vec<IncompleteBackup>,
}

/// Which backup to pick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Pick<'a> {
    /// The newest trusted backup; refused when a newer folder is untrusted.
    #[default]
    Newest,
    /// The backup with this id, or the only one starting with it.
    Id(&'a str),
    /// The newest trusted backup at or before this time.
    At(DateTime<Utc>),
}

impl Listing {
    /// The newest trusted backup.
    pub fn newest(&self) -> Option<&CatalogEntry> {
        self.trusted.last()
    }

    /// Untrusted folders newer than the newest trusted backup: what a reader
    /// must not silently skip. Genuine backups refused only for their date
    /// (a host with a wrong clock) are listed, but do not block readers.
    pub fn untrusted_newer(&self) -> Vec<&UntrustedBackup> {
        let newest = self.newest().map(|e| e.manifest.id.as_str()).unwrap_or("");
        self.untrusted
            .iter()
            .filter(|u| !u.genuine && u.id.as_str() > newest)
            .collect()
    }

    /// Finds a trusted backup.
    ///
    /// # Errors
    /// [`Error::Untrusted`] when the backup asked for (by id, or the newest
    /// folder for [`Pick::Newest`]) is not trusted; [`Error::NoBackup`] when
    /// nothing matches or an id prefix is ambiguous.
    pub fn pick(&self, pick: Pick<'_>) -> Result<&CatalogEntry> {
        let no = |what: String| Error::NoBackup {
            target: self.target.clone(),
            what,
        };
        match pick {
            Pick::Newest => {
                if let Some(u) = self.untrusted_newer().last() {
                    return Err(Error::Untrusted {
                        id: u.id.clone(),
                        reason: format!("{} (it is the newest backup folder)", u.reason),
                    });
                }
                self.newest().ok_or_else(|| no("no trusted backup yet".into()))
            }
            Pick::Id(id) => {
                if let Some(u) = self.untrusted.iter().find(|u| u.id == id) {
                    return Err(Error::Untrusted {
                        id: u.id.clone(),
                        reason: u.reason.clone(),
                    });
                }
                let found: Vec<&CatalogEntry> = match self.trusted.iter().find(|e| e.manifest.id == id) {
                    Some(exact) => vec![exact],
                    None => self.trusted.iter().filter(|e| id_matches(&e.manifest.id, id)).collect(),
                };
                match found.as_slice() {
                    [one] => Ok(one),
                    [] => Err(no(format!("no trusted backup with id {id}"))),
                    many => Err(no(format!(
                        "id prefix {id} matches {} backups: {}",
                        many.len(),
                        many.iter()
                            .map(|e| e.manifest.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))),
                }
            }
            Pick::At(at) => self
                .trusted
                .iter()
                .rev()
                .find(|e| e.manifest.time <= at)
                .ok_or_else(|| no(format!("no trusted backup at or before {}", rfc3339(at)))),
        }
    }
}

/// Whether `query` names backup `id`: a prefix of the whole id
/// (`20261126T0201`), or of its random part after the time (`3f9a` for
/// `20261126T020100Z-3f9a`), the short form people copy from a listing.
fn id_matches(id: &str, query: &str) -> bool {
    if query.is_empty() {
        return false;
    }
    let short = id.rsplit_once('-').map_or("", |(_, random)| random);
    id.starts_with(query) || short.starts_with(query)
}

/// Lists the backups of one profile and sorts them into trusted, untrusted
/// and incomplete. Reads at most [`MAX_MANIFEST_SIZE`] per manifest, a few at
/// a time.
///
/// ```
/// # use std::sync::Arc;
/// # use backup_core::{testing::{test_keys, BytesSource}, *};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let keys = test_keys();
/// let store: DynStore = Arc::new(MemoryStore::new());
/// let options = BackupOptions::new("app", "files", "app/files");
/// run_backup(&store, &BytesSource::new(b"hello".to_vec()), keys.encryptor.clone(), &keys.signer, &options).await?;
///
/// let profile = ProfileRef::new("app", "files", "app/files");
/// let listing = list_backups(&store, &profile, &keys.trust).await?;
/// let newest = listing.pick(Pick::Newest)?;
/// let mut plaintext = Vec::new();
/// restore_to_writer(&store, keys.decryptor.clone(), newest, DATA_STREAM, &mut plaintext, "out".as_ref()).await?;
/// assert_eq!(plaintext, b"hello");
/// # Ok(()) }
/// ```
///
/// # Errors
/// The store's error when it cannot be listed.
pub async fn list_backups(store: &DynStore, profile: &ProfileRef, trust: &Trust) -> Result<Listing> {
    let prefix = profile.dest_prefix.trim_matches('/');
    let mut folders: BTreeMap<String, Vec<ObjectMeta>> = BTreeMap::new();
    for object in store.list(prefix).await? {
        let Some(rest) = object.key.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) else {
            continue;
        };
        if let Some((id, _)) = rest.split_once('/') {
            if is_backup_id(id) {
                folders.entry(id.to_owned()).or_default().push(object);
            }
        }
    }
    let mut listing = Listing {
        target: profile.target(),
        ..Listing::default()
    };
    let mut with_manifest = Vec::new();
    for (id, objects) in folders {
        let Ok(folder) = BackupFolder::new(prefix, &id) else {
            continue;
        };
        let last_modified = objects.iter().map(|o| o.modified).max().unwrap_or_default();
        if objects.iter().any(|o| o.key == folder.manifest_key()) {
            with_manifest.push((folder, objects, last_modified));
        } else {
            listing.incomplete.push(IncompleteBackup {
                id,
                objects,
                last_modified,
            });
        }
    }
    let now = Utc::now();
    let read: Vec<_> = stream::iter(with_manifest)
        .map(|(folder, objects, last_modified)| async move {
            let judged = judge(&**store, &folder, profile, trust, now).await;
            (folder, objects, last_modified, judged)
        })
        .buffered(MANIFESTS_IN_FLIGHT)
        .collect()
        .await;
    for (folder, objects, last_modified, judged) in read {
        match judged {
            Judged::Trusted(manifest, signed) => {
                let (marks, unreadable_marks) = read_marks(&**store, &folder, &objects).await;
                listing.trusted.push(CatalogEntry {
                    manifest: *manifest,
                    signed,
                    marks,
                    objects,
                    unreadable_marks,
                    folder,
                });
            }
            Judged::Untrusted {
                reason,
                manifest,
                genuine,
            } => listing.untrusted.push(UntrustedBackup {
                id: folder.id().to_owned(),
                reason,
                manifest: manifest.map(|m| *m),
                genuine,
                objects,
                last_modified,
            }),
            Judged::Failed(e) => return Err(e),
        }
    }
    listing
        .trusted
        .sort_by(|a, b| (a.manifest.time, &a.manifest.id).cmp(&(b.manifest.time, &b.manifest.id)));
    Ok(listing)
}

enum Judged {
    Trusted(Box<Manifest>, Signed),
    Untrusted {
        reason: String,
        manifest: Option<Box<Manifest>>,
        genuine: bool,
    },
    /// The store failed: the listing as a whole fails rather than calling a
    /// good backup untrusted.
    Failed(Error),
}

async fn judge(
    store: &dyn Store,
    folder: &BackupFolder,
    profile: &ProfileRef,
    trust: &Trust,
    now: DateTime<Utc>,
) -> Judged {
    // An untrusted manifest is kept (for display) only when a trusted signer
    // made it: a forged one could be parsed into far more memory than its
    // bytes, once per folder a store writer creates.
    let untrusted = |reason: String, manifest: Option<Manifest>, genuine: bool| Judged::Untrusted {
        reason,
        manifest: manifest.filter(|_| genuine).map(Box::new),
        genuine,
    };
    let bytes = match store.get_bytes(&folder.manifest_key(), MAX_MANIFEST_SIZE).await {
        Ok(bytes) => bytes,
        Err(Error::Format { reason, .. }) => return untrusted(format!("damaged: {reason}"), None, false),
        Err(Error::NotFound { .. }) => return untrusted("damaged: its manifest vanished".into(), None, false),
        // One unreadable object must not hide every other backup of the profile;
        // a store that fails as a whole (retryable) fails the listing.
        Err(e) if !e.is_retryable() => return untrusted(format!("unreadable: {}", e.report()), None, false),
        Err(e) => return Judged::Failed(e),
    };
    let signature = match store.get_bytes(&folder.signature_key(), MAX_SIGNATURE_SIZE).await {
        Ok(sig) => Some(sig),
        Err(Error::NotFound { .. }) => None,
        Err(Error::Format { reason, .. }) => return untrusted(format!("{SIGNATURE_NAME}: {reason}"), None, false),
        Err(e) if !e.is_retryable() => {
            return untrusted(format!("{SIGNATURE_NAME} unreadable: {}", e.report()), None, false)
        }
        Err(e) => return Judged::Failed(e),
    };
    let manifest = match Manifest::from_json(&folder.manifest_key(), &bytes) {
        Ok(m) => m,
        Err(e) => return untrusted(format!("damaged: {e}"), None, false),
    };
    let signed = match &signature {
        Some(sig) => match trust.signers.verify(&bytes, sig) {
            Ok(signer) => Signed::By(signer),
            Err(e) => return untrusted(format!("{SIGNATURE_NAME}: {e}"), Some(manifest), false),
        },
        None if trust.allow_unsigned => Signed::Unsigned,
        None => {
            return untrusted(
                format!("unsigned (no {SIGNATURE_NAME}) and unsigned backups are not allowed"),
                Some(manifest),
                false,
            )
        }
    };
    if let Err(reason) = manifest.check_place(folder.id(), profile, now) {
        let genuine = matches!(signed, Signed::By(_))
            && manifest.id == folder.id()
            && manifest.dest_prefix.trim_matches('/') == profile.dest_prefix.trim_matches('/')
            && manifest.app == profile.app
            && manifest.profile == profile.profile;
        return untrusted(reason, Some(manifest), genuine);
    }
    Judged::Trusted(Box::new(manifest), signed)
}

/// Reads the known marks: `(name → JSON, name → why unreadable)`.
async fn read_marks(
    store: &dyn Store,
    folder: &BackupFolder,
    objects: &[ObjectMeta],
) -> (BTreeMap<String, Value>, BTreeMap<String, String>) {
    let mut marks = BTreeMap::new();
    let mut unreadable = BTreeMap::new();
    // Only the marks this crate writes are read: a store writer could add
    // any number of others.
    for name in [VERIFIED_MARK, RESTORED_MARK] {
        let key = folder.mark_key(name);
        if !objects.iter().any(|o| o.key == key) {
            continue;
        }
        // A damaged or oversized mark must not hide the backup: it is only a
        // note, shown as unreadable. The reason is ours, never the mark's text.
        match store.get_bytes(&key, MAX_MARK_SIZE).await {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(value) => {
                    marks.insert(name.to_owned(), value);
                }
                Err(_) => {
                    unreadable.insert(name.to_owned(), "not JSON".to_owned());
                }
            },
            Err(Error::Format { .. }) => {
                unreadable.insert(name.to_owned(), format!("larger than {} KiB", MAX_MARK_SIZE / 1024));
            }
            Err(e) => {
                unreadable.insert(name.to_owned(), short_reason(&e.report()));
            }
        }
    }
    (marks, unreadable)
}

/// Records a mark (`verified`, `restored`) on a backup, replacing an older one
/// of the same name.
///
/// # Errors
/// The store's error.
pub async fn write_mark(store: &DynStore, folder: &BackupFolder, name: &str, value: &Value) -> Result<()> {
    crate::layout::check_stream_name(name).map_err(|reason| Error::config("mark name", reason))?;
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    store.put(&folder.mark_key(name), bytes::Bytes::from(body)).await
}

/// Removes a backup folder: its manifest first, so that a removal cut short
/// leaves an incomplete backup (never listed, cleaned later), never a listed
/// backup with missing chunks. Only `objects` inside the folder are touched.
///
/// # Errors
/// The store's error; what was not removed is removed by a later prune.
pub async fn remove_backup(store: &DynStore, folder: &BackupFolder, objects: &[ObjectMeta]) -> Result<()> {
    let inside = format!("{}/", folder.key());
    store.delete(&folder.manifest_key()).await?;
    let rest: Vec<&ObjectMeta> = objects
        .iter()
        .filter(|o| o.key.starts_with(&inside) && o.key != folder.manifest_key())
        .collect();
    let results: Vec<Result<()>> = stream::iter(rest)
        .map(|o| store.delete(&o.key))
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ids_match_by_prefix_or_by_their_random_part() {
        let id = "20261126T020100Z-3f9a";
        assert!(id_matches(id, "20261126T02"));
        assert!(id_matches(id, "3f9"));
        assert!(id_matches(id, id));
        assert!(!id_matches(id, ""));
        assert!(!id_matches(id, "f9a"), "the random part matches from its start only");
        assert!(!id_matches(id, "20261127"));
    }

    #[test]
    fn marks_written_before_results_existed_read_as_successes() {
        let old_verify = json!({"time": "2026-11-26T02:01:00Z", "mode": "checksums", "chunks": 3});
        let m = Mark::from_value(VERIFIED_MARK, &old_verify).unwrap();
        assert_eq!((m.mode.as_str(), m.result), ("checksums", MarkResult::Ok));
        // Restore and mirror marks never had a mode.
        let mirror = json!({"time": "2026-11-26T02:01:00+01:00", "kind": "mirror", "to": "shop_test"});
        let m = Mark::from_value(RESTORED_MARK, &mirror).unwrap();
        assert_eq!((m.mode.as_str(), m.result), ("restored", MarkResult::Ok));
        assert_eq!(
            m.time, "2026-11-26T01:01:00Z",
            "re-rendered in UTC, not the stored text"
        );
    }

    #[test]
    fn malformed_marks_are_refused_with_a_reason() {
        for (name, bad) in [
            (VERIFIED_MARK, json!([1, 2])),
            (VERIFIED_MARK, json!({"mode": "full"})),
            (VERIFIED_MARK, json!({"time": "yesterday", "mode": "full"})),
            (VERIFIED_MARK, json!({"time": "2026-11-26T02:01:00Z"})),
            (VERIFIED_MARK, json!({"time": "2026-11-26T02:01:00Z", "mode": "deep"})),
            (
                RESTORED_MARK,
                json!({"time": "2026-11-26T02:01:00Z", "result": "maybe"}),
            ),
        ] {
            assert!(Mark::from_value(name, &bad).is_err(), "{name}: {bad}");
        }
    }

    #[test]
    fn reasons_are_one_short_line() {
        let long = format!("\u{1b}[31mred\nline{}", "é".repeat(500));
        let short = short_reason(&long);
        assert_eq!(short.chars().count(), MAX_MARK_REASON);
        assert!(short.ends_with('…') && !short.chars().any(char::is_control), "{short}");
        assert_eq!(short_reason("  chunk damaged \n"), "chunk damaged");
    }
}
