//! Backups in the store under prefixes that no profile names any more (a
//! profile file removed or its `dest_prefix` changed): still there, still
//! costing storage, invisible to `list`, `prune` and `verify` otherwise.
//!
//! Finding them costs one listing of each store's whole content (the same
//! objects `list` reads prefix by prefix for the profiles anyway).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use backup_core::layout::{is_backup_id, MANIFEST_NAME};
use backup_core::manifest::{rfc3339, Manifest, MAX_MANIFEST_SIZE};
use backup_core::{list_backups, ProfileRef, StoreExt};
use serde_json::{json, Value};

use crate::wiring;
use crate::workspace::{Profile, Workspace};

/// Backup folders with a manifest under one prefix no profile names.
#[derive(Debug)]
pub struct Orphan {
    /// The store folder (`old/db`).
    pub prefix: String,
    /// Folders with a manifest under it.
    pub backups: usize,
    /// Newest backup id.
    pub newest: String,
    /// Settings of a profile using the same store (or the global ones):
    /// their store and trust read the prefix.
    settings: crate::settings::ProfileSettings,
    /// Where those settings come from, for errors.
    origin: String,
}

/// The orphan prefixes of every store the profiles use.
///
/// # Errors
/// When a store cannot be opened or listed.
pub async fn find(ws: &Workspace) -> Result<Vec<Orphan>> {
    // Profiles by store URL: each store is listed once. The global store
    // too, even when no profile is left to use it.
    let mut stores: BTreeMap<&str, Vec<&Profile>> = BTreeMap::new();
    if let Some(url) = ws.global.store.url.as_deref() {
        stores.entry(url).or_default();
    }
    for p in ws.profiles.values() {
        if let Some(url) = p.settings.store.url.as_deref() {
            stores.entry(url).or_default().push(p);
        }
    }
    let mut out = Vec::new();
    for profiles in stores.values() {
        let (settings, origin) = match profiles.first() {
            Some(p) => (&p.settings, p.file.display().to_string()),
            None => (
                &ws.global,
                ws.home.join(crate::workspace::GLOBAL_FILE).display().to_string(),
            ),
        };
        let store = wiring::store(ws, settings, &origin)?;
        let known: BTreeSet<&str> = profiles.iter().map(|p| p.dest_prefix().trim_matches('/')).collect();
        // prefix -> backup ids with a manifest.
        let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for object in store.list("").await? {
            let Some(folder) = object.key.strip_suffix(MANIFEST_NAME).and_then(|f| f.strip_suffix('/')) else {
                continue;
            };
            let Some((prefix, id)) = folder.rsplit_once('/') else {
                continue;
            };
            let named = known
                .iter()
                .any(|k| prefix == *k || prefix.starts_with(&format!("{k}/")));
            // A prefix with control characters is nobody's dest_prefix, and
            // printed it could play tricks on the terminal.
            let printable = !prefix.chars().any(char::is_control);
            if !named && printable && is_backup_id(id) && !prefix.is_empty() {
                found.entry(prefix.to_owned()).or_default().insert(id.to_owned());
            }
        }
        for (prefix, ids) in found {
            out.push(Orphan {
                backups: ids.len(),
                newest: ids.last().cloned().unwrap_or_default(),
                prefix,
                settings: settings.clone(),
                origin: origin.clone(),
            });
        }
    }
    Ok(out)
}

/// The one-line note `list` prints when orphans exist.
pub fn note(orphans: &[Orphan]) -> Option<String> {
    if orphans.is_empty() {
        return None;
    }
    let backups: usize = orphans.iter().map(|o| o.backups).sum();
    let prefixes: Vec<&str> = orphans.iter().map(|o| o.prefix.as_str()).collect();
    Some(format!(
        "note: the store also holds {} under {} no profile names ({}); `backupapps list --all` shows them",
        crate::output::count(backups, "backup"),
        crate::output::count(orphans.len(), "prefix").replace("prefixs", "prefixes"),
        prefixes.join(", ")
    ))
}

/// `list --all` rows for the orphans, in `list --json`'s shape plus
/// `"orphan": true` and `dest_prefix`: trusted only when signed by the
/// workspace's signers and bound to the prefix and the app/profile its
/// newest manifest names.
///
/// # Errors
/// When a store cannot be read.
pub async fn rows(ws: &Workspace, orphans: &[Orphan]) -> Result<Vec<Value>> {
    let mut rows = Vec::new();
    for orphan in orphans {
        let store = wiring::store(ws, &orphan.settings, &orphan.origin)?;
        let trust = wiring::trust(ws, &orphan.settings)?;
        let note = format!("no profile names dest_prefix {}", orphan.prefix);
        // The newest manifest says which app/profile the prefix was; read
        // bounded, and only names that could be a profile's are used.
        let key = format!("{}/{}/{MANIFEST_NAME}", orphan.prefix, orphan.newest);
        let named = match store.get_bytes(&key, MAX_MANIFEST_SIZE).await {
            Ok(bytes) => Manifest::from_json(&key, &bytes)
                .ok()
                .filter(|m| plain_name(&m.app) && plain_name(&m.profile)),
            Err(_) => None,
        };
        let Some(m) = named else {
            rows.push(damaged(
                orphan,
                &note,
                "its newest manifest is unreadable or names no valid app/profile",
            ));
            continue;
        };
        let profile_ref = ProfileRef::new(&m.app, &m.profile, &orphan.prefix);
        let listing = list_backups(&store, &profile_ref, &trust).await?;
        let target = format!("{}/{}", m.app, m.profile);
        for entry in &listing.trusted {
            let m = &entry.manifest;
            rows.push(json!({
                "target": target, "id": m.id, "time": rfc3339(m.time), "kind": m.kind,
                "size": m.stored_size, "plaintext_size": m.plaintext_size, "chunks": m.chunks.len(),
                "recipients": m.recipients, "trusted": true, "status": "trusted", "signer": Value::Null,
                "reason": Value::Null, "keep": Value::Null, "reasons": [note],
                "verified": Value::Null, "verified_mode": Value::Null, "restored": Value::Null,
                "restore_verified": false, "marks": {}, "orphan": true, "dest_prefix": orphan.prefix,
            }));
        }
        for u in &listing.untrusted {
            let mut row = damaged(orphan, &note, &u.reason);
            row["target"] = Value::from(target.clone());
            row["id"] = Value::from(u.id.clone());
            rows.push(row);
        }
    }
    Ok(rows)
}

fn damaged(orphan: &Orphan, note: &str, reason: &str) -> Value {
    json!({
        "target": orphan.prefix, "id": orphan.newest, "time": Value::Null, "kind": Value::Null,
        "size": Value::Null, "plaintext_size": Value::Null, "chunks": Value::Null, "recipients": [],
        "trusted": false, "status": "untrusted", "signer": Value::Null,
        "reason": format!("{reason} ({note})"), "keep": Value::Null, "reasons": [],
        "verified": Value::Null, "verified_mode": Value::Null, "restored": Value::Null,
        "restore_verified": false, "marks": {}, "orphan": true, "dest_prefix": orphan.prefix,
    })
}

/// Whether `name` could be an app or profile name (a folder or file stem):
/// read from the store, so printed only when plain.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
