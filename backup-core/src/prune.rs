//! Prune: plan which backups retention keeps, explain it, and remove exactly
//! what the plan says.
//!
//! Only trusted backups count for retention, so backups forged into the store
//! (or dated in the future) can never push real ones out of their slots. The
//! newest trusted backup is always kept. Folders without a manifest, and
//! untrusted folders that are not genuine signed backups, are removed only
//! once nothing was written to them for the grace period.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::catalog::{remove_backup, Listing};
use crate::error::Result;
use crate::layout::BackupFolder;
use crate::retention::{BackupSummary, RetentionPolicy};
use crate::store::{DynStore, ObjectMeta};

/// A backup retention keeps, with the reasons.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Kept {
    /// Backup id.
    pub id: String,
    /// Its time.
    #[serde(serialize_with = "crate::manifest::serialize_time")]
    pub time: DateTime<Utc>,
    /// Why it is kept, e.g. `daily 3/7`, `oldest monthly`, `within 30d`.
    pub reasons: Vec<String>,
}

/// A trusted backup no rule keeps.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Removal {
    /// Backup id.
    pub id: String,
    /// Its time.
    #[serde(serialize_with = "crate::manifest::serialize_time")]
    pub time: DateTime<Utc>,
    #[serde(skip)]
    objects: Vec<ObjectMeta>,
}

/// A folder that is not a trusted backup, old enough to be removed.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Debris {
    /// Folder name.
    pub id: String,
    /// When something was last written to it.
    #[serde(serialize_with = "crate::manifest::serialize_time")]
    pub last_modified: DateTime<Utc>,
    /// Why it is not a trusted backup (untrusted folders only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip)]
    objects: Vec<ObjectMeta>,
}

/// What prune keeps and removes for one profile. Serialises as
/// `{"target", "keep": [{"id","time","reasons"}], "remove": [{"id","time"}],
/// "incomplete": [{"id","last_modified"}], "untrusted": [{"id","last_modified","reason"}]}`.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PrunePlan {
    /// `app/profile`.
    pub target: String,
    /// Trusted backups kept, newest first.
    pub keep: Vec<Kept>,
    /// Trusted backups to remove, newest first.
    pub remove: Vec<Removal>,
    /// Folders without a manifest, older than the grace period.
    pub incomplete: Vec<Debris>,
    /// Untrusted folders (not genuine signed backups), older than the grace period.
    pub untrusted: Vec<Debris>,
    #[serde(skip)]
    dest_prefix: String,
}

/// Plans retention for `listing` at `now`: `policy` decides over the trusted
/// backups; incomplete and untrusted debris older than `grace` goes too.
///
/// ```
/// # use std::sync::Arc;
/// # use backup_core::{testing::{test_keys, BytesSource}, *};
/// # use backup_core::reexports::chrono::{Duration, Utc};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let keys = test_keys();
/// let store: DynStore = Arc::new(MemoryStore::new());
/// for day in 1..=3 {
///     let time = format!("2026-11-0{day}T02:00:00Z").parse().unwrap();
///     let options = BackupOptions::new("app", "db", "app/db").with_time(time);
///     run_backup(&store, &BytesSource::new(vec![day; 10]), keys.encryptor.clone(), &keys.signer, &options).await?;
/// }
/// let listing = list_backups(&store, &ProfileRef::new("app", "db", "app/db"), &keys.trust).await?;
/// let policy = KeepPolicy { daily: 2, ..KeepPolicy::default() };
/// let plan = prune::plan(&listing, "app/db", &policy, Utc::now(), Duration::hours(24));
/// assert_eq!((plan.keep.len(), plan.remove.len()), (2, 1));
/// assert_eq!(plan.keep[0].reasons, ["daily 1/2"]);
/// prune::apply(&store, &plan, Utc::now(), Duration::hours(24)).await?;
/// # Ok(()) }
/// ```
pub fn plan(
    listing: &Listing,
    dest_prefix: &str,
    policy: &dyn RetentionPolicy,
    now: DateTime<Utc>,
    grace: Duration,
) -> PrunePlan {
    let summaries: Vec<BackupSummary> = listing
        .trusted
        .iter()
        .map(|e| BackupSummary {
            id: e.manifest.id.clone(),
            time: e.manifest.time,
        })
        .collect();
    let newest = listing.newest().map(|e| e.manifest.id.clone());
    let mut keep = Vec::new();
    let mut remove = Vec::new();
    for mut d in policy.plan(&summaries, now) {
        // A policy is trusted to keep the newest, but prune never relies on it.
        if !d.keep && Some(&d.id) == newest.as_ref() {
            d.keep = true;
            d.reasons.push("newest".into());
        }
        if d.keep {
            keep.push(Kept {
                id: d.id,
                time: d.time,
                reasons: d.reasons,
            });
        } else {
            let objects = listing
                .trusted
                .iter()
                .find(|e| e.manifest.id == d.id)
                .map(|e| e.objects.clone())
                .unwrap_or_default();
            remove.push(Removal {
                id: d.id,
                time: d.time,
                objects,
            });
        }
    }
    let cutoff = now - grace;
    let incomplete = listing
        .incomplete
        .iter()
        .filter(|i| i.last_modified < cutoff)
        .map(|i| Debris {
            id: i.id.clone(),
            last_modified: i.last_modified,
            reason: None,
            objects: i.objects.clone(),
        })
        .collect();
    let untrusted = listing
        .untrusted
        .iter()
        .filter(|u| !u.genuine && u.last_modified < cutoff)
        .map(|u| Debris {
            id: u.id.clone(),
            last_modified: u.last_modified,
            reason: Some(u.reason.clone()),
            objects: u.objects.clone(),
        })
        .collect();
    PrunePlan {
        target: listing.target.clone(),
        keep,
        remove,
        incomplete,
        untrusted,
        dest_prefix: dest_prefix.trim_matches('/').to_owned(),
    }
}

/// What [`apply`] removed besides the plan's folders.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[non_exhaustive]
pub struct Applied {
    /// Folders removed.
    pub folders: usize,
    /// Pieces of interrupted uploads the store swept.
    pub swept: u64,
}

/// Removes exactly the folders `plan` lists — each manifest first — then lets
/// the store sweep debris of interrupted uploads older than `grace`. Hold the
/// profile's lease (see [`crate::lease`]) while planning and applying.
///
/// # Errors
/// The store's error; what was not removed is left for the next prune.
pub async fn apply(store: &DynStore, plan: &PrunePlan, now: DateTime<Utc>, grace: Duration) -> Result<Applied> {
    let mut applied = Applied::default();
    let folders = plan.remove.iter().map(|r| (&r.id, &r.objects)).chain(
        plan.incomplete
            .iter()
            .chain(&plan.untrusted)
            .map(|d| (&d.id, &d.objects)),
    );
    for (id, objects) in folders {
        let folder = BackupFolder::new(&plan.dest_prefix, id)?;
        remove_backup(store, &folder, objects).await?;
        tracing::info!(target_profile = %plan.target, %id, "removed");
        applied.folders += 1;
    }
    applied.swept = store.sweep(&plan.dest_prefix, now - grace).await?;
    Ok(applied)
}
