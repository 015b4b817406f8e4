//! Copy: trusted backups from one store to another (an off-site second copy).
//!
//! Only trusted backups are copied, and only bytes that match them: the
//! manifest and its signature are read again and checked against the trust
//! (so what lands is exactly what was verified, never what a store writer
//! swapped in since the listing), and every object is checked against the
//! manifest's size and SHA-256 before it is written. The layout is the
//! backup's own: objects first (a few at a time, each bounded by its
//! manifest size), then `manifest.json.sig`, then `manifest.json` — the
//! destination's commit point, byte-identical to the source's, so its
//! signature verifies there too.
//!
//! A copy is idempotent and resumable: a backup whose manifest is already at
//! the destination with the same bytes is skipped without reading its
//! chunks; an object already there with the right size and SHA-256 (from an
//! earlier, interrupted copy) is not sent again. Marks (`verified`,
//! `restored`) are not copied: they are unsigned notes about one store.
//!
//! While it writes, the copy holds the destination's profile lease
//! ([`crate::lease::PROFILE_LEASE`]): a prune of the destination would
//! otherwise see a half-copied backup as an incomplete one (and remove it
//! once older than its grace period), and two copies into one store would
//! race. The source is only read and is not leased.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::catalog::{CatalogEntry, Listing, Pick, Signed, Trust};
use crate::error::{Error, Result};
use crate::layout::BackupFolder;
use crate::lease::{self, DEFAULT_LEASE_TTL, PROFILE_LEASE};
use crate::manifest::{ChunkRecord, Manifest, MAX_MANIFEST_SIZE};
use crate::restore::fetch_checked;
use crate::store::{DynStore, Store, StoreExt};

/// Objects copied at once by default: enough to hide a store's latency,
/// few enough that memory stays at a few chunks.
pub const DEFAULT_COPY_PARALLELISM: usize = 4;

/// Largest signature read (as the catalog reads it).
const MAX_SIGNATURE_SIZE: u64 = 64 * 1024;

/// How a copy runs.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    parallelism: usize,
    lease_ttl: Duration,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions::new()
    }
}

impl CopyOptions {
    /// [`DEFAULT_COPY_PARALLELISM`] objects at once, the default lease time.
    pub fn new() -> Self {
        CopyOptions {
            parallelism: DEFAULT_COPY_PARALLELISM,
            lease_ttl: DEFAULT_LEASE_TTL,
        }
    }

    /// Objects copied at once (at least 1): memory is about this many chunks.
    #[must_use]
    pub fn with_parallelism(mut self, parallelism: usize) -> Self {
        self.parallelism = parallelism.max(1);
        self
    }

    /// How long the destination's lease holds without renewal.
    #[must_use]
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }
}

/// Which backups of a profile to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Selection<'a> {
    /// Every trusted backup; every untrusted folder is reported as not copied.
    All,
    /// The newest `n` trusted backups; untrusted folders at least as new as
    /// the oldest of them are reported as not copied.
    Newest(usize),
    /// The backup with this id (or unique id prefix).
    Id(&'a str),
}

/// What happened to one backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CopyStatus {
    /// Now complete at the destination (some of it may have been there).
    Copied,
    /// Already complete at the destination: nothing sent.
    Skipped,
    /// Not copied: see the reason.
    Failed,
}

/// One backup's copy.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct CopyOutcome {
    /// The backup id (folder name).
    pub id: String,
    /// What happened.
    pub status: CopyStatus,
    /// Why it failed.
    pub reason: Option<String>,
    /// Objects written to the destination (chunks, signature, manifest).
    pub objects_sent: usize,
    /// Objects found complete at the destination and not sent again.
    pub objects_present: usize,
    /// Bytes written to the destination.
    pub bytes_sent: u64,
}

impl CopyOutcome {
    fn failed(id: &str, reason: String) -> Self {
        CopyOutcome {
            id: id.to_owned(),
            status: CopyStatus::Failed,
            reason: Some(reason),
            objects_sent: 0,
            objects_present: 0,
            bytes_sent: 0,
        }
    }
}

/// The copy of one profile: each selected backup, oldest first.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct CopyReport {
    /// `app/profile`.
    pub target: String,
    /// Where the backups went ([`Store::location`]).
    pub to: String,
    /// One per backup looked at.
    pub backups: Vec<CopyOutcome>,
}

impl CopyReport {
    /// Whether any backup was not copied.
    pub fn has_failures(&self) -> bool {
        self.backups.iter().any(|b| b.status == CopyStatus::Failed)
    }
}

/// Copies the `selection` of `listing` (a listing of `from` made with
/// `trust`) to the same place in `to`, under `to`'s profile lease.
///
/// A backup that cannot be copied (untrusted, tampered with, changed since
/// the listing, a different manifest at the destination, a store failure)
/// is reported as [`CopyStatus::Failed`] with the reason and the copy goes
/// on with the next one. Memory stays at about `parallelism` chunks.
///
/// # Errors
/// [`Error::Busy`] when another run holds the destination's lease,
/// [`Error::NoBackup`] when `selection` matches nothing, the destination's
/// errors when it cannot be leased.
pub async fn copy_backups(
    from: &DynStore,
    to: &DynStore,
    listing: &Listing,
    dest_prefix: &str,
    trust: &Trust,
    selection: Selection<'_>,
    options: &CopyOptions,
) -> Result<CopyReport> {
    let (entries, refused) = select(listing, selection)?;
    let mut report = CopyReport {
        target: listing.target.clone(),
        to: to.location(),
        backups: Vec::new(),
    };
    report.backups.extend(refused);
    if entries.is_empty() {
        return Ok(report);
    }
    let lease = lease::acquire(to, dest_prefix, PROFILE_LEASE, options.lease_ttl).await?;
    for entry in entries {
        let outcome = match copy_one(from, to, entry, trust, options.parallelism).await {
            Ok(outcome) => outcome,
            Err(e) => CopyOutcome::failed(&entry.manifest.id, e.report()),
        };
        match outcome.status {
            CopyStatus::Failed => tracing::warn!(
                target_profile = %report.target,
                id = %outcome.id,
                reason = outcome.reason.as_deref().unwrap_or_default(),
                "backup not copied"
            ),
            status => tracing::info!(
                target_profile = %report.target,
                id = %outcome.id,
                ?status,
                bytes = outcome.bytes_sent,
                "backup copied"
            ),
        }
        report.backups.push(outcome);
    }
    lease.release().await;
    report.backups.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(report)
}

/// The trusted backups to copy, oldest first, and the untrusted folders
/// the selection covers (reported as failed).
fn select<'a>(listing: &'a Listing, selection: Selection<'_>) -> Result<(Vec<&'a CatalogEntry>, Vec<CopyOutcome>)> {
    let not_trusted = |id: &str, reason: &str| CopyOutcome::failed(id, format!("not trusted: {reason}"));
    match selection {
        Selection::All => Ok((
            listing.trusted.iter().collect(),
            listing
                .untrusted
                .iter()
                .map(|u| not_trusted(&u.id, &u.reason))
                .collect(),
        )),
        Selection::Newest(n) => {
            let skip = listing.trusted.len().saturating_sub(n);
            let chosen: Vec<&CatalogEntry> = listing.trusted.iter().skip(skip).collect();
            let oldest = chosen.first().map(|e| e.manifest.id.as_str()).unwrap_or("");
            let refused = listing
                .untrusted
                .iter()
                .filter(|u| u.id.as_str() >= oldest)
                .map(|u| not_trusted(&u.id, &u.reason))
                .collect();
            Ok((chosen, refused))
        }
        Selection::Id(id) => match listing.pick(Pick::Id(id)) {
            Ok(entry) => Ok((vec![entry], Vec::new())),
            Err(Error::Untrusted { id, reason }) => Ok((Vec::new(), vec![not_trusted(&id, &reason)])),
            Err(e) => Err(e),
        },
    }
}

/// The manifest and signature bytes of a trusted backup, read again and
/// checked to be the ones the listing trusted.
struct Sealed {
    manifest: Bytes,
    signature: Option<Bytes>,
    parsed: Manifest,
}

async fn read_sealed(from: &dyn Store, entry: &CatalogEntry, trust: &Trust) -> Result<Sealed> {
    let folder = entry.folder();
    let changed = |reason: String| Error::Untrusted {
        id: folder.id().to_owned(),
        reason: format!("changed in the source store since it was listed: {reason}"),
    };
    let manifest = from.get_bytes(&folder.manifest_key(), MAX_MANIFEST_SIZE).await?;
    let signature = match &entry.signed {
        Signed::By(_) => {
            let sig = match from.get_bytes(&folder.signature_key(), MAX_SIGNATURE_SIZE).await {
                Ok(sig) => sig,
                Err(Error::NotFound { .. }) => return Err(changed("its signature is gone".into())),
                Err(e) => return Err(e),
            };
            trust
                .signers()
                .verify(&manifest, &sig)
                .map_err(|e| changed(format!("signature: {e}")))?;
            Some(sig)
        }
        // Trusted unsigned (allowed by the caller): copied as it was
        // trusted, without a signature that appeared since and was never checked.
        _ => None,
    };
    let parsed = Manifest::from_json(&folder.manifest_key(), &manifest)?;
    if parsed != entry.manifest {
        return Err(changed("its manifest differs".into()));
    }
    Ok(Sealed {
        manifest,
        signature,
        parsed,
    })
}

async fn copy_one(
    from: &DynStore,
    to: &DynStore,
    entry: &CatalogEntry,
    trust: &Trust,
    parallelism: usize,
) -> Result<CopyOutcome> {
    let folder = entry.folder();
    let id = folder.id();
    let sealed = read_sealed(&**from, entry, trust).await?;
    let mut outcome = CopyOutcome {
        id: id.to_owned(),
        status: CopyStatus::Copied,
        reason: None,
        objects_sent: 0,
        objects_present: 0,
        bytes_sent: 0,
    };
    match to.get_bytes(&folder.manifest_key(), MAX_MANIFEST_SIZE).await {
        Ok(there) if there == sealed.manifest => {
            if same_signature(&**to, folder, sealed.signature.as_ref()).await? {
                outcome.status = CopyStatus::Skipped;
                outcome.objects_present = sealed.parsed.chunks.len() + 2;
                return Ok(outcome);
            }
        }
        Ok(_) => {
            return Ok(CopyOutcome::failed(
                id,
                format!(
                    "the destination already holds a different {} for this id; it was left untouched",
                    crate::layout::MANIFEST_NAME
                ),
            ))
        }
        Err(Error::NotFound { .. }) => {}
        Err(Error::Format { .. }) => {
            return Ok(CopyOutcome::failed(
                id,
                "the destination holds an oversized manifest for this id; it was left untouched".into(),
            ))
        }
        Err(e) => return Err(e),
    }
    // What an earlier copy left: sizes by key, so that a kept object is
    // checked with one read and no write.
    let present: BTreeMap<String, u64> = to
        .list(&folder.key())
        .await?
        .into_iter()
        .map(|o| (o.key, o.size))
        .collect();
    let mut work = Vec::new();
    for chunk in &sealed.parsed.chunks {
        let key = folder.chunk_key(&chunk.name)?;
        let there = present.get(&key) == Some(&chunk.size);
        work.push((key, chunk, there));
    }
    let results: Vec<Result<Option<u64>>> = stream::iter(work)
        .map(|(key, chunk, there)| copy_object(from, to, key, chunk, there))
        .buffer_unordered(parallelism)
        .collect()
        .await;
    let mut first_error = None;
    for result in results {
        match result {
            Ok(Some(bytes)) => {
                outcome.objects_sent += 1;
                outcome.bytes_sent += bytes;
            }
            Ok(None) => outcome.objects_present += 1,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        if matches!(e, Error::Integrity { .. }) {
            // The source is damaged: no later copy can finish this backup,
            // so what was copied of it goes (it has no manifest there).
            discard_partial(&**to, folder).await;
        }
        return Err(e);
    }
    if let Some(sig) = &sealed.signature {
        to.put(&folder.signature_key(), sig.clone()).await?;
        outcome.objects_sent += 1;
        outcome.bytes_sent += sig.len() as u64;
    }
    // Last: the commit point at the destination.
    to.put(&folder.manifest_key(), sealed.manifest.clone()).await?;
    outcome.objects_sent += 1;
    outcome.bytes_sent += sealed.manifest.len() as u64;
    Ok(outcome)
}

/// Whether the destination's signature is `expected` (both absent counts).
async fn same_signature(to: &dyn Store, folder: &BackupFolder, expected: Option<&Bytes>) -> Result<bool> {
    match to.get_bytes(&folder.signature_key(), MAX_SIGNATURE_SIZE).await {
        Ok(there) => Ok(expected == Some(&there)),
        Err(Error::NotFound { .. }) => Ok(expected.is_none()),
        Err(Error::Format { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Copies one object checked against its manifest record; `Ok(None)` when
/// the destination had it already (`there`: with the right size; its
/// SHA-256 is checked here).
async fn copy_object(
    from: &DynStore,
    to: &DynStore,
    key: String,
    chunk: &ChunkRecord,
    there: bool,
) -> Result<Option<u64>> {
    if there && matches_record(&**to, &key, chunk).await? {
        return Ok(None);
    }
    let bytes = fetch_checked(from, &key, chunk).await?;
    let size = bytes.len() as u64;
    to.put(&key, bytes).await?;
    Ok(Some(size))
}

/// Streams an object and says whether it has the record's size and SHA-256.
async fn matches_record(store: &dyn Store, key: &str, chunk: &ChunkRecord) -> Result<bool> {
    let mut stream = match store.get(key).await {
        Ok(stream) => stream,
        Err(Error::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(piece) = stream.try_next().await? {
        size += piece.len() as u64;
        if size > chunk.size {
            return Ok(false);
        }
        hasher.update(&piece);
    }
    Ok(size == chunk.size && hex::encode(hasher.finalize()) == chunk.sha256)
}

/// Removes what a copy put in `folder` at the destination (no manifest is
/// there: it is written last). Failures are only logged: prune removes an
/// incomplete folder after its grace period anyway.
async fn discard_partial(to: &dyn Store, folder: &BackupFolder) {
    let objects = match to.list(&folder.key()).await {
        Ok(objects) => objects,
        Err(e) => {
            tracing::warn!(folder = %folder.key(), error = %e.report(), "could not list a partial copy to remove it");
            return;
        }
    };
    if objects.iter().any(|o| o.key == folder.manifest_key()) {
        return;
    }
    for o in objects {
        if let Err(e) = to.delete(&o.key).await {
            tracing::warn!(key = %o.key, error = %e.report(), "could not remove part of a partial copy");
        }
    }
}
