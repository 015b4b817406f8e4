//! `dump TARGET PATH [--id ID | --at TIME]`: one file's content to stdout
//! (restic's `dump`), fetching only the chunks that hold it.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};
use backup_core::index::{has_index, stream_size};
use backup_core::{restore_stream, ByteStream, DATA_STREAM};
use backup_files::{EntryKind, FileEntry};
use base64::Engine;
use futures::TryStreamExt;
use serde_json::Value;

use super::{archive_name, backup_json, entry_json, open_object, shown};
use crate::settings::Kind;
use crate::workspace::{ConfigError, Workspace};

/// Writes one file of a backup to stdout; with `json`, an object with the
/// entry's facts and its content in base64 (`content_b64`).
///
/// # Errors
/// Bad target, id or path; a path that is not a regular file; integrity
/// failures of the chunks read.
pub async fn run(
    ws: &Workspace,
    target: &str,
    path: &Path,
    id: Option<&str>,
    at: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let opened = super::open(ws, target, "dump").await?;
    match opened.profile.kind() {
        Kind::Files => {}
        Kind::Postgres | Kind::Command => bail!(ConfigError(format!(
            "dump reads one file of a files backup; {} is a {} profile: `restore {} --to DIR` writes its backup",
            opened.profile.target(),
            opened.profile.kind().name(),
            opened.profile.target()
        ))),
    }
    let entry = opened.pick(id, at)?;
    let decryptor = opened.decryptor(ws)?;
    let want = archive_name(path);
    let label = &entry.manifest.id;
    let (found, content): (Option<FileEntry>, ByteStream) = if has_index(entry) {
        let listed = opened.entries(decryptor.clone(), entry).await?;
        let mut spans = backup_files::with_ends(listed.stream, stream_size(entry, DATA_STREAM));
        let mut hit = None;
        while let Some((e, end)) = spans.try_next().await? {
            if e.path == want {
                hit = Some((e, end));
                break;
            }
        }
        let Some((e, end)) = hit else {
            bail!(ConfigError(format!(
                "backup {label} holds nothing at {}; `ls {target} --id {label}` lists what it holds",
                shown(&want)
            )));
        };
        if e.kind != EntryKind::File {
            let what = match (&e.kind, &e.link) {
                (EntryKind::Dir, _) => "a folder: `restore --include` brings it back with its contents".to_owned(),
                (EntryKind::Symlink, Some(link)) => format!("a symlink to {}: dump its target", &shown(link)[1..]),
                _ => "not a regular file".to_owned(),
            };
            bail!(ConfigError(format!("{} in backup {label} is {what}", shown(&want))));
        }
        let content = backup_files::read_file(&opened.store, decryptor, entry, &e, end)?;
        (Some(e), content)
    } else {
        super::note_streaming(&opened.profile.target(), label);
        let data = restore_stream(&opened.store, decryptor, entry, DATA_STREAM, 2)?;
        (None, backup_files::find_file_in_archive(data, &want, label))
    };
    if json {
        write_json(backup_json(opened.profile, entry), found.as_ref(), &want, content).await?;
    } else {
        let mut content = content;
        while let Some(piece) = content.try_next().await.map_err(crate::wiring::wrong_key_hint)? {
            crate::output::write_stdout(&piece)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `{"target":…,"id":…,"path":…,…,"content_b64":"…"}`, the content encoded
/// as it streams by (never held whole).
async fn write_json(head: Value, found: Option<&FileEntry>, want: &[u8], mut content: ByteStream) -> Result<()> {
    let mut head = head;
    let facts = match found {
        Some(e) => entry_json(e),
        None => entry_json(&FileEntry::new(want.to_vec(), EntryKind::File)),
    };
    if let Value::Object(facts) = facts {
        for (k, v) in facts {
            // Without index only the name is known before the content.
            if found.is_some() || k == "path" || k == "path_b64" || k == "type" {
                head[k.as_str()] = v;
            }
        }
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut text = format!("{}\"content_b64\":\"", open_object(&head));
    let mut carry: Vec<u8> = Vec::new();
    let mut size = 0u64;
    while let Some(piece) = content.try_next().await.map_err(crate::wiring::wrong_key_hint)? {
        size += piece.len() as u64;
        carry.extend_from_slice(&piece);
        let whole = carry.len() / 3 * 3;
        text.push_str(&b64.encode(&carry[..whole]));
        carry.drain(..whole);
        crate::output::write_stdout(text.as_bytes())?;
        text.clear();
    }
    text.push_str(&b64.encode(&carry));
    text.push_str(&format!("\",\"content_size\":{size}}}\n"));
    crate::output::write_stdout(text.as_bytes())?;
    Ok(())
}
