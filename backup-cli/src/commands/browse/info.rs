//! `info TARGET [--id ID | --at TIME]`: one backup in full, from its signed
//! manifest and its marks (no secret key needed).

use std::process::ExitCode;

use anyhow::Result;
use backup_core::catalog::{RESTORED_MARK, VERIFIED_MARK};
use backup_core::index::INDEX_STREAM;
use backup_core::manifest::rfc3339;
use backup_core::CatalogEntry;
use serde_json::{json, Map, Value};

use crate::output::{human_size, say};
use crate::workspace::Workspace;

/// Shows one backup: what `list` shows of it, and every manifest fact.
///
/// # Errors
/// Bad target or id; the store.
pub async fn run(ws: &Workspace, target: &str, id: Option<&str>, at: Option<&str>, json: bool) -> Result<ExitCode> {
    let opened = super::open(ws, target, "info").await?;
    let entry = opened.pick(id, at)?;
    let rows = super::super::list::profile_rows(opened.profile, &opened.listing);
    let mut doc = rows
        .into_iter()
        .find(|r| r["id"] == entry.manifest.id.as_str())
        .unwrap_or_else(|| json!({}));
    if let Value::Object(map) = &mut doc {
        add_facts(map, entry);
    }
    if json {
        crate::output::write_stdout(format!("{}\n", serde_json::to_string_pretty(&doc)?).as_bytes())?;
    } else {
        print(&doc);
    }
    Ok(ExitCode::SUCCESS)
}

/// The manifest's facts beyond `list`'s row.
fn add_facts(map: &mut Map<String, Value>, entry: &CatalogEntry) {
    let m = &entry.manifest;
    let seconds = (m.finished_at - m.started_at).num_milliseconds() as f64 / 1000.0;
    let ratio = if m.plaintext_size == 0 {
        Value::Null
    } else {
        Value::from((m.stored_size as f64 / m.plaintext_size as f64 * 1000.0).round() / 1000.0)
    };
    let streams: Vec<Value> = m
        .streams()
        .iter()
        .map(|name| {
            let chunks: Vec<_> = m.stream_chunks(name).collect();
            json!({
                "name": name,
                "chunks": chunks.len(),
                "plaintext_size": chunks.iter().map(|c| c.plaintext_size).sum::<u64>(),
                "size": chunks.iter().map(|c| c.size).sum::<u64>(),
            })
        })
        .collect();
    let mut put = |k: &str, v: Value| {
        map.insert(k.to_owned(), v);
    };
    put("app", Value::from(m.app.as_str()));
    put("profile", Value::from(m.profile.as_str()));
    put("dest_prefix", Value::from(m.dest_prefix.as_str()));
    put("started_at", Value::from(rfc3339(m.started_at)));
    put("finished_at", Value::from(rfc3339(m.finished_at)));
    put("duration_seconds", Value::from(seconds));
    put("ratio", ratio);
    put("chunk_size", Value::from(m.chunk_size));
    put("compression", Value::from(m.compression.as_str()));
    put("encryption", Value::from(m.encryption.as_str()));
    put("tool_version", Value::from(m.tool_version.as_str()));
    put("format_version", Value::from(m.format_version));
    put("streams", Value::from(streams));
    put("indexed", Value::from(m.has_stream(INDEX_STREAM)));
    put("source", Value::Object(m.source.clone()));
}

fn print(doc: &Value) {
    let s = |k: &str| match &doc[k] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    let size = |k: &str| doc[k].as_u64().map(human_size).unwrap_or_else(|| "-".into());
    say!("backup      {} ({})", s("id"), s("target"));
    say!("kind        {}", s("kind"));
    say!("time        {}", s("time"));
    say!(
        "ran         {} → {} ({} s)",
        s("started_at"),
        s("finished_at"),
        s("duration_seconds")
    );
    say!(
        "size        {} stored, {} plaintext (ratio {})",
        size("size"),
        size("plaintext_size"),
        s("ratio")
    );
    say!("chunks      {} of {}", s("chunks"), size("chunk_size"));
    for st in doc["streams"].as_array().into_iter().flatten() {
        say!(
            "  stream    {}: {}, {} stored, {} plaintext",
            st["name"].as_str().unwrap_or("?"),
            crate::output::count(st["chunks"].as_u64().unwrap_or(0) as usize, "chunk"),
            st["size"].as_u64().map(human_size).unwrap_or_default(),
            st["plaintext_size"].as_u64().map(human_size).unwrap_or_default()
        );
    }
    say!(
        "index       {}",
        if doc["indexed"] == true {
            "yes (ls, find, diff and partial restores read it)"
        } else {
            "no (made before indexes: browsing streams the data)"
        }
    );
    say!("status      {} (signer {})", s("status"), s("signer"));
    let recipients: Vec<&str> = doc["recipients"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    say!("recipients  {}", recipients.join(" "));
    let reasons: Vec<&str> = doc["reasons"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    say!(
        "retention   {}",
        if doc["keep"] == false {
            "to be pruned".to_owned()
        } else {
            reasons.join(", ")
        }
    );
    for mark in [VERIFIED_MARK, RESTORED_MARK] {
        let m = &doc["marks"][mark];
        if m.is_null() {
            say!("{mark:<11} never");
        } else {
            say!(
                "{mark:<11} {} {} {}{}",
                m["result"].as_str().unwrap_or("?"),
                m["mode"].as_str().unwrap_or(""),
                m["time"].as_str().unwrap_or(""),
                m["reason"].as_str().map(|r| format!(": {r}")).unwrap_or_default()
            );
        }
    }
    say!("tool        {} (format {})", s("tool_version"), s("format_version"));
    if let Some(source) = doc["source"].as_object() {
        for (k, v) in source {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            say!("  source    {k}: {v}");
        }
    }
}
