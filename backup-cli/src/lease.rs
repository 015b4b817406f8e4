//! Leases in the store: the per-profile lock that also holds between hosts
//! sharing one store. A lease is an object created only if absent, renewed
//! while the run lasts, and taken over once it expired (its holder died).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use backup_core::store::join_key;
use backup_core::{Store, StoreExt};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::lock::LockHeld;

/// What a lease object says.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Holder {
    host: String,
    pid: u32,
    started: DateTime<Utc>,
    expires: DateTime<Utc>,
    token: String,
}

/// A held lease; [`Lease::release`] gives it back.
pub struct Lease {
    store: Arc<dyn Store>,
    key: String,
    token: String,
    renew: JoinHandle<()>,
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// Takes the lease `what` (`profile`, `mirror`) of the profile stored under
/// `prefix`, valid for `ttl` and renewed every quarter of it.
///
/// # Errors
/// [`LockHeld`] naming the holder's host, pid and times; store errors.
pub async fn acquire(store: &Arc<dyn Store>, prefix: &str, what: &str, ttl: Duration) -> Result<Lease> {
    let key = join_key([prefix, "locks", &format!("{what}.json")]);
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
            .put_if_absent(&key, Bytes::from(serde_json::to_vec(&holder)?))
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
        let existing: Option<Holder> = match store.get_bytes(&key).await {
            Ok(bytes) => serde_json::from_slice(&bytes).ok(),
            Err(backup_core::Error::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        match existing {
            Some(h) if h.expires > Utc::now() && !died_here(&h) => {
                return Err(LockHeld(format!(
                    "{what} of {prefix} is in use by host {} pid {} since {} (lease {} in the store, valid until {} unless renewed): wait for it to finish",
                    h.host,
                    h.pid,
                    backup_core::manifest::rfc3339(h.started),
                    store.location(),
                    backup_core::manifest::rfc3339(h.expires),
                ))
                .into());
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
    Err(LockHeld(format!(
        "{what} of {prefix}: another run took the lease at the same moment; try again"
    ))
    .into())
}

/// A holder on this host whose process is gone: stale without waiting for expiry.
fn died_here(h: &Holder) -> bool {
    h.host == host() && !std::path::Path::new(&format!("/proc/{}", h.pid)).exists()
}

async fn renew(store: Arc<dyn Store>, key: String, mut holder: Holder, ttl: Duration) {
    let ttl_chrono = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(10));
    loop {
        tokio::time::sleep(ttl / 4).await;
        holder.expires = Utc::now() + ttl_chrono;
        match serde_json::to_vec(&holder) {
            Ok(body) => {
                if let Err(e) = store.put(&key, Bytes::from(body)).await {
                    tracing::warn!(lease = %key, error = %e, "could not renew the lease");
                }
            }
            Err(_) => return,
        }
    }
}

impl Lease {
    /// Stops renewing and removes the lease if it is still ours.
    pub async fn release(self) {
        self.renew.abort();
        let ours = match self.store.get_bytes(&self.key).await {
            Ok(bytes) => serde_json::from_slice::<Holder>(&bytes).is_ok_and(|h| h.token == self.token),
            Err(_) => false,
        };
        if ours {
            if let Err(e) = self.store.delete(&self.key).await {
                tracing::warn!(lease = %self.key, error = %e, "could not remove the lease; it expires by itself");
            }
        }
    }
}
