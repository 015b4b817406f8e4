//! Leases in the store: the per-profile lock that also holds between hosts
//! sharing one store. A lease is an object created only if absent, renewed
//! while the run lasts, and taken over once it expired (its holder died).
//!
//! Backups and prunes of a profile take the `profile` lease, mirrors the
//! `mirror` lease; a run of another program that takes the same lease through
//! this module is kept apart from them. Renewal runs on the tokio runtime.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::layout::{check_stream_name, lease_key};
use crate::manifest::rfc3339;
use crate::store::{DynStore, StoreExt};

/// The lease backups and prunes of a profile take.
pub const PROFILE_LEASE: &str = "profile";

/// The lease mirrors of a profile take.
pub const MIRROR_LEASE: &str = "mirror";

/// Default time a lease holds without renewal.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(600);

/// Largest lease object read: a holder is a few hundred bytes.
const MAX_LEASE_SIZE: u64 = 16 * 1024;

/// What a lease object says.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Holder {
    host: String,
    pid: u32,
    started: DateTime<Utc>,
    expires: DateTime<Utc>,
    token: String,
}

/// A held lease; [`Lease::release`] gives it back. Dropping it stops the
/// renewal, and the lease then expires by itself.
#[derive(Debug)]
pub struct Lease {
    store: DynStore,
    key: String,
    token: String,
    renew: JoinHandle<()>,
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// Takes the lease `what` ([`PROFILE_LEASE`], [`MIRROR_LEASE`]) of the profile
/// stored under `prefix`, valid for `ttl` and renewed every quarter of it.
/// An expired lease, or one whose holder on this host is gone, is taken over.
///
/// # Errors
/// [`Error::Busy`] naming the holder's host, pid and times; [`Error::Config`]
/// for a `what` that is not a plain name; store errors.
pub async fn acquire(store: &DynStore, prefix: &str, what: &str, ttl: Duration) -> Result<Lease> {
    check_stream_name(what).map_err(|reason| Error::config("lease name", reason))?;
    let ttl = ttl.max(Duration::from_secs(4));
    let key = lease_key(prefix, what);
    let ttl_chrono = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(10));
    let token = format!("{:016x}", rand::random::<u64>());
    let now = Utc::now();
    let holder = Holder {
        host: host(),
        pid: std::process::id(),
        started: now,
        expires: now + ttl_chrono,
        token: token.clone(),
    };
    for _ in 0..2 {
        if store
            .put_if_absent(&key, Bytes::from(serde_json::to_vec(&holder).unwrap_or_default()))
            .await?
        {
            let renew = tokio::spawn(renew(store.clone(), key.clone(), holder.clone(), ttl));
            return Ok(Lease {
                store: store.clone(),
                key,
                token,
                renew,
            });
        }
        // A holder is read from the store: bounded, and only shown, never used as a path.
        let existing: Option<Holder> = match store.get_bytes(&key, MAX_LEASE_SIZE).await {
            Ok(bytes) => serde_json::from_slice(&bytes).ok(),
            Err(Error::NotFound { .. }) => continue,
            Err(Error::Format { .. }) => None,
            Err(e) => return Err(e),
        };
        match existing {
            Some(h) if h.expires > Utc::now() && !died_here(&h) => {
                return Err(Error::Busy {
                    what: format!("{what} lease of {prefix}"),
                    holder: format!(
                        "host {:?} pid {} since {} ({} in {}), valid until {} unless renewed",
                        h.host,
                        h.pid,
                        rfc3339(h.started),
                        key,
                        store.location(),
                        rfc3339(h.expires),
                    ),
                });
            }
            stale => {
                let who = stale
                    .map(|h| format!("host {} pid {}", h.host, h.pid))
                    .unwrap_or_else(|| "an unreadable holder".into());
                tracing::warn!(lease = %key, %who, "taking over an expired lease (its holder stopped renewing it)");
                store.delete(&key).await?;
            }
        }
    }
    Err(Error::Busy {
        what: format!("{what} lease of {prefix}"),
        holder: "another run that took it at the same moment".into(),
    })
}

/// A holder on this host whose process is gone: stale without waiting for expiry.
fn died_here(h: &Holder) -> bool {
    h.host == host() && !std::path::Path::new(&format!("/proc/{}", h.pid)).exists()
}

async fn renew(store: DynStore, key: String, mut holder: Holder, ttl: Duration) {
    let ttl_chrono = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(10));
    loop {
        tokio::time::sleep(ttl / 4).await;
        holder.expires = Utc::now() + ttl_chrono;
        match serde_json::to_vec(&holder) {
            Ok(body) => {
                if let Err(e) = store.put(&key, Bytes::from(body)).await {
                    tracing::warn!(lease = %key, error = %e.report(), "could not renew the lease");
                }
            }
            Err(_) => return,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renew.abort();
    }
}

impl Lease {
    /// The lease's key in the store.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Stops renewing and removes the lease if it is still ours.
    pub async fn release(self) {
        self.renew.abort();
        let ours = match self.store.get_bytes(&self.key, MAX_LEASE_SIZE).await {
            Ok(bytes) => serde_json::from_slice::<Holder>(&bytes).is_ok_and(|h| h.token == self.token),
            Err(_) => false,
        };
        if ours {
            if let Err(e) = self.store.delete(&self.key).await {
                tracing::warn!(lease = %self.key, error = %e.report(), "could not remove the lease; it expires by itself");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::memory::MemoryStore;

    fn store() -> DynStore {
        Arc::new(MemoryStore::new())
    }

    #[tokio::test]
    async fn a_held_lease_keeps_others_out_until_released() {
        let store = store();
        let lease = acquire(&store, "app/db", PROFILE_LEASE, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(lease.key(), "app/db/locks/profile.json");
        let err = acquire(&store, "app/db", PROFILE_LEASE, Duration::from_secs(60)).await;
        assert!(matches!(err, Err(Error::Busy { .. })), "{err:?}");
        // Another lease of the same profile is independent.
        let mirror = acquire(&store, "app/db", MIRROR_LEASE, Duration::from_secs(60))
            .await
            .unwrap();
        lease.release().await;
        assert!(!store.exists("app/db/locks/profile.json").await.unwrap());
        let again = acquire(&store, "app/db", PROFILE_LEASE, Duration::from_secs(60))
            .await
            .unwrap();
        again.release().await;
        mirror.release().await;
    }

    #[tokio::test]
    async fn an_expired_or_unreadable_lease_is_taken_over() {
        let store = store();
        let expired = Holder {
            host: "elsewhere".into(),
            pid: 1,
            started: Utc::now() - chrono::Duration::hours(2),
            expires: Utc::now() - chrono::Duration::hours(1),
            token: "x".into(),
        };
        let key = lease_key("app/db", PROFILE_LEASE);
        store
            .put(&key, Bytes::from(serde_json::to_vec(&expired).unwrap()))
            .await
            .unwrap();
        let lease = acquire(&store, "app/db", PROFILE_LEASE, Duration::from_secs(60))
            .await
            .unwrap();
        lease.release().await;
        store.put(&key, Bytes::from_static(b"not json")).await.unwrap();
        let lease = acquire(&store, "app/db", PROFILE_LEASE, Duration::from_secs(60))
            .await
            .unwrap();
        lease.release().await;
    }

    #[tokio::test]
    async fn a_live_holder_elsewhere_is_named() {
        let store = store();
        let live = Holder {
            host: "db-backup-2".into(),
            pid: 4242,
            started: Utc::now(),
            expires: Utc::now() + chrono::Duration::hours(1),
            token: "x".into(),
        };
        store
            .put(
                &lease_key("app/db", PROFILE_LEASE),
                Bytes::from(serde_json::to_vec(&live).unwrap()),
            )
            .await
            .unwrap();
        let err = acquire(&store, "app/db", PROFILE_LEASE, Duration::from_secs(60))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("db-backup-2") && err.to_string().contains("4242"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn release_leaves_a_lease_taken_over_by_another_run() {
        let store = store();
        let lease = acquire(&store, "app/db", PROFILE_LEASE, Duration::from_secs(60))
            .await
            .unwrap();
        let key = lease.key().to_owned();
        store.put(&key, Bytes::from_static(b"{}")).await.unwrap();
        lease.release().await;
        assert!(store.exists(&key).await.unwrap(), "someone else's lease was removed");
    }

    #[tokio::test]
    async fn lease_names_are_checked() {
        let err = acquire(&store(), "app/db", "../x", Duration::from_secs(60)).await;
        assert!(matches!(err, Err(Error::Config { .. })));
    }
}
