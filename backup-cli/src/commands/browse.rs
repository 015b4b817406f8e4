//! What the browse commands share: picking one profile and one of its
//! backups, reading entries (from the index, or by streaming old backups),
//! and printing names and JSON without holding a whole listing in memory.

pub mod diff;
pub mod dump;
pub mod find;
pub mod info;
pub mod ls;
pub mod partial;

use std::sync::Arc;

use anyhow::{bail, Result};
use backup_core::manifest::rfc3339;
use backup_core::{list_backups, CatalogEntry, Decryptor, DynStore, Listing, Pick};
use backup_files::{Entries, FileEntry};
use serde_json::{json, Value};

use crate::output::parse_at;
use crate::wiring;
use crate::workspace::{Profile, Workspace};

/// One profile's store and trusted listing.
pub struct Opened<'a> {
    /// The profile.
    pub profile: &'a Profile,
    /// Its store.
    pub store: DynStore,
    /// Its backups.
    pub listing: Listing,
}

/// Opens the one profile `target` names and lists its backups.
///
/// # Errors
/// A target naming no or several profiles; store or trust settings; the store.
pub async fn open<'a>(ws: &'a Workspace, target: &str, command: &str) -> Result<Opened<'a>> {
    let profiles = ws.select(&[target.to_owned()])?;
    let [profile] = profiles.as_slice() else {
        let names: Vec<_> = profiles.iter().map(|p| p.target()).collect();
        bail!(crate::workspace::ConfigError(format!(
            "{command} needs one profile; {target:?} names {}: give app/profile",
            names.join(", ")
        )));
    };
    let s = &profile.settings;
    let store = wiring::store(ws, s, &profile.file.display().to_string())?;
    let trust = wiring::trust(ws, s)?;
    let listing = list_backups(&store, &profile.profile_ref(), &trust).await?;
    Ok(Opened {
        profile,
        store,
        listing,
    })
}

impl Opened<'_> {
    /// The backup `--id` (a unique prefix) or `--at` pick, else the newest,
    /// as `restore` picks it.
    ///
    /// # Errors
    /// A bad `--at`; no such trusted backup; an untrusted newest folder.
    pub fn pick(&self, id: Option<&str>, at: Option<&str>) -> Result<&CatalogEntry> {
        let at = at.map(parse_at).transpose()?;
        let zone = self.profile.settings.retention.timezone;
        let pick = match (id, at.map(|at| at.until(zone))) {
            (Some(id), _) => Pick::Id(id),
            (None, Some(Some(until))) => Pick::At(until),
            (None, _) => Pick::Newest,
        };
        self.listing.pick(pick).map_err(|e| match e {
            backup_core::Error::Untrusted { .. } if id.is_none() => anyhow::Error::new(e)
                .context("refusing to fall back silently; pass --id to read an older trusted backup"),
            other => other.into(),
        })
    }

    /// The profile's decryption keys (unlocked as they are first needed).
    ///
    /// # Errors
    /// Missing or unreadable secret key settings.
    pub fn decryptor(&self, ws: &Workspace) -> Result<Arc<dyn Decryptor>> {
        wiring::decryptor_soon(ws, &self.profile.settings)
    }

    /// The file entries of `entry`, with a note on stderr when the backup
    /// has no index and its data is streamed instead.
    ///
    /// # Errors
    /// Reading the index or the data failed at its start.
    pub async fn entries(&self, decryptor: Arc<dyn Decryptor>, entry: &CatalogEntry) -> Result<Entries> {
        let entries = backup_files::list_entries(&self.store, decryptor, entry)
            .await
            .map_err(wiring::wrong_key_hint)?;
        if !entries.indexed {
            note_streaming(&self.profile.target(), &entry.manifest.id);
        }
        Ok(entries)
    }
}

/// Tells that a backup without index is read whole.
pub fn note_streaming(target: &str, id: &str) {
    eprintln!("{target}: backup {id} has no index (made by an older version): reading its whole data stream instead");
}

/// `/srv/app/x` for the archive name `srv/app/x`, printable: bytes that are
/// not UTF-8, control characters and `\` are written as `\ooo` octal escapes
/// (as GNU tar lists names), so no name can play tricks on a terminal.
pub fn shown(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    out.push('/');
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '\\' {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:03o}"));
                }
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\{b:03o}"));
        }
    }
    out
}

/// The archive name a user means by `path` (`/srv/x/`, `srv/x` → `srv/x`).
pub fn archive_name(path: &std::path::Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let start = bytes.iter().position(|b| *b != b'/').unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| *b != b'/').map_or(start, |i| i + 1);
    bytes[start..end.max(start)].to_vec()
}

/// `2026-11-27 10:00:00` (UTC) for an entry's mtime.
pub fn mtime_text(e: &FileEntry) -> String {
    chrono::DateTime::from_timestamp(e.mtime, e.mtime_nsec)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| e.mtime.to_string())
}

/// An entry as the browse commands print it in JSON: the index line's
/// fields (`path` or `path_b64`, `type`, `size`, `mode`, …) without the
/// offset, plus `mtime_utc` and `mode_text`.
pub fn entry_json(e: &FileEntry) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.remove("offset");
        map.insert(
            "mtime_utc".into(),
            chrono::DateTime::from_timestamp(e.mtime, e.mtime_nsec).map_or(Value::Null, |t| Value::from(rfc3339(t))),
        );
        map.insert("mode_text".into(), Value::from(e.mode_text()));
    }
    v
}

/// The head of a JSON object about one backup.
pub fn backup_json(profile: &Profile, entry: &CatalogEntry) -> Value {
    let m = &entry.manifest;
    json!({"target": profile.target(), "id": m.id, "time": rfc3339(m.time), "kind": m.kind})
}

/// Buffered stdout for long listings: written in 64 KiB pieces through
/// [`crate::output::write_stdout`] (a closed pipe ends the output quietly).
#[derive(Default)]
pub struct Out {
    buf: Vec<u8>,
}

impl Out {
    /// Adds text.
    pub fn push(&mut self, text: &str) -> Result<()> {
        self.buf.extend_from_slice(text.as_bytes());
        if self.buf.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(())
    }

    /// Adds a line. Printed under `-q` too: a listing is the result that
    /// was asked for, not chatter (`-q` silences progress and summaries).
    pub fn line(&mut self, text: &str) -> Result<()> {
        self.push(text)?;
        self.push("\n")
    }

    /// Writes what is buffered.
    pub fn flush(&mut self) -> Result<()> {
        crate::output::write_stdout(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

/// A JSON array written item by item: `[`, items separated by `,`, `]`.
pub struct JsonList {
    first: bool,
}

impl JsonList {
    /// Starts the array after `head` (e.g. `{"entries":`).
    pub fn start(out: &mut Out, head: &str) -> Result<Self> {
        out.push(head)?;
        out.push("[")?;
        Ok(JsonList { first: true })
    }

    /// Adds one item.
    pub fn item(&mut self, out: &mut Out, item: &Value) -> Result<()> {
        out.push(if self.first { "\n  " } else { ",\n  " })?;
        self.first = false;
        out.push(&serde_json::to_string(item)?)
    }

    /// Ends the array, then writes `tail` (e.g. `}`).
    pub fn end(self, out: &mut Out, tail: &str) -> Result<()> {
        out.push(if self.first { "]" } else { "\n]" })?;
        out.push(tail)?;
        out.push("\n")?;
        out.flush()
    }
}

/// `{"target":…,"id":…,…,` — a JSON object's fields without the closing
/// brace, for a list that follows.
pub fn open_object(head: &Value) -> String {
    let text = serde_json::to_string(head).unwrap_or_else(|_| "{}".into());
    let body = text.trim_end_matches('}');
    if body.len() <= 1 {
        "{".to_owned()
    } else {
        format!("{body},")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_shown_safely() {
        assert_eq!(shown(b"srv/a b.txt"), "/srv/a b.txt");
        assert_eq!(shown(b"srv/caf\xe9"), "/srv/caf\\351");
        assert_eq!(shown(b"a\nb\\"), "/a\\012b\\134");
        assert_eq!(shown("é".as_bytes()), "/é");
        assert_eq!(archive_name(std::path::Path::new("/srv/x/")), b"srv/x");
        assert_eq!(archive_name(std::path::Path::new("/")), b"");
    }

    #[test]
    fn objects_open_for_a_list() {
        assert_eq!(open_object(&json!({"a": 1})), "{\"a\":1,");
        assert_eq!(open_object(&json!({})), "{");
    }
}
