//! Verification: is a trusted backup restorable?
//!
//! Without a secret key, every chunk is downloaded and its size and SHA-256
//! compared with the signed manifest. With one, every chunk is also
//! decrypted (MDC checked) and decompressed, and the data stream is handed to
//! a [`StreamCheck`] of the backup's kind (a tar reader, `pg_restore --list`).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::Serialize;
use serde_json::json;

use crate::catalog::{short_reason, write_mark, CatalogEntry, MarkResult, VERIFIED_MARK};
use crate::encrypt::Decryptor;
use crate::error::Result;
use crate::manifest::rfc3339;
use crate::restore::{chunk_keys, fetch_checked, restore_stream, DATA_STREAM};
use crate::store::{ByteStream, DynStore};

/// Reads a backup's data stream to the end and checks its structure.
#[async_trait]
pub trait StreamCheck: Send + Sync {
    /// Consumes `data` and says what was found, e.g. `1200 files, 3.1 GiB`.
    ///
    /// # Errors
    /// The stream's error, or what is wrong with the structure.
    async fn check(&self, data: ByteStream, entry: &CatalogEntry) -> Result<String>;
}

/// How deep a verification went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum VerifyMode {
    /// Stored bytes checked against the manifest's sizes and SHA-256 only.
    Checksums,
    /// Also decrypted, decompressed and read.
    Full,
}

/// What a verification found.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The backup id.
    pub id: String,
    /// How deep it went.
    pub mode: VerifyMode,
    /// Chunks checked.
    pub chunks: usize,
    /// Plaintext bytes read (full mode).
    pub plaintext_bytes: Option<u64>,
    /// What the structure check found (full mode with a check).
    pub structure: Option<String>,
    /// When it finished.
    pub time: DateTime<Utc>,
}

/// Verifies one trusted backup: checksums only without `decryptor`, fully
/// with one (and `check` reading the data stream, when given). Streams;
/// memory stays bounded by the chunks in flight.
///
/// # Errors
/// The first integrity, decryption, structure or store error.
pub async fn verify_backup(
    store: &DynStore,
    entry: &CatalogEntry,
    decryptor: Option<Arc<dyn Decryptor>>,
    check: Option<&dyn StreamCheck>,
) -> Result<VerifyReport> {
    let m = &entry.manifest;
    let Some(decryptor) = decryptor else {
        for (key, chunk) in chunk_keys(entry)? {
            fetch_checked(store, &key, chunk).await?;
        }
        return Ok(VerifyReport {
            id: m.id.clone(),
            mode: VerifyMode::Checksums,
            chunks: m.chunks.len(),
            plaintext_bytes: None,
            structure: None,
            time: Utc::now(),
        });
    };
    let parallelism = crate::pipeline::default_parallelism();
    let mut plaintext = 0u64;
    let mut structure = None;
    for stream in m.streams() {
        let data = restore_stream(store, Arc::clone(&decryptor), entry, &stream, parallelism)?;
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = {
            let counter = Arc::clone(&counter);
            data.inspect_ok(move |b| {
                counter.fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
            })
        };
        match check {
            Some(check) if stream == DATA_STREAM => {
                structure = Some(check.check(Box::pin(counted), entry).await?);
            }
            _ => counted.try_for_each(|_| async { Ok(()) }).await?,
        }
        plaintext += counter.load(std::sync::atomic::Ordering::Relaxed);
    }
    Ok(VerifyReport {
        id: m.id.clone(),
        mode: VerifyMode::Full,
        chunks: m.chunks.len(),
        plaintext_bytes: Some(plaintext),
        structure,
        time: Utc::now(),
    })
}

/// Records a successful verification as the backup's `verified` mark
/// (`"result": "ok"`), replacing the previous one: the newest verify wins.
///
/// # Errors
/// The store's error.
pub async fn record_verified(store: &DynStore, entry: &CatalogEntry, report: &VerifyReport) -> Result<()> {
    let mark = json!({
        "time": rfc3339(report.time),
        "mode": report.mode,
        "result": "ok",
        "reason": null,
        "chunks": report.chunks,
        "plaintext_bytes": report.plaintext_bytes,
        "detail": report.structure,
    });
    write_mark(store, entry.folder(), VERIFIED_MARK, &mark).await
}

/// Records a failed verification as the backup's `verified` mark
/// (`"result": "failed"` with a short reason). It replaces an earlier
/// success on purpose: a backup that no longer verifies must not go on
/// showing as verified. The earlier success's time is kept as `last_ok`.
///
/// # Errors
/// The store's error.
pub async fn record_verify_failed(
    store: &DynStore,
    entry: &CatalogEntry,
    mode: VerifyMode,
    reason: &str,
) -> Result<()> {
    let last_ok = match entry.mark(VERIFIED_MARK) {
        Some(Ok(m)) if m.result == MarkResult::Ok => Some(m.time),
        Some(Ok(m)) => m.last_ok,
        _ => None,
    };
    let mark = json!({
        "time": rfc3339(Utc::now()),
        "mode": mode,
        "result": "failed",
        "reason": short_reason(reason),
        "last_ok": last_ok,
    });
    write_mark(store, entry.folder(), VERIFIED_MARK, &mark).await
}
