//! Creating an object only when it is absent, on services without a
//! conditional PUT (Swift 2.30's S3 API answers `If-None-Match: *` with 501).
//!
//! Each writer puts its own claim `KEY.claims/<random>`, then lists the
//! claims. A writer that sees only its own claim holds the key: it looks
//! whether the object exists, creates it when not, and removes its claim.
//! A writer that sees another live claim removes its own and tries again
//! a little later. Two writers cannot both see only their own claim as long
//! as a listing shows every object whose PUT returned before the listing
//! began (S3 and Swift's listings do, unless a container server is failing),
//! since each lists only after its own claim is stored. Claims older than
//! [`CLAIM_TTL`] (by the service's clock) belong to writers that died and are
//! ignored, and a writer gives up before its own claim gets that old.

use std::time::{Duration, Instant};

use backup_core::store::{Store, StoreExt};
use backup_core::{Error, Result};
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::error::CloudError;
use crate::store::CloudStore;

/// Age after which a claim counts as left behind by a dead writer.
const CLAIM_TTL: Duration = Duration::from_secs(60);
/// Rounds of claim, list, back off before giving up as contended.
const ROUNDS: u32 = 6;
/// The folder of `key`'s claims, and what marks a claim's key.
const CLAIMS: &str = ".claims";

fn claims_of(key: &str) -> String {
    format!("{key}{CLAIMS}")
}

/// Creates `key` with `data` if no object is there: `Ok(true)` when created,
/// `Ok(false)` when one exists.
pub(crate) async fn create(store: &CloudStore, key: &str, data: Bytes) -> Result<bool> {
    let folder = claims_of(key);
    for round in 0..ROUNDS {
        if store.exists(key).await? {
            return Ok(false);
        }
        let mine = format!("{folder}/{:016x}", rand_u64());
        let started = Instant::now();
        store.put(&mine, Bytes::new()).await?;
        let outcome = holding(store, key, &folder, &mine, data.clone(), started).await;
        // Removed whatever happened: a claim left behind blocks others for CLAIM_TTL.
        let removed = store.delete(&mine).await;
        match outcome? {
            Some(created) => {
                removed?;
                return Ok(created);
            }
            None => {
                // Another writer's claim: wait a random while, growing, and retry.
                let wait = 50 + rand_u64() % (100 << round.min(4));
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
        }
    }
    Err(store.cloud_error(CloudError::Contended {
        key: key.to_owned(),
        location: store.location(),
    }))
}

/// With the claim `mine` stored: `Some(created)` when it is the only live
/// claim (and the object was created or found), `None` when another one is there.
async fn holding(
    store: &CloudStore,
    key: &str,
    folder: &str,
    mine: &str,
    data: Bytes,
    started: Instant,
) -> Result<Option<bool>> {
    let claims = store.list(folder).await?;
    let Some(my_time) = claims.iter().find(|c| c.key == mine).map(|c| c.modified) else {
        // Our own claim not listed: listings lag here, so nothing is safe.
        return Err(Error::Backend {
            backend: store.backend(),
            retryable: true,
            source: format!("{} does not list {mine} right after writing it", store.location()).into(),
        });
    };
    let ttl = chrono::Duration::from_std(CLAIM_TTL).unwrap_or(chrono::Duration::seconds(60));
    let live_others = claims
        .iter()
        .filter(|c| c.key != mine && c.modified > my_time - ttl)
        .count();
    if live_others > 0 {
        return Ok(None);
    }
    if store.exists(key).await? {
        return Ok(Some(false));
    }
    let Some(left) = (CLAIM_TTL / 2).checked_sub(started.elapsed()) else {
        // Too slow: others may soon take our claim for a dead writer's.
        return Ok(None);
    };
    // Without retries and within the claim's life: a write that landed after
    // our claim aged out could overwrite another writer's object.
    store.put_once_within(key, data.clone(), left).await?;
    // Read back: only our own bytes there mean we created it.
    let there = store.get_bytes(key, data.len() as u64 + 1).await?;
    Ok(Some(there == data))
}

/// Removes claims under `prefix` older than `older_than`: what writers
/// killed while holding one left.
pub(crate) async fn sweep(store: &CloudStore, prefix: &str, older_than: DateTime<Utc>) -> Result<u64> {
    let mut removed = 0;
    for object in store.list(prefix).await? {
        let is_claim = object
            .key
            .rsplit_once('/')
            .is_some_and(|(folder, _)| folder.ends_with(CLAIMS));
        if is_claim && object.modified < older_than {
            store.delete(&object.key).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // A fresh RandomState is seeded from the OS: enough for claim names and jitter.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id()));
    h.finish()
}
