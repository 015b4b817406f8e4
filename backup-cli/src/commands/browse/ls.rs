//! `ls TARGET [--id ID | --at TIME] [PATH]`: the entries of one backup, like
//! `restic ls -l`, read from its index.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Result};
use backup_core::index::{has_index, open_index};
use backup_core::{CatalogEntry, Decryptor};
use futures::TryStreamExt;
use serde_json::Value;

use super::{archive_name, backup_json, entry_json, mtime_text, open_object, shown, JsonList, Opened, Out};
use crate::settings::Kind;
use crate::workspace::Workspace;

/// Lists the entries of one backup (under `path`, when given).
///
/// # Errors
/// Bad arguments, no such backup, integrity failures of the index.
pub async fn run(
    ws: &Workspace,
    target: &str,
    id: Option<&str>,
    at: Option<&str>,
    path: Option<&Path>,
    json: bool,
) -> Result<ExitCode> {
    let opened = super::open(ws, target, "ls").await?;
    let entry = opened.pick(id, at)?;
    let decryptor = opened.decryptor(ws)?;
    let head = backup_json(opened.profile, entry);
    match opened.profile.kind() {
        Kind::Files => files(&opened, decryptor, entry, path, head, json).await,
        Kind::Postgres | Kind::Command => other(&opened, decryptor, entry, path, head, json).await,
    }
}

async fn files(
    opened: &Opened<'_>,
    decryptor: Arc<dyn Decryptor>,
    entry: &CatalogEntry,
    path: Option<&Path>,
    mut head: Value,
    json: bool,
) -> Result<ExitCode> {
    let prefix = path.map(archive_name).unwrap_or_default();
    let under = |name: &[u8]| {
        prefix.is_empty()
            || name == prefix.as_slice()
            || (name.starts_with(&prefix) && name.get(prefix.len()) == Some(&b'/'))
    };
    let mut listed = opened.entries(decryptor, entry).await?;
    head["indexed"] = Value::from(listed.indexed);
    let mut out = Out::default();
    let mut list = if json {
        Some(JsonList::start(
            &mut out,
            &format!("{}\"entries\":", open_object(&head)),
        )?)
    } else {
        None
    };
    let mut found = 0u64;
    while let Some(e) = listed.stream.try_next().await? {
        if !under(&e.path) {
            continue;
        }
        found += 1;
        match list.as_mut() {
            Some(list) => list.item(&mut out, &entry_json(&e))?,
            None => {
                let link = e
                    .link
                    .as_deref()
                    .map(|l| format!(" -> {}", &shown(l)[1..]))
                    .unwrap_or_default();
                out.line(&format!(
                    "{} {:>6} {:>6} {:>12} {} {}{link}",
                    e.mode_text(),
                    e.uid,
                    e.gid,
                    e.size,
                    mtime_text(&e),
                    shown(&e.path)
                ))?;
            }
        }
    }
    match list {
        Some(list) => list.end(&mut out, "}")?,
        None => out.flush()?,
    }
    if found == 0 && !prefix.is_empty() {
        bail!(crate::workspace::ConfigError(format!(
            "backup {} holds nothing at {}; `ls {}` lists it all",
            entry.manifest.id,
            shown(&prefix),
            opened.profile.target()
        )));
    }
    Ok(ExitCode::SUCCESS)
}

/// Backups whose index lists other things than files (a PostgreSQL dump's
/// table of contents): the entries as the index has them.
async fn other(
    opened: &Opened<'_>,
    decryptor: Arc<dyn Decryptor>,
    entry: &CatalogEntry,
    path: Option<&Path>,
    mut head: Value,
    json: bool,
) -> Result<ExitCode> {
    if path.is_some() {
        bail!(crate::workspace::ConfigError(format!(
            "PATH is for files profiles; {} is a {} profile",
            opened.profile.target(),
            entry.manifest.kind
        )));
    }
    if !has_index(entry) {
        bail!(crate::workspace::ConfigError(format!(
            "backup {} of {} has no index (made by an older version, or its kind has none); \
             `restore {} --id {} --to DIR` writes it out whole",
            entry.manifest.id,
            opened.profile.target(),
            opened.profile.target(),
            entry.manifest.id
        )));
    }
    let mut index = open_index(&opened.store, decryptor, entry)
        .await
        .map_err(crate::wiring::wrong_key_hint)?;
    head["indexed"] = Value::from(true);
    head["index_kind"] = Value::from(index.header().kind.as_str());
    let mut out = Out::default();
    let mut list = if json {
        Some(JsonList::start(
            &mut out,
            &format!("{}\"entries\":", open_object(&head)),
        )?)
    } else {
        None
    };
    while let Some(e) = index.next_entry::<Value>().await? {
        match list.as_mut() {
            Some(list) => list.item(&mut out, &e)?,
            None => out.line(&toc_line(&e))?,
        }
    }
    match list {
        Some(list) => list.end(&mut out, "}"),
        None => out.flush(),
    }
    .map(|()| ExitCode::SUCCESS)
}

/// `  42 TABLE DATA           public.orders (app) 1.2 MiB`, as far as the
/// entry has those fields; otherwise the entry as JSON.
pub fn toc_line(e: &Value) -> String {
    let (Some(id), Some(_)) = (e["toc_id"].as_u64(), e["desc"].as_str()) else {
        return e.to_string();
    };
    // Names come from the database: printed escaped, like file names.
    let text = |k: &str| super::shown(e[k].as_str().unwrap_or("").as_bytes())[1..].to_owned();
    let desc = text("desc");
    let schema = text("schema");
    let name = if schema.is_empty() {
        text("name")
    } else {
        format!("{schema}.{}", text("name"))
    };
    let owner = text("owner");
    let owner = if owner.is_empty() {
        String::new()
    } else {
        format!(" ({owner})")
    };
    let size = e["size"]
        .as_u64()
        .map(|s| format!(" {}", crate::output::human_size(s)))
        .unwrap_or_default();
    format!("{id:>6} {desc:<24} {name}{owner}{size}")
}
