//! `find TARGET PATTERN [--all]`: which backups hold entries matching a glob,
//! newest first, with each match's size and mtime there.

use std::process::ExitCode;

use anyhow::Result;
use backup_core::manifest::rfc3339;
use backup_files::Selection;
use futures::TryStreamExt;
use serde_json::Value;

use super::{entry_json, mtime_text, shown, JsonList, Out};
use crate::settings::Kind;
use crate::workspace::Workspace;

/// Searches every trusted backup, newest first, or only the one `id` names.
///
/// # Errors
/// Bad pattern or target; failures reading an index.
pub async fn run(ws: &Workspace, target: &str, pattern: &str, id: Option<&str>, json: bool) -> Result<ExitCode> {
    let selection = Selection::new(&[pattern.to_owned()], &[])
        .map_err(|e| crate::hints::hint(e, "use a glob such as '*.jpg', 'media' or 'srv/app/**/x.txt'"))?;
    let opened = super::open(ws, target, "find").await?;
    match opened.profile.kind() {
        Kind::Files => {}
        Kind::Postgres => anyhow::bail!(crate::workspace::ConfigError(format!(
            "find searches files backups; {} is a postgres profile: `ls {}` lists its tables",
            opened.profile.target(),
            opened.profile.target()
        ))),
        Kind::Command => anyhow::bail!(crate::workspace::ConfigError(format!(
            "find searches files backups; {} is a command profile, whose backups are one stream without entries",
            opened.profile.target()
        ))),
    }
    let backups: Vec<_> = match id {
        None => opened.listing.trusted.iter().rev().collect(),
        Some(id) => vec![opened.pick(Some(id), None)?],
    };
    let decryptor = opened.decryptor(ws)?;
    let mut out = Out::default();
    let mut list = if json {
        Some(JsonList::start(&mut out, "")?)
    } else {
        None
    };
    if list.is_none() {
        out.line(&format!(
            "{:<22} {:<20} {:>12} {:<19} PATH",
            "ID", "BACKUP TIME", "SIZE", "MTIME (UTC)"
        ))?;
    }
    let mut hits = 0u64;
    for entry in backups {
        let m = &entry.manifest;
        let mut listed = opened.entries(decryptor.clone(), entry).await?;
        while let Some(e) = listed.stream.try_next().await? {
            if !selection.matches(&e.path) {
                continue;
            }
            hits += 1;
            match list.as_mut() {
                Some(list) => {
                    let mut row = entry_json(&e);
                    row["id"] = Value::from(m.id.as_str());
                    row["time"] = Value::from(rfc3339(m.time));
                    row["indexed"] = Value::from(listed.indexed);
                    list.item(&mut out, &row)?;
                }
                None => out.line(&format!(
                    "{:<22} {:<20} {:>12} {:<19} {}",
                    m.id,
                    m.time.format("%Y-%m-%dT%H:%M:%SZ"),
                    if e.kind == backup_files::EntryKind::File {
                        e.size.to_string()
                    } else {
                        e.mode_text()[..1].to_owned()
                    },
                    mtime_text(&e),
                    shown(&e.path)
                ))?,
            }
        }
    }
    match list {
        Some(list) => list.end(&mut out, "")?,
        None => out.flush()?,
    }
    if hits == 0 {
        eprintln!(
            "{}: nothing matches {pattern:?} in {}",
            opened.profile.target(),
            if id.is_some() { "that backup" } else { "any backup" }
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
