//! Leases in the store: the per-profile lock that also holds between hosts
//! sharing one store. A lease is an object created only if absent, renewed
//! while the run lasts, and taken over once it expired (its holder died).
//!
//! Backups and prunes of a profile take the `profile` lease, mirrors the
//! `mirror` lease; a run of another program that takes the same lease through
//! this module is kept apart from them. Renewal runs on the tokio runtime.
//!
//! A lease records its holder's host, boot and process. A holder on this host
//! (same host name and boot) whose process is gone — killed, or the machine
//! rebooted — is taken over at once, with a log line; a holder on another
//! host keeps the lease until it expires. A [`Lease`] dropped without
//! [`Lease::release`] (its run was cancelled) is given back through
//! [`crate::cleanup::defer`].

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
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
    /// `/proc/sys/kernel/random/boot_id`: a host name alone may be shared by
    /// two machines, and a pid is only meaningful within one boot.
    #[serde(default)]
    boot_id: Option<String>,
    /// The holder process's start time (clock ticks since boot), so that a
    /// pid reused by another process does not keep a dead holder's lease.
    #[serde(default)]
    process_start: Option<u64>,
}

/// A held lease; [`Lease::release`] gives it back. Dropped without a
/// release, it is given back in the background ([`crate::cleanup`]).
#[derive(Debug)]
pub struct Lease {
    store: DynStore,
    key: String,
    token: String,
    /// Dropped (or sent) to stop the renewal between two writes: a write
    /// cut short could still land after the release and bring the lease back.
    stop: Option<oneshot::Sender<()>>,
    renew: Option<JoinHandle<()>>,
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|b| b.trim().to_owned())
}

/// Field 22 of `/proc/<pid>/stat`, after the command name (which may hold
/// spaces and parentheses, hence the last `)`).
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(19)?.parse().ok()
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
        boot_id: boot_id(),
        process_start: process_start(std::process::id()),
    };
    let mut took_over = false;
    for _ in 0..2 {
        // A store may finish a write after its future was dropped (local
        // files are written on blocking threads): the put runs as its own
        // task, and a cancelled acquire gives back what it may have created.
        let body = Bytes::from(serde_json::to_vec(&holder).unwrap_or_default());
        let (put_store, put_key) = (store.clone(), key.clone());
        let put = tokio::spawn(async move { put_store.put_if_absent(&put_key, body).await });
        let mut claim = Claim {
            put: Some(put),
            lease: (store.clone(), key.clone(), token.clone()),
        };
        let created = match claim.put.as_mut() {
            Some(put) => put.await.map_err(|e| Error::worker("lease write", e))?,
            None => Ok(false),
        };
        claim.put = None;
        if created? && (!took_over || still_ours(store, &key, &token).await?) {
            let (stop, stopped) = oneshot::channel();
            let renew = tokio::spawn(renew(store.clone(), key.clone(), holder.clone(), ttl, stopped));
            return Ok(Lease {
                store: store.clone(),
                key,
                token,
                stop: Some(stop),
                renew: Some(renew),
            });
        }
        // A holder is read from the store: bounded, and only shown, never used as a path.
        let existing: Option<Holder> = match store.get_bytes(&key, MAX_LEASE_SIZE).await {
            Ok(bytes) => serde_json::from_slice(&bytes).ok(),
            Err(Error::NotFound { .. }) => continue,
            Err(Error::Format { .. }) => None,
            Err(e) => return Err(e),
        };
        let gone = existing.as_ref().is_some_and(died_here);
        match existing {
            Some(h) if h.expires > Utc::now() && !gone => {
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
                if gone {
                    tracing::warn!(lease = %key, %who, "taking over the lease of a run on this host that no longer exists");
                } else {
                    tracing::warn!(lease = %key, %who, "taking over an expired lease (its holder stopped renewing it)");
                }
                store.delete(&key).await?;
                took_over = true;
            }
        }
    }
    Err(Error::Busy {
        what: format!("{what} lease of {prefix}"),
        holder: "another run that took it at the same moment".into(),
    })
}

/// After taking over a stale lease: whether ours is still the one stored a
/// moment later. Two runs that read the same stale holder both delete and
/// create; the later delete removes the earlier run's fresh lease, and
/// without this look both would go on holding it.
async fn still_ours(store: &DynStore, key: &str, token: &str) -> Result<bool> {
    tokio::time::sleep(TAKEOVER_SETTLE).await;
    let holder: Option<Holder> = match store.get_bytes(key, MAX_LEASE_SIZE).await {
        Ok(bytes) => serde_json::from_slice(&bytes).ok(),
        Err(Error::NotFound { .. } | Error::Format { .. }) => None,
        Err(e) => return Err(e),
    };
    Ok(holder.is_some_and(|h| h.token == token))
}

/// How long a run that took over a stale lease waits before checking that
/// the lease is still its own.
const TAKEOVER_SETTLE: Duration = Duration::from_secs(1);

/// A holder on this host whose process is gone: stale without waiting for
/// expiry. Same host means same host name and, when both recorded it, same
/// boot (after a reboot no holder survives, but the name alone could be
/// another machine's, so that case waits for expiry).
fn died_here(h: &Holder) -> bool {
    if h.host != host() {
        return false;
    }
    if let (Some(theirs), Some(ours)) = (&h.boot_id, boot_id()) {
        if *theirs != ours {
            return false;
        }
    }
    match (process_start(h.pid), h.process_start) {
        (None, _) => true,
        (Some(now), Some(recorded)) => now != recorded,
        (Some(_), None) => false,
    }
}

async fn renew(store: DynStore, key: String, mut holder: Holder, ttl: Duration, mut stop: oneshot::Receiver<()>) {
    let ttl_chrono = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(10));
    loop {
        // Stopped (sent or dropped) while waiting: no write is in flight.
        if tokio::time::timeout(ttl / 4, &mut stop).await.is_ok() {
            return;
        }
        // Renew only our own lease: one that another run took over (after
        // ours expired unrenewed) is theirs, and overwriting it would let
        // both runs go on as holders.
        if let Ok(bytes) = store.get_bytes(&key, MAX_LEASE_SIZE).await {
            let theirs = serde_json::from_slice::<Holder>(&bytes).map_or(true, |h| h.token != holder.token);
            if theirs {
                tracing::error!(lease = %key, "the lease is no longer ours (another run took it over); not renewing it");
                return;
            }
        }
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
        self.stop.take();
        if let Some(renew) = self.renew.take() {
            let (store, key, token) = (self.store.clone(), self.key.clone(), self.token.clone());
            crate::cleanup::defer(format!("release the lease {key}"), async move {
                let _ = renew.await;
                give_back(store, key, token).await;
            });
        }
    }
}

/// The write of a new lease, while [`acquire`] awaits it; dropped with the
/// write still running, it gives the lease back once the write is done.
struct Claim {
    put: Option<JoinHandle<Result<bool>>>,
    lease: (DynStore, String, String),
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(put) = self.put.take() {
            let (store, key, token) = self.lease.clone();
            crate::cleanup::defer(format!("release the lease {key}"), async move {
                if let Ok(Ok(true)) = put.await {
                    give_back(store, key, token).await;
                }
            });
        }
    }
}

/// Removes the lease at `key` if it still holds `token`.
async fn give_back(store: DynStore, key: String, token: String) {
    let ours = match store.get_bytes(&key, MAX_LEASE_SIZE).await {
        Ok(bytes) => serde_json::from_slice::<Holder>(&bytes).is_ok_and(|h| h.token == token),
        Err(_) => false,
    };
    if ours {
        if let Err(e) = store.delete(&key).await {
            tracing::warn!(lease = %key, error = %e.report(), "could not remove the lease; it expires by itself");
        }
    }
}

impl Lease {
    /// The lease's key in the store.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Stops renewing and removes the lease if it is still ours. Cancelled
    /// half-way, the release is finished through [`crate::cleanup::defer`].
    pub async fn release(mut self) {
        self.stop.take();
        if let Some(renew) = self.renew.as_mut() {
            let _ = renew.await;
        }
        give_back(self.store.clone(), self.key.clone(), self.token.clone()).await;
        self.renew = None;
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
            boot_id: None,
            process_start: None,
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
            boot_id: None,
            process_start: None,
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
    async fn a_dropped_lease_is_given_back_by_the_deferred_cleanup() {
        let store = store();
        let lease = acquire(&store, "app/dropped", PROFILE_LEASE, Duration::from_secs(60))
            .await
            .unwrap();
        let key = lease.key().to_owned();
        drop(lease);
        crate::cleanup::finish(Duration::from_secs(10)).await;
        assert!(!store.exists(&key).await.unwrap(), "the dropped lease is still there");
    }

    /// A fresh, unexpired holder on this host: `pid` with `process_start`.
    fn here(pid: u32, process_start: Option<u64>, boot: Option<String>) -> Holder {
        Holder {
            host: host(),
            pid,
            started: Utc::now(),
            expires: Utc::now() + chrono::Duration::hours(1),
            token: "x".into(),
            boot_id: boot,
            process_start,
        }
    }

    #[tokio::test]
    async fn a_gone_holder_on_this_host_is_taken_over_at_once_another_boots_is_not() {
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        let pid = dead.id();
        dead.wait().unwrap();
        let me = std::process::id();
        let cases = [
            (here(pid, Some(1), boot_id()), true),
            // Our own pid, but started at another time: a reused pid.
            (here(me, Some(u64::MAX), boot_id()), true),
            (here(me, process_start(me), boot_id()), false),
            // Same name, other boot id: maybe another machine, so it waits.
            (here(pid, Some(1), Some("another-boot".into())), false),
        ];
        for (i, (holder, taken)) in cases.into_iter().enumerate() {
            let store = store();
            let key = lease_key("app/db", PROFILE_LEASE);
            store
                .put(&key, Bytes::from(serde_json::to_vec(&holder).unwrap()))
                .await
                .unwrap();
            let result = acquire(&store, "app/db", PROFILE_LEASE, Duration::from_secs(60)).await;
            assert_eq!(result.is_ok(), taken, "case {i}: {result:?}");
            if let Ok(lease) = result {
                lease.release().await;
            }
        }
    }

    #[tokio::test]
    async fn lease_names_are_checked() {
        let err = acquire(&store(), "app/db", "../x", Duration::from_secs(60)).await;
        assert!(matches!(err, Err(Error::Config { .. })));
    }
}
