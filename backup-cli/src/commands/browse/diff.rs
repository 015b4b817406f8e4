//! `diff TARGET ID1 ID2`: entries added, removed, and changed (type, size,
//! mtime, mode, link target) from backup ID1 to backup ID2.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Result;
use backup_files::{EntryKind, FileEntry};
use futures::TryStreamExt;
use serde_json::{json, Value};

use super::{entry_json, mtime_text, shown, Out};
use crate::settings::Kind;
use crate::workspace::Workspace;

/// What is compared of an entry (its offset is not: it moves with any change before it).
#[derive(PartialEq, Eq)]
struct Facts {
    kind: EntryKind,
    size: u64,
    mtime: (i64, u32),
    mode: u32,
    link: Option<Vec<u8>>,
    /// Position in ID1, so that removed entries print in archive order.
    order: u64,
}

impl Facts {
    fn of(e: &FileEntry, order: u64) -> Self {
        Facts {
            kind: e.kind,
            size: e.size,
            mtime: (e.mtime, e.mtime_nsec),
            mode: e.mode,
            link: e.link.clone(),
            order,
        }
    }
}

/// Compares two backups of one files profile.
///
/// # Errors
/// Bad target or ids; failures reading an index.
pub async fn run(ws: &Workspace, target: &str, id1: &str, id2: &str, json: bool) -> Result<ExitCode> {
    let opened = super::open(ws, target, "diff").await?;
    match opened.profile.kind() {
        Kind::Files => {}
        Kind::Postgres | Kind::Command => anyhow::bail!(crate::workspace::ConfigError(format!(
            "diff compares files backups; {} is a {} profile",
            opened.profile.target(),
            opened.profile.kind().name()
        ))),
    }
    let (old, new) = (opened.pick(Some(id1), None)?, opened.pick(Some(id2), None)?);
    let decryptor = opened.decryptor(ws)?;
    // One side in memory (path → a few numbers), the other streamed past it.
    let mut before: HashMap<Vec<u8>, Facts> = HashMap::new();
    let mut listed = opened.entries(decryptor.clone(), old).await?;
    let mut order = 0u64;
    while let Some(e) = listed.stream.try_next().await? {
        before.insert(e.path.clone(), Facts::of(&e, order));
        order += 1;
    }
    let (mut added, mut changed) = (Vec::new(), Vec::new());
    let mut listed = opened.entries(decryptor, new).await?;
    while let Some(e) = listed.stream.try_next().await? {
        match before.remove(&e.path) {
            None => added.push(e),
            Some(was) => {
                let now = Facts::of(&e, was.order);
                if now != was {
                    changed.push((was, e));
                }
            }
        }
    }
    let mut removed: Vec<(Vec<u8>, Facts)> = before.into_iter().collect();
    removed.sort_by_key(|(_, f)| f.order);
    if json {
        let doc = json!({
            "target": opened.profile.target(),
            "from": old.manifest.id,
            "to": new.manifest.id,
            "added": added.iter().map(entry_json).collect::<Vec<_>>(),
            "removed": removed.iter().map(|(p, f)| removed_json(p, f)).collect::<Vec<_>>(),
            "changed": changed.iter().map(|(was, e)| changed_json(was, e)).collect::<Vec<_>>(),
        });
        crate::output::write_stdout(format!("{}\n", serde_json::to_string_pretty(&doc)?).as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = Out::default();
    for e in &added {
        out.line(&format!("+ {}", shown(&e.path)))?;
    }
    for (path, _) in &removed {
        out.line(&format!("- {}", shown(path)))?;
    }
    for (was, e) in &changed {
        out.line(&format!("M {}  ({})", shown(&e.path), changes(was, e).join(", ")))?;
    }
    out.line(&format!(
        "{} → {}: {} added, {} removed, {} changed",
        old.manifest.id,
        new.manifest.id,
        added.len(),
        removed.len(),
        changed.len()
    ))?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// What changed, as text: `size 5 → 7`, `mtime … → …`, `mode 0644 → 0600`.
fn changes(was: &Facts, e: &FileEntry) -> Vec<String> {
    let mut out = Vec::new();
    if was.kind != e.kind {
        out.push(format!("type {:?} → {:?}", was.kind, e.kind).to_lowercase());
    }
    if was.size != e.size {
        out.push(format!("size {} → {}", was.size, e.size));
    }
    if was.mtime != (e.mtime, e.mtime_nsec) {
        let then = chrono::DateTime::from_timestamp(was.mtime.0, was.mtime.1)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        out.push(format!("mtime {then} → {}", mtime_text(e)));
    }
    if was.mode != e.mode {
        out.push(format!("mode {:04o} → {:04o}", was.mode, e.mode));
    }
    if was.link != e.link {
        out.push("link target".into());
    }
    out
}

fn removed_json(path: &[u8], f: &Facts) -> Value {
    let mut v = path_json(path);
    v["type"] = serde_json::to_value(f.kind).unwrap_or(Value::Null);
    v["size"] = Value::from(f.size);
    v
}

fn changed_json(was: &Facts, e: &FileEntry) -> Value {
    let mut v = path_json(&e.path);
    let mut what = serde_json::Map::new();
    if was.kind != e.kind {
        what.insert("type".into(), json!([was.kind, e.kind]));
    }
    if was.size != e.size {
        what.insert("size".into(), json!([was.size, e.size]));
    }
    if was.mtime != (e.mtime, e.mtime_nsec) {
        what.insert("mtime".into(), json!([was.mtime.0, e.mtime]));
        what.insert("mtime_nsec".into(), json!([was.mtime.1, e.mtime_nsec]));
    }
    if was.mode != e.mode {
        what.insert("mode".into(), json!([was.mode, e.mode]));
    }
    if was.link != e.link {
        what.insert("link".into(), Value::Bool(true));
    }
    v["changes"] = Value::Object(what);
    v
}

/// `{"path": …}` or `{"path_b64": …}`, as the index writes names.
fn path_json(path: &[u8]) -> Value {
    let probe = FileEntry::new(path.to_vec(), EntryKind::Other);
    let full = serde_json::to_value(&probe).unwrap_or(Value::Null);
    let mut v = json!({});
    for key in ["path", "path_b64"] {
        if let Some(p) = full.get(key) {
            v[key] = p.clone();
        }
    }
    v
}
